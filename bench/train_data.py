#!/usr/bin/python3
"""Synthetic data set shaped like MER2024's labeled part for bench/train.sh: 5,030 clips with the
MER2024 class counts (neutral 1248, angry 1208, happy 1038, sad 730, worried 616, surprise 190),
utterance features audio 1024-d, text 5120-d, video 768-d in the MERTools layout
(labels.csv + one directory of <name>.npy per modality). Class means differ in a random
subspace so training has something to learn. Usage: train_data.py OUTDIR [N]"""
import os
import sys

import numpy as np

out = sys.argv[1]
counts = {"neutral": 1248, "angry": 1208, "happy": 1038, "sad": 730, "worried": 616, "surprise": 190}
total = int(sys.argv[2]) if len(sys.argv) > 2 else sum(counts.values())
dims = {"audio": 1024, "text": 5120, "video": 768}
rng = np.random.default_rng(2024)
labels = [c for c, k in counts.items() for _ in range(k)]
rng.shuffle(labels)
labels = labels[:total]
classes = list(counts)
means = {m: rng.normal(0, 0.03, (len(classes), d)).astype(np.float32) for m, d in dims.items()}
for m in dims:
    os.makedirs(os.path.join(out, m), exist_ok=True)
with open(os.path.join(out, "labels.csv"), "w") as f:
    f.write("name,emotion\n")
    for i, lab in enumerate(labels):
        name = "sample_%05d" % i
        f.write("%s,%s\n" % (name, lab))
        y = classes.index(lab)
        for m, d in dims.items():
            x = means[m][y] + rng.normal(0, 1, d).astype(np.float32)
            np.save(os.path.join(out, m, name + ".npy"), x.astype(np.float32))
print("wrote", total, "clips to", out)
