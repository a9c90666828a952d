#include "services/learner/learner_convert.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace sfpo {

void LeaseToProto(const Lease& l, v1::Lease* out) {
  out->set_lease_id(l.lease_id);
  out->set_prompt_id(l.prompt_id);
  out->set_task(l.task);
  out->set_prompt_text(l.prompt_text);
  *out->mutable_prompt_tokens() = {l.prompt_tokens.begin(), l.prompt_tokens.end()};
  out->set_answer(l.answer);
  out->set_group_size(l.group_size);
  out->set_policy_version(l.policy_version);
  out->set_deadline_unix_ms(l.deadline_unix_ms);
  v1::SamplingParams* s = out->mutable_sampling();
  s->set_temperature(static_cast<float>(l.sampling.temperature));
  s->set_top_p(static_cast<float>(l.sampling.top_p));
  s->set_top_k(l.sampling.top_k);
  s->set_max_new_tokens(l.sampling.max_new_tokens);
  *s->mutable_stop_tokens() = {l.sampling.stop_tokens.begin(), l.sampling.stop_tokens.end()};
  s->set_seed(l.sampling.seed);
}

absl::StatusOr<Lease> LeaseFromProto(const v1::Lease& in) {
  const std::string where = absl::StrCat("lease ", in.lease_id(), ": ");
  if (in.group_size() < 1 || in.group_size() > 4096) {
    return absl::InvalidArgumentError(absl::StrCat(where, "group_size ", in.group_size()));
  }
  if (in.prompt_tokens().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, "empty prompt_tokens"));
  }
  const v1::SamplingParams& s = in.sampling();
  if (!(s.temperature() >= 0) || !(s.top_p() > 0 && s.top_p() <= 1) || s.max_new_tokens() < 1) {
    return absl::InvalidArgumentError(absl::StrCat(where, "invalid sampling parameters"));
  }
  Lease l;
  l.lease_id = in.lease_id();
  l.prompt_id = in.prompt_id();
  l.task = in.task();
  l.prompt_text = in.prompt_text();
  l.prompt_tokens.assign(in.prompt_tokens().begin(), in.prompt_tokens().end());
  l.answer = in.answer();
  l.group_size = static_cast<int32_t>(in.group_size());
  l.policy_version = in.policy_version();
  l.deadline_unix_ms = in.deadline_unix_ms();
  l.sampling.temperature = s.temperature();
  l.sampling.top_p = s.top_p();
  l.sampling.top_k = s.top_k();
  l.sampling.max_new_tokens = static_cast<int32_t>(s.max_new_tokens());
  l.sampling.stop_tokens.assign(s.stop_tokens().begin(), s.stop_tokens().end());
  l.sampling.seed = s.seed();
  return l;
}

void ScoredGroupToProto(const ScoredGroup& g, v1::ScoredGroup* out) {
  out->set_lease_id(g.lease_id);
  out->set_policy_version(g.policy_version);
  for (const Completion& c : g.completions) {
    v1::Completion* pc = out->add_completions();
    *pc->mutable_tokens() = {c.tokens.begin(), c.tokens.end()};
    *pc->mutable_logprobs() = {c.logprobs.begin(), c.logprobs.end()};
    pc->set_reward(c.reward);
    pc->set_verdict(static_cast<v1::Verdict>(c.verdict));
    pc->set_truncated(c.truncated);
  }
}

absl::StatusOr<ScoredGroup> ScoredGroupFromProto(const v1::ScoredGroup& in) {
  ScoredGroup g;
  g.lease_id = in.lease_id();
  g.policy_version = in.policy_version();
  g.completions.reserve(in.completions_size());
  for (int i = 0; i < in.completions_size(); ++i) {
    const v1::Completion& pc = in.completions(i);
    if (pc.verdict() < v1::VERDICT_UNSPECIFIED || pc.verdict() > v1::VERDICT_ERROR) {
      return absl::InvalidArgumentError(
          absl::StrCat("lease ", in.lease_id(), " completion ", i, ": unknown verdict"));
    }
    Completion c;
    c.tokens.assign(pc.tokens().begin(), pc.tokens().end());
    c.logprobs.assign(pc.logprobs().begin(), pc.logprobs().end());
    c.reward = pc.reward();
    c.verdict = static_cast<SampleVerdict>(pc.verdict());
    c.truncated = pc.truncated();
    g.completions.push_back(std::move(c));
  }
  return g;
}

void ManifestToProto(const WeightManifest& m, v1::WeightManifest* out) {
  out->set_version(m.version);
  out->set_total_bytes(m.total_bytes);
  out->set_chunk_bytes(m.chunk_bytes);
  for (const WeightTensorInfo& t : m.tensors) {
    v1::TensorInfo* pt = out->add_tensors();
    pt->set_name(t.name);
    pt->set_dtype(t.dtype == WireDType::kBF16 ? v1::DTYPE_BF16 : v1::DTYPE_F32);
    *pt->mutable_shape() = {t.shape.begin(), t.shape.end()};
    pt->set_offset(t.offset);
    pt->set_nbytes(t.nbytes);
    pt->set_xxh64(t.xxh64);
  }
}

absl::StatusOr<WeightManifest> ManifestFromProto(const v1::WeightManifest& in) {
  WeightManifest m;
  m.version = in.version();
  m.total_bytes = in.total_bytes();
  m.chunk_bytes = in.chunk_bytes();
  for (const v1::TensorInfo& pt : in.tensors()) {
    WeightTensorInfo t;
    t.name = pt.name();
    if (pt.dtype() == v1::DTYPE_F32) {
      t.dtype = WireDType::kF32;
    } else if (pt.dtype() == v1::DTYPE_BF16) {
      t.dtype = WireDType::kBF16;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("weights v", in.version(), ": tensor '", pt.name(), "' has dtype ",
                       v1::DType_Name(pt.dtype()), "; only F32 and BF16 travel"));
    }
    t.shape.assign(pt.shape().begin(), pt.shape().end());
    t.offset = pt.offset();
    t.nbytes = pt.nbytes();
    t.xxh64 = pt.xxh64();
    m.tensors.push_back(std::move(t));
  }
  absl::Status valid = ValidateManifest(m);
  if (!valid.ok()) return valid;
  return m;
}

}  // namespace sfpo
