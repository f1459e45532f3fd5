#!/usr/bin/python3
"""text_gguf.py -- writes a GGUF copy (Q8_0 or BF16) of a 2-layer decoder slice made by
bench/text_peer.py make-llm, for llama.cpp (node-llama-cpp) in bench/text.sh.

  text_gguf.py MODEL_DIR OUT.gguf q8_0|bf16

GGUF v3 as llama.cpp reads it (ggml/docs/gguf.md): header, key-values, tensor infos (dims
innermost first), data aligned to 32 bytes. Q8_0 = blocks of 32 weights along a row, one float16
scale amax / 127 and 32 int8 (llama.cpp's quantize_row_q8_0 rounding). The file is architecture
"llama" for every slice: llama.cpp chooses Baichuan's ALiBi or rotary from the layer count (40
vs 32) and stops on a 2-layer "baichuan" file, so the Baichuan-13B slice (W_pack split into
q, k, v rows) runs as a llama graph of the same shapes (rotary instead of ALiBi: a few
multiply-adds per q/k element, < 0.1% of a layer). Q and K are not permuted to llama.cpp's rope
layout (random weights: the timing is what is measured, not the values). A placeholder
SentencePiece vocabulary (<unk>, <s>, </s>, 256 byte pieces, then "t<i>") fills
tokenizer.ggml.*; the bench feeds token ids.
"""
import json
import os
import struct
import sys

import numpy as np

T_U32, T_I32, T_F32, T_STR, T_ARR = 4, 5, 6, 8, 9
GGML_F32, GGML_Q8_0, GGML_BF16 = 0, 8, 30
ALIGN = 32


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        if v["dtype"] == "BF16":
            bits = np.frombuffer(raw[a:b], dtype=np.uint16)
            arr = (bits.astype(np.uint32) << 16).view(np.float32)
        elif v["dtype"] == "F32":
            arr = np.frombuffer(raw[a:b], dtype=np.float32)
        else:
            raise SystemExit(f"{path}: {k}: dtype {v['dtype']} not handled")
        out[k] = arr.reshape(v["shape"])
    return out


def s_(b, x):
    x = x.encode()
    b += struct.pack("<Q", len(x)) + x


def kv(b, key, typ, val):
    s_(b, key)
    b += struct.pack("<I", typ)
    if typ == T_U32:
        b += struct.pack("<I", val)
    elif typ == T_F32:
        b += struct.pack("<f", val)
    elif typ == T_STR:
        s_(b, val)
    elif typ == T_ARR:
        et, items = val
        b += struct.pack("<IQ", et, len(items))
        if et == T_STR:
            for it in items:
                s_(b, it)
        elif et == T_F32:
            b += np.asarray(items, dtype=np.float32).tobytes()
        elif et == T_I32:
            b += np.asarray(items, dtype=np.int32).tobytes()


def q8_0(w):
    rows, cols = w.shape
    assert cols % 32 == 0, cols
    blk = w.reshape(rows, cols // 32, 32)
    d = np.abs(blk).max(axis=2) / 127.0
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1), 0.0)
    q = np.rint(blk * inv[:, :, None]).astype(np.int8)
    out = np.empty((rows, cols // 32), dtype=[("d", "<f2"), ("q", "i1", 32)])
    out["d"] = d.astype(np.float16)
    out["q"] = q
    return out.tobytes()


def bf16(w):
    bits = np.ascontiguousarray(w, dtype=np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16).tobytes()


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in ("q8_0", "bf16"):
        raise SystemExit(__doc__)
    d, out, kind = sys.argv[1:]
    cfg = json.load(open(os.path.join(d, "config.json")))
    w = read_safetensors(os.path.join(d, "model.safetensors"))
    D, I, H = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_attention_heads"]
    KVH = cfg.get("num_key_value_heads", H)
    L, V = cfg["num_hidden_layers"], cfg["vocab_size"]
    tensors = [("token_embd.weight", w["model.embed_tokens.weight"], True),
               ("output_norm.weight", w["model.norm.weight"], False)]
    for l in range(L):
        p = f"model.layers.{l}."
        if p + "self_attn.W_pack.weight" in w:
            wp = w[p + "self_attn.W_pack.weight"]
            q, k, v = wp[:D], wp[D:2 * D], wp[2 * D:]
        else:
            q, k, v = (w[p + f"self_attn.{n}_proj.weight"] for n in "qkv")
        tensors += [(f"blk.{l}.attn_norm.weight", w[p + "input_layernorm.weight"], False),
                    (f"blk.{l}.attn_q.weight", q, True), (f"blk.{l}.attn_k.weight", k, True),
                    (f"blk.{l}.attn_v.weight", v, True),
                    (f"blk.{l}.attn_output.weight", w[p + "self_attn.o_proj.weight"], True),
                    (f"blk.{l}.ffn_norm.weight", w[p + "post_attention_layernorm.weight"], False),
                    (f"blk.{l}.ffn_gate.weight", w[p + "mlp.gate_proj.weight"], True),
                    (f"blk.{l}.ffn_up.weight", w[p + "mlp.up_proj.weight"], True),
                    (f"blk.{l}.ffn_down.weight", w[p + "mlp.down_proj.weight"], True)]
    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    toks += [f"t{i}" for i in range(len(toks), V)]
    ttype = [2, 3, 3] + [6] * 256 + [1] * (V - 259)
    meta = bytearray()
    kvs = [("general.architecture", T_STR, "llama"), ("general.name", T_STR, os.path.basename(d.rstrip("/"))),
           ("general.file_type", T_U32, 7 if kind == "q8_0" else 32),
           ("llama.context_length", T_U32, 4096), ("llama.embedding_length", T_U32, D),
           ("llama.block_count", T_U32, L), ("llama.feed_forward_length", T_U32, I),
           ("llama.rope.dimension_count", T_U32, D // H), ("llama.attention.head_count", T_U32, H),
           ("llama.attention.head_count_kv", T_U32, KVH),
           ("llama.attention.layer_norm_rms_epsilon", T_F32, float(cfg.get("rms_norm_eps", 1e-6))),
           ("llama.rope.freq_base", T_F32, float(cfg.get("rope_theta", 10000.0))),
           ("tokenizer.ggml.model", T_STR, "llama"), ("tokenizer.ggml.tokens", T_ARR, (T_STR, toks)),
           ("tokenizer.ggml.scores", T_ARR, (T_F32, [0.0] * V)),
           ("tokenizer.ggml.token_type", T_ARR, (T_I32, ttype)),
           ("tokenizer.ggml.bos_token_id", T_U32, 1), ("tokenizer.ggml.eos_token_id", T_U32, 2),
           ("tokenizer.ggml.unknown_token_id", T_U32, 0)]
    for k, t, v in kvs:
        kv(meta, k, t, v)
    blobs, infos, off = [], bytearray(), 0
    for name, arr, quant in tensors:
        arr = np.asarray(arr, dtype=np.float32)
        if quant:
            data, typ = (q8_0(arr), GGML_Q8_0) if kind == "q8_0" else (bf16(arr), GGML_BF16)
        else:
            data, typ = arr.tobytes(), GGML_F32
        s_(infos, name)
        dims = list(reversed(arr.shape))
        infos += struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", x) for x in dims)
        infos += struct.pack("<IQ", typ, off)
        blobs.append(data)
        off += len(data)
        off += (-off) % ALIGN
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)))
        f.write(meta)
        f.write(infos)
        f.write(b"\0" * ((-f.tell()) % ALIGN))
        for data in blobs:
            f.write(data)
            f.write(b"\0" * ((-len(data)) % ALIGN))
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
