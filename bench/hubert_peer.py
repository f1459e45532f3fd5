#!/usr/bin/python3
"""Peer of bench/hubert.sh: the same HuBERT-large checkpoint in torchaudio's wav2vec2_model,
every hidden state in torch.inference_mode, at the given thread count.

  hubert_peer.py make DIR          write DIR/large (random weights, real hubert-large config)
                                   and DIR/a10.wav (10 s) unless they exist
  hubert_peer.py time DIR THREADS REPS   best and median seconds of the forward
"""
import json
import os
import struct
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures", "hubert"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "parity"))
import make_hubert_fixture as fx  # noqa: E402
import hubert_parity as par  # noqa: E402


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        assert v["dtype"] == "F32"
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").reshape(v["shape"]).copy())
    return out


def main():
    cmd, d = sys.argv[1], sys.argv[2]
    cfg = par.CONFIGS["large"]
    if cmd == "make":
        os.makedirs(d, exist_ok=True)
        if not os.path.exists(os.path.join(d, "large", "model.safetensors")):
            model = fx.build(cfg, 300)
            fx.write_checkpoint(os.path.join(d, "large"), cfg, fx.hf_state_dict(model, "parametrizations"))
        if not os.path.exists(os.path.join(d, "a10.wav")):
            fx.write_wav_s16(os.path.join(d, "a10.wav"), fx.test_signal(10.0, 3))
        return 0
    threads, reps = int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    model = fx.build(cfg, 0)
    fx.load_hf_state_dict(model, read_safetensors(os.path.join(d, "large", "model.safetensors")))
    x = np.fromfile(os.path.join(d, "a10.wav"), dtype="<i2", offset=44).astype(np.float32) / 32768.0
    x = fx.normalize(x)
    fx.hidden_states(model, x)  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.time()
        fx.hidden_states(model, x)
        times.append(time.time() - t0)
    times.sort()
    print(f"torchaudio (torch {torch.__version__}, {threads} threads, inference_mode): "
          f"best {times[0]:.3f} s, median {times[len(times) // 2]:.3f} s")
    print(f"RESULT torch_best_s {times[0]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
