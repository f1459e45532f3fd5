#!/usr/bin/python3
"""Write a seeded random-weight HuBERT checkpoint (config.json + model.safetensors) at the real
base or large configuration, for the fine-tuning experiments and benches (we have no
pretrained weights here). Reuses the torchaudio construction of tests/fixtures/hubert.

usage: /usr/bin/python3 bench/make_random_hubert.py base|large OUTDIR [--seed S] [--layers N]
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures", "hubert"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "parity"))
import make_hubert_fixture as fx  # noqa: E402
from hubert_parity import CONFIGS  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("config", choices=sorted(CONFIGS))
ap.add_argument("out")
ap.add_argument("--seed", type=int, default=100)
ap.add_argument("--layers", type=int, default=0, help="override num_hidden_layers")
a = ap.parse_args()
cfg = dict(CONFIGS[a.config])
if a.layers:
    cfg["num_hidden_layers"] = a.layers
model = fx.build(cfg, a.seed)
fx.write_checkpoint(a.out, cfg, fx.hf_state_dict(model, "weight_g"))
print(a.out)
