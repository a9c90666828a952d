#include "common/tokenizer.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sfpo {
namespace {

constexpr int32_t kPad = 0;
constexpr int32_t kBos = 1;
constexpr int32_t kEos = 2;
constexpr int32_t kFirstChar = 3;
constexpr int kLowest = 32;   // ' '
constexpr int kHighest = 126;  // '~'

class CharTokenizer final : public Tokenizer {
 public:
  int32_t vocab_size() const override { return kCharTokenizerVocabSize; }
  int32_t bos_id() const override { return kBos; }
  int32_t eos_id() const override { return kEos; }
  int32_t pad_id() const override { return kPad; }

  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text) const override {
    std::vector<int32_t> ids;
    ids.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
      const int c = static_cast<unsigned char>(text[i]);
      if (c < kLowest || c > kHighest) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "char tokenizer: cannot encode byte 0x%02x at offset %d (only printable ASCII 32..126)",
            c, i));
      }
      ids.push_back(kFirstChar + (c - kLowest));
    }
    return ids;
  }

  std::string Decode(absl::Span<const int32_t> ids) const override {
    std::string text;
    text.reserve(ids.size());
    for (int32_t id : ids) {
      if (id < kFirstChar || id >= kCharTokenizerVocabSize) continue;
      text.push_back(static_cast<char>(kLowest + (id - kFirstChar)));
    }
    return text;
  }
};

}  // namespace

std::unique_ptr<Tokenizer> MakeCharTokenizer() { return std::make_unique<CharTokenizer>(); }

absl::StatusOr<std::unique_ptr<Tokenizer>> MakeTokenizer(const std::string& name) {
  if (name == "char") return MakeCharTokenizer();
  return absl::NotFoundError(absl::StrCat("unknown tokenizer \"", name, "\" (built-in: char)"));
}

}  // namespace sfpo
