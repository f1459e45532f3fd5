#!/usr/bin/python3
"""The peers of bench/speed.sh (issue #14): the same random-weight HuBERT-large and CLIP ViT-L/14
for PyTorch and ONNX Runtime, and the table of the results.

  speed_peer.py make DIR SIZE         inputs and checkpoints: DIR/hubert (safetensors, config),
                                      DIR/a10.wav, DIR/wave.f32 (the normalised samples),
                                      DIR/clip (CLIPModel-style checkpoint), DIR/pixels.f32
  speed_peer.py export DIR SIZE MODEL ONNX exports (opset 17) DIR/MODEL.onnx and the int8 variant
                                      DIR/MODEL_int8.onnx (MODEL: hubert | clip)
  speed_peer.py shape DIR SIZE MODEL  the input's shape, e.g. 8,3,224,224
  speed_peer.py time DIR SIZE MODEL PREC THREADS REPS
                                      PyTorch fp32 (PREC f32) or torch.quantization.quantize_dynamic
                                      int8 (PREC int8) of every nn.Linear; prints "RESULT s S"
  speed_peer.py table RESULTS PEAKS   the table of bench/speed.sh (best of all rounds)

SIZE is "full" (HuBERT-large on 10 s, CLIP-L/14 on a batch of 8; the issue's configurations) or
"tiny" (a few layers at small width, to check the whole chain in a minute). Every file is
written to a temporary name and renamed when complete, and an existing file is reused, so a
stopped run resumes where it was (`make` and `export` may be killed by a timeout at any point).

HuBERT runs as torchaudio's wav2vec2_model (tests/fixtures/hubert/make_hubert_fixture.py), every
hidden state out; CLIP as tests/parity/clip_ref.py's CLIPVisionModelWithProjection,
get_image_features out (the whole tower either way). The int8 ONNX variant rewrites each MatMul
with a constant 2-D weight into DynamicQuantizeLinear + MatMulInteger with per-column int8
weights (ORT's dynamic quantisation as its own tool writes it; that tool is pip-only).
"""
import json
import os
import shutil
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures", "hubert"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "parity"))
import make_hubert_fixture as fx  # noqa: E402
import hubert_parity as par  # noqa: E402
import clip_ref  # noqa: E402
sys.path.insert(0, HERE)
from hubert_peer import read_safetensors  # noqa: E402

CONV_TINY = dict(conv_dim=[32] * 7, conv_kernel=[10, 3, 3, 3, 3, 2, 2], conv_stride=[5, 2, 2, 2, 2, 2, 2])
SIZES = {
    "full": dict(hubert=par.CONFIGS["large"], seconds=10.0,
                 clip=dict(clip_ref.CONFIGS["L/14"], hidden_act="quick_gelu"), batch=8),
    "tiny": dict(hubert=dict(par.CONFIGS["large"], hidden_size=64, num_hidden_layers=4,
                             num_attention_heads=4, intermediate_size=128, **CONV_TINY),
                 seconds=2.0,
                 clip=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, image_size=56, patch_size=14, projection_dim=32,
                           hidden_act="quick_gelu"),
                 batch=2),
}


def done(path):
    return os.path.exists(path)


def into_place(dirname, write):
    """write(tmpdir) then rename the directory: a directory that exists is complete."""
    tmp = dirname + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(dirname, ignore_errors=True)
    write(tmp)
    os.replace(tmp, dirname)


def replace_from_tmp(path, write):
    """write(tmp) then rename: a file that exists is complete."""
    tmp = path + ".tmp"
    write(tmp)
    os.replace(tmp, path)


# ---- models -----------------------------------------------------------------------------------

def hubert_model(d, size):
    model = fx.build(SIZES[size]["hubert"], 0)
    fx.load_hf_state_dict(model, read_safetensors(os.path.join(d, "hubert", "model.safetensors")))
    return model


def clip_model(d, size):
    model = clip_ref.VisionModelWithProjection(SIZES[size]["clip"]).eval()
    model.load_state_dict(read_safetensors(os.path.join(d, "clip", "model.safetensors")))
    return model


class HubertStates(torch.nn.Module):
    """fx.hidden_states as a module: every hidden state of the encoder, stacked."""

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


