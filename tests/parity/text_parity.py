#!/usr/bin/python3
"""text_parity.py -- full-width exactness of mer's text encoders against the PyTorch reference of
the Hugging Face modeling code (text_ref.py), random weights at the real configurations, each cut
to a 2-layer slice at full width (hidden, heads, kv heads, intermediate as published):

  bert-large     hfl/chinese-roberta-wwm-ext-large (BERT architecture, 1024 x 16 heads, 4096),
                 full vocabulary (21128), F32 weights
  llama2-7b      meta-llama/Llama-2-7b-hf (4096, 32 heads, 11008, rms 1e-5), BF16 weights
  qwen2-7b       Qwen/Qwen2-7B (3584, 28 heads / 4 kv heads, 18944, q/k/v biases, theta 1e6), BF16
  baichuan-13b   baichuan-inc/Baichuan-13B-Base (5120, 40 heads, 13696, W_pack, ALiBi), BF16

The decoders' vocabularies are cut to 4096 rows (the embedding lookup is the same code at any
size; it keeps the checkpoints and the reference under 5 GB). BF16 checkpoints hold values the
reference also uses (as float32), so mer's F32 precision widens them exactly.
Checks, a padded batch of 2 x 48 tokens:
  - every hidden state (embeddings, layer 1, layer 2 [after the final norm for decoders]) within
    max|diff| <= 1e-4 * max|ref|, mer at F32 precision;
  - the MERTools feature of row 0 (sum of the last 4 states: here all 3; mean over tokens) at BF16
    and INT8 (W8A8) precision, from `mer quantize` files (blocks of 32 and per row) at F32 (the
    weight-only widening) and the block-32 file at INT8, cosine >= 0.999 against mer F32 (the
    cosines of both int8 layouts are printed: which stays closer).

usage: tests/parity/text_parity.py [--configs bert-large,llama2-7b,qwen2-7b,baichuan-13b]
                                   [--mer build/mer] [--work DIR] [--keep]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import text_ref  # noqa: E402

CONFIGS = {
    "bert-large": dict(kind="bert", cfg={
        "architectures": ["BertForMaskedLM"], "model_type": "bert", "hidden_size": 1024,
        "num_attention_heads": 16, "intermediate_size": 4096, "num_hidden_layers": 2,
        "vocab_size": 21128, "max_position_embeddings": 512, "type_vocab_size": 2,
        "layer_norm_eps": 1e-12, "hidden_act": "gelu", "pad_token_id": 0}),
    "llama2-7b": dict(kind="llama", cfg={
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
        "num_attention_heads": 32, "num_key_value_heads": 32, "intermediate_size": 11008,
        "num_hidden_layers": 2, "vocab_size": 4096, "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu"}),
    "qwen2-7b": dict(kind="llama", bias=True, cfg={
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 3584,
        "num_attention_heads": 28, "num_key_value_heads": 4, "intermediate_size": 18944,
        "num_hidden_layers": 2, "vocab_size": 4096, "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "hidden_act": "silu",
        "use_sliding_window": False}),
    "baichuan-13b": dict(kind="baichuan_alibi", cfg={
        "architectures": ["BaichuanForCausalLM"], "model_type": "baichuan", "hidden_size": 5120,
        "num_attention_heads": 40, "intermediate_size": 13696, "num_hidden_layers": 2,
        "vocab_size": 4096, "model_max_length": 4096, "rms_norm_eps": 1e-6, "hidden_act": "silu",
        "position_embedding_type": "alibi"}),
}
B, T, REAL1 = 2, 48, 31


def make(name, d, seed=7):
    spec = CONFIGS[name]
    cfg = spec["cfg"]
    gen = torch.Generator().manual_seed(seed)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    ids = torch.randint(5, cfg["vocab_size"], (B, T), generator=gen)
    mask = torch.ones(B, T, dtype=torch.int64)
    mask[1, REAL1:] = 0
    if spec["kind"] == "bert":
        ids[:, 0] = 2
        ids[1, REAL1:] = 0
        w = text_ref.bert_weights(cfg, gen, "bert.")
        text_ref.save_safetensors(os.path.join(d, "model.safetensors"), w, {"format": "pt"})
        with torch.no_grad():
            hs = text_ref.bert_forward(cfg, w, ids, mask, "bert.")
    else:
        style = "llama" if spec["kind"] == "llama" else spec["kind"]
        w = text_ref.llama_weights(cfg, gen, style, qkv_bias=spec.get("bias", False), dtype=torch.bfloat16)
        text_ref.save_safetensors(os.path.join(d, "model.safetensors"),
                                  {k: v.to(torch.bfloat16) for k, v in w.items()}, {"format": "pt"})
        with torch.no_grad():
            hs = text_ref.llama_forward(cfg, w, ids, style, mask)
    np.save(os.path.join(d, "ids.npy"), ids.numpy().astype(np.float32))
    np.save(os.path.join(d, "mask.npy"), mask.numpy().astype(np.float32))
    np.save(os.path.join(d, "ref.npy"), torch.stack(hs).numpy())
    del w, hs


def run(bench, *args):
    r = subprocess.run([bench] + list(args), capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stderr)
        raise SystemExit(f"failed: {bench} {' '.join(args)}")
    sys.stdout.write(r.stderr)


def cosine(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="bert-large,llama2-7b,qwen2-7b,baichuan-13b")
    ap.add_argument("--mer", default="build/mer")
    ap.add_argument("--bench", default="build/bench/text_bench")
    ap.add_argument("--work", default="build/parity/text")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(2)
    ok = True
    for name in a.configs.split(","):
        d = os.path.join(a.work, name)
        t0 = time.time()
        if not os.path.exists(os.path.join(d, "ref.npy")):
            make(name, d)
        print(f"{name}: checkpoint + reference in {time.time() - t0:.0f} s")
        ref = np.load(os.path.join(d, "ref.npy"))
        ids, mask = os.path.join(d, "ids.npy"), os.path.join(d, "mask.npy")
        out, feat = os.path.join(d, "mer_f32.npy"), os.path.join(d, "feat_f32.npy")
        run(a.bench, "hidden", d, ids, mask, "f32", out, feat)
        got = np.load(out)
        for k in range(ref.shape[0]):
            md = float(np.abs(got[k] - ref[k]).max())
            mr = float(np.abs(ref[k]).max())
            good = md <= 1e-4 * mr
            ok &= good
            print(f"  {name} hidden state {k}: max|diff| {md:.3g}, max|ref| {mr:.3g}, rel {md / mr:.2e} "
                  f"{'ok' if good else 'FAIL (bar 1e-4)'}")
        f32 = np.load(feat)
        # the reference's own MERTools feature, to tie the features to PyTorch as well
        m0 = np.load(mask)[0] != 0
        rf = ref[-4:, 0][:, m0].sum(0).mean(0)
        print(f"  {name} MERTools feature f32 vs PyTorch: cosine {cosine(f32, rf):.8f}")
        variants = [("bf16", d, "bf16"), ("int8 W8A8", d, "int8")]
        for blk, flag in (("block32", []), ("per-row", ["--per-row"])):
            qd = os.path.join(d, "q_" + blk)
            if not os.path.exists(os.path.join(qd, "model.safetensors")):
                subprocess.run([a.mer, "quantize", d, "--out", qd] + flag, check=True)
            variants.append((f"int8 file ({blk}) at f32", qd, "f32"))
        # the 13B route: a block-32 file run at INT8 (widened, requantized per channel, W8A8)
        variants.append(("int8 file (block32) at int8 W8A8", os.path.join(d, "q_block32"), "int8"))
        for label, md_, prec in variants:
            fo = os.path.join(d, "feat_var.npy")
            run(a.bench, "hidden", md_, ids, mask, prec, os.path.join(d, "mer_var.npy"), fo)
            c = cosine(np.load(fo), f32)
            good = c >= 0.999
            ok &= good
            print(f"  {name} MERTools feature {label}: cosine vs f32 {c:.6f} {'ok' if good else 'FAIL (bar 0.999)'}")
        for f in ("mer_var.npy", "feat_var.npy", "mer_f32.npy"):
            if os.path.exists(os.path.join(d, f)):
                os.remove(os.path.join(d, f))
        if not a.keep:
            shutil.rmtree(d)
    print("text parity:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
