// Policy versions on the wire: a manifest (names, dtypes, shapes, offsets, XXH64 per tensor)
// followed by a payload streamed in bounded chunks. Pure (no torch, no protobuf); the learner
// packs a payload from its parameters once per version and every subscriber streams from that
// one shared buffer; the worker assembles chunks into one buffer and verifies it.
#ifndef SFPO_COMMON_WEIGHTS_CODEC_H_
#define SFPO_COMMON_WEIGHTS_CODEC_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sfpo {

enum class WireDType { kF32 = 1, kBF16 = 2 };
// Bytes per element; 0 for an unknown dtype.
int WireDTypeSize(WireDType dtype);
const char* WireDTypeName(WireDType dtype);

struct WeightTensorInfo {
  std::string name;
  WireDType dtype = WireDType::kF32;
  std::vector<int64_t> shape;
  uint64_t offset = 0;  // in the payload
  uint64_t nbytes = 0;
  uint64_t xxh64 = 0;  // of the tensor's payload bytes, seed 0
};

struct WeightManifest {
  int64_t version = 0;
  std::vector<WeightTensorInfo> tensors;
  uint64_t total_bytes = 0;
  uint32_t chunk_bytes = 1 << 20;
};

// One published version; the payload is shared, immutable.
struct PackedWeights {
  WeightManifest manifest;
  std::shared_ptr<const std::string> payload;
};

// XXH64 (seed 0) of `bytes`.
uint64_t Checksum(absl::string_view bytes);

// Checks that the manifest is self-consistent: tensors contiguous from offset 0 in order,
// nbytes == product(shape) * dtype size, total_bytes the sum, chunk_bytes in [1 KiB, 64 MiB],
// names unique and non-empty. INVALID_ARGUMENT naming the tensor.
absl::Status ValidateManifest(const WeightManifest& manifest);

// Reassembles one version from its chunks. Not thread-safe; one per stream. The payload buffer
// is reused for the next version once every holder of the previous one has let it go (no fresh
// allocation, and no page faults, per version).
class WeightAssembler {
 public:
  WeightAssembler();
  ~WeightAssembler();
  WeightAssembler(const WeightAssembler&) = delete;
  WeightAssembler& operator=(const WeightAssembler&) = delete;

  // Starts a version; validates the manifest and reserves the payload.
  absl::Status Begin(const WeightManifest& manifest);
  // Appends a chunk. Chunks must arrive in order, for the version begun, within bounds, each at
  // most chunk_bytes. INVALID_ARGUMENT / FAILED_PRECONDITION naming the offset otherwise.
  absl::Status AddChunk(int64_t version, uint64_t offset, absl::string_view data);
  // As AddChunk, for a chunk of `size` bytes that the caller then writes into the returned
  // space (e.g. straight from the network buffers, without an intermediate copy).
  absl::StatusOr<char*> AppendChunk(int64_t version, uint64_t offset, uint64_t size);
  // True once total_bytes arrived.
  bool complete() const;
  // Verifies every tensor's checksum and hands the version over. Checksums are computed as the
  // bytes arrive (each chunk is hashed while still in cache, when the next one is appended).
  // DATA_LOSS naming the first corrupted tensor. The assembler is empty afterwards.
  absl::StatusOr<PackedWeights> Finish();
  bool active() const { return active_; }

 private:
  bool active_ = false;
  WeightManifest manifest_;
  // Hashes the payload's bytes up to `end` into the running checksums.
  void HashUpTo(uint64_t end);

  struct HashState;
  std::shared_ptr<std::string> payload_;  // the version being assembled; shared once handed out
  uint64_t received_ = 0;
  uint64_t hashed_ = 0;   // bytes fed to the checksums
  size_t tensor_ = 0;     // the tensor being hashed
  int64_t corrupt_ = -1;  // the first tensor whose checksum failed
  std::unique_ptr<HashState> hash_;
};

}  // namespace sfpo

#endif  // SFPO_COMMON_WEIGHTS_CODEC_H_
