#!/usr/bin/python3
"""Independent Qwen2 forward in python3-torch, for model_test's cross-check.

Usage: qwen2_reference.py DIR
DIR holds config.json (Hugging Face Qwen2), model.safetensors (parsed here by hand from its
bytes) and input_ids.json ([[int, ...], ...], equal lengths). Writes DIR/logits.bin: the
logits [B, T, V] as little-endian float32, following the transformers Qwen2 implementation
(rotate_half rotary embeddings, repeat_kv grouped-query attention, RMSNorm in float32).
"""
import json
import math
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=DTYPES[entry["dtype"]])
        tensors[name] = t.reshape(entry["shape"]).float()
    return tensors


def rms_norm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def forward(cfg, w, ids):
    b, t = ids.shape
    d = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)
    hd = d // nh
    eps = cfg.get("rms_norm_eps", 1e-6)
    theta = cfg.get("rope_theta", 10000.0)
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    pos = torch.arange(t, dtype=torch.float32)
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[None, None], emb.sin()[None, None]  # [1, 1, T, hd]
    mask = torch.full((t, t), float("-inf")).triu(1)

    x = w["model.embed_tokens.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = h @ w[p + "self_attn.q_proj.weight"].T + w[p + "self_attn.q_proj.bias"]
        k = h @ w[p + "self_attn.k_proj.weight"].T + w[p + "self_attn.k_proj.bias"]
        v = h @ w[p + "self_attn.v_proj.weight"].T + w[p + "self_attn.v_proj.bias"]
        q = q.view(b, t, nh, hd).transpose(1, 2)
        k = k.view(b, t, nkv, hd).transpose(1, 2)
        v = v.view(b, t, nkv, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = nh // nkv
        k = k[:, :, None].expand(b, nkv, rep, t, hd).reshape(b, nh, t, hd)
        v = v[:, :, None].expand(b, nkv, rep, t, hd).reshape(b, nh, t, hd)
        att = (q @ k.transpose(2, 3)) / math.sqrt(hd) + mask
        att = torch.softmax(att, dim=-1)
        o = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + o @ w[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        up = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else w["lm_head.weight"]
    return x @ head.T


def main():
    d = sys.argv[1]
    with open(d + "/config.json") as f:
        cfg = json.load(f)
    with open(d + "/input_ids.json") as f:
        ids = torch.tensor(json.load(f), dtype=torch.int64)
    w = read_safetensors(d + "/model.safetensors")
    expected = {"model.embed_tokens.weight", "model.norm.weight"}
    if not cfg.get("tie_word_embeddings", False):
        expected.add("lm_head.weight")
    for i in range(cfg["num_hidden_layers"]):
        for s in ("self_attn.q_proj.weight", "self_attn.q_proj.bias", "self_attn.k_proj.weight",
                  "self_attn.k_proj.bias", "self_attn.v_proj.weight", "self_attn.v_proj.bias",
                  "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                  "mlp.down_proj.weight", "input_layernorm.weight", "post_attention_layernorm.weight"):
            expected.add("model.layers.%d.%s" % (i, s))
    if set(w) != expected:
        sys.exit("tensor names differ from Qwen2's: extra %s, missing %s"
                 % (sorted(set(w) - expected), sorted(expected - set(w))))
    with torch.no_grad():
        logits = forward(cfg, w, ids).float().contiguous()
    with open(d + "/logits.bin", "wb") as f:
        f.write(logits.numpy().tobytes())


if __name__ == "__main__":
    main()
