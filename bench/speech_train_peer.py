#!/usr/bin/python3
"""PyTorch peer of bench/speech_train_bench.c: the same training step (layers first..last of
the checkpoint on random cached inputs, adapters in first..adapt_last, head, cross-entropy,
backward, AdamW) with the layers of tests/fixtures/speech_train/make_speech_train_fixture.py
(transformers' layer math; base weights frozen, requires_grad only on the adapters and head).
usage: speech_train_peer.py CKPT first adapt_last last clips frames threads reps [bottleneck]
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


def main():
    ck = sys.argv[1]
    first, adapt_last, last, n, T, threads, reps = map(int, sys.argv[2:9])
    bott = int(sys.argv[9]) if len(sys.argv) > 9 else 64
    torch.set_num_threads(threads)
    cfg, w = st.frozen_layers(ck)
    case = dict(cfg=cfg, first=first, last=last, adapt_last=adapt_last, head_first=last,
                method="adapter", bottleneck=bott, classes=7)
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
        logits, _ = st.forward(x, off, case, w, p)  # (logits, reconstruction loss: 0 here)
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
