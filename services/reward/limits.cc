#include "services/reward/limits.h"

#include "absl/strings/str_cat.h"

namespace sfpo {


absl::Status Budget::CheckDeadline() const {
  if (absl::Now() > deadline_) {
    return absl::DeadlineExceededError("deadline: the per-item time budget ran out");
  }
  return absl::OkStatus();
}

absl::Status BoundExceeded(absl::string_view label, absl::string_view detail) {
  return absl::ResourceExhaustedError(absl::StrCat(label, ": ", detail));
}

std::string ErrorLabel(const absl::Status& status) {
  if (status.code() == absl::StatusCode::kDeadlineExceeded) return "deadline";
  if (status.code() != absl::StatusCode::kResourceExhausted) return "internal";
  absl::string_view message = status.message();
  size_t colon = message.find(':');
  if (colon == absl::string_view::npos || colon == 0 || colon > 32) return "bound";
  return std::string(message.substr(0, colon));
}

bool IsValidUtf8(absl::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (int k = 1; k < len; ++k) {
      unsigned char cc = s[i + k];
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) {
      return false;  // overlong
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

}  // namespace sfpo
