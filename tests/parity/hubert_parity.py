#!/usr/bin/python3
"""Full-size exactness of the speech encoder: hubert-base and hubert-large configurations with
random weights (every norm and bias perturbed), saved under Hugging Face names, against
torchaudio's wav2vec2_model. Every hidden state of `mer extract audio` must satisfy
max|diff| <= 1e-4 * max|ref| per layer, on a 2 s and a 12 s input, the latter also through
--chunk-seconds 10.

usage: /usr/bin/python3 tests/parity/hubert_parity.py [--mer build/mer] [--only base|large]
                                                       [--keep DIR]
Exit 0 when every comparison passes. Needs torch + torchaudio; takes a few minutes (2 cores).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "hubert"))
import make_hubert_fixture as fx  # noqa: E402

CONV = dict(conv_dim=[512] * 7, conv_kernel=[10, 3, 3, 3, 3, 2, 2], conv_stride=[5, 2, 2, 2, 2, 2, 2],
            num_feat_extract_layers=7, num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
            layer_norm_eps=1e-5, hidden_act="gelu", feat_extract_activation="gelu")
# facebook/hubert-base-ls960 and facebook/hubert-large-ll60k (TencentGameMate/chinese-hubert-large
# has the large configuration)
CONFIGS = {
    "base": dict(model_type="hubert", architectures=["HubertModel"], feat_extract_norm="group",
                 conv_bias=False, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, do_stable_layer_norm=False, feat_proj_layer_norm=True, **CONV),
    "large": dict(model_type="hubert", architectures=["HubertModel"], feat_extract_norm="layer",
                  conv_bias=True, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                  intermediate_size=4096, do_stable_layer_norm=True, feat_proj_layer_norm=True, **CONV),
}


def compare(tag, got, ref):
    ok = True
    if got.shape != ref.shape:
        print(f"  {tag}: shape {got.shape} vs reference {ref.shape}  FAIL")
        return False
    worst = 0.0
    for i in range(ref.shape[0]):
        md = float(np.abs(got[i] - ref[i]).max())
        mr = float(np.abs(ref[i]).max())
        worst = max(worst, md / mr)
        if not md <= 1e-4 * mr:
            print(f"  {tag}: hidden state {i}: max|diff| {md:.3g} > 1e-4 * max|ref| {mr:.3g}  FAIL")
            ok = False
    print(f"  {tag}: {ref.shape[0]} hidden states {tuple(ref.shape[1:])}, worst max|diff|/max|ref| "
          f"{worst:.2e}  {'ok' if ok else 'FAIL'}")
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mer", default=os.environ.get("MER_BIN", "build/mer"))
    ap.add_argument("--only", choices=sorted(CONFIGS))
    ap.add_argument("--keep", help="keep the checkpoints and references in this directory")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    work = a.keep or tempfile.mkdtemp(prefix="hubert_parity_")
    os.makedirs(work, exist_ok=True)
    all_ok = True
    try:
        x2 = fx.write_wav_s16(os.path.join(work, "a2.wav"), fx.test_signal(2.0, 1))
        x12 = fx.write_wav_s16(os.path.join(work, "a12.wav"), fx.test_signal(12.0, 2))
        n2, n12 = fx.normalize(x2), fx.normalize(x12)
        for name, cfg in CONFIGS.items():
            if a.only and name != a.only:
                continue
            print(f"hubert-{name}: building with random weights")
            model = fx.build(cfg, 100 if name == "base" else 200)
            ck = os.path.join(work, name)
            fx.write_checkpoint(ck, cfg, fx.hf_state_dict(model, "weight_g" if name == "base" else "parametrizations"))
            cases = [("a2", n2, 0), ("a12", n12, 0), ("a12_chunk10", n12, 10)]
            for tag, wave, chunk in cases:
                t0 = time.time()
                ref = np.stack(fx.chunked_hidden_states(model, wave, chunk * fx.SR) if chunk
                               else fx.hidden_states(model, wave))
                t_ref = time.time() - t0
                out = os.path.join(work, f"{name}_{tag}.npy")
                cmd = [a.mer, "extract", "audio", "--model", ck, "--threads", str(a.threads), "--overwrite",
                       "--out", out, os.path.join(work, tag.split("_")[0] + ".wav")]
                cmd[3:3] = ["--chunk-seconds", str(chunk)]  # 0: full attention (the CLI chunks at 10 s by default)
                t0 = time.time()
                r = subprocess.run(cmd, capture_output=True, text=True)
                t_mer = time.time() - t0
                if r.returncode != 0:
                    print(f"  {tag}: mer failed ({r.returncode}): {r.stderr.strip()}  FAIL")
                    all_ok = False
                    continue
                all_ok &= compare(f"{name} {tag} (torchaudio {t_ref:.1f} s, mer {t_mer:.1f} s)", np.load(out), ref)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("hubert parity:", "ok" if all_ok else "FAILED")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
