#!/usr/bin/python3
"""Seed corpora of the tokenizer fuzz targets: fuzz/corpus/spm_model/ (SentencePiece
tokenizer.model images: two small fixtures, a tiny model with a custom normalisation rule table
so the precompiled-charsmap trie is exercised, hand-made protobufs) and fuzz/corpus/tokenizer_json/
(tiny tokenizer.json files of each supported style). Needs Debian's spm_train for the tiny model."""
import json
import os
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "..", "tests", "fixtures", "text")


def put(target, name, data):
    os.makedirs(os.path.join(HERE, target), exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(HERE, target, name), "wb") as f:
        f.write(data)


def spm_seeds():
    for d in ("spm_bpe_llama", "spm_uni_bf"):
        put("spm_model", d + ".model", open(os.path.join(FIX, d, "tokenizer.model"), "rb").read())
    put("spm_model", "word_type", bytes([0x0a, 0x09, 0x0a, 0x05]) + b"<unk>" + bytes([0x18, 0x02, 0x12, 0x02, 0x18, 0x03]))
    put("spm_model", "bad_length", bytes([0x0a, 0x7f, 0x0a]))
    tmp = tempfile.mkdtemp()
    try:
        with open(os.path.join(tmp, "train.txt"), "w", encoding="utf-8") as f:
            for i in range(200):
                f.write("ＡＢＣ abc ﬁ café ①② %d 我们 hello world\n" % i)
        with open(os.path.join(tmp, "rules.tsv"), "w") as f:
            f.write("FF21\t41\nFF22\t42\nFF23\t43\nFB01\t66 69\n2460\t31\n2461\t32\n3000\t20\n"
                    "63 61\t43 41\n")
        for kind in ("bpe", "unigram"):
            subprocess.run(["spm_train", "--input=" + os.path.join(tmp, "train.txt"),
                            "--model_prefix=" + os.path.join(tmp, kind), "--model_type=" + kind,
                            "--vocab_size=60", "--normalization_rule_tsv=" + os.path.join(tmp, "rules.tsv"),
                            "--num_threads=1", "--minloglevel=2"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            put("spm_model", "tiny_rules_" + kind + ".model",
                open(os.path.join(tmp, kind + ".model"), "rb").read())
    finally:
        shutil.rmtree(tmp)


def b2u():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def json_seeds():
    qwen = json.load(open(os.path.join(FIX, "bpe_qwen2", "tokenizer.json"), encoding="utf-8"))
    llama = json.load(open(os.path.join(FIX, "bpe_llama3", "tokenizer.json"), encoding="utf-8"))
    u = b2u()
    vocab = {c: i for i, c in enumerate(u)}
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("a", "b")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    model = {"type": "BPE", "vocab": vocab, "merges": [a + " " + b for a, b in merges]}
    for name, src in (("qwen2", qwen), ("llama3", llama)):
        t = dict(src)
        t["model"] = dict(src["model"], vocab=vocab,
                          merges=model["merges"] if name == "qwen2" else [list(m) for m in merges])
        for i, a in enumerate(t["added_tokens"]):
            a["id"] = len(vocab) + i
        if name == "llama3":
            t["post_processor"]["processors"][1]["special_tokens"]["<|begin_of_text|>"]["ids"] = [len(vocab)]
        put("tokenizer_json", name + ".json", json.dumps(t, ensure_ascii=False))
    put("tokenizer_json", "gpt2.json", json.dumps({
        "added_tokens": [{"id": len(vocab), "content": "<|endoftext|>", "special": True}],
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True, "use_regex": True},
        "post_processor": {"type": "RobertaProcessing", "cls": ["<|endoftext|>", len(vocab)],
                           "sep": ["<|endoftext|>", len(vocab)]},
        "model": model}, ensure_ascii=False))
    wp = json.load(open(os.path.join(FIX, "wp_lower", "tokenizer.json"), encoding="utf-8"))
    keep = list(wp["model"]["vocab"])[:40]
    wp["model"]["vocab"] = {k: i for i, k in enumerate(keep)}
    wp["added_tokens"] = [a for a in wp["added_tokens"] if a["id"] < 40]
    for s in wp["post_processor"]["special_tokens"].values():
        s["ids"] = [keep.index(s["id"])]
    put("tokenizer_json", "bert.json", json.dumps(wp, ensure_ascii=False))
    put("tokenizer_json", "unsupported.json", '{"normalizer": {"type": "Precompiled"}, "model": '
        '{"type": "BPE", "vocab": {"a": 0}, "merges": []}}')


if __name__ == "__main__":
    spm_seeds()
    json_seeds()
