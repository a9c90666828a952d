// Runs Torch code at an API boundary of the learner: a c10::Error (or any std::exception) it
// throws becomes an INTERNAL status carrying the message, so nothing escapes our code.
#ifndef SFPO_SERVICES_LEARNER_ALGORITHM_TORCH_GUARD_H_
#define SFPO_SERVICES_LEARNER_ALGORITHM_TORCH_GUARD_H_

#include <c10/util/Exception.h>

#include <exception>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace sfpo {

// `f` returns absl::Status.
template <typename F>
absl::Status GuardTorch(const char* what, F&& f) {
  try {
    return f();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(what, ": ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, ": ", e.what()));
  }
}

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_ALGORITHM_TORCH_GUARD_H_
