// Tokenizers: the interface the services use, and the built-in character-level tokenizer of the
// built-in tasks. No Torch here.
#ifndef SFPO_COMMON_TOKENIZER_H_
#define SFPO_COMMON_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace sfpo {

// Maps text to token ids and back. Implementations are immutable and thread-safe.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;
  virtual int32_t eos_id() const = 0;
  virtual int32_t pad_id() const = 0;
  // The ids of `text`, without bos/eos. INVALID_ARGUMENT naming the first character it cannot
  // encode (and its byte offset).
  virtual absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text) const = 0;
  // The text of `ids`; special tokens (pad, bos, eos) and ids outside the vocabulary are
  // skipped.
  virtual std::string Decode(absl::Span<const int32_t> ids) const = 0;
};

// Character-level vocabulary: pad = 0, bos = 1, eos = 2, then printable ASCII 32..126 as ids
// 3..97 (vocab 98). Newlines and tabs are not in it.
inline constexpr int32_t kCharTokenizerVocabSize = 98;
std::unique_ptr<Tokenizer> MakeCharTokenizer();

// The tokenizer a built-in name uses ("char"); NOT_FOUND otherwise.
absl::StatusOr<std::unique_ptr<Tokenizer>> MakeTokenizer(const std::string& name);

}  // namespace sfpo

#endif  // SFPO_COMMON_TOKENIZER_H_
