#!/usr/bin/python3
"""Tests of the Python package (python/mer) with Debian's python3 + numpy: each call must give
the same numbers as the CLI (or, for checkpoints, as torch.load of our own fixtures).
Run from the repository root: /usr/bin/python3 python/tests/test_mer.py [MER_BIN]
Prints "ok"/"FAIL" per test and "N passed, N failed" last; exits non-zero on failure."""
import json
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


def raises(what, fn, *fragments, exc=None):
    """fn() must raise MerError (or exc) whose message holds every fragment."""
    try:
        fn()
    except (exc or mer.MerError) as e:
        for f in fragments:
            assert f in str(e), (what, f, str(e))
        return
    raise AssertionError(what)


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
    raises("opened a hostile checkpoint", lambda: mer.Checkpoint("tests/fixtures/torch/hostile/global_os_system.bin"),
           "refusing global posix.system", "global_os_system.bin")


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
    dim = json.load(open(os.path.join(run_dir, "recipe.json")))["dim"]  # 929: extended functionals
    feats = rng.normal(size=(3, dim)).astype(np.float32)
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
    raises("resolved an absent model", lambda: mer.model_resolve("Org/surely-absent-model"),
           "huggingface-cli download Org/surely-absent-model")


@test
def text_extract_matches_cli():
    rows = [("a", "今天天气真好"), ("b", "我很高兴！"), ("empty", "")]
    csv = os.path.join(TMP, "t.csv")
    with open(csv, "w", encoding="utf-8") as f:
        f.write("name,chinese\n" + "".join("%s,%s\n" % r for r in rows))
    model = "tests/fixtures/text/tiny_bert"
    tm = mer.TextModel(model)
    assert tm.model_type == "bert" and tm.n_layers >= 1 and tm.hidden_size > 0
    for args, kw in ((["--preset", "mertools"], {"preset": "mertools"}),
                     (["--layers", "last2", "--combine", "mean"], {"layers": (-2, -1), "combine": "mean"}),
                     ([], {})):
        out = os.path.join(TMP, "text" + "".join(a.strip("-") for a in args))
        cli("extract", "text", "--model", model, "--csv", csv, "--out", out, *args)
        for name, text in rows:
            if not text and not kw.get("preset"):
                continue  # only the pooled preset has a feature for an empty transcript
            ref = np.load(os.path.join(out, name + ".npy"))
            got = tm.extract(text, **kw)
            assert got.shape == ref.shape and np.array_equal(got, ref), (args, name, got.shape, ref.shape)
    ids = tm.tokenize("今天天气真好")
    assert ids.dtype == np.int32 and ids.size >= 3
    raises("loaded a missing model", lambda: mer.TextModel("tests/fixtures/text/no-such-model"), "no-such-model")


@test
def callbacks_abort_progress_threads():
    """progress and abort reach the C calls as ctypes callbacks; an abort stops an encode with
    MER_ERR_ABORTED, an exception in a callback stops it and is raised, the model stays usable."""
    hub, wav = "tests/fixtures/torch/hubert_base_legacy", mer.decode_audio("tests/fixtures/hubert/a2.wav")
    ref = mer.SpeechModel(hub, n_threads=1).hidden_states(wav)
    seen, polls, stop = [], [], {"at": -1}
    sm = mer.SpeechModel(hub, n_threads=1, progress=lambda d, t: seen.append((d, t)),
                         abort=lambda: polls.append(1) or len(polls) == stop["at"])
    L = sm.n_layers
    got = sm.hidden_states(wav)
    assert np.array_equal(got, ref) and seen == [(i, L) for i in range(1, L + 1)] and len(polls) == L, seen
    del polls[:], seen[:]
    stop["at"] = 2
    try:
        sm.hidden_states(wav)
        raise AssertionError("abort did not stop the encode")
    except mer.MerError as e:
        assert e.status == mer.lib.mer_status_str(-10).decode() == "aborted" and "stopped by the caller" in e.message, (e.status, e.message)
    assert len(polls) == 2 and seen == [(1, L)], (polls, seen)
    stop["at"] = -1
    assert np.array_equal(sm.hidden_states(wav), ref)

    def interrupt(done, total):
        raise KeyboardInterrupt
    raises("a callback's exception was lost", lambda: mer.SpeechModel(hub, progress=interrupt).hidden_states(wav),
           exc=KeyboardInterrupt)
    # text: abort polled before each layer of the extraction
    tpolls = []
    tm = mer.TextModel("tests/fixtures/text/tiny_bert", n_threads=1, abort=lambda: tpolls.append(1) or len(tpolls) == 2)
    raises("abort did not stop the text encoder", lambda: tm.extract("今天天气真好", preset="mertools"),
           "stopped by the caller")
    assert len(tpolls) == 2, tpolls
    assert np.array_equal(tm.extract("今天天气真好", preset="mertools"),
                          mer.TextModel("tests/fixtures/text/tiny_bert").extract("今天天气真好", preset="mertools"))
    # train: progress per epoch (the struct's done/total), abort after an epoch
    rng = np.random.default_rng(0)
    X, labels = rng.standard_normal((20, 4)).astype(np.float32), ["a", "b"] * 10
    epochs = []
    raises("abort did not stop training", lambda: mer.train(os.path.join(TMP, "cb_run"), {"audio": X}, labels, folds=2,
                                                             epochs=3, seed=1, n_threads=1, plots=0,
                                                             progress=lambda d, t: epochs.append((d, t)),
                                                             abort=lambda: len(epochs) >= 2),
           "stopped by the caller")
    assert epochs[:2] == [(1, 6), (2, 6)], epochs


