// The one boundary where LibTorch's exceptions become absl::Status, plus device helpers.
// Light: includes only c10's exception header.
#ifndef SFPO_COMMON_TORCH_UTIL_H_
#define SFPO_COMMON_TORCH_UTIL_H_

#include <c10/core/Device.h>
#include <c10/util/Exception.h>

#include <exception>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace sfpo {

// Runs `f` and converts a c10::Error or std::exception escaping it to INTERNAL with the
// message (without the C++ backtrace). `f` returns void or absl::Status.
template <typename F>
absl::Status TorchCall(F&& f) {
  try {
    if constexpr (std::is_void_v<std::invoke_result_t<F>>) {
      std::forward<F>(f)();
      return absl::OkStatus();
    } else {
      return std::forward<F>(f)();
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("torch: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("torch: ", e.what()));
  }
}

namespace torch_util_internal {
template <typename T>
struct Unwrap {
  using type = T;
};
template <typename T>
struct Unwrap<absl::StatusOr<T>> {
  using type = T;
};
}  // namespace torch_util_internal

// As TorchCall, for an `f` returning a value T (or absl::StatusOr<T>).
template <typename F>
auto TorchCallOr(F&& f) -> absl::StatusOr<
    typename torch_util_internal::Unwrap<std::decay_t<std::invoke_result_t<F>>>::type> {
  try {
    return std::forward<F>(f)();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("torch: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("torch: ", e.what()));
  }
}

// "auto" (CUDA when available, else CPU), "cpu" or "cuda"/"cuda:N". INVALID_ARGUMENT for other
// names; UNAVAILABLE for cuda without a CUDA device.
absl::StatusOr<c10::Device> ResolveDevice(const std::string& name);

// Sets Torch's intra-op threads (and OpenMP/BLAS through it) when `threads` > 0.
void SetTorchThreads(int threads);

}  // namespace sfpo

#endif  // SFPO_COMMON_TORCH_UTIL_H_
