#!/usr/bin/env python3
"""make_seeds.py -- seed inputs of fuzz/fuzz_tfjs_manifest.c: manifest JSON, a NUL byte, shard
bytes. Run with /usr/bin/python3 from anywhere; writes the seed_* files beside this script."""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "..", "..", "models", "face-api")


def seed(name, manifest, shards=b""):
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    with open(os.path.join(HERE, "seed_" + name), "wb") as f:
        f.write(text.encode() + b"\0" + shards)


def main():
    mixed = [{"paths": ["a.bin"], "weights": [
        {"name": "f", "shape": [2], "dtype": "float32"},
        {"name": "q", "shape": [3], "dtype": "float32",
         "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1}},
        {"name": "h", "shape": [1], "dtype": "float32", "quantization": {"dtype": "float16"}}]},
        {"paths": ["b.bin", "c.bin"], "weights": [
            {"name": "i", "shape": [1, 2], "dtype": "int32"},
            {"name": "u", "shape": [1], "dtype": "float32",
             "quantization": {"dtype": "uint16", "scale": 2, "min": 1}},
            {"name": "b", "shape": [2], "dtype": "bool"}]}]
    seed("mixed", mixed, struct.pack("<2f", 1.5, -2.25) + bytes([0, 2, 255]) + b"\x00\x3c"
         + struct.pack("<2i", -7, 9) + b"\x03\x00" + b"\x01\x00")
    seed("empty", [])
    seed("scalar", [{"paths": ["x"], "weights": [{"name": "s", "shape": [], "dtype": "float32"}]}],
         struct.pack("<f", 3.0))
    seed("short", [{"paths": ["x"], "weights": [{"name": "s", "shape": [4], "dtype": "float32"}]}],
         b"\0\0\0")
    seed("bad_dtype", [{"paths": [], "weights": [{"name": "s", "shape": [1], "dtype": "string"}]}])
    # the real manifests, with the first bytes of their shards (short: the error path)
    for m in ("tiny_face_detector_model", "face_expression_model"):
        with open(os.path.join(MODELS, m + "-weights_manifest.json")) as f:
            text = f.read()
        with open(os.path.join(MODELS, m + ".bin"), "rb") as f:
            head = f.read(64)
        seed(m, text, head)
    # the detector's first tensor alone with its full 432 bytes
    with open(os.path.join(MODELS, "tiny_face_detector_model.bin"), "rb") as f:
        conv0 = f.read(432)
    seed("conv0", [{"paths": ["tiny_face_detector_model.bin"], "weights": [
        {"name": "conv0/filters", "shape": [3, 3, 3, 16], "dtype": "float32",
         "quantization": {"dtype": "uint8", "scale": 0.009007044399485869,
                          "min": -1.2069439495311063}}]}], conv0)


if __name__ == "__main__":
    main()