class ClipEmbeds(torch.nn.Module):
    """get_image_features: visual_projection(post_layernorm(cls))."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        _, pooled, _ = self.m.vision_model(x)
        return self.m.visual_projection(pooled)


def inputs(d, size, which):
    if which == "hubert":
        w = np.fromfile(os.path.join(d, "wave.f32"), dtype="<f4")
        return torch.from_numpy(w.copy())[None]
    c = SIZES[size]["clip"]
    s = c["image_size"]
    p = np.fromfile(os.path.join(d, "pixels.f32"), dtype="<f4")
    return torch.from_numpy(p.copy()).reshape(SIZES[size]["batch"], 3, s, s)


def make(d, size):
    z = SIZES[size]
    os.makedirs(d, exist_ok=True)
    hd = os.path.join(d, "hubert")
    if not done(os.path.join(hd, "model.safetensors")):
        print(f"make: random-weight HuBERT ({size})", flush=True)
        model = fx.build(z["hubert"], 300)
        into_place(hd, lambda t: fx.write_checkpoint(t, z["hubert"], fx.hf_state_dict(model, "parametrizations")))
    if not done(os.path.join(d, "wave.f32")):
        x = fx.write_wav_s16(os.path.join(d, "a10.wav.tmp"), fx.test_signal(z["seconds"], 3))
        os.replace(os.path.join(d, "a10.wav.tmp"), os.path.join(d, "a10.wav"))
        replace_from_tmp(os.path.join(d, "wave.f32"), lambda t: fx.normalize(x).astype("<f4").tofile(t))
    cd = os.path.join(d, "clip")
    if not done(os.path.join(cd, "model.safetensors")):
        print(f"make: random-weight CLIP ViT ({size})", flush=True)
        c = z["clip"]
        torch.manual_seed(0)
        model = clip_ref.VisionModelWithProjection(c).eval()
        clip_ref.randomize_(model, 9)

        def write(t):
            os.makedirs(t)
            vc = {k: v for k, v in c.items() if k != "projection_dim"}
            json.dump({"model_type": "clip", "projection_dim": c["projection_dim"],
                       "vision_config": dict(vc, model_type="clip_vision_model")},
                      open(os.path.join(t, "config.json"), "w"))
            s = c["image_size"]
            json.dump({"size": {"shortest_edge": s}, "crop_size": {"height": s, "width": s}},
                      open(os.path.join(t, "preprocessor_config.json"), "w"))
            clip_ref.save_safetensors(os.path.join(t, "model.safetensors"), model.state_dict())
        into_place(cd, write)
    if not done(os.path.join(d, "pixels.f32")):
        s = z["clip"]["image_size"]
        rng = np.random.default_rng(5)
        px = rng.standard_normal((z["batch"], 3, s, s)).astype("<f4")
        replace_from_tmp(os.path.join(d, "pixels.f32"), lambda t: px.tofile(t))
    return 0


# ---- ONNX -------------------------------------------------------------------------------------

def quantize_matmuls(src, dst):
    """Each MatMul(A, W) with W an initializer of rank 2 becomes
    DynamicQuantizeLinear(A) -> MatMulInteger(Aq, Wq, Azp) -> Cast -> Mul(A_scale * w_scale)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
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


def export(d, size, which):
    f32 = os.path.join(d, which + ".onnx")
    i8 = os.path.join(d, which + "_int8.onnx")
    if not done(f32):
        t0 = time.time()
        if which == "hubert":
            mod, name, out, axes = HubertStates(hubert_model(d, size)), "wave", "hidden", {1: "n"}
        else:
            mod, name, out, axes = ClipEmbeds(clip_model(d, size)), "pixels", "embeds", {0: "b"}
        x = inputs(d, size, which)
        with torch.no_grad():
            replace_from_tmp(f32, lambda t: torch.onnx.export(
                mod, x, t, opset_version=17, input_names=[name], output_names=[out],
                dynamic_axes={name: axes}))
        print(f"export: {f32} in {time.time() - t0:.0f} s", flush=True)
    if not done(i8):
        t0 = time.time()
        n = [0]

        def q(t):
            n[0] = quantize_matmuls(f32, t)
        replace_from_tmp(i8, q)
        print(f"export: {i8}, {n[0]} MatMuls rewritten, in {time.time() - t0:.0f} s", flush=True)
    return 0


