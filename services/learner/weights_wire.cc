#include "services/learner/weights_wire.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/slice.h>

#include <string>

#include "common/status.h"
#include "services/learner/learner_convert.h"
#include "sfpo/v1/learner.pb.h"

namespace sfpo {
namespace {

// Appends `value` as a protobuf varint.
void PutVarint(uint64_t value, std::string* out) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

size_t VarintSize(uint64_t value) {
  size_t n = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++n;
  }
  return n;
}

// Holds a reference to the payload for as long as gRPC holds the slice.
void ReleasePayload(void* user_data) {
  delete static_cast<std::shared_ptr<const std::string>*>(user_data);
}

}  // namespace

grpc::ByteBuffer EncodeWeightManifest(const WeightManifest& manifest) {
  v1::WeightsMessage message;
  ManifestToProto(manifest, message.mutable_manifest());
  grpc::Slice slice(message.SerializeAsString());
  return grpc::ByteBuffer(&slice, 1);
}

grpc::ByteBuffer EncodeWeightChunk(int64_t version, uint64_t offset, absl::string_view data,
                                   const std::shared_ptr<const std::string>& payload) {
  // WeightChunk body: 1:varint version, 2:varint offset, 3:bytes data.
  const uint64_t body = 1 + VarintSize(static_cast<uint64_t>(version)) + 1 + VarintSize(offset) +
                        1 + VarintSize(data.size()) + data.size();
  std::string header;
  header.push_back(0x12);  // WeightsMessage.chunk (2), length-delimited
  PutVarint(body, &header);
  header.push_back(0x08);  // WeightChunk.version (1), varint
  PutVarint(static_cast<uint64_t>(version), &header);
  header.push_back(0x10);  // WeightChunk.offset (2), varint
  PutVarint(offset, &header);
  header.push_back(0x1a);  // WeightChunk.data (3), length-delimited
  PutVarint(data.size(), &header);
  grpc::Slice slices[2] = {grpc::Slice(header), grpc::Slice()};
  if (payload != nullptr) {
    slices[1] = grpc::Slice(const_cast<char*>(data.data()), data.size(), &ReleasePayload,
                            new std::shared_ptr<const std::string>(payload));
  } else {
    slices[1] = grpc::Slice(data.data(), data.size());  // copied
  }
  return grpc::ByteBuffer(slices, 2);
}

absl::Status DecodeWeightsMessage(grpc::ByteBuffer* buffer, WeightAssembler* assembler) {
  using google::protobuf::internal::WireFormatLite;
  const absl::Status malformed =
      absl::InvalidArgumentError("WatchWeights: malformed WeightsMessage");
  grpc::ProtoBufferReader reader(buffer);
  google::protobuf::io::CodedInputStream in(&reader);
  while (uint32_t tag = in.ReadTag()) {
    const int field = WireFormatLite::GetTagFieldNumber(tag);
    const bool delimited =
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
    if (field == 1 && delimited) {  // manifest
      v1::WeightManifest proto;
      uint32_t length = 0;
      if (!in.ReadVarint32(&length)) return malformed;
      const auto limit = in.PushLimit(static_cast<int>(length));
      if (!proto.MergeFromCodedStream(&in) || !in.ConsumedEntireMessage()) return malformed;
      in.PopLimit(limit);
      absl::StatusOr<WeightManifest> manifest = ManifestFromProto(proto);
      if (!manifest.ok()) return manifest.status();
      SFPO_RETURN_IF_ERROR(assembler->Begin(*manifest));
    } else if (field == 2 && delimited) {  // chunk: version (1), offset (2), data (3)
      uint32_t length = 0;
      if (!in.ReadVarint32(&length)) return malformed;
      const auto limit = in.PushLimit(static_cast<int>(length));
      uint64_t version = 0, offset = 0;
      std::string early;  // data that came before version and offset (legal, unusual)
      bool have_data = false, placed = false;
      int seen = 0;
      while (uint32_t t = in.ReadTag()) {
        const int f = WireFormatLite::GetTagFieldNumber(t);
        if (f == 1 && WireFormatLite::GetTagWireType(t) == WireFormatLite::WIRETYPE_VARINT) {
          if (!in.ReadVarint64(&version)) return malformed;
          seen |= 1;
        } else if (f == 2 && WireFormatLite::GetTagWireType(t) == WireFormatLite::WIRETYPE_VARINT) {
          if (!in.ReadVarint64(&offset)) return malformed;
          seen |= 2;
        } else if (f == 3 &&
                   WireFormatLite::GetTagWireType(t) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
          uint32_t size = 0;
          if (!in.ReadVarint32(&size) || have_data) return malformed;
          have_data = true;
          if (seen == 3) {
            absl::StatusOr<char*> out =
                assembler->AppendChunk(static_cast<int64_t>(version), offset, size);
            if (!out.ok()) return out.status();
            if (!in.ReadRaw(*out, static_cast<int>(size))) return malformed;
            placed = true;
          } else if (!in.ReadString(&early, static_cast<int>(size))) {
            return malformed;
          }
        } else if (!WireFormatLite::SkipField(&in, t)) {
          return malformed;
        }
      }
      if (!in.ConsumedEntireMessage()) return malformed;
      in.PopLimit(limit);
      if (!placed) {
        SFPO_RETURN_IF_ERROR(
            assembler->AddChunk(static_cast<int64_t>(version), offset, early));  // empty: refused
      }
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return malformed;
    }
  }
  if (!in.ConsumedEntireMessage() || !reader.status().ok()) return malformed;
  return absl::OkStatus();
}

}  // namespace sfpo