@test
def analyze_matches_cli():
    import json
    clip = "data/emodb/flac/03a01Fa.flac"
    for extra, kw in (([], {}), (["--text", "I am so happy today", "--timeline"],
                                 {"text": "I am so happy today", "timeline": True})):
        ref = json.loads(cli("analyze", clip, "--json", *extra))
        got = mer.analyze(clip, **kw)
        assert got == ref, (got, ref)
        assert got["modalities"]["audio"]["present"]
    raises("analysed a missing clip", lambda: mer.analyze("no/such/clip.wav"), "no/such/clip.wav")


@test
def train_matches_cli():
    rng = np.random.default_rng(7)
    classes = ["calm", "joy", "rage"]
    n = 36
    labels = [classes[i % 3] for i in range(n)]
    names = ["c%02d" % i for i in range(n)]
    A = (rng.normal(size=(n, 8)) + 2 * np.eye(3, 8)[[i % 3 for i in range(n)]]).astype(np.float32)
    B = rng.normal(size=(n, 5)).astype(np.float32)
    d = os.path.join(TMP, "trainfeat")
    for mod, X in (("a", A), ("b", B)):
        os.makedirs(os.path.join(d, mod), exist_ok=True)
        for nm, x in zip(names, X):
            np.save(os.path.join(d, mod, nm + ".npy"), x)
    with open(os.path.join(d, "labels.csv"), "w") as f:
        f.write("name,emotion\n" + "".join("%s,%s\n" % (nm, l) for nm, l in zip(names, labels)))
    r1, r2 = os.path.join(TMP, "run_cli"), os.path.join(TMP, "run_py")
    cli("train", "--labels", os.path.join(d, "labels.csv"), "--feature", "a=" + os.path.join(d, "a"),
        "--feature", "b=" + os.path.join(d, "b"), "--classes", ",".join(classes), "--folds", "3", "--epochs", "6",
        "--hidden", "16", "--seed", "3", "--threads", "1", "--no-plots", "--out", r1)
    saved = mer.get_threads()
    mer.set_threads(1)
    try:
        m = mer.train(r2, {"a": A, "b": B}, labels, classes=classes, names=names, folds=3, epochs=6, hidden=16,
                      seed=3, plots=0)
    finally:
        mer.set_threads(saved)
    assert open(os.path.join(r1, "oof.csv")).read() == open(os.path.join(r2, "oof.csv")).read()
    import json
    ref = json.load(open(os.path.join(r1, "metrics.json")))
    got = json.load(open(os.path.join(r2, "metrics.json")))
    assert ref == got, (ref, got)
    assert 0.0 <= m["waf"] <= 1.0 and m["classes"] == classes and sum(map(sum, m["confusion"])) == n
    # the Python-made run predicts as the CLI's
    probs = mer.Run(r2).predict({"a": A[:4], "b": B[:4]}, names[:4])
    out = os.path.join(TMP, "pred_train.csv")
    cli("predict", "--run", r1, "--feature", "a=" + os.path.join(d, "a"), "--feature", "b=" + os.path.join(d, "b"),
        "--out", out)
    rows = {r[0]: [float(x) for x in r[1:4]] for r in (l.strip().split(",") for l in list(open(out))[1:])}
    for i in range(4):
        assert np.abs(probs[i] - rows[names[i]]).max() < 1e-6, (probs[i], rows[names[i]])
    raises("accepted an unknown parameter", lambda: mer.train(os.path.join(TMP, "run_bad"), {"a": A}, labels,
                                                             nosuch=1), "nosuch", exc=TypeError)


@test
def predict_media_matches_cli():
    run_dir = mer.data_path("models/emodb-acoustic")
    clips = ["data/emodb/flac/03a01Fa.flac", "data/emodb/flac/03a01Nc.flac"]
    out = os.path.join(TMP, "pred_media.csv")
    cli("predict", "--run", run_dir, "--input", *clips, "--out", out)
    run = mer.Run(run_dir)
    got = run.predict_media(clips)
    rows = {r[0]: [float(x) for x in r[1:1 + len(run.classes)]] for r in
            (l.strip().split(",") for l in list(open(out))[1:])}
    for i, c in enumerate(clips):
        assert np.abs(got[i] - rows[os.path.basename(c)[:-5]]).max() < 1e-6, (got[i], rows)
    raises("predicted a missing clip", lambda: run.predict_media(["no/such/clip.wav"]), "no/such/clip.wav")


