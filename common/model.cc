#include "common/model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "common/status.h"

namespace sfpo {
namespace {

// Additive bias for keys a query must not see. Finite, so a row whose keys are all masked (a pad
// query of a left-padded row) gets a uniform softmax instead of NaN; exp() of it underflows to
// exactly 0 next to any real score.
constexpr float kMasked = -1e30f;

using torch::indexing::Slice;

// A bare module that only holds parameters/children, to reproduce Hugging Face's names.
std::shared_ptr<torch::nn::Module> Child(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

torch::Tensor Param(torch::nn::Module& owner, const std::string& name, at::IntArrayRef shape) {
  return owner.register_parameter(name, torch::empty(shape, torch::kFloat32));
}

// x: [..., D]; weight: [D].
torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  // square(), not pow(2): LibTorch 1.13's pow with an integer exponent takes a slow scalar path.
  torch::Tensor variance = x.square().mean(-1, /*keepdim=*/true);
  return x * torch::rsqrt(variance + eps) * weight;
}

// Rotary embedding, Hugging Face's rotate_half convention: x * cos + rotate_half(x) * sin with
// rotate_half(x) = cat(-x2, x1). x: [B, T, heads, hd]; cos/sin broadcastable [.., T, 1, hd].
torch::Tensor Rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  torch::Tensor rotated = torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos + rotated * sin;
}

// Inference variant without the cat: the same arithmetic in three kernels.
torch::Tensor RopeNoGrad(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  torch::Tensor out = x * cos;
  out.narrow(-1, 0, half).addcmul_(x.narrow(-1, half, half), sin.narrow(-1, 0, half), -1.0);
  out.narrow(-1, half, half).addcmul_(x.narrow(-1, 0, half), sin.narrow(-1, half, half));
  return out;
}

// Grouped-query attention. q: [B, T, H, hd] (already scaled by 1/sqrt(hd));
// k, v: [B, KV, S, hd]; bias: additive, broadcastable to [B, KV, G, T, S]. Returns [B, T, H*hd].
torch::Tensor Attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& bias) {
  const int64_t b = q.size(0), t = q.size(1), h = q.size(2), hd = q.size(3);
  const int64_t kv = k.size(1), s = k.size(2), g = h / kv;
  // Heads h = j * G + i share kv head j (Hugging Face's repeat_kv order).
  torch::Tensor qh = q.permute({0, 2, 1, 3}).reshape({b, kv, g * t, hd});
  torch::Tensor scores = torch::matmul(qh, k.transpose(-1, -2)).view({b, kv, g, t, s}) + bias;
  torch::Tensor probs = torch::softmax(scores, -1).view({b, kv, g * t, s});
  torch::Tensor out = torch::matmul(probs, v);  // [B, KV, G*T, hd]
  return out.view({b, h, t, hd}).permute({0, 2, 1, 3}).reshape({b, t, h * hd});
}

// The parameters' storage is `fused` when each part is the expected slice of it.
bool Aliases(const torch::Tensor& fused, const std::vector<torch::Tensor>& parts) {
  if (!fused.defined() || !fused.is_contiguous()) return false;
  const char* base = static_cast<const char*>(fused.data_ptr());
  int64_t offset = 0;
  for (const torch::Tensor& p : parts) {
    if (!p.is_contiguous() || p.device() != fused.device() || p.dtype() != fused.dtype() ||
        static_cast<const char*>(p.data_ptr()) != base + offset * fused.element_size()) {
      return false;
    }
    offset += p.numel();
  }
  return offset == fused.numel();
}

// Rebuilds `fused` as the concatenation of `parts` along dim 0 and points each part's storage
// at its slice.
void Fuse(torch::Tensor& fused, std::vector<torch::Tensor> parts) {
  std::vector<torch::Tensor> detached;
  for (const torch::Tensor& p : parts) detached.push_back(p.detach());
  fused = torch::cat(detached, 0).contiguous();
  int64_t row = 0;
  for (torch::Tensor& p : parts) {
    const int64_t rows = p.size(0);
    p.set_data(fused.narrow(0, row, rows));
    row += rows;
  }
}

