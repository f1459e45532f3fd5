#!/usr/bin/python3
"""Seed corpora for the fuzz targets (fuzz/corpus/<target>/): a few valid and invalid small
inputs each. Re-running rewrites the same files."""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "..", "tests", "fixtures", "io")


def put(target, name, data):
    os.makedirs(os.path.join(HERE, target), exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(HERE, target, name), "wb") as f:
        f.write(data)


def fixture(name):
    with open(os.path.join(FIX, name), "rb") as f:
        return f.read()


def st(header, data=b"", pad=True):
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


# safetensors
put("safetensors", "ref", fixture("ref.safetensors"))
put("safetensors", "empty_header", st({}))
put("safetensors", "meta_f16", st({"__metadata__": {"format": "pt"},
                                   "w": {"dtype": "F16", "shape": [2, 2], "data_offsets": [0, 8]}}, bytes(8)))
put("safetensors", "bf16_i64", st({"a": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]},
                                   "b": {"dtype": "BF16", "shape": [], "data_offsets": [8, 10]}}, bytes(10)))
put("safetensors", "odd_align", st({"u": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
                                    "f": {"dtype": "F32", "shape": [1], "data_offsets": [1, 5]}}, bytes(5), pad=False))
put("safetensors", "overlap", st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                  "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8)))
put("safetensors", "bad_dtype", st({"a": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}}, bytes(4)))
put("safetensors", "truncated", fixture("ref.safetensors")[:40])
put("safetensors", "huge_len", struct.pack("<Q", 1 << 40) + b"{}")

# npy
for n in ["f32_r2.npy", "f16_r1.npy", "f64_r3.npy", "f32_r0.npy", "f32_v3.npy", "bad_fortran.npy",
          "bad_object.npy"]:
    put("npy", n[:-4], fixture(n))
put("npy", "truncated", fixture("f32_r4.npy")[:150])

# csv
put("csv", "ref", fixture("ref.csv"))
put("csv", "dialect", '\ufeffid,text\n1,plain\r\n2,"a,b"\r3,"x""y"\n\n4,\n')
put("csv", "ragged", "a,b\n1,2\n3\n")
put("csv", "unterminated", 'a,b\n"x,2\n')

# json
put("json", "config", fixture("config.json"))
put("json", "nested", '{"a": [1, {"b": [true, null, -2.5e3]}], "a.b": "x", "s": "\\u00e9\\n"}')
put("json", "index", '{"metadata": {"total_size": 26}, "weight_map": {"a": "m-1.safetensors"}}')
put("json", "dup", '{"a": 1, "a": 2}')
put("json", "bad", '{"a": [1, 2,]}')