@test
def extract_csv_and_eval_match_cli():
    # one library call extracts a transcript CSV: the same files as `mer extract text`, the bad row
    # recorded, a rerun skips; eval_csv gives the numbers of `mer eval --json`
    model = "tests/fixtures/text/tiny_bert"
    csv = os.path.join(TMP, "t.csv")
    with open(csv, "w") as f:
        f.write("name,chinese\na,今天天气真好\nb,我很难过\na,重复\nc/d,坏名字\n")
    cli_out, py_out = os.path.join(TMP, "x_cli"), os.path.join(TMP, "x_py")
    r = subprocess.run([BIN, "extract", "text", "--model", model, "--csv", csv, "--preset", "mertools",
                        "--out", cli_out], capture_output=True)
    assert r.returncode == 1, r
    tm = mer.TextModel(model)
    seen = []
    tm2 = mer.TextModel(model, progress=lambda d, t: seen.append((d, t)))
    got = tm2.extract_csv(csv, py_out, preset="mertools")
    assert (got["written"], got["skipped"], got["failed"]) == (2, 0, 2), got
    assert [i[1] for i in got["items"]] == ["written", "written", "failed", "failed"], got
    assert "appears twice" in got["items"][2][2] and "c/d" in got["items"][3][2], got
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)], seen
    for n in ("a", "b"):
        assert np.array_equal(np.load(os.path.join(cli_out, n + ".npy")), np.load(os.path.join(py_out, n + ".npy")))
    again = tm.extract_csv(csv, py_out, preset="mertools")
    assert (again["written"], again["skipped"], again["failed"]) == (0, 2, 2), again
    lab, pred = os.path.join(TMP, "lab.csv"), os.path.join(TMP, "pred.csv")
    with open(lab, "w") as f:
        f.write("name,emotion\na,happy\nb,sad\nc,happy\n")
    with open(pred, "w") as f:
        f.write("name,pred\na,happy\nb,happy\nc,happy\n")
    e = mer.eval_csv(lab, pred)
    j = json.loads(cli("eval", "--labels", lab, "--pred", pred, "--json"))
    assert e["n"] == j["n"] == 3 and abs(e["waf"] - j["waf"]) < 1e-9 and e["classes"] == sorted(j["classes"]), (e, j)
    assert e["confusion"] == [[2, 0], [1, 0]], e
    raises("scored a missing file", lambda: mer.eval_csv(lab, os.path.join(TMP, "none.csv")), "none.csv")


@test
def speech_extract_files_matches_cli():
    # a folder through one library call: the files and recipe.json of `mer extract audio`, a bad
    # input recorded, progress per input, --batch equal to one at a time
    hub = "tests/fixtures/hubert/base"
    bad = os.path.join(TMP, "bad.wav")
    with open(bad, "wb") as f:
        f.write(b"RIFF, but not audio")
    ins = ["tests/fixtures/hubert/a2.wav", bad, "data/emodb/flac/03a01Fa.flac"]
    cli_dir, py_dir, py4 = (os.path.join(TMP, d) for d in ("sx_cli", "sx_py", "sx_py4"))
    r = subprocess.run([BIN, "extract", "audio", "--model", hub, "--preset", "mertools", "--layers", "last2", "--out",
                        cli_dir] + ins,
                       capture_output=True, text=True)
    assert r.returncode == 1 and "bad.wav" in r.stderr, r
    seen = []
    sm = mer.SpeechModel(hub)
    got = sm.extract_files(ins, py_dir, preset="mertools", layers=(-2, -1))
    assert (got["written"], got["skipped"], got["failed"]) == (2, 0, 1), got
    assert got["items"][1][1] == "failed" and "bad.wav" in got["items"][1][2], got
    for n in ("a2", "03a01Fa"):
        assert np.array_equal(np.load(os.path.join(cli_dir, n + ".npy")), np.load(os.path.join(py_dir, n + ".npy"))), n
    assert json.load(open(os.path.join(cli_dir, "recipe.json"))) == json.load(open(os.path.join(py_dir, "recipe.json")))
    sm2 = mer.SpeechModel(hub, progress=lambda d, t: seen.append((d, t)))
    got4 = sm2.extract_files(ins, py4, preset="mertools", layers=(-2, -1), batch=4)
    assert got4["written"] == 2 and (1, 3) in seen and (3, 3) in seen, (got4, seen)
    for n in ("a2", "03a01Fa"):
        a, b = np.load(os.path.join(py_dir, n + ".npy")), np.load(os.path.join(py4, n + ".npy"))
        assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max(), n
    again = sm.extract_files(ins, py_dir, preset="mertools", layers=(-2, -1))
    assert (again["written"], again["skipped"], again["failed"]) == (0, 2, 1), again


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
