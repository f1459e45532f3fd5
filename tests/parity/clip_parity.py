#!/usr/bin/python3
"""clip_parity.py -- full-size exactness of `mer extract visual` against the PyTorch reference of
transformers' CLIP vision semantics (clip_ref.py), random weights at the real configurations.

For each configuration (default B/32 and L/14): random weights (norms and biases perturbed),
saved as a Hugging Face CLIPModel checkpoint (F32 safetensors + config.json +
preprocessor_config.json, text tower omitted); test images of several sizes and aspect ratios
written as PNG; the reference runs CLIPImageProcessor (PIL bicubic) + the model; mer runs
`mer extract visual --pool none` for embeds, cls and hidden states. Pass: every output within
max|diff| <= 1e-4 * max|ref|, and mer's preprocessing within one level of PIL (checked through
the tiny fixture in CI; here through the outputs).

usage: tests/parity/clip_parity.py [--configs B/32,L/14] [--mer build/mer] [--keep DIR]
Exit code 0 when every check passes.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clip_ref  # noqa: E402

SIZES = [(320, 240), (200, 360), (224, 224), (97, 61)]


def make_images(d):
    rng = np.random.default_rng(11)
    paths = []
    for i, (w, h) in enumerate(SIZES):
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        img = np.stack([255 * x / (w - 1), 128 + 127 * np.sin(y / 7 + x / 11),
                        255 * ((x // 16 + y // 16) % 2)], -1)
        img += rng.normal(0, 20, img.shape)
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        p = os.path.join(d, f"img{i}.png")
        Image.fromarray(img).save(p)
        paths.append(p)
    return paths


def write_checkpoint(d, cfg, model):
    os.makedirs(d, exist_ok=True)
    vc = {k: v for k, v in cfg.items() if k != "projection_dim"}
    vc.update(hidden_act="quick_gelu", layer_norm_eps=1e-5, model_type="clip_vision_model")
    config = {"architectures": ["CLIPModel"], "model_type": "clip",
              "projection_dim": cfg["projection_dim"], "vision_config": vc,
              "text_config": {"model_type": "clip_text_model"}}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    s = cfg["image_size"]
    pre = {"crop_size": {"height": s, "width": s}, "do_center_crop": True, "do_normalize": True,
           "do_rescale": True, "do_resize": True, "image_mean": clip_ref.OPENAI_CLIP_MEAN,
           "image_std": clip_ref.OPENAI_CLIP_STD, "resample": 3, "rescale_factor": 1 / 255,
           "size": {"shortest_edge": s}, "image_processor_type": "CLIPImageProcessor"}
    with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
        json.dump(pre, f, indent=2)
    clip_ref.save_safetensors(os.path.join(d, "model.safetensors"), model.state_dict(), {"format": "pt"})


def run_mer(mer, model_dir, out_dir, output, images, threads):
    cmd = [mer, "extract", "visual", "--model", model_dir, "--output", output, "--pool", "none",
           "--threads", str(threads), "--overwrite", "--out", out_dir] + images
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stderr)
        raise SystemExit(f"mer failed: {' '.join(cmd)}")
    return time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="B/32,L/14")
    ap.add_argument("--mer", default=os.environ.get("MER_BIN", "build/mer"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--keep", default=None, help="keep the work directory here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    work = a.keep or tempfile.mkdtemp(prefix="clip_parity_")
    os.makedirs(work, exist_ok=True)
    images = make_images(work)
    ok = True
    try:
        for name in a.configs.split(","):
            cfg = dict(clip_ref.CONFIGS[name], hidden_act="quick_gelu")
            torch.manual_seed(0)
            model = clip_ref.VisionModelWithProjection(cfg).eval()
            clip_ref.randomize_(model, 5)
            mdir = os.path.join(work, name.replace("/", "_"))
            write_checkpoint(mdir, cfg, model)
            s = cfg["image_size"]
            px = np.stack([clip_ref.preprocess(np.array(Image.open(p).convert("RGB")), s, s) for p in images])
            t0 = time.time()
            emb, cls, states = model.run(torch.from_numpy(px), output_hidden_states=True)
            t_ref = time.time() - t0
            refs = {"embeds": emb.numpy(), "cls": cls.numpy(),
                    "hidden": torch.stack(states, dim=1).numpy()}
            for output, ref in refs.items():
                odir = os.path.join(work, "out_" + name.replace("/", "_") + "_" + output)
                t_mer = run_mer(a.mer, mdir, odir, output, images, a.threads)
                # --pool none keeps a frames axis of 1 per image
                got = np.stack([np.load(os.path.join(odir, f"img{i}.npy"))[0] for i in range(len(images))])
                if got.shape != ref.shape:
                    print(f"FAIL {name} {output}: shape {got.shape} vs reference {ref.shape}")
                    ok = False
                    continue
                md, mr = float(np.abs(got - ref).max()), float(np.abs(ref).max())
                good = md <= 1e-4 * mr
                ok &= good
                print(f"{'ok  ' if good else 'FAIL'} CLIP {name} {output:6s} shape {tuple(ref.shape)}: "
                      f"max|diff| {md:.3g}, max|ref| {mr:.3g}, ratio {md / mr:.2e} (bar 1e-4); "
                      f"mer {t_mer:.1f} s, torch {t_ref:.1f} s (all outputs)")
            shutil.rmtree(mdir)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("clip parity:", "all passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
