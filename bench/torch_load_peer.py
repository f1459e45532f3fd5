#!/usr/bin/python3
"""Peer side of bench/torch_load.sh (Debian's python3-torch).

  make DIR   a HuBERT-large-sized checkpoint with random weights: DIR/bin/pytorch_model.bin
             (torch.save zip), DIR/legacy/pytorch_model.bin (_use_new_zipfile_serialization=
             False), config.json in both; made once, ~1.26 GB each, not committed
  load FILE REPS   torch.load(FILE, map_location="cpu") REPS times in this process; prints the
             minimum seconds (the page cache is warm after the first)
"""
import collections
import json
import os
import sys
import time

import torch


def shapes():
    """The tensors of HuBERT-large (TencentGameMate/chinese-hubert-large), HF names."""
    d, f, L = 1024, 4096, 24
    s = collections.OrderedDict()
    s["feature_extractor.conv_layers.0.conv.weight"] = (512, 1, 10)
    s["feature_extractor.conv_layers.0.layer_norm.weight"] = (512,)
    s["feature_extractor.conv_layers.0.layer_norm.bias"] = (512,)
    for i, k in enumerate([3, 3, 3, 3, 2, 2], start=1):
        s["feature_extractor.conv_layers.%d.conv.weight" % i] = (512, 512, k)
        s["feature_extractor.conv_layers.%d.layer_norm.weight" % i] = (512,)
        s["feature_extractor.conv_layers.%d.layer_norm.bias" % i] = (512,)
    s["feature_projection.layer_norm.weight"] = (512,)
    s["feature_projection.layer_norm.bias"] = (512,)
    s["feature_projection.projection.weight"] = (d, 512)
    s["feature_projection.projection.bias"] = (d,)
    s["encoder.pos_conv_embed.conv.bias"] = (d,)
    s["encoder.pos_conv_embed.conv.weight_g"] = (1, 1, 128)
    s["encoder.pos_conv_embed.conv.weight_v"] = (d, d // 16, 128)
    s["encoder.layer_norm.weight"] = (d,)
    s["encoder.layer_norm.bias"] = (d,)
    s["masked_spec_embed"] = (d,)
    for i in range(L):
        p = "encoder.layers.%d." % i
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            s[p + "attention.%s.weight" % n] = (d, d)
            s[p + "attention.%s.bias" % n] = (d,)
        s[p + "layer_norm.weight"] = (d,)
        s[p + "layer_norm.bias"] = (d,)
        s[p + "feed_forward.intermediate_dense.weight"] = (f, d)
        s[p + "feed_forward.intermediate_dense.bias"] = (f,)
        s[p + "feed_forward.output_dense.weight"] = (d, f)
        s[p + "feed_forward.output_dense.bias"] = (d,)
        s[p + "final_layer_norm.weight"] = (d,)
        s[p + "final_layer_norm.bias"] = (d,)
    return s


def make(root):
    cfg = {"model_type": "hubert", "architectures": ["HubertModel"], "hidden_size": 1024,
           "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096,
           "hidden_act": "gelu", "feat_extract_norm": "layer", "conv_bias": False,
           "conv_dim": [512] * 7, "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_stride": [5, 2, 2, 2, 2, 2, 2],
           "num_conv_pos_embeddings": 128, "num_conv_pos_embedding_groups": 16, "do_stable_layer_norm": True,
           "layer_norm_eps": 1e-5}
    done = all(os.path.exists(os.path.join(root, d, "pytorch_model.bin")) for d in ("bin", "legacy"))
    if done:
        return
    g = torch.Generator().manual_seed(0)
    sd = collections.OrderedDict((k, torch.randn(v, generator=g) * 0.02) for k, v in shapes().items())
    for d, kw in (("bin", {}), ("legacy", {"_use_new_zipfile_serialization": False})):
        os.makedirs(os.path.join(root, d), exist_ok=True)
        with open(os.path.join(root, d, "config.json"), "w") as fh:
            json.dump(cfg, fh)
        torch.save(sd, os.path.join(root, d, "pytorch_model.bin"), **kw)


def load(path, reps):
    best = 1e9
    for _ in range(reps):
        t = time.perf_counter()
        sd = torch.load(path, map_location="cpu")
        best = min(best, time.perf_counter() - t)
        n = sum(v.numel() for v in sd.values())
        del sd
    print("%.4f %d" % (best, n))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
    else:
        load(sys.argv[2], int(sys.argv[3]))
