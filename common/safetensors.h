// The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON header {"name": {"dtype", "shape", "data_offsets": [b, e]},
// "__metadata__": {str: str}}, then the raw little-endian data. Reading memory-maps the file
// and validates it completely before handing out a view; writing is atomic (temp + rename).
// Sharded checkpoints are a directory of shards plus model.safetensors.index.json.
// No Torch here; the Torch-side helpers (SavePolicy, LoadPolicy, ...) are in common/model.h.
#ifndef SFPO_COMMON_SAFETENSORS_H_
#define SFPO_COMMON_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sfpo {

enum class SafetensorsDtype { kF32, kBF16, kF16 };

// "F32" / "BF16" / "F16".
const char* SafetensorsDtypeName(SafetensorsDtype dtype);
size_t SafetensorsDtypeSize(SafetensorsDtype dtype);
// INVALID_ARGUMENT for any other name (including valid safetensors dtypes we do not support).
absl::StatusOr<SafetensorsDtype> ParseSafetensorsDtype(absl::string_view name);

// A tensor inside an open file. `data` points into the mapping (alive as long as the file
// object); it is not necessarily aligned to the element size.
struct TensorView {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t size_bytes = 0;
  int64_t numel() const;
};

// One memory-mapped, validated .safetensors file. Immutable; thread-safe.
class SafetensorsFile {
 public:
  // INVALID_ARGUMENT naming the file (and the tensor, where one is at fault) when the file is
  // truncated, the header is not valid JSON or misses fields, a dtype is unknown, a tensor's
  // byte range does not match its shape, runs past the end of the data, or overlaps another.
  // NOT_FOUND when the file cannot be opened.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // Tensors ordered by their offset in the file.
  const std::vector<TensorView>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorView* Find(absl::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint: one file or several shards. Immutable; thread-safe.
class SafetensorsCheckpoint {
 public:
  // `path_or_dir`: a .safetensors file, or a directory holding model.safetensors.index.json
  // (sharded; the index's weight_map must list exactly the shards' tensors) or
  // model.safetensors. Errors as SafetensorsFile::Open, plus INVALID_ARGUMENT naming the index
  // and tensor for an index entry missing from its shard, a shard tensor the index does not
  // list, or a tensor present in two shards.
  static absl::StatusOr<std::unique_ptr<SafetensorsCheckpoint>> Open(const std::string& path_or_dir);

  // Every tensor, ordered by name.
  std::vector<const TensorView*> tensors() const;
  const TensorView* Find(absl::string_view name) const;
  // The file holding `name` (for error messages); empty when absent.
  std::string FileOf(absl::string_view name) const;
  // The files that make up the checkpoint.
  std::vector<std::string> files() const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::pair<const TensorView*, const SafetensorsFile*>, std::less<>> by_name_;
};

// A tensor to write; `data` (size_bytes = numel * dtype size) is borrowed for the call.
struct TensorToWrite {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t size_bytes = 0;
};

// Writes one file atomically. INVALID_ARGUMENT for duplicate or empty names or a size that does
// not match the shape; INTERNAL for I/O failures (naming the path).
absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

// Writes `dir`/model-0000i-of-0000n.safetensors shards of at most `max_shard_bytes` of data
// each (a larger tensor gets a shard of its own), in the given order, then
// `dir`/model.safetensors.index.json. Creates `dir` if needed.
absl::Status WriteShardedSafetensors(const std::string& dir,
                                     const std::vector<TensorToWrite>& tensors,
                                     size_t max_shard_bytes);

}  // namespace sfpo

#endif  // SFPO_COMMON_SAFETENSORS_H_
