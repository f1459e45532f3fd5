"""Peer of bench/acoustic_bench.c: torchaudio MFCC with the same settings on the same float32
signal, one thread, best of REPS. Prints "mfcc X ms/clip"."""
import sys, time
import numpy as np
import torch
import torchaudio

torch.set_num_threads(1)
x = torch.from_numpy(np.fromfile(sys.argv[1], dtype=np.float32))
reps = int(sys.argv[2])
mk = dict(n_fft=512, win_length=400, hop_length=160, n_mels=40, center=True, pad_mode="reflect",
          norm=None, mel_scale="htk")
mfcc = torchaudio.transforms.MFCC(sample_rate=16000, n_mfcc=13, log_mels=True, melkwargs=mk)
best = 1e9
with torch.no_grad():
    for _ in range(reps):
        t0 = time.perf_counter()
        mfcc(x)
        best = min(best, time.perf_counter() - t0)
print("mfcc %.3f ms/clip" % (best * 1e3))
