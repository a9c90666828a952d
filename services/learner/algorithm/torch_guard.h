// Runs Torch code at an API boundary of the learner's algorithm: a c10::Error (or any
// std::exception) it throws becomes an INTERNAL status carrying `what` and the message (through
// common/torch_util.h's TorchCall, header-only), so nothing escapes our code.
#ifndef SFPO_SERVICES_LEARNER_ALGORITHM_TORCH_GUARD_H_
#define SFPO_SERVICES_LEARNER_ALGORITHM_TORCH_GUARD_H_

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/torch_util.h"

namespace sfpo {

// `f` returns absl::Status, which is passed through unchanged.
template <typename F>
absl::Status GuardTorch(const char* what, F&& f) {
  absl::Status inner;
  absl::Status thrown = TorchCall([&] { inner = f(); });
  if (!thrown.ok()) return absl::Status(thrown.code(), absl::StrCat(what, ": ", thrown.message()));
  return inner;
}

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_ALGORITHM_TORCH_GUARD_H_
