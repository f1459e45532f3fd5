#!/usr/bin/python3
"""Tests of the Python package (python/mer) with Debian's python3 + numpy: each call must give
the same numbers as the CLI (or, for checkpoints, as torch.load of our own fixtures).
Run from the repository root: /usr/bin/python3 python/tests/test_mer.py [MER_BIN]
Prints "ok"/"FAIL" per test and "N passed, N failed" last; exits non-zero on failure."""
import os
import subprocess
import sys
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import numpy as np  # noqa: E402

import mer  # noqa: E402

BIN = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("MER_BIN", "build/mer")
TMP = tempfile.mkdtemp(prefix="mer-py-")
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def cli(*args):
    r = subprocess.run([BIN] + list(args), capture_output=True, text=True)
    assert r.returncode == 0, "mer %s: %s" % (" ".join(args), r.stderr)
    return r.stdout


@test
def checkpoint_matches_torch_load():
    try:
        import torch
    except ImportError:
        print("    (torch missing: compared against the safetensors original only)")
        torch = None
    for d in ("hubert_bf16_legacy", "hubert_base_zip", "hubert_f16_legacy_sharded"):
        ck = mer.Checkpoint("tests/fixtures/torch/" + d)
        ref = mer.Checkpoint({"hubert_bf16_legacy": "tests/fixtures/hubert/large_bf16",
                              "hubert_base_zip": "tests/fixtures/hubert/base",
                              "hubert_f16_legacy_sharded": "tests/fixtures/hubert/base_f16"}[d])
        assert sorted(ck.names()) == sorted(ref.names())
        for n in ck.names():
            assert np.array_equal(ck[n], ref[n]), n
    if torch:
        sd = torch.load("tests/fixtures/torch/views_legacy.bin")  # our own fixture: trusted
        ck = mer.Checkpoint("tests/fixtures/torch/views_legacy.bin")
        assert ck.format == "pytorch legacy"
        for k, v in sd.items():
            if not isinstance(v, torch.Tensor):
                continue
            want = v.detach().float().numpy() if v.dtype == torch.bfloat16 else v.detach().numpy()
            got = ck[k]
            assert got.shape == want.shape and np.array_equal(got, want), k


@test
def hostile_checkpoint_raises():
    try:
        mer.Checkpoint("tests/fixtures/torch/hostile/global_os_system.bin")
    except mer.MerError as e:
        assert "refusing global posix.system" in str(e) and "global_os_system.bin" in str(e)
        return
    raise AssertionError("opened a hostile checkpoint")


@test
def speech_hidden_states_match_cli():
    out = os.path.join(TMP, "a2.npy")
    cli("extract", "audio", "--model", "tests/fixtures/torch/hubert_base_legacy", "--out", out,
        "tests/fixtures/hubert/a2.wav")
    ref = np.load(out)
    sm = mer.SpeechModel("tests/fixtures/torch/hubert_base_legacy")
    got = sm.hidden_states(mer.decode_audio("tests/fixtures/hubert/a2.wav"))
    assert got.shape == ref.shape, (got.shape, ref.shape)
    assert np.array_equal(got, ref), np.abs(got - ref).max()


@test
def visual_embeddings_match_cli():
    img = "tests/fixtures/faces/astronaut_crop.png"
    out = os.path.join(TMP, "v.npy")
    cli("extract", "visual", "--model", "tests/fixtures/torch/clip_legacy", "--out", out, img)
    ref = np.load(out)
    got = mer.VisualModel("tests/fixtures/torch/clip_legacy").encode_images([img])[0]
    assert got.shape == ref.shape and np.array_equal(got, ref), np.abs(got - ref).max()


@test
def faces_match_cli():
    import json
    img = "tests/fixtures/faces/astronaut_crop.png"
    ref = json.loads(cli("faces", img, "--json"))
    got = mer.Faces().detect(img)
    rf = ref["frames"][0]["faces"]  # the CLI prints 6 significant digits
    assert len(got) == len(rf) and len(got) >= 1, (got, ref)
    for g, r in zip(got, rf):
        box = r.get("box", r)
        for k in ("x", "y", "width", "height"):
            assert abs(g[k] - box[k]) <= 1e-5 * max(1.0, abs(box[k])), (k, g[k], box[k])
        assert abs(g["score"] - r["score"]) <= 1e-6
        assert g["expression"] == r["expression"]


@test
def run_predict_matches_cli():
    run_dir = mer.data_path("models/emodb-acoustic")
    run = mer.Run(run_dir)
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(3, 514)).astype(np.float32)
    d = os.path.join(TMP, "acoustic")
    os.makedirs(d, exist_ok=True)
    names = ["c0", "c1", "c2"]
    for n, f in zip(names, feats):
        np.save(os.path.join(d, n + ".npy"), f)
    out = os.path.join(TMP, "pred.csv")
    cli("predict", "--run", run_dir, "--feature", "acoustic=" + d, "--out", out)
    rows = [l.strip().split(",") for l in open(out)][1:]
    ref = {r[0]: np.array([float(x) for x in r[1:1 + len(run.classes)]]) for r in rows}
    got = run.predict({"acoustic": feats}, names)
    for i, n in enumerate(names):
        assert np.abs(got[i] - ref[n]).max() < 1e-6, (got[i], ref[n])


@test
def convert_and_resolve():
    out = os.path.join(TMP, "conv")
    assert mer.convert("tests/fixtures/torch/hubert_base_legacy", out) == 50
    a, b = mer.Checkpoint(out), mer.Checkpoint("tests/fixtures/hubert/base")
    assert all(np.array_equal(a[n], b[n]) for n in b.names())
    try:
        mer.model_resolve("Org/surely-absent-model")
    except mer.MerError as e:
        assert "huggingface-cli download Org/surely-absent-model" in str(e)
    else:
        raise AssertionError("resolved an absent model")


passed = failed = 0
for t in TESTS:
    try:
        t()
        print("ok   python_" + t.__name__)
        passed += 1
    except Exception:
        print("FAIL python_" + t.__name__)
        traceback.print_exc()
        failed += 1
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
