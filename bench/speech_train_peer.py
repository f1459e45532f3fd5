#!/usr/bin/python3
"""PyTorch peer of bench/speech_train_bench.c: the same training step (layers first..last of
the checkpoint on random cached inputs, adapters in first..adapt_last, head, cross-entropy,
backward, AdamW) with transformers' layer math (tests/fixtures/speech_train/
make_speech_train_fixture.py), base weights frozen, requires_grad only on the adapters and head.
The clips all have the same length, so the step runs them as one (clips, frames, D) batch, as
transformers' HubertModel does (batched projections, (clips, heads, T, T) attention), not the
fixture's loop over clips; `--per-clip` runs the fixture's forward instead (same loss).
usage: speech_train_peer.py CKPT first adapt_last last clips frames threads reps [bottleneck] [--per-clip]
Output: "RESULT torch <seconds> <peak_rss_MB>".
"""
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures", "speech_train"))
import make_speech_train_fixture as st  # noqa: E402


def batched_forward(x, case, w, p):
    """Logits of x (clips, T, D): layers first..last (stable-layer-norm, as HuBERT-large)."""
    cfg = case["cfg"]
    L, D, H = cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"]
    eps, dh = cfg["layer_norm_eps"], D // H
    B, T, _ = x.shape
    assert cfg["do_stable_layer_norm"]
    hsum = None
    for hs in range(case["first"], case["last"] + 1):
        pre = "encoder.layers.%d." % (hs - 1)
        lin = lambda t, n: F.linear(t, w[pre + n + ".weight"], w[pre + n + ".bias"])
        ln = lambda t, n: F.layer_norm(t, (D,), w[pre + n + ".weight"], w[pre + n + ".bias"], eps)
        a = ln(x, "layer_norm")
        q = lin(a, "attention.q_proj").view(B, T, H, dh).transpose(1, 2)
        k = lin(a, "attention.k_proj").view(B, T, H, dh).transpose(1, 2)
        v = lin(a, "attention.v_proj").view(B, T, H, dh).transpose(1, 2)
        att = torch.softmax((q * dh ** -0.5) @ k.transpose(2, 3), dim=-1)
        x = x + lin((att @ v).transpose(1, 2).reshape(B, T, D), "attention.out_proj")
        f = lin(F.gelu(lin(ln(x, "final_layer_norm"), "feed_forward.intermediate_dense")),
                "feed_forward.output_dense")
        if pre + "adapter.down.weight" in p:
            f = f + F.linear(F.relu(F.linear(f, p[pre + "adapter.down.weight"], p[pre + "adapter.down.bias"])),
                             p[pre + "adapter.up.weight"], p[pre + "adapter.up.bias"])
        x = x + f
        if hs >= case["head_first"]:
            h = F.layer_norm(x, (D,), w["encoder.layer_norm.weight"], w["encoder.layer_norm.bias"],
                             eps) if hs == L else x
            hsum = h if hsum is None else hsum + h
    return F.linear(hsum.mean(1), p["head.weight"], p["head.bias"])


def main():
    args = [a for a in sys.argv[1:] if a != "--per-clip"]
    per_clip = len(args) != len(sys.argv) - 1
    ck = args[0]
    first, adapt_last, last, n, T, threads, reps = map(int, args[1:8])
    bott = int(args[8]) if len(args) > 8 else 64
    torch.set_num_threads(threads)
    cfg, w = st.frozen_layers(ck)
    case = dict(cfg=cfg, first=first, last=last, adapt_last=adapt_last, head_first=last,
                method="adapter", bottleneck=bott, classes=7)
    torch.manual_seed(1)  # the adapters and head: the same initial weights in every run
    gen = torch.Generator().manual_seed(1)
    D = cfg["hidden_size"]
    p = {}
    for hs in range(first, adapt_last + 1):
        pre = "encoder.layers.%d.adapter." % (hs - 1)
        down = torch.nn.Linear(D, bott)
        p[pre + "down.weight"], p[pre + "down.bias"] = down.weight.data, down.bias.data
        p[pre + "up.weight"], p[pre + "up.bias"] = torch.zeros(D, bott), torch.zeros(D)
    head = torch.nn.Linear(D, 7)
    p["head.weight"], p["head.bias"] = head.weight.data, head.bias.data
    p = {k: v.clone().requires_grad_(True) for k, v in p.items()}
    opt = torch.optim.AdamW(list(p.values()), lr=1e-3, weight_decay=0.01)
    x = torch.randn(n * T, D, generator=gen)
    off = [i * T for i in range(n + 1)]
    y = torch.arange(n) % 7
    best = 1e30
    for r in range(reps + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        if per_clip:
            logits, _ = st.forward(x, off, case, w, p)  # (logits, reconstruction loss: 0 here)
        else:
            logits = batched_forward(x.view(n, T, D), case, w, p)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        opt.step()
        t = time.perf_counter() - t0
        print("torch step %d: %.3f s loss %.4f%s" % (r, t, loss.item(), "" if r else " (warm-up)"))
        if r:
            best = min(best, t)
    print("RESULT torch %.4f %.0f" % (best, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


if __name__ == "__main__":
    main()
