#!/usr/bin/python3
"""text_peer.py -- the PyTorch peer of bench/text.sh (tests/parity/text_ref.py's modules, which
follow transformers' modeling code), and the checkpoints the bench uses.

  make-bert DIR [LAYERS]        BERT-large (chinese-roberta-wwm-ext-large config, 24 layers, or
                                its first LAYERS), random F32 weights, DIR/config.json +
                                model.safetensors
  time-bert DIR B T THREADS REPS            fp32 forward of B x T ids: "RESULT seconds"
  make-llm NAME DIR              the 2-layer slice NAME of tests/parity/text_parity.py (llama2-7b,
                                baichuan-13b, ...): random BF16 weights, DIR/config.json +
                                model.safetensors (weights only: no reference forward)
  time-llm DIR STYLE T THREADS REPS DTYPE   forward of one T-token prompt through the checkpoint in
                                DIR (a 2-layer slice made by tests/parity/text_parity.py), with
                                weights and activations in DTYPE (bf16 | fp32): "RESULT seconds"
"""
import json
import os
import struct
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
import text_ref  # noqa: E402

BERT_LARGE = {"architectures": ["BertForMaskedLM"], "model_type": "bert", "hidden_size": 1024,
              "num_attention_heads": 16, "intermediate_size": 4096, "num_hidden_layers": 24,
              "vocab_size": 21128, "max_position_embeddings": 512, "type_vocab_size": 2,
              "layer_norm_eps": 1e-12, "hidden_act": "gelu", "pad_token_id": 0}


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        base = 8 + n
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        buf = raw[base + a:base + b]
        if v["dtype"] == "BF16":
            t = torch.from_numpy(np.array(buf).view(np.int16)).view(torch.bfloat16)
        else:
            t = torch.from_numpy(np.array(buf).view({"F32": np.float32, "F16": np.float16}[v["dtype"]]))
        out[k] = t.reshape(v["shape"])
    return out


def best_of(fn, reps):
    """Best of reps timed runs after one warm-up; reps 0: one run, no warm-up (slow peers)."""
    if reps == 0:
        t0 = time.time()
        fn()
        return time.time() - t0
    fn()
    best = 1e30
    for _ in range(reps):
        t0 = time.time()
        fn()
        best = min(best, time.time() - t0)
    return best


def main():
    cmd = sys.argv[1]
    if cmd == "make-bert":
        d = sys.argv[2]
        cfg = dict(BERT_LARGE)
        if len(sys.argv) > 3:
            cfg["num_hidden_layers"] = int(sys.argv[3])
        os.makedirs(d, exist_ok=True)
        if os.path.exists(os.path.join(d, "model.safetensors")):
            return
        w = text_ref.bert_weights(cfg, torch.Generator().manual_seed(3), "bert.")
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        text_ref.save_safetensors(os.path.join(d, "model.safetensors"), w, {"format": "pt"})
    elif cmd == "make-llm":
        name, d = sys.argv[2], sys.argv[3]
        if os.path.exists(os.path.join(d, "model.safetensors")):
            return
        import text_parity
        spec = text_parity.CONFIGS[name]
        cfg = spec["cfg"]
        os.makedirs(d, exist_ok=True)
        style = "llama" if spec["kind"] == "llama" else spec["kind"]
        w = text_ref.llama_weights(cfg, torch.Generator().manual_seed(7), style, qkv_bias=spec.get("bias", False),
                                   dtype=torch.bfloat16)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        text_ref.save_safetensors(os.path.join(d, "model.safetensors"),
                                  {k: v.to(torch.bfloat16) for k, v in w.items()}, {"format": "pt"})
    elif cmd == "time-bert":
        d, B, T, th, reps = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
        torch.set_num_threads(th)
        cfg = json.load(open(os.path.join(d, "config.json")))
        w = {k: v.float() for k, v in load_safetensors(os.path.join(d, "model.safetensors")).items()}
        ids = torch.randint(5, cfg["vocab_size"], (B, T))
        with torch.inference_mode():
            t = best_of(lambda: text_ref.bert_forward(cfg, w, ids, None, "bert."), reps)
        print(f"RESULT {t:.4f}")
    elif cmd == "time-llm":
        d, style, T, th, reps, dt = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
        torch.set_num_threads(th)
        dtype = torch.bfloat16 if dt == "bf16" else torch.float32
        cfg = json.load(open(os.path.join(d, "config.json")))
        w = {k: v.to(dtype) for k, v in load_safetensors(os.path.join(d, "model.safetensors")).items()}
        ids = torch.randint(5, cfg["vocab_size"], (1, T))
        with torch.inference_mode():
            t = best_of(lambda: text_ref.llama_forward(cfg, w, ids, style), reps)
        print(f"RESULT {t:.4f}")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