// Norms 1, biases 0, everything else N(0, 0.02) from a CPU generator, in name order.
void InitParameters(torch::nn::Module& module, uint64_t seed) {
  c10::InferenceMode normal_tensors(false);
  torch::NoGradGuard no_grad;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& item : module.named_parameters()) {
    const std::string& name = item.key();
    torch::Tensor& param = item.value();
    auto ends_with = [&](const std::string& suffix) {
      return name.size() >= suffix.size() &&
             name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (ends_with("norm.weight")) {
      param.fill_(1.0);
    } else if (ends_with(".bias")) {
      param.zero_();
    } else {
      torch::Tensor values = torch::empty(param.sizes(), torch::kFloat32);
      values.normal_(0.0, 0.02, gen);
      param.copy_(values);
    }
  }
}

}  // namespace

PolicyImpl::PolicyImpl(const ModelArch& arch) : arch_(arch) {
  SFPO_CHECK_OK(ValidateModelArch(arch, "PolicyImpl"));
  const int64_t d = arch.hidden_size, hd = arch.head_dim();
  const int64_t q_dim = arch.num_attention_heads * hd, kv_dim = arch.num_key_value_heads * hd;
  const int64_t inter = arch.intermediate_size;
  auto model = Child(*this, "model");
  embed_w_ = Param(*Child(*model, "embed_tokens"), "weight", {arch.vocab_size, d});
  auto layers = Child(*model, "layers");
  for (int64_t i = 0; i < arch.num_hidden_layers; ++i) {
    auto layer = Child(*layers, std::to_string(i));
    auto attn = Child(*layer, "self_attn");
    auto mlp = Child(*layer, "mlp");
    LayerParams p;
    auto q = Child(*attn, "q_proj"), k = Child(*attn, "k_proj"), v = Child(*attn, "v_proj");
    p.q_w = Param(*q, "weight", {q_dim, d});
    p.q_b = Param(*q, "bias", {q_dim});
    p.k_w = Param(*k, "weight", {kv_dim, d});
    p.k_b = Param(*k, "bias", {kv_dim});
    p.v_w = Param(*v, "weight", {kv_dim, d});
    p.v_b = Param(*v, "bias", {kv_dim});
    p.o_w = Param(*Child(*attn, "o_proj"), "weight", {d, q_dim});
    p.gate_w = Param(*Child(*mlp, "gate_proj"), "weight", {inter, d});
    p.up_w = Param(*Child(*mlp, "up_proj"), "weight", {inter, d});
    p.down_w = Param(*Child(*mlp, "down_proj"), "weight", {d, inter});
    p.input_norm = Param(*Child(*layer, "input_layernorm"), "weight", {d});
    p.post_norm = Param(*Child(*layer, "post_attention_layernorm"), "weight", {d});
    layers_.push_back(std::move(p));
  }
  norm_w_ = Param(*Child(*model, "norm"), "weight", {d});
  if (!arch.tie_word_embeddings) {
    lm_head_w_ = Param(*Child(*this, "lm_head"), "weight", {arch.vocab_size, d});
  }
  EnsureFusedWeights();
  InitParameters(*this, 0);
}

c10::Device PolicyImpl::device() const { return embed_w_.device(); }

void PolicyImpl::EnsureFusedWeights() {
  c10::InferenceMode normal_tensors(false);
  torch::NoGradGuard no_grad;
  for (LayerParams& p : layers_) {
    if (!Aliases(p.qkv_w, {p.q_w, p.k_w, p.v_w})) Fuse(p.qkv_w, {p.q_w, p.k_w, p.v_w});
    if (!Aliases(p.qkv_b, {p.q_b, p.k_b, p.v_b})) Fuse(p.qkv_b, {p.q_b, p.k_b, p.v_b});
    if (!Aliases(p.gate_up_w, {p.gate_w, p.up_w})) Fuse(p.gate_up_w, {p.gate_w, p.up_w});
  }
}

void PolicyImpl::EnsureRope(int64_t min_positions, c10::Device device) {
  if (rope_cos_.defined() && rope_cos_.size(0) >= min_positions && rope_cos_.device() == device) {
    return;
  }
  c10::InferenceMode normal_tensors(false);
  torch::NoGradGuard no_grad;
  const int64_t n = std::max(min_positions, arch_.max_position_embeddings);
  const int64_t hd = arch_.head_dim();
  // inv_freq[i] = theta^(-2i / hd); angle[t, i] = t * inv_freq[i]; emb = cat(angle, angle).
  torch::Tensor inv_freq =
      torch::pow(arch_.rope_theta,
                 -torch::arange(0, hd, 2, torch::kFloat64) / static_cast<double>(hd));
  torch::Tensor angle = torch::outer(torch::arange(n, torch::kFloat64), inv_freq);
  torch::Tensor emb = torch::cat({angle, angle}, -1);
  rope_cos_ = emb.cos().to(torch::kFloat32).to(device);
  rope_sin_ = emb.sin().to(torch::kFloat32).to(device);
}

