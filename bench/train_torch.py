#!/usr/bin/python3
"""PyTorch peer of `mer train --model attention` for bench/train.sh: the MERTools Attention model
(same as tests/fixtures/train/make_attention_ref.py) and the MERTools protocol — random K-fold,
Adam(lr, weight_decay), batch 32 shuffled, cross-entropy, held-out weighted F1 after every epoch,
best epoch's weights kept (state_dict copy), test-time = fold mean. Features are loaded into
memory first (as MERTools does) and only training is timed.
Usage: train_torch.py DATADIR THREADS FOLDS EPOCHS  -> prints 'seconds S epochs E waf W'."""
import copy
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import f1_score

data, threads, folds, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)


class MLPEncoder(nn.Module):
    def __init__(self, in_size, hidden, dropout):
        super().__init__()
        self.drop = nn.Dropout(p=dropout)
        self.linear_1 = nn.Linear(in_size, hidden)
        self.linear_2 = nn.Linear(hidden, hidden)
        self.linear_3 = nn.Linear(hidden, hidden)

    def forward(self, x):
        return F.relu(self.linear_3(F.relu(self.linear_2(F.relu(self.linear_1(self.drop(x)))))))


class Attention(nn.Module):
    def __init__(self, dims, n_classes, hidden, dropout):
        super().__init__()
        self.encoders = nn.ModuleList([MLPEncoder(d, hidden, dropout) for d in dims])
        self.attention_mlp = MLPEncoder(hidden * len(dims), hidden, dropout)
        self.fc_att = nn.Linear(hidden, len(dims))
        self.fc_out_1 = nn.Linear(hidden, n_classes)

    def forward(self, xs):
        hs = [e(x) for e, x in zip(self.encoders, xs)]
        att = self.fc_att(self.attention_mlp(torch.cat(hs, dim=1))).unsqueeze(2)
        return self.fc_out_1(torch.matmul(torch.stack(hs, dim=2), att).squeeze(2))


names, labs = [], []
with open(os.path.join(data, "labels.csv")) as f:
    next(f)
    for line in f:
        n, l = line.strip().split(",")
        names.append(n)
        labs.append(l)
classes = sorted(set(labs))
y = torch.tensor([classes.index(l) for l in labs])
mods = ["audio", "text", "video"]
X = [torch.from_numpy(np.stack([np.load(os.path.join(data, m, n + ".npy")) for n in names])) for m in mods]
N = len(names)
perm = torch.randperm(N)
fold_of = torch.empty(N, dtype=torch.long)
fold_of[perm] = torch.arange(N) % folds

t0 = time.time()
wafs = []
for f in range(folds):
    tr = (fold_of != f).nonzero().squeeze(1)
    te = (fold_of == f).nonzero().squeeze(1)
    model = Attention([x.shape[1] for x in X], len(classes), 128, 0.3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    best, best_state = -1, None
    for e in range(epochs):
        model.train()
        order = tr[torch.randperm(len(tr))]
        for b in range(0, len(order), 32):
            idx = order[b:b + 32]
            opt.zero_grad()
            loss = F.cross_entropy(model([x[idx] for x in X]), y[idx])
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            pred = model([x[te] for x in X]).argmax(1)
        waf = f1_score(y[te].numpy(), pred.numpy(), average="weighted")
        if waf > best:
            best, best_state = waf, copy.deepcopy(model.state_dict())
    wafs.append(best)
print("seconds %.3f epochs %d waf %.4f" % (time.time() - t0, folds * epochs, float(np.mean(wafs))))
