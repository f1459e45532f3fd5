#!/usr/bin/python3
"""agt_torch.py -- the PyTorch peer of `mer train --model agt` for bench/agt.sh.

The same model (docs/agt.md; forward-equal to tests/fixtures/agt/make_agt_ref.py, written here
in batched form: nn.TransformerEncoderLayer is exactly our post-LN ReLU intra block) and the
same protocol: K folds, Adam (coupled L2), batch 32, dropout on the tokens, each epoch a
held-out evaluation (WAF). Prints `epochs E folds K seconds S` for the training loops only
(data loading excluded; bench/agt.sh also subtracts two epoch counts to cancel set-up).

usage: agt_torch.py DATA_DIR --epochs E --folds K --threads T [--hidden 128 --heads 4
       --layers 1 --tokens 4 --dropout 0.3 --lr 1e-3 --l2 1e-5 --batch 32]
"""
import argparse
import csv
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class CrossBlock(nn.Module):
    """LN1(q + MHA(q, kv, kv)); LN2(h + FFN(h)) -- the inter-channel block."""

    def __init__(self, w, heads):
        super().__init__()
        self.attn = nn.MultiheadAttention(w, heads, batch_first=True)
        self.ln1 = nn.LayerNorm(w)
        self.fc1 = nn.Linear(w, 2 * w)
        self.fc2 = nn.Linear(2 * w, w)
        self.ln2 = nn.LayerNorm(w)

    def forward(self, q, kv):
        h = self.ln1(q + self.attn(q, kv, kv, need_weights=False)[0])
        return self.ln2(h + self.fc2(F.relu(self.fc1(h))))


class AGT(nn.Module):
    def __init__(self, dims, n_classes, w, heads, layers, k, p):
        super().__init__()
        self.k, self.w, self.p = k, w, p
        self.names = list(dims)
        self.guide = "audio" if "audio" in dims else self.names[0]
        self.proj = nn.ModuleDict({m: nn.Linear(d, k * w) for m, d in dims.items()})
        self.intra = nn.ModuleDict({m: nn.ModuleList([
            nn.TransformerEncoderLayer(w, heads, 2 * w, dropout=0.0, batch_first=True)
            for _ in range(layers)]) for m in dims})
        self.inter = nn.ModuleDict({m: nn.ModuleList([CrossBlock(w, heads) for _ in range(layers)])
                                    for m in dims if m != self.guide})
        s = len(dims)
        self.gate = nn.Linear(s * w, s)
        self.classifier = nn.Linear(w, n_classes)

    def forward(self, xs):
        toks = {}
        for m in self.names:
            t = F.dropout(self.proj[m](xs[m]).view(-1, self.k, self.w), self.p, self.training)
            for blk in self.intra[m]:
                t = blk(t)
            toks[m] = t
        a = toks[self.guide]
        streams = [a.mean(1)]
        for m in self.names:
            if m == self.guide:
                continue
            g = a
            for blk in self.inter[m]:
                g = blk(g, toks[m])
            streams.append(g.mean(1))
        s = torch.stack(streams, 1)                                  # (B, S, W)
        gate = torch.softmax(self.gate(s.flatten(1)), -1)            # (B, S)
        return self.classifier((gate.unsqueeze(-1) * s).sum(1))


def waf(y, p, c):
    tot = 0.0
    for k in range(c):
        tp = np.sum((y == k) & (p == k))
        fp = np.sum((y != k) & (p == k))
        fn = np.sum((y == k) & (p != k))
        if tp + fn:
            tot += (tp + fn) * (2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return tot / len(y)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--tokens", type=int, default=4)
    ap.add_argument("--dropout", type=float, default=0.3)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--l2", type=float, default=1e-5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--modalities", default="audio,text,video")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    with open(os.path.join(a.data, "labels.csv")) as f:
        rows = list(csv.DictReader(f))
    classes = sorted({r["emotion"] for r in rows})
    y = torch.tensor([classes.index(r["emotion"]) for r in rows])
    mods = a.modalities.split(",")
    xs = {m: torch.from_numpy(np.stack([np.load(os.path.join(a.data, m, r["name"] + ".npy"))
                                        for r in rows]).astype(np.float32)) for m in mods}
    n, c = len(rows), len(classes)
    rng = np.random.default_rng(0)
    fold = rng.permutation(n) % a.folds

    t0 = time.time()
    for k in range(a.folds):
        tr = np.where(fold != k)[0]
        te = torch.from_numpy(np.where(fold == k)[0])
        model = AGT({m: xs[m].shape[1] for m in mods}, c, a.hidden, a.heads, a.layers,
                    a.tokens, a.dropout)
        opt = torch.optim.Adam(model.parameters(), lr=a.lr, weight_decay=a.l2)
        for _ in range(a.epochs):
            model.train()
            perm = torch.from_numpy(rng.permutation(tr))
            for i in range(0, len(perm), a.batch):
                idx = perm[i:i + a.batch]
                loss = F.cross_entropy(model({m: xs[m][idx] for m in mods}), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                pred = torch.cat([model({m: xs[m][te[i:i + 256]] for m in mods}).argmax(1)
                                  for i in range(0, len(te), 256)])
            waf(y[te].numpy(), pred.numpy(), c)
    print(f"epochs {a.epochs} folds {a.folds} seconds {time.time() - t0:.3f}")


if __name__ == "__main__":
    main()
