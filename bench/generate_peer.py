#!/usr/bin/python3
"""The eager PyTorch peer of `sfpo bench generate`.

A straightforward implementation of the same Qwen2 model with a KV cache, written the way the
Hugging Face transformers code does it (nn.Linear modules, a cache grown with torch.cat,
repeat_kv for grouped-query attention, softmax attention, torch.multinomial sampling), run
under torch.inference_mode(). Same flags and the same figures as the C++ benchmark, so the two
can be run side by side:

  /usr/bin/python3 bench/generate_peer.py --layers 4 --hidden 256 --heads 4 --kv-heads 2 \
      --intermediate 704 --vocab 64 --batch 64 --prompt-tokens 32 --new-tokens 128 --threads 1 --json
"""
import argparse
import json
import math
import time

import torch
from torch import nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def repeat_kv(x, n_rep):
    b, kv, s, hd = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None].expand(b, kv, n_rep, s, hd).reshape(b, kv * n_rep, s, hd)


class Attention(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.h, self.kv, self.hd = a.heads, a.kv_heads, a.hidden // a.heads
        self.q_proj = nn.Linear(a.hidden, self.h * self.hd, bias=True)
        self.k_proj = nn.Linear(a.hidden, self.kv * self.hd, bias=True)
        self.v_proj = nn.Linear(a.hidden, self.kv * self.hd, bias=True)
        self.o_proj = nn.Linear(self.h * self.hd, a.hidden, bias=False)

    def forward(self, x, cos, sin, cache, mask):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.h, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None and cache[0] is not None:
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
        new_cache = (k, v)
        k = repeat_kv(k, self.h // self.kv)
        v = repeat_kv(v, self.h // self.kv)
        att = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.hd)
        if mask is not None:
            att = att + mask
        att = F.softmax(att, dim=-1, dtype=torch.float32)
        o = torch.matmul(att, v).transpose(1, 2).reshape(b, t, -1)
        return self.o_proj(o), new_cache


class MLP(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.gate_proj = nn.Linear(a.hidden, a.intermediate, bias=False)
        self.up_proj = nn.Linear(a.hidden, a.intermediate, bias=False)
        self.down_proj = nn.Linear(a.intermediate, a.hidden, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.self_attn = Attention(a)
        self.mlp = MLP(a)
        self.input_layernorm = RMSNorm(a.hidden, 1e-6)
        self.post_attention_layernorm = RMSNorm(a.hidden, 1e-6)

    def forward(self, x, cos, sin, cache, mask):
        h, cache = self.self_attn(self.input_layernorm(x), cos, sin, cache, mask)
        x = x + h
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x, cache


class Qwen2(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed_tokens = nn.Embedding(a.vocab, a.hidden)
        self.layers = nn.ModuleList([Layer(a) for _ in range(a.layers)])
        self.norm = RMSNorm(a.hidden, 1e-6)
        hd = a.hidden // a.heads
        inv_freq = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
        freqs = torch.outer(torch.arange(a.prompt_tokens + a.new_tokens, dtype=torch.float32), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos, self.sin = emb.cos(), emb.sin()

    def forward(self, ids, start, caches):
        b, t = ids.shape
        x = self.embed_tokens(ids)
        cos = self.cos[start:start + t][None, None]
        sin = self.sin[start:start + t][None, None]
        mask = None
        if t > 1:
            mask = torch.full((t, t), float("-inf")).triu(1)[None, None]
        new_caches = []
        for layer, cache in zip(self.layers, caches):
            x, cache = layer(x, cos, sin, cache, mask)
            new_caches.append(cache)
        x = self.norm(x[:, -1])
        return F.linear(x, self.embed_tokens.weight), new_caches  # tied lm_head


def generate(model, prompts, new_tokens, n_layers):
    """Returns (tokens, logprobs, prefill_seconds, decode_seconds)."""
    caches = [None] * n_layers
    t0 = time.perf_counter()
    logits, caches = model(prompts, 0, caches)
    t1 = time.perf_counter()
    tokens, logprobs = [], []
    pos = prompts.shape[1]
    for step in range(new_tokens):
        logp = F.log_softmax(logits.float(), dim=-1)  # temperature 1
        nxt = torch.multinomial(logp.exp(), 1)
        tokens.append(nxt)
        logprobs.append(logp.gather(-1, nxt))
        if step + 1 == new_tokens:
            break
        logits, caches = model(nxt, pos, caches)
        pos += 1
    t2 = time.perf_counter()
    return torch.cat(tokens, 1), torch.cat(logprobs, 1), t1 - t0, t2 - t1


def matmul_peak_gflops(n=1024, repeats=5):
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = a @ b
    best = 1e30
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in [("layers", 4), ("hidden", 256), ("heads", 4), ("kv-heads", 2),
                          ("intermediate", 704), ("vocab", 64), ("batch", 64),
                          ("prompt-tokens", 32), ("new-tokens", 128), ("threads", 1),
                          ("seed", 0), ("repeats", 3)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = Qwen2(a).eval()
    with torch.no_grad():
        for name, w in model.named_parameters():
            if name.endswith("bias"):
                w.zero_()
            elif "norm" not in name:
                w.normal_(0.0, 0.02)
    prompts = torch.randint(a.vocab, (a.batch, a.prompt_tokens))
    with torch.inference_mode():
        generate(model, prompts, min(a.new_tokens, 8), a.layers)  # warm-up
        prefill_tps = decode_tps = 0.0
        for _ in range(max(1, a.repeats)):
            tokens, _, prefill_s, decode_s = generate(model, prompts, a.new_tokens, a.layers)
            prefill_tps = max(prefill_tps, a.batch * a.prompt_tokens / prefill_s)
            decode_tps = max(decode_tps, tokens.numel() / decode_s)
        peak = matmul_peak_gflops()
    hd = a.hidden // a.heads
    params = sum(w.numel() for w in model.parameters())
    matmul_params = a.layers * (2 * a.hidden * a.heads * hd + 2 * a.hidden * a.kv_heads * hd
                                + 3 * a.hidden * a.intermediate) + a.vocab * a.hidden
    flops_per_token = 2.0 * matmul_params + 4.0 * a.layers * a.hidden * (a.prompt_tokens + a.new_tokens / 2)
    decode_gflops = decode_tps * flops_per_token / 1e9
    out = {
        "engine": "python-eager", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "layers": a.layers, "hidden": a.hidden, "heads": a.heads, "kv_heads": a.kv_heads,
        "intermediate": a.intermediate, "vocab": a.vocab, "batch": a.batch,
        "prompt_tokens": a.prompt_tokens, "new_tokens": a.new_tokens, "params": params,
        "flops_per_token": flops_per_token, "prefill_tokens_per_s": prefill_tps,
        "decode_tokens_per_s": decode_tps, "decode_gflops": decode_gflops,
        "matmul_peak_gflops": peak, "decode_fraction_of_peak": decode_gflops / peak,
    }
    if a.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print("%s: %s" % (k, v))


if __name__ == "__main__":
    main()