# ---- PyTorch timing ---------------------------------------------------------------------------

def time_torch(d, size, which, prec, threads, reps):
    torch.set_num_threads(threads)
    model = hubert_model(d, size) if which == "hubert" else clip_model(d, size)
    mod = HubertStates(model) if which == "hubert" else ClipEmbeds(model)
    if prec == "int8":
        # in place: a deep copy fails on the weight-normed positional convolution
        mod = torch.quantization.quantize_dynamic(mod, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    x = inputs(d, size, which)
    times = []
    with torch.inference_mode():
        mod(x)  # warm-up
        for _ in range(reps):
            t0 = time.perf_counter()
            mod(x)
            times.append(time.perf_counter() - t0)
    times.sort()
    eng = f", quantized engine {torch.backends.quantized.engine}" if prec == "int8" else ""
    print(f"torch {torch.__version__} {which} {prec}, {threads} threads{eng}: best {times[0]:.3f} s, "
          f"median {times[len(times) // 2]:.3f} s")
    print(f"RESULT s {times[0]:.4f}")
    return 0


# ---- the table --------------------------------------------------------------------------------

ENGINES = ["mer fp32", "mer bf16", "mer int8", "ORT fp32", "ORT int8", "torch fp32", "torch int8"]
TITLE = {"hubert": "HuBERT-large-size encoder", "clip": "CLIP ViT-L/14-size vision tower"}


def table(results, peaks):
    """results: lines "MODEL ENGINE-WORDS SECONDS" (e.g. "hubert mer fp32 2.91") and
    "MODEL flop F" / "MODEL what TEXT"; peaks: lines "fp32 G" "bf16 G" "int8 G" (GOPS of the
    machine at the bench's thread count; bf16/int8 absent when the CPU has no such unit)."""
    best, flop, what = {}, {}, {}
    for line in open(results):
        w = line.split()
        if len(w) < 3:
            continue
        if w[1] == "flop":
            flop[w[0]] = float(w[2])
        elif w[1] == "what":
            what[w[0]] = " ".join(w[2:])
        else:
            k = (w[0], " ".join(w[1:-1]))
            try:
                t = float(w[-1])
            except ValueError:
                continue
            if t > 0:
                best[k] = min(best.get(k, 1e30), t)
    pk = {}
    for line in open(peaks):
        w = line.split()
        if len(w) == 2:
            pk[w[0]] = float(w[1])
    fp32 = pk.get("fp32", 0.0)
    # the floor of a precision: the machine's rate for its products (bf16 and int8 on units that
    # exist here; without vdpbf16ps a bf16 GEMM computes in fp32, so its floor is fp32's)
    floor_rate = {"fp32": fp32, "bf16": pk.get("bf16", fp32), "int8": pk.get("int8", fp32)}
    print(f"peak (mer bench peak, same run): fp32 {fp32:.0f} GFLOPS, bf16 floor rate "
          f"{floor_rate['bf16']:.0f}, int8 floor rate {floor_rate['int8']:.0f} GOPS")
    ok_all = True
    for m in ("hubert", "clip"):
        if m not in flop:
            continue
        F = flop[m]
        print(f"\n{TITLE[m]}, {what.get(m, '')}: {F / 1e9:.1f} GFLOP per forward")
        print(f"  {'engine':<11} {'best s':>8} {'GFLOPS':>7} {'% fp32 pk':>9} {'x floor':>7} "
              f"{'ORT fp32/x':>10} {'ORT int8/x':>10} {'torch/x':>8}")
        for e in ENGINES:
            t = best.get((m, e))
            if t is None:
                print(f"  {e:<11} {'-':>8}")
                continue
            prec = e.split()[1]
            fl = F / floor_rate[prec] / 1e9 if floor_rate[prec] > 0 else 0

            def r(o):
                v = best.get((m, o))
                return f"{v / t:.2f}" if v else "-"
            print(f"  {e:<11} {t:8.3f} {F / t / 1e9:7.1f} {100 * F / t / 1e9 / fp32 if fp32 else 0:8.0f}% "
                  f"{t / fl if fl else 0:7.2f} {r('ORT fp32'):>10} {r('ORT int8'):>10} {r('torch fp32'):>8}")
        bars = []

        def bar(text, a, b, limit, floor=None):
            ta = best.get((m, a))
            if floor is not None:
                if ta is None or floor_rate[floor] <= 0:
                    bars.append(f"{text}: not measured")
                    return None
                v = ta / (F / floor_rate[floor] / 1e9)
                ok = v <= limit
                bars.append(f"{text}: {v:.2f} (<= {limit} wanted) {'MET' if ok else 'MISSED'}")
                return ok
            tb = best.get((m, b))
            if ta is None or tb is None:
                bars.append(f"{text}: not measured")
                return None
            v = tb / ta
            ok = v > limit
            note = ""
            prec = a.split()[1]
            if not ok and floor_rate[prec] > 0 and F / floor_rate[prec] / 1e9 > tb / limit:
                # not reachable on this CPU: even at the peak of a's precision it would not be
                note = (f" (not reachable here: the {prec} floor {F / floor_rate[prec] / 1e9:.3f} s "
                        f"is above {b} {tb:.3f} s)")
            bars.append(f"{text}: {v:.2f} (> {limit} wanted) {'MET' if ok else 'MISSED'}{note}")
            return ok
        res = [bar("ORT fp32 / mer fp32", "mer fp32", "ORT fp32", 1.0),
               bar("ORT int8 / mer bf16", "mer bf16", "ORT int8", 1.0),
               bar("ORT int8 / mer int8", "mer int8", "ORT int8", 1.0),
               bar("mer fp32 / fp32 floor", "mer fp32", None, 1.3, "fp32"),
               bar("mer bf16 / bf16 floor", "mer bf16", None, 1.4, "bf16")]
        for b in bars:
            print("  bar " + b)
        ok_all = ok_all and all(x is True for x in res)
    print(f"\nall bars {'MET' if ok_all else 'not all met'}")
    return 0


def peer_accuracy(d, size, which):
    """Cosines per input between the embeddings each engine wrote (acc_<engine>.f32 in d: mer
    fp32 / bf16 / int8 from clip_bench CLIP_DUMP, ORT fp32 / int8 from ort_peer.js ORT_DUMP):
    each reduced precision against its own engine's fp32, and mer fp32 against ORT fp32."""
    n = inputs(d, size, which).shape[0]
    e = {}
    for k in ("mer_f32", "mer_bf16", "mer_int8", "ort", "ort_int8"):
        p = os.path.join(d, f"acc_{k}.f32")
        if os.path.exists(p):
            e[k] = np.fromfile(p, dtype=np.float32).reshape(n, -1).astype(np.float64)

    def cos(a, b):
        c = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        return f"min {c.min():.6f}, mean {c.mean():.6f}"

    print(f"  {which} embeddings, cosine per input over {n} inputs (bar 0.9995 for a reduced precision):")
    for a, b, what in (("mer_bf16", "mer_f32", "mer bf16 vs mer fp32"), ("mer_int8", "mer_f32", "mer int8 vs mer fp32"),
                       ("ort_int8", "ort", "ORT int8 vs ORT fp32"), ("mer_f32", "ort", "mer fp32 vs ORT fp32")):
        if a in e and b in e:
            print(f"    {what:22s} {cos(e[a], e[b])}")
        else:
            print(f"    {what:22s} missing ({a if a not in e else b})")
    return 0


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    cmd = sys.argv[1]
    if cmd == "table":
        return table(sys.argv[2], sys.argv[3])
    d, size = sys.argv[2], sys.argv[3]
    if size not in SIZES:
        print(f"speed_peer.py: unknown size {size!r} (full or tiny)", file=sys.stderr)
        return 2
    if cmd == "make":
        return make(d, size)
    if cmd == "shape":  # the input shape of MODEL for ort_peer.js
        print(",".join(str(v) for v in inputs(d, size, sys.argv[4]).shape))
        return 0
    if cmd == "export":
        return export(d, size, sys.argv[4])
    if cmd == "peer_accuracy":
        return peer_accuracy(d, size, sys.argv[4])
    if cmd == "time":
        return time_torch(d, size, sys.argv[4], sys.argv[5], int(sys.argv[6]), int(sys.argv[7]))
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
