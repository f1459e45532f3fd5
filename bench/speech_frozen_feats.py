#!/usr/bin/python3
"""usage: speech_frozen_feats.py CKPT CACHE_DIR OUT_DIR [threads]
Frozen features from the finetune cache (hidden state 0, float16 (T, D)): the frame mean of
hidden state 0 (the cache itself) and of hidden state 1 (layer 1 of the checkpoint applied in
torch with transformers' layer math), one (D,) float32 .npy per clip. The head-only control for
`mer finetune speech --layers 1-1`: the same input the adapters see, the head alone trained."""
import os, sys
import numpy as np
import torch
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "speech_train"))
import make_speech_train_fixture as st

ck, cache, out = sys.argv[1:4]
torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
cfg, w = st.frozen_layers(ck)
for l in (0, 1):
    os.makedirs("%s/layer-%02d" % (out, l), exist_ok=True)
with torch.no_grad():
    for f in sorted(os.listdir(cache)):
        if not f.endswith(".npy"):
            continue
        x = torch.from_numpy(np.load(os.path.join(cache, f)).astype(np.float32))
        np.save("%s/layer-00/%s" % (out, f), x.mean(0).numpy())
        h = st.layer(x, 0, cfg, w, {}, 0.0, {})
        np.save("%s/layer-01/%s" % (out, f), h.mean(0).numpy())
