#include "common/weights_codec.h"

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
    return absl::InvalidArgumentError(
        absl::StrCat("weights v", m.version, ": chunk_bytes ", m.chunk_bytes, " not in [1 KiB, 64 MiB]"));
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

absl::Status WeightAssembler::Begin(const WeightManifest& manifest) {
  active_ = false;
  payload_.clear();
  absl::Status valid = ValidateManifest(manifest);
  if (!valid.ok()) return valid;
  manifest_ = manifest;
  payload_.reserve(manifest.total_bytes);
  active_ = true;
  return absl::OkStatus();
}

absl::Status WeightAssembler::AddChunk(int64_t version, uint64_t offset, absl::string_view data) {
  if (!active_) return absl::FailedPreconditionError("weight chunk before its manifest");
  if (version != manifest_.version) {
    return absl::FailedPreconditionError(absl::StrCat("weight chunk for v", version,
                                                      " while receiving v", manifest_.version));
  }
  if (offset != payload_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("weights v", version, ": chunk at offset ",
                                                   offset, ", expected ", payload_.size()));
  }
  if (data.size() > manifest_.chunk_bytes || data.empty() ||
      payload_.size() + data.size() > manifest_.total_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("weights v", version, ": chunk of ",
                                                   data.size(), " bytes at offset ", offset,
                                                   " exceeds the manifest's bounds"));
  }
  payload_.append(data.data(), data.size());
  return absl::OkStatus();
}

bool WeightAssembler::complete() const {
  return active_ && payload_.size() == manifest_.total_bytes;
}

absl::StatusOr<PackedWeights> WeightAssembler::Finish() {
  if (!complete()) {
    return absl::FailedPreconditionError(
        absl::StrCat("weights v", manifest_.version, ": ", payload_.size(), " of ",
                     manifest_.total_bytes, " bytes received"));
  }
  active_ = false;
  for (const WeightTensorInfo& t : manifest_.tensors) {
    const uint64_t sum = Checksum(absl::string_view(payload_).substr(t.offset, t.nbytes));
    if (sum != t.xxh64) {
      payload_.clear();
      return absl::DataLossError(absl::StrCat("weights v", manifest_.version, ": tensor '",
                                              t.name, "' fails its checksum"));
    }
  }
  PackedWeights out;
  out.manifest = std::move(manifest_);
  out.payload = std::make_shared<const std::string>(std::move(payload_));
  payload_.clear();
  return out;
}

}  // namespace sfpo