torch::Tensor PolicyImpl::Embed(const torch::Tensor& input_ids) const {
  return torch::embedding(embed_w_, input_ids);
}

torch::Tensor PolicyImpl::LmHead(const torch::Tensor& hidden) const {
  return torch::linear(hidden, arch_.tie_word_embeddings ? embed_w_ : lm_head_w_);
}

torch::Tensor PolicyImpl::forward(const torch::Tensor& input_ids) {
  const int64_t b = input_ids.size(0), t = input_ids.size(1);
  const int64_t h = arch_.num_attention_heads, kv = arch_.num_key_value_heads, hd = arch_.head_dim();
  const double eps = arch_.rms_norm_eps;
  EnsureRope(t, device());
  torch::Tensor cos = rope_cos_.narrow(0, 0, t).view({1, t, 1, hd});
  torch::Tensor sin = rope_sin_.narrow(0, 0, t).view({1, t, 1, hd});
  // causal: [1, 1, 1, T, T], kMasked above the diagonal.
  torch::Tensor causal =
      torch::full({t, t}, kMasked, torch::TensorOptions().dtype(torch::kFloat32).device(device()))
          .triu(1)
          .view({1, 1, 1, t, t});
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));

  torch::Tensor x = Embed(input_ids);  // [B, T, D]
  for (const LayerParams& p : layers_) {
    torch::Tensor hn = RmsNorm(x, p.input_norm, eps);
    torch::Tensor q = torch::linear(hn, p.q_w, p.q_b).view({b, t, h, hd});
    torch::Tensor k = torch::linear(hn, p.k_w, p.k_b).view({b, t, kv, hd});
    torch::Tensor v = torch::linear(hn, p.v_w, p.v_b).view({b, t, kv, hd});
    q = Rope(q, cos, sin) * scale;
    k = Rope(k, cos, sin).permute({0, 2, 1, 3});  // [B, KV, T, hd]
    v = v.permute({0, 2, 1, 3});
    x = x + torch::linear(Attention(q, k, v, causal), p.o_w);
    hn = RmsNorm(x, p.post_norm, eps);
    x = x + torch::linear(torch::silu(torch::linear(hn, p.gate_w)) * torch::linear(hn, p.up_w),
                          p.down_w);
  }
  return LmHead(RmsNorm(x, norm_w_, eps));  // [B, T, V]
}

KvCache PolicyImpl::NewKvCache(int64_t batch, int64_t capacity) const {
  c10::InferenceMode inference;
  KvCache cache;
  cache.batch = batch;
  cache.capacity = capacity;
  auto options = torch::TensorOptions().dtype(torch::kFloat32).device(device());
  for (size_t i = 0; i < layers_.size(); ++i) {
    cache.k.push_back(
        torch::zeros({batch, arch_.num_key_value_heads, capacity, arch_.head_dim()}, options));
    cache.v.push_back(
        torch::zeros({batch, arch_.num_key_value_heads, capacity, arch_.head_dim()}, options));
  }
  return cache;
}

