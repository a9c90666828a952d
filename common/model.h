// The policy network: a Qwen2 decoder-only transformer (RMSNorm, rotary positions with the
// config's theta, grouped-query attention with q/k/v biases, SwiGLU MLP, tied or untied
// embeddings). Parameter names are exactly Hugging Face's Qwen2ForCausalLM names, so a real
// checkpoint maps tensor for tensor. Shared by the learner (forward, ComputeTokenStats) and the
// rollout engine (ForwardCached with a preallocated KV cache).
//
// Heavy (LibTorch module headers): include only from Torch .cc files.
#ifndef SFPO_COMMON_MODEL_H_
#define SFPO_COMMON_MODEL_H_

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model_arch.h"
#include "common/safetensors.h"

namespace sfpo {

// Keys and values of every layer for `batch` rows and up to `capacity` positions.
struct KvCache {
  std::vector<torch::Tensor> k;  // per layer: [B, KV, capacity, head_dim]
  std::vector<torch::Tensor> v;  // per layer: [B, KV, capacity, head_dim]
  int64_t batch = 0;
  int64_t capacity = 0;
};

// The Qwen2ForCausalLM module. Not thread-safe: one thread uses a Policy at a time.
//
// Storage: the q/k/v projections of a layer (weights and biases) are views into one fused
// buffer, and so are gate_proj/up_proj, so inference runs one matmul for each. Every in-place
// write to a parameter (copy_, an optimizer step, `.data().copy_()`) therefore reaches the fused
// buffer; if a parameter's storage is replaced (set_data, Module::to), the next ForwardCached
// rebuilds the fused buffers. There are no other cached copies of the weights.
class PolicyImpl : public torch::nn::Module {
 public:
  // `arch` must satisfy ValidateModelArch.
  explicit PolicyImpl(const ModelArch& arch);

  // input_ids: [B, T] int64, right-padded. Returns logits [B, T, V] float32. Causal attention
  // with positions 0..T-1 (right padding needs no mask under causality). Differentiable.
  torch::Tensor forward(const torch::Tensor& input_ids);

  const ModelArch& arch() const { return arch_; }
  // Device of the parameters.
  c10::Device device() const;

  // A zeroed cache on the model's device (float32), for inference only.
  KvCache NewKvCache(int64_t batch, int64_t capacity) const;

  // Inference (runs under c10::InferenceMode; not differentiable). Feeds T new columns
  // [start, start + T) of a batch whose earlier columns are already in `cache`:
  //   input_ids: [B, T] int64;
  //   positions: [B, T] int64, the rotary position of each column (per row, so left-padded rows
  //              count from their first real token); every position must be < start + T;
  //   key_valid: [B, capacity] bool, false for pad columns, which no query attends to;
  //              columns attend causally (column c sees columns <= c).
  // Writes the new keys/values into cache columns [start, start + T) and returns the logits
  // [B, V] float32 of the last column (start + T - 1). The outputs of rows whose columns are all
  // pads so far are finite but meaningless.
  torch::Tensor ForwardCached(const torch::Tensor& input_ids, const torch::Tensor& positions,
                              const torch::Tensor& key_valid, int64_t start, KvCache* cache);

  // Re-establishes the fused inference buffers if a parameter's storage was replaced. Called by
  // ForwardCached; cheap when nothing changed.
  void EnsureFusedWeights();

 private:
  struct LayerParams {
    torch::Tensor input_norm, post_norm;  // [D]
    torch::Tensor q_w, q_b, k_w, k_b, v_w, v_b, o_w;
    torch::Tensor gate_w, up_w, down_w;
    torch::Tensor qkv_w, qkv_b;  // fused: [(H + 2 KV) * hd, D], [(H + 2 KV) * hd]
    torch::Tensor gate_up_w;     // fused: [2 I, D]
  };
  // Rotary tables cos/sin: [n, head_dim] float32 on `device`, n >= `min_positions`.
  void EnsureRope(int64_t min_positions, c10::Device device);
  torch::Tensor Embed(const torch::Tensor& input_ids) const;
  torch::Tensor LmHead(const torch::Tensor& hidden) const;

  ModelArch arch_;
  torch::Tensor embed_w_, norm_w_, lm_head_w_;
  std::vector<LayerParams> layers_;
  torch::Tensor rope_cos_, rope_sin_;
};
TORCH_MODULE(Policy);

// Per-token statistics of given tokens under the policy. For input_ids [B, T]:
//   logp[b, t]    = log softmax(logits[b, t-1] / temperature)[input_ids[b, t]] for t >= 1, 0 at t = 0;
//   entropy[b, t] = entropy of that same distribution, 0 at t = 0.
// Both [B, T] float32 and differentiable. temperature <= 0 (greedy sampling) is treated as 1,
// the same convention as the generation engine's reported log-probs.
struct TokenStats {
  torch::Tensor logp;
  torch::Tensor entropy;
};
TokenStats ComputeTokenStats(Policy& policy, const torch::Tensor& input_ids, double temperature);

// Deterministic initialisation from `seed`, independent of device: every matrix and the
// embedding ~ N(0, 0.02) drawn in named_parameters() order on the CPU, norms 1, biases 0.
void InitPolicyWeights(Policy& policy, uint64_t seed);

// ---------------------------------------------------------------------------------------------
// safetensors <-> Torch (implemented in common/model_io.cc).

// Writes every parameter as F32 under its Hugging Face name to `path` (a file path, or an
// existing directory, which gets `path`/model.safetensors). Atomic.
absl::Status SavePolicy(Policy& policy, const std::string& path);

// Loads a checkpoint (a .safetensors file, or a directory with model.safetensors or a sharded
// index) into the policy, converting F32/BF16/F16 to the parameters' dtype and device. Nothing
// is modified unless the whole checkpoint validates: INVALID_ARGUMENT naming the file and the
// tensor for a missing tensor, an unexpected tensor or a shape mismatch, plus the file errors
// of SafetensorsCheckpoint::Open.
absl::Status LoadPolicy(Policy& policy, const std::string& path_or_dir);

// A CPU tensor (own memory) with the view's dtype and shape.
absl::StatusOr<torch::Tensor> TensorFromView(const TensorView& view);

// Writes named tensors (any device, float dtypes) to `path` converted to `dtype`.
absl::Status SaveTensors(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                         const std::string& path, SafetensorsDtype dtype);
// Same, as shards of at most `max_shard_bytes` in directory `dir` with its index.
absl::Status SaveTensorsSharded(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                                const std::string& dir, SafetensorsDtype dtype,
                                size_t max_shard_bytes);

}  // namespace sfpo

#endif  // SFPO_COMMON_MODEL_H_
