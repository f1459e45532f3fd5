#!/usr/bin/python3
"""Full-size gradients of the trainable speech encoder: a HuBERT-large-width layer pair
(hidden 1024, feed-forward 4096, 16 heads, stable layer norm, real feature-extractor config,
random weights) with bottleneck adapters and with LoRA on every projection, against torch
autograd: every trainable gradient and the input gradient within 1e-4 relative, 20 AdamW steps'
losses within 1e-4 (tests/test_speech_train.c, case parity_speech_train, reads the fixtures this
writes). Clips of 50/30 and 40/25/20 frames.

usage: /usr/bin/python3 tests/parity/speech_train_parity.py [--mer-tests build/mer_tests]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures", "hubert"))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures", "speech_train"))
sys.path.insert(0, HERE)
import make_hubert_fixture as fx  # noqa: E402
import make_speech_train_fixture as st  # noqa: E402
from hubert_parity import CONFIGS  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mer-tests", default=os.path.join(ROOT, "build", "mer_tests"))
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="mer-speech-train-parity-")
    try:
        cfg = dict(CONFIGS["large"], num_hidden_layers=2)
        model = fx.build(cfg, 300)
        fx.write_checkpoint(os.path.join(work, "model"), cfg, fx.hf_state_dict(model, "weight_g"))
        cases = {
            "large_adapter": dict(model="model", first=1, last=2, adapt_last=2, head_first=1,
                                  method="adapter", bottleneck=64),
            "large_lora": dict(model="model", first=1, last=2, adapt_last=2, head_first=2,
                               method="lora", rank=8, alpha=16.0, lora_ffn=1),
        }
        for c in cases.values():
            c["classes"] = 3
            c["batches"] = [[50, 30], [40, 25, 20]]
            # at 1e-2 LoRA on every projection of a random 1024-wide pair diverges (the loss
            # rises), and a diverging run amplifies float rounding: compare a stable one
            c["lr"] = 1e-3
        st.main(work, cases, {"model": os.path.join(work, "model")})
        env = dict(os.environ, MER_SPEECH_TRAIN_PARITY=work, MER_TEST_VERBOSE="1")
        r = subprocess.run([a.mer_tests, "parity_speech_train"], cwd=ROOT, env=env)
        return r.returncode
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
