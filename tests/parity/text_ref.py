#!/usr/bin/python3
"""text_ref.py -- an independent PyTorch reference of the text encoders mer runs, written from
the Hugging Face modeling code (transformers' modeling_bert.py, modeling_roberta.py,
modeling_llama.py, modeling_qwen2.py, and Baichuan's own modeling_baichuan.py for Baichuan-7B
(W_pack, rotary) and Baichuan-13B / Baichuan2-13B (W_pack, ALiBi)). transformers is not installed
here; these modules follow its semantics with plain torch and return hidden_states as
`model(..., output_hidden_states=True).hidden_states` does:

  bert/roberta: L + 1 states, [0] the embeddings after LayerNorm, [i] the output of layer i
                (post-LN layers; no final norm).
  llama/qwen2/baichuan: L + 1 states, [0] the token embeddings, [i] the output of layer i for
                i < L, and [L] the output of the last layer AFTER the final RMSNorm (the model
                applies self.norm before appending the last state).

Checkpoint naming follows the HF state dicts (BertModel under "bert."/"roberta." prefixes or
bare; LlamaModel under "model."). Weights are saved with clip_ref.save_safetensors.
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clip_ref import save_safetensors  # noqa: E402,F401


# ---- BERT / RoBERTa ----------------------------------------------------------------------------

def bert_forward(cfg, w, ids, mask=None, prefix="bert."):
    """ids (B, T) int64, mask (B, T) 0/1 or None. Returns the list of L + 1 hidden states."""
    B, T = ids.shape
    D, H = cfg["hidden_size"], cfg["num_attention_heads"]
    dh = D // H
    eps = cfg.get("layer_norm_eps", 1e-12)
    if mask is None:
        mask = torch.ones(B, T, dtype=torch.int64)
    p = prefix
    if cfg.get("model_type") in ("roberta", "xlm-roberta"):
        # create_position_ids_from_input_ids: padding_idx + cumsum over non-pad tokens
        pad = cfg.get("pad_token_id", 1)
        m = (ids != pad).int()
        pos = (torch.cumsum(m, dim=1).type_as(m) * m).long() + pad
    else:
        pos = torch.arange(T).unsqueeze(0).expand(B, T)
    tt = torch.zeros(B, T, dtype=torch.int64)
    x = (w[p + "embeddings.word_embeddings.weight"][ids] +
         w[p + "embeddings.token_type_embeddings.weight"][tt] +
         w[p + "embeddings.position_embeddings.weight"][pos])
    x = F.layer_norm(x, (D,), w[p + "embeddings.LayerNorm.weight"], w[p + "embeddings.LayerNorm.bias"], eps)
    hs = [x]
    ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    for l in range(cfg["num_hidden_layers"]):
        q = f"{p}encoder.layer.{l}."
        lin = lambda n, t: F.linear(t, w[q + n + ".weight"], w[q + n + ".bias"])  # noqa: E731
        def heads(t):
            return t.view(B, T, H, dh).transpose(1, 2)
        Q = heads(lin("attention.self.query", x))
        K = heads(lin("attention.self.key", x))
        V = heads(lin("attention.self.value", x))
        s = Q @ K.transpose(-1, -2) / math.sqrt(dh) + ext
        a = torch.softmax(s, dim=-1) @ V
        a = a.transpose(1, 2).reshape(B, T, D)
        x = F.layer_norm(lin("attention.output.dense", a) + x, (D,),
                         w[q + "attention.output.LayerNorm.weight"], w[q + "attention.output.LayerNorm.bias"], eps)
        h = F.gelu(lin("intermediate.dense", x))
        x = F.layer_norm(lin("output.dense", h) + x, (D,), w[q + "output.LayerNorm.weight"],
                         w[q + "output.LayerNorm.bias"], eps)
        hs.append(x)
    return hs


def bert_weights(cfg, gen, prefix="bert."):
    D, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    P, TV = cfg["max_position_embeddings"], cfg.get("type_vocab_size", 2)
    w = {}
    r = lambda *s: torch.randn(*s, generator=gen)  # noqa: E731
    p = prefix
    w[p + "embeddings.word_embeddings.weight"] = r(V, D) * 0.5
    w[p + "embeddings.position_embeddings.weight"] = r(P, D) * 0.5
    w[p + "embeddings.token_type_embeddings.weight"] = r(TV, D) * 0.5
    w[p + "embeddings.LayerNorm.weight"] = 1 + 0.1 * r(D)
    w[p + "embeddings.LayerNorm.bias"] = 0.1 * r(D)
    for l in range(cfg["num_hidden_layers"]):
        q = f"{p}encoder.layer.{l}."
        for n, o, i in (("attention.self.query", D, D), ("attention.self.key", D, D),
                        ("attention.self.value", D, D), ("attention.output.dense", D, D),
                        ("intermediate.dense", I, D), ("output.dense", D, I)):
            w[q + n + ".weight"] = r(o, i) / math.sqrt(i)
            w[q + n + ".bias"] = 0.1 * r(o)
        for n in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[q + n + ".weight"] = 1 + 0.1 * r(D)
            w[q + n + ".bias"] = 0.1 * r(D)
    return w


# ---- LLaMA / Qwen2 / Baichuan ------------------------------------------------------------------

def rms_norm(x, weight, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return weight * (x * torch.rsqrt(var + eps))


def rope_inv_freq(cfg, dh):
    theta = cfg.get("rope_theta", 10000.0)
    inv = 1.0 / (theta ** (torch.arange(0, dh, 2, dtype=torch.int64).float() / dh))
    sc = cfg.get("rope_scaling")
    factor = 1.0
    if sc:
        kind = sc.get("rope_type", sc.get("type"))
        if kind == "linear":
            factor = sc["factor"]
        elif kind == "llama3":
            # transformers' _compute_llama3_parameters
            f, lo, hi = sc["factor"], sc["low_freq_factor"], sc["high_freq_factor"]
            old = sc["original_max_position_embeddings"]
            lo_wl, hi_wl = old / lo, old / hi
            wl = 2 * math.pi / inv
            inv_l = torch.where(wl > lo_wl, inv / f, inv)
            smooth = (old / wl - lo) / (hi - lo)
            smoothed = (1 - smooth) * inv_l / f + smooth * inv_l
            medium = ~(wl < hi_wl) * ~(wl > lo_wl)
            inv = torch.where(medium, smoothed, inv_l)
        elif kind not in (None, "default"):
            raise ValueError(f"rope_scaling {kind}")
    return inv, factor


def rope_cos_sin(cfg, dh, T):
    inv, factor = rope_inv_freq(cfg, dh)
    t = torch.arange(T, dtype=torch.int64).float() / factor
    freqs = torch.outer(t, inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def alibi_slopes(n):
    # Baichuan-13B's _get_interleave
    def pow2(n):
        start = 2 ** (-2 ** -(math.log2(n) - 3))
        return [start * start ** i for i in range(n)]
    if math.log2(n).is_integer():
        return pow2(n)
    c = 2 ** math.floor(math.log2(n))
    return pow2(c) + alibi_slopes(2 * c)[0::2][:n - c]


def llama_forward(cfg, w, ids, style, mask=None):
    """style: 'llama' (q/k/v/o, rotary, biases when present: Qwen2), 'baichuan_rope' (W_pack +
    rotary), 'baichuan_alibi' (W_pack + ALiBi). ids (B, T). Returns L + 1 hidden states."""
    B, T = ids.shape
    D, H = cfg["hidden_size"], cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads", H)
    dh = D // H
    eps = cfg.get("rms_norm_eps", 1e-6)
    x = w["model.embed_tokens.weight"][ids]
    hs = [x]
    if mask is None:
        mask = torch.ones(B, T, dtype=torch.int64)
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    allowed = causal[None, None] & mask[:, None, None, :].bool()
    if style == "baichuan_alibi":
        slopes = torch.tensor(alibi_slopes(H))
        # _gen_alibi_mask: slope * key position, future masked with -inf
        bias = slopes[:, None, None] * torch.arange(T).float()[None, None, :]
        bias = bias.expand(H, T, T)[None].to(x.dtype)
    else:
        # transformers casts the rotary tables to the activations' dtype
        cos, sin = (t.to(x.dtype) for t in rope_cos_sin(cfg, dh, T))
    for l in range(cfg["num_hidden_layers"]):
        q = f"model.layers.{l}."
        h = rms_norm(x, w[q + "input_layernorm.weight"], eps)
        if style == "llama":
            def lin(n, t):
                return F.linear(t, w[q + n + ".weight"], w.get(q + n + ".bias"))
            Q, K, V = lin("self_attn.q_proj", h), lin("self_attn.k_proj", h), lin("self_attn.v_proj", h)
        else:
            pk = F.linear(h, w[q + "self_attn.W_pack.weight"])
            Q, K, V = pk[..., :D], pk[..., D:2 * D], pk[..., 2 * D:]
        Q = Q.view(B, T, H, dh).transpose(1, 2)
        K = K.reshape(B, T, KV, dh).transpose(1, 2)
        V = V.reshape(B, T, KV, dh).transpose(1, 2)
        if style != "baichuan_alibi":
            Q = Q * cos + rotate_half(Q) * sin
            K = K * cos + rotate_half(K) * sin
        K = K.repeat_interleave(H // KV, dim=1)
        V = V.repeat_interleave(H // KV, dim=1)
        s = Q @ K.transpose(-1, -2) / math.sqrt(dh)
        if style == "baichuan_alibi":
            s = s + bias
        s = s.masked_fill(~allowed, torch.finfo(s.dtype).min)
        a = (torch.softmax(s, dim=-1) @ V).transpose(1, 2).reshape(B, T, D)
        x = x + F.linear(a, w[q + "self_attn.o_proj.weight"])
        h = rms_norm(x, w[q + "post_attention_layernorm.weight"], eps)
        g = F.linear(h, w[q + "mlp.gate_proj.weight"])
        u = F.linear(h, w[q + "mlp.up_proj.weight"])
        x = x + F.linear(F.silu(g) * u, w[q + "mlp.down_proj.weight"])
        hs.append(x)
    hs[-1] = rms_norm(x, w["model.norm.weight"], eps)
    return hs


def llama_weights(cfg, gen, style, qkv_bias=False, dtype=torch.float32):
    D, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    H = cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads", H)
    dh = D // H
    w = {}

    def r(*s):
        return torch.randn(*s, generator=gen).to(dtype).float()
    w["model.embed_tokens.weight"] = r(V, D)
    for l in range(cfg["num_hidden_layers"]):
        q = f"model.layers.{l}."
        if style == "llama":
            w[q + "self_attn.q_proj.weight"] = r(D, D) / math.sqrt(D)
            w[q + "self_attn.k_proj.weight"] = r(KV * dh, D) / math.sqrt(D)
            w[q + "self_attn.v_proj.weight"] = r(KV * dh, D) / math.sqrt(D)
            if qkv_bias:
                w[q + "self_attn.q_proj.bias"] = 0.1 * r(D)
                w[q + "self_attn.k_proj.bias"] = 0.1 * r(KV * dh)
                w[q + "self_attn.v_proj.bias"] = 0.1 * r(KV * dh)
        else:
            w[q + "self_attn.W_pack.weight"] = r(3 * D, D) / math.sqrt(D)
        w[q + "self_attn.o_proj.weight"] = r(D, D) / math.sqrt(D)
        w[q + "mlp.gate_proj.weight"] = r(I, D) / math.sqrt(D)
        w[q + "mlp.up_proj.weight"] = r(I, D) / math.sqrt(D)
        w[q + "mlp.down_proj.weight"] = r(D, I) / math.sqrt(I)
        w[q + "input_layernorm.weight"] = 1 + 0.1 * r(D)
        w[q + "post_attention_layernorm.weight"] = 1 + 0.1 * r(D)
    w["model.norm.weight"] = 1 + 0.1 * r(D)
    # dividing by sqrt(fan_in) may leave values off the dtype's grid: round them back
    return {k: v.to(dtype).float() for k, v in w.items()}


def mertools_feature(hs, start, end):
    """Sum of the last 4 hidden states, mean over tokens [start, end) (MERTools)."""
    s = torch.stack(hs[-4:]).sum(0)
    return s[0, start:end].mean(0)
