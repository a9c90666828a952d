// v1::WeightsMessage (the WatchWeights stream) encoded and decoded straight from and into
// gRPC's buffers, for the bulk of a policy version: the learner sends each chunk as a few header
// bytes plus a slice that references the version's shared payload (no copy), and the worker reads
// each chunk's bytes once, from gRPC's receive buffers into its assembler. The bytes are the
// ordinary protobuf encoding: any WatchWeights client or server interoperates.
#ifndef SFPO_SERVICES_LEARNER_WEIGHTS_WIRE_H_
#define SFPO_SERVICES_LEARNER_WEIGHTS_WIRE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/weights_codec.h"

namespace grpc {
class ByteBuffer;
}  // namespace grpc

namespace sfpo {

// WeightsMessage{manifest}.
grpc::ByteBuffer EncodeWeightManifest(const WeightManifest& manifest);

// WeightsMessage{chunk: {version, offset, data}}. With `payload` non-null, `data` must lie in it
// and is referenced (the payload is kept alive while gRPC holds the bytes); with null, copied.
grpc::ByteBuffer EncodeWeightChunk(int64_t version, uint64_t offset, absl::string_view data,
                                   const std::shared_ptr<const std::string>& payload);

// Decodes one WeightsMessage into `assembler`: a manifest begins a version (Begin), a chunk is
// appended (fields in any order; unknown fields skipped). INVALID_ARGUMENT for a malformed
// message; the assembler's error for a chunk it refuses.
absl::Status DecodeWeightsMessage(grpc::ByteBuffer* buffer, WeightAssembler* assembler);

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_WEIGHTS_WIRE_H_
