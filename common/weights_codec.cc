#include "common/weights_codec.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "xxhash.h"

namespace sfpo {

int WireDTypeSize(WireDType dtype) {
  switch (dtype) {
    case WireDType::kF32:
      return 4;
    case WireDType::kBF16:
      return 2;
  }
  return 0;
}

const char* WireDTypeName(WireDType dtype) {
  switch (dtype) {
    case WireDType::kF32:
      return "f32";
    case WireDType::kBF16:
      return "bf16";
  }
  return "unknown";
}

uint64_t Checksum(absl::string_view bytes) { return XXH64(bytes.data(), bytes.size(), 0); }

absl::Status ValidateManifest(const WeightManifest& m) {
  if (m.chunk_bytes < 1024 || m.chunk_bytes > (64u << 20)) {
    return absl::InvalidArgumentError(absl::StrCat("weights v", m.version, ": chunk_bytes ",
                                                   m.chunk_bytes, " not in [1 KiB, 64 MiB]"));
  }
  if (m.version < 0) return absl::InvalidArgumentError("weights: negative version");
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const WeightTensorInfo& t : m.tensors) {
    if (t.name.empty() || !names.insert(t.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("weights v", m.version, ": empty or duplicate tensor name '", t.name, "'"));
    }
    const int size = WireDTypeSize(t.dtype);
    if (size == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("weights v", m.version, ": tensor '", t.name, "' has an unknown dtype"));
    }
    uint64_t elements = 1;
    for (int64_t d : t.shape) {
      if (d < 0 || (d > 0 && elements > (uint64_t{1} << 40) / static_cast<uint64_t>(d))) {
        return absl::InvalidArgumentError(
            absl::StrCat("weights v", m.version, ": tensor '", t.name, "' has a bad shape"));
      }
      elements *= static_cast<uint64_t>(d);
    }
    if (t.nbytes != elements * size || t.offset != offset) {
      return absl::InvalidArgumentError(absl::StrCat(
          "weights v", m.version, ": tensor '", t.name, "' has offset ", t.offset, " and ",
          t.nbytes, " bytes; expected offset ", offset, " and ", elements * size, " bytes"));
    }
    offset += t.nbytes;
  }
  if (offset != m.total_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("weights v", m.version, ": total_bytes ",
                                                   m.total_bytes, " but tensors sum to ", offset));
  }
  return absl::OkStatus();
}

struct WeightAssembler::HashState {
  HashState() : state(XXH64_createState()) {}
  ~HashState() { XXH64_freeState(state); }
  XXH64_state_t* state;
};

WeightAssembler::WeightAssembler() : hash_(std::make_unique<HashState>()) {}
WeightAssembler::~WeightAssembler() = default;

void WeightAssembler::HashUpTo(uint64_t end) {
  const std::vector<WeightTensorInfo>& tensors = manifest_.tensors;
  while (tensor_ < tensors.size()) {
    const WeightTensorInfo& t = tensors[tensor_];
    const uint64_t t_end = t.offset + t.nbytes;
    if (hashed_ < t_end) {
      if (hashed_ >= end) return;
      const uint64_t n = std::min(end, t_end) - hashed_;
      XXH64_update(hash_->state, payload_->data() + hashed_, n);
      hashed_ += n;
      if (hashed_ < t_end) return;
    }
    if (XXH64_digest(hash_->state) != t.xxh64 && corrupt_ < 0) {
      corrupt_ = static_cast<int64_t>(tensor_);
    }
    XXH64_reset(hash_->state, 0);
    ++tensor_;
  }
}

absl::Status WeightAssembler::Begin(const WeightManifest& manifest) {
  active_ = false;
  received_ = 0;
  hashed_ = 0;
  tensor_ = 0;
  corrupt_ = -1;
  XXH64_reset(hash_->state, 0);
  absl::Status valid = ValidateManifest(manifest);
  if (!valid.ok()) return valid;
  manifest_ = manifest;
  // Reuse the previous buffer when nobody else holds it any more; its pages are already mapped.
  if (payload_ == nullptr || payload_.use_count() > 1) payload_ = std::make_shared<std::string>();
  payload_->resize(manifest.total_bytes);
  active_ = true;
  return absl::OkStatus();
}

absl::StatusOr<char*> WeightAssembler::AppendChunk(int64_t version, uint64_t offset,
                                                   uint64_t size) {
  if (!active_) return absl::FailedPreconditionError("weight chunk before its manifest");
  if (version != manifest_.version) {
    return absl::FailedPreconditionError(
        absl::StrCat("weight chunk for v", version, " while receiving v", manifest_.version));
  }
  if (offset != received_) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights v", version, ": chunk at offset ", offset, ", expected ", received_));
  }
  if (size > manifest_.chunk_bytes || size == 0 || received_ + size > manifest_.total_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("weights v", version, ": chunk of ", size,
                                                   " bytes at offset ", offset,
                                                   " exceeds the manifest's bounds"));
  }
  HashUpTo(received_);  // the previous chunks, written by now
  char* out = &(*payload_)[received_];
  received_ += size;
  return out;
}

absl::Status WeightAssembler::AddChunk(int64_t version, uint64_t offset, absl::string_view data) {
  absl::StatusOr<char*> out = AppendChunk(version, offset, data.size());
  if (!out.ok()) return out.status();
  std::memcpy(*out, data.data(), data.size());
  return absl::OkStatus();
}

bool WeightAssembler::complete() const { return active_ && received_ == manifest_.total_bytes; }

absl::StatusOr<PackedWeights> WeightAssembler::Finish() {
  if (!complete()) {
    return absl::FailedPreconditionError(absl::StrCat("weights v", manifest_.version, ": ",
                                                      received_, " of ", manifest_.total_bytes,
                                                      " bytes received"));
  }
  active_ = false;
  received_ = 0;
  HashUpTo(manifest_.total_bytes);
  if (corrupt_ >= 0) {
    return absl::DataLossError(absl::StrCat("weights v", manifest_.version, ": tensor '",
                                            manifest_.tensors[corrupt_].name,
                                            "' fails its checksum"));
  }
  PackedWeights out;
  out.manifest = std::move(manifest_);
  out.payload = payload_;  // shared: reused by Begin once the caller drops it
  return out;
}

}  // namespace sfpo
