#!/usr/bin/python3
"""clip_peer.py -- the CLIP ViT benchmark: frames per second of `mer extract visual` against the
PyTorch implementation of transformers' CLIP vision semantics (tests/parity/clip_ref.py) at the
same thread count, both end to end: decode, CLIPImageProcessor preprocessing, forward in batches
of 8 frames, get_image_features.

The frames are 480x360 (a MER2024 video size). PyTorch reads them from PNG files with PIL; mer
reads the same pixels from a lossless FFV1 video (its unit of work: `mer extract visual` batches
the frames of one input). mer's time per frame excludes process start and model loading: it is
(t(video of K + N frames) - t(video of K frames)) / N. PyTorch's is the wall time for N frames
inside one process (model already built). Runs alternate (mer, torch, mer, torch, ...) so both
see the same machine load; the best time of each side is compared.

Run through bench/clip.sh, which sets OPENBLAS_NUM_THREADS so that torch's BLAS is OpenBLAS at
the same thread count (torch.__config__.show() lists BLAS_INFO=generic: the system libblas.so.3,
an OpenBLAS alternative on Debian once libopenblas0-pthread is installed).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "parity"))
import clip_ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="L/14")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--mer", default=os.environ.get("MER_BIN", os.path.join(ROOT, "build/mer")))
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "mer_clip_bench"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = dict(clip_ref.CONFIGS[a.config], hidden_act="quick_gelu")
    tag = a.config.replace("/", "_")
    mdir = os.path.join(a.work, tag)
    os.makedirs(mdir, exist_ok=True)
    torch.manual_seed(0)
    model = clip_ref.VisionModelWithProjection(cfg).eval()
    clip_ref.randomize_(model, 9)
    st_path = os.path.join(mdir, "model.safetensors")
    if not os.path.exists(st_path):
        vc = {k: v for k, v in cfg.items() if k != "projection_dim"}
        with open(os.path.join(mdir, "config.json"), "w") as f:
            json.dump({"model_type": "clip", "projection_dim": cfg["projection_dim"],
                       "vision_config": dict(vc, model_type="clip_vision_model")}, f)
        s = cfg["image_size"]
        with open(os.path.join(mdir, "preprocessor_config.json"), "w") as f:
            json.dump({"size": {"shortest_edge": s}, "crop_size": {"height": s, "width": s}}, f)
        clip_ref.save_safetensors(st_path + ".tmp", model.state_dict())
        os.replace(st_path + ".tmp", st_path)
    # frames of a typical MER2024 clip size, as PNG files and as two lossless videos
    rng = np.random.default_rng(3)
    K = 8
    frames = []
    for i in range(K + a.images):
        p = os.path.join(a.work, f"frame{i:03d}.png")
        if not os.path.exists(p):
            y, x = np.mgrid[0:360, 0:480]
            img = np.stack([(x + 7 * i) % 256, (y * 2 + 3 * i) % 256, (x + y) % 256], -1)
            img = np.clip(img + rng.normal(0, 25, img.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(p)
        frames.append(p)
    videos = {}
    for name, n in (("short", K), ("long", K + a.images)):
        v = os.path.join(a.work, f"{name}_{n}.mkv")
        if not os.path.exists(v):
            subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-framerate", "25", "-i",
                            os.path.join(a.work, "frame%03d.png"), "-frames:v", str(n),
                            "-c:v", "ffv1", v], check=True)
        videos[name] = v
    s = cfg["image_size"]

    def run_torch():
        t0, c0 = time.time(), time.process_time()
        with torch.no_grad():
            for b in range(0, a.images, 8):
                px = np.stack([clip_ref.preprocess(np.array(Image.open(p).convert("RGB")), s, s)
                               for p in frames[b:b + 8]])
                model.run(torch.from_numpy(px))
        return time.time() - t0, time.process_time() - c0

    def child_cpu():
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    def run_mer(video, bf16=False, out="out.npy"):
        cmd = [a.mer, "extract", "visual", "--model", mdir, "--threads", str(a.threads),
               "--pool", "none", "--overwrite", "--out", os.path.join(a.work, out), video]
        if bf16:
            cmd[3:3] = ["--precision", "bf16"]
        t0, c0 = time.time(), child_cpu()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return time.time() - t0, child_cpu() - c0

    run_mer(videos["short"])  # page the weights in
    # wall time per image, and CPU time per image (user + sys of all threads): on a machine
    # shared with other work the CPU time is the steadier measure of the work each side does
    best = {False: [float("inf")] * 2, True: [float("inf")] * 2}
    best_torch = [float("inf")] * 2
    for _ in range(a.reps):
        for bf16 in (False, True):
            short = run_mer(videos["short"], bf16)
            long_ = run_mer(videos["long"], bf16)
            for k in range(2):
                best[bf16][k] = min(best[bf16][k], max(long_[k] - short[k], 1e-9) / a.images)
        tt = run_torch()
        for k in range(2):
            best_torch[k] = min(best_torch[k], tt[k] / a.images)
    # what the bfloat16 speed mode costs in accuracy, on these frames
    run_mer(videos["short"], False, "ref32.npy")
    run_mer(videos["short"], True, "ref16.npy")
    e32 = np.load(os.path.join(a.work, "ref32.npy"))
    e16 = np.load(os.path.join(a.work, "ref16.npy"))
    rel = float(np.abs(e16 - e32).max() / np.abs(e32).max())
    cos = float(min((x @ y) / np.linalg.norm(x) / np.linalg.norm(y) for x, y in zip(e32, e16)))
    head = f"CLIP {a.config}, {a.threads} thread(s), {a.images} frames 480x360, best of {a.reps}:"
    print(head)
    print(f"  PyTorch {torch.__version__} (OpenBLAS fp32): {1 / best_torch[0]:.2f} images/s "
          f"({best_torch[0] * 1e3:.0f} ms/image wall, {best_torch[1] * 1e3:.0f} ms/image CPU)")
    for bf16, label in ((False, "mer fp32 (exact)"), (True, "mer --precision bf16 (speed mode)")):
        r = best_torch[0] / best[bf16][0]
        rc = best_torch[1] / best[bf16][1]
        print(f"  {label}: {1 / best[bf16][0]:.2f} images/s ({best[bf16][0] * 1e3:.0f} ms/image wall, "
              f"{best[bf16][1] * 1e3:.0f} ms/image CPU); ratio {r:.2f}x wall, {rc:.2f}x CPU "
              f"(bar 2.5x: {'ok' if r >= 2.5 else 'MISSED'})")
    print(f"  --bf16 vs fp32 embeds: max|diff|/max|ref| {rel:.2e}, min cosine {cos:.6f}")


if __name__ == "__main__":
    main()
