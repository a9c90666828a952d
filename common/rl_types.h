// Domain types that cross service boundaries: leases, sampled completions, scored groups.
// Plain structs (no protobuf); each service's *_convert.{h,cc} maps them to sfpo.v1 messages.
#ifndef SFPO_COMMON_RL_TYPES_H_
#define SFPO_COMMON_RL_TYPES_H_

#include <cstdint>
#include <string>
#include <vector>

namespace sfpo {

struct SamplingParams {
  double temperature = 1.0;  // 0 means greedy.
  double top_p = 1.0;
  int32_t top_k = -1;        // <= 0 disables.
  int32_t max_new_tokens = 32;
  std::vector<int32_t> stop_tokens;
  uint64_t seed = 0;         // completion i of a group uses seed + i.
};

// One unit of work handed to a rollout worker.
struct Lease {
  uint64_t lease_id = 0;
  uint64_t prompt_id = 0;
  std::string task;
  std::string prompt_text;
  std::vector<int32_t> prompt_tokens;  // [P], bos included.
  std::string answer;
  int32_t group_size = 0;
  int64_t policy_version = 0;
  int64_t deadline_unix_ms = 0;
  SamplingParams sampling;
};

enum class SampleVerdict { kUnspecified = 0, kCorrect, kIncorrect, kUnparseable, kError };

struct Completion {
  std::vector<int32_t> tokens;   // [T] response tokens, eos included when emitted.
  std::vector<float> logprobs;   // [T] worker-side log-probabilities.
  float reward = 0;
  SampleVerdict verdict = SampleVerdict::kUnspecified;
  bool truncated = false;
};

struct ScoredGroup {
  uint64_t lease_id = 0;
  int64_t policy_version = 0;  // weights that generated every completion.
  std::vector<Completion> completions;
};

// A group the learner accepted, with the lease it answers.
struct AcceptedGroup {
  Lease lease;
  ScoredGroup group;
};

}  // namespace sfpo

#endif  // SFPO_COMMON_RL_TYPES_H_