torch::Tensor PolicyImpl::ForwardCached(const torch::Tensor& input_ids,
                                        const torch::Tensor& positions,
                                        const torch::Tensor& key_valid, int64_t start,
                                        KvCache* cache) {
  const int64_t b = input_ids.size(0), t = input_ids.size(1), s = start + t;
  const int64_t h = arch_.num_attention_heads, kv = arch_.num_key_value_heads, hd = arch_.head_dim();
  const int64_t inter = arch_.intermediate_size;
  const double eps = arch_.rms_norm_eps;
  SFPO_CHECK(cache != nullptr && cache->batch >= b && cache->capacity >= s &&
             static_cast<int64_t>(cache->k.size()) == arch_.num_hidden_layers);
  EnsureFusedWeights();
  EnsureRope(s, device());
  c10::InferenceMode inference;

  torch::Tensor flat_pos = positions.reshape({-1});
  torch::Tensor cos = rope_cos_.index_select(0, flat_pos).view({b, t, 1, hd});
  torch::Tensor sin = rope_sin_.index_select(0, flat_pos).view({b, t, 1, hd});
  // bias: [B, 1, 1, T, S] (pad keys masked; above-diagonal masked when T > 1).
  torch::Tensor bias =
      torch::zeros({b, s}, cos.options()).masked_fill_(key_valid.narrow(1, 0, s).logical_not(), kMasked);
  if (t == 1) {
    bias = bias.view({b, 1, 1, 1, s});
  } else {
    torch::Tensor causal = torch::full({t, s}, kMasked, cos.options()).triu(start + 1);
    bias = bias.view({b, 1, 1, 1, s}) + causal.view({1, 1, 1, t, s});
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));

  torch::Tensor x = Embed(input_ids);  // [B, T, D]
  for (size_t l = 0; l < layers_.size(); ++l) {
    const LayerParams& p = layers_[l];
    torch::Tensor hn = RmsNorm(x, p.input_norm, eps);
    torch::Tensor qkv = torch::linear(hn, p.qkv_w, p.qkv_b);  // [B, T, (H + 2 KV) * hd]
    torch::Tensor q = qkv.narrow(-1, 0, h * hd).view({b, t, h, hd});
    torch::Tensor k = qkv.narrow(-1, h * hd, kv * hd).view({b, t, kv, hd});
    torch::Tensor v = qkv.narrow(-1, (h + kv) * hd, kv * hd).view({b, t, kv, hd});
    q = RopeNoGrad(q, cos, sin).mul_(scale);
    k = RopeNoGrad(k, cos, sin);
    torch::Tensor& cache_k = cache->k[l];
    torch::Tensor& cache_v = cache->v[l];
    cache_k.narrow(0, 0, b).narrow(2, start, t).copy_(k.permute({0, 2, 1, 3}));
    cache_v.narrow(0, 0, b).narrow(2, start, t).copy_(v.permute({0, 2, 1, 3}));
    torch::Tensor attn = Attention(q, cache_k.narrow(0, 0, b).narrow(2, 0, s),
                                   cache_v.narrow(0, 0, b).narrow(2, 0, s), bias);
    x.add_(torch::linear(attn, p.o_w));
    hn = RmsNorm(x, p.post_norm, eps);
    torch::Tensor gate_up = torch::linear(hn, p.gate_up_w);  // [B, T, 2 I]
    torch::Tensor act = torch::silu(gate_up.narrow(-1, 0, inter)).mul_(gate_up.narrow(-1, inter, inter));
    x.add_(torch::linear(act, p.down_w));
  }
  torch::Tensor last = x.select(1, t - 1);  // [B, D]
  return LmHead(RmsNorm(last, norm_w_, eps));  // [B, V]
}

TokenStats ComputeTokenStats(Policy& policy, const torch::Tensor& input_ids, double temperature) {
  const int64_t b = input_ids.size(0), t = input_ids.size(1);
  const double temp = temperature > 0 ? temperature : 1.0;
  torch::Tensor logits = policy->forward(input_ids);  // [B, T, V]
  TokenStats stats;
  if (t < 2) {
    stats.logp = torch::zeros({b, t}, logits.options());
    stats.entropy = torch::zeros({b, t}, logits.options());
    return stats;
  }
  torch::Tensor scaled = logits.narrow(1, 0, t - 1);
  if (temp != 1.0) scaled = scaled / temp;
  torch::Tensor logp_all = torch::log_softmax(scaled, -1);  // [B, T-1, V]
  torch::Tensor next = input_ids.narrow(1, 1, t - 1).unsqueeze(-1);
  torch::Tensor logp = logp_all.gather(-1, next).squeeze(-1);  // [B, T-1]
  // -sum p log p; clamp so that p = 0 with log p = -inf contributes 0, not NaN.
  torch::Tensor safe = logp_all.clamp_min(std::numeric_limits<float>::lowest());
  torch::Tensor entropy = -(safe.exp() * safe).sum(-1);  // [B, T-1]
  stats.logp = torch::constant_pad_nd(logp, {1, 0}, 0.0);
  stats.entropy = torch::constant_pad_nd(entropy, {1, 0}, 0.0);
  return stats;
}

void InitPolicyWeights(Policy& policy, uint64_t seed) { InitParameters(*policy, seed); }

}  // namespace sfpo
