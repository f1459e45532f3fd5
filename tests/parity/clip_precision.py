#!/usr/bin/python3
"""Accuracy of the reduced precisions of the visual encoder at the real CLIP ViT-L/14 size (random
weights, bench/speed_peer.py's checkpoint): every hidden state of `mer extract visual` in bf16 and
int8 against fp32 on two 480x360 frames, as max|diff| / max|fp32| per layer (worst frame), and the
MERTools visual feature (get_image_features, mean over the frames of a video) as a cosine against
fp32. The issue's bar: cosine >= 0.9995 for every reduced precision.

usage: /usr/bin/python3 tests/parity/clip_precision.py [--mer build/mer] [--dir DIR]
DIR (default build/bench/speed_full) holds clip/ (made by `bench/speed_peer.py make DIR full` if
missing, 1.2 GB). Exit 0 when every cosine meets the bar.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")


def extract(mer, model, inp, out, precision, extra):
    cmd = [mer, "extract", "visual", "--model", model, "--precision", precision, "--out", out] + extra + [inp]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return np.load(out).astype(np.float64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mer", default=os.path.join(ROOT, "build", "mer"))
    ap.add_argument("--dir", default=os.path.join(ROOT, "build", "bench", "speed_full"))
    a = ap.parse_args()
    model = os.path.join(a.dir, "clip")
    if not os.path.exists(os.path.join(model, "model.safetensors")):
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "speed_peer.py"), "make", a.dir, "full"], check=True)
    ok = True
    rng = np.random.default_rng(3)
    with tempfile.TemporaryDirectory() as tmp:
        frames = []
        for i in range(2):  # a MER2024 frame size: gradients and noise, as bench/clip_peer.py
            y, x = np.mgrid[0:360, 0:480]
            img = np.stack([(x + 7 * i) % 256, (y * 2 + 3 * i) % 256, (x + y) % 256], -1)
            img = np.clip(img + rng.normal(0, 25, img.shape), 0, 255).astype(np.uint8)
            p = os.path.join(tmp, f"frame{i}.png")
            Image.fromarray(img).save(p)
            frames.append(p)
        video = os.path.join(tmp, "clip.mkv")
        subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-framerate", "25", "-i",
                        os.path.join(tmp, "frame%d.png"), "-c:v", "ffv1", video], check=True)
        allf = ["--output", "hidden", "--pool", "none"]
        ref = [extract(a.mer, model, f, os.path.join(tmp, "f32_%d.npy" % i), "f32", allf)
               for i, f in enumerate(frames)]
        refm = extract(a.mer, model, video, os.path.join(tmp, "f32m.npy"), "f32", [])
        for prec in ("bf16", "int8"):
            rel = None
            for i, f in enumerate(frames):
                h = extract(a.mer, model, f, os.path.join(tmp, "%s_%d.npy" % (prec, i)), prec, allf)
                h, r = h.reshape(ref[i].shape[-3:]), ref[i].reshape(ref[i].shape[-3:])  # (L + 1, T, D)
                ri = np.array([np.abs(h[k] - r[k]).max() / np.abs(r[k]).max() for k in range(r.shape[0])])
                rel = ri if rel is None else np.maximum(rel, ri)
            m = extract(a.mer, model, video, os.path.join(tmp, prec + "m.npy"), prec, [])
            cos = float(np.dot(m.ravel(), refm.ravel()) / np.linalg.norm(m) / np.linalg.norm(refm))
            good = cos >= 0.9995
            ok &= good
            print("clip-L/14 %s vs fp32: MERTools feature cosine %.6f (bar 0.9995) %s" %
                  (prec, cos, "ok" if good else "FAIL"))
            print("  per-layer max|diff|/max|fp32|: " + " ".join("%d:%.3g" % (i, r) for i, r in enumerate(rel)))
            print("  worst layer %d: %.3g" % (int(np.argmax(rel)), rel.max()))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
