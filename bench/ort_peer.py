#!/usr/bin/python3
"""ONNX Runtime peer of bench/hubert.sh: export the same random-weight HuBERT-large (the
checkpoint of bench/hubert_peer.py, loaded into torchaudio's wav2vec2_model) with Debian's torch
(torch.onnx.export, opset 17), every hidden state as outputs; and its int8 variant made by
rewriting each MatMul with a constant weight into DynamicQuantizeLinear + MatMulInteger (per-
column int8 weights, ORT's dynamic quantisation as its own tool would write it; that tool is not
installable here). bench/ort_peer.js times them with onnxruntime-node.

  ort_peer.py export DIR    DIR/large (checkpoint) -> DIR/hubert_large.onnx, DIR/hubert_large_int8.onnx
"""
import os
import sys

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures", "hubert"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "parity"))
sys.path.insert(0, HERE)
import make_hubert_fixture as fx  # noqa: E402
import hubert_parity as par  # noqa: E402
from hubert_peer import read_safetensors  # noqa: E402


class AllStates(torch.nn.Module):
    """fx.hidden_states as a module: the encoder's every hidden state, stacked."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        feats, _ = self.m.feature_extractor(x, None)
        h = self.m.encoder.feature_projection(feats)
        tr = self.m.encoder.transformer
        h = tr._preprocess(h)
        hs = [h]
        for layer in tr.layers:
            h = layer(h, None)
            hs.append(h)
        if not tr.layer_norm_first:
            hs[-1] = tr.layer_norm(hs[-1])
        return torch.stack(hs, 0)


def quantize_matmuls(src, dst):
    """Each MatMul(A, W) with W an initializer of rank 2 becomes
    DynamicQuantizeLinear(A) -> MatMulInteger(Aq, Wq, Azp) -> Cast -> Mul(A_scale * w_scale)."""
    model = onnx.load(src)
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    nodes, n_q = [], 0
    for node in g.node:
        if node.op_type != "MatMul" or node.input[1] not in inits or len(inits[node.input[1]].dims) != 2:
            nodes.append(node)
            continue
        w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)  # (K, N)
        s = np.abs(w).max(axis=0) / 127.0
        s[s == 0] = 1.0
        q = np.clip(np.rint(w / s), -127, 127).astype(np.int8)
        p = f"q{n_q}_"
        n_q += 1
        g.initializer.extend([numpy_helper.from_array(q, p + "w"),
                              numpy_helper.from_array(np.zeros(q.shape[1], np.int8), p + "wzp"),
                              numpy_helper.from_array(s.astype(np.float32), p + "ws")])
        a = node.input[0]
        nodes += [
            helper.make_node("DynamicQuantizeLinear", [a], [p + "aq", p + "as", p + "azp"]),
            helper.make_node("MatMulInteger", [p + "aq", p + "w", p + "azp", p + "wzp"], [p + "acc"]),
            helper.make_node("Cast", [p + "acc"], [p + "accf"], to=TensorProto.FLOAT),
            helper.make_node("Mul", [p + "as", p + "ws"], [p + "sc"]),
            helper.make_node("Mul", [p + "accf", p + "sc"], [node.output[0]]),
        ]
    del g.node[:]
    g.node.extend(nodes)
    used = {i for n in g.node for i in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    onnx.save(model, dst)
    return n_q


def main():
    cmd, d = sys.argv[1], sys.argv[2]
    if cmd != "export":
        print(__doc__)
        return 2
    f32 = os.path.join(d, "hubert_large.onnx")
    i8 = os.path.join(d, "hubert_large_int8.onnx")
    if not os.path.exists(f32):
        model = fx.build(par.CONFIGS["large"], 0)
        fx.load_hf_state_dict(model, read_safetensors(os.path.join(d, "large", "model.safetensors")))
        with torch.no_grad():
            torch.onnx.export(AllStates(model), torch.zeros(1, 160000), f32, opset_version=17,
                              input_names=["wave"], output_names=["hidden"],
                              dynamic_axes={"wave": {1: "n"}})
    if not os.path.exists(i8):
        print("int8: %d MatMuls rewritten" % quantize_matmuls(f32, i8))
    return 0


if __name__ == "__main__":
    sys.exit(main())
