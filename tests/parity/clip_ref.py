"""clip_ref.py -- an independent PyTorch implementation of Hugging Face transformers' CLIP vision
semantics (modeling_clip.py: CLIPVisionEmbeddings, CLIPEncoderLayer, CLIPVisionTransformer,
get_image_features) and of CLIPImageProcessor (resize shortest edge with PIL bicubic, center
crop, rescale, normalise), used as the oracle for mer's clip_vit.c and resize.c.

Module and parameter names match transformers' so that state_dict() keys are the checkpoint's
tensor names ("vision_model.encoder.layers.0.self_attn.q_proj.weight", ...).
Used by tests/fixtures/clip/make_clip_fixture.py (tiny config, CI) and tests/parity/clip_parity.py
(B/32 and L/14) and bench/clip_peer.py.
"""
import json
import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

# Real configurations (vision tower) of the openai checkpoints.
CONFIGS = {
    "B/32": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                 num_attention_heads=12, image_size=224, patch_size=32, projection_dim=512),
    "B/16": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                 num_attention_heads=12, image_size=224, patch_size=16, projection_dim=512),
    "L/14": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                 num_attention_heads=16, image_size=224, patch_size=14, projection_dim=768),
    "L/14-336": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                     num_attention_heads=16, image_size=336, patch_size=14, projection_dim=768),
}


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


class Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, p = c["hidden_size"], c["patch_size"]
        self.image_size = c["image_size"]
        self.class_embedding = nn.Parameter(torch.randn(d))
        self.patch_embedding = nn.Conv2d(c.get("num_channels", 3), d, kernel_size=p, stride=p, bias=False)
        n = (self.image_size // p) ** 2 + 1
        self.position_embedding = nn.Embedding(n, d)
        self.register_buffer("position_ids", torch.arange(n).expand((1, -1)), persistent=False)

    def forward(self, pixel_values):
        b = pixel_values.shape[0]
        pe = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(b, 1, -1)
        return torch.cat([cls, pe], dim=1) + self.position_embedding(self.position_ids)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.h = c["num_attention_heads"]
        self.dh = d // self.h
        self.scale = self.dh ** -0.5
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.q_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x):
        b, t, d = x.shape
        q = self.q_proj(x).view(b, t, self.h, self.dh).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.h, self.dh).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.h, self.dh).transpose(1, 2)
        w = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        w = F.softmax(w, dim=-1, dtype=torch.float32)
        o = torch.matmul(w, v).transpose(1, 2).reshape(b, t, d)
        return self.out_proj(o)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.act = quick_gelu if c.get("hidden_act", "quick_gelu") == "quick_gelu" else F.gelu
        self.fc1 = nn.Linear(c["hidden_size"], c["intermediate_size"])
        self.fc2 = nn.Linear(c["intermediate_size"], c["hidden_size"])

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        eps = c.get("layer_norm_eps", 1e-5)
        self.self_attn = Attention(c)
        self.layer_norm1 = nn.LayerNorm(c["hidden_size"], eps=eps)
        self.mlp = MLP(c)
        self.layer_norm2 = nn.LayerNorm(c["hidden_size"], eps=eps)

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList([Layer(c) for _ in range(c["num_hidden_layers"])])


class VisionTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        eps = c.get("layer_norm_eps", 1e-5)
        self.embeddings = Embeddings(c)
        self.pre_layrnorm = nn.LayerNorm(c["hidden_size"], eps=eps)  # sic, transformers' name
        self.encoder = Encoder(c)
        self.post_layernorm = nn.LayerNorm(c["hidden_size"], eps=eps)

    def forward(self, pixel_values, output_hidden_states=False):
        x = self.pre_layrnorm(self.embeddings(pixel_values))
        states = [x]
        for layer in self.encoder.layers:
            x = layer(x)
            states.append(x)
        pooled = self.post_layernorm(x[:, 0, :])
        return x, pooled, (tuple(states) if output_hidden_states else None)


class VisionModelWithProjection(nn.Module):
    """CLIPVisionModelWithProjection (and the vision half of CLIPModel)."""

    def __init__(self, c, projection=True):
        super().__init__()
        self.vision_model = VisionTransformer(c)
        if projection:
            self.visual_projection = nn.Linear(c["hidden_size"], c["projection_dim"], bias=False)

    @torch.no_grad()
    def run(self, pixel_values, output_hidden_states=False):
        """Returns (embeds or None, pooled cls, hidden states tuple or None)."""
        _, pooled, states = self.vision_model(pixel_values, output_hidden_states)
        embeds = self.visual_projection(pooled) if hasattr(self, "visual_projection") else None
        return embeds, pooled, states


def randomize_(model, seed):
    """Random weights at a scale that keeps activations O(1) through many layers; norms and
    biases perturbed away from their identity init so that mistakes in them show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif p.ndim >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
            else:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))


# ---- safetensors writer (no `safetensors` package on Debian) ---------------------------------

_ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}


def save_safetensors(path, tensors, metadata=None):
    header = {}
    blobs = []
    off = 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().tobytes()
        header[name] = {"dtype": _ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---- CLIPImageProcessor ------------------------------------------------------------------------

def resize_output_size(h, w, shortest_edge):
    """transformers.image_transforms.get_resize_output_image_size(default_to_square=False)."""
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = shortest_edge, int(shortest_edge * long / short)
    return (new_long, new_short) if w <= h else (new_short, new_long)


def center_crop(img, ch, cw):
    """transformers.image_transforms.center_crop on (H, W, C), zero padding when smaller."""
    h, w = img.shape[:2]
    top, left = (h - ch) // 2, (w - cw) // 2
    out = np.zeros((ch, cw) + img.shape[2:], dtype=img.dtype)
    y0, x0 = max(0, -top), max(0, -left)                  # first output row/col inside the image
    y1, x1 = min(ch, h - top), min(cw, w - left)          # one past the last
    if y1 > y0 and x1 > x0:
        out[y0:y1, x0:x1] = img[y0 + top:y1 + top, x0 + left:x1 + left]
    return out


def preprocess(rgb, shortest_edge, crop, mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD):
    """uint8 (H, W, 3) -> float32 (3, crop, crop) as CLIPImageProcessor does it."""
    from PIL import Image
    h, w = rgb.shape[:2]
    nh, nw = resize_output_size(h, w, shortest_edge)
    r = np.array(Image.fromarray(rgb).resize((nw, nh), resample=Image.BICUBIC))
    r = center_crop(r, crop, crop)
    x = (r.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32)
    return x.transpose(2, 0, 1).copy()
