// The WatchWeights stream's hand-encoded chunks are ordinary protobuf (a generated stub reads
// them), the raw decoder accepts any valid encoding and refuses malformed ones, and the learner's
// raw server and the worker's raw client move a version end to end.
#include "services/learner/weights_wire.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <string>
#include <thread>

#include "common/grpc_server.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/learner/learner_convert.h"
#include "services/learner/learner_service.h"
#include "services/learner/lease_table.h"
#include "services/learner/weight_board.h"
#include "services/rollout/clients.h"
#include "sfpo/v1/learner.grpc.pb.h"

namespace sfpo {
namespace {

using ::testing::HasSubstr;

// A version of `tensors` tensors of `floats` floats each, with distinct bytes.
PackedWeights MakeVersion(int64_t version, int tensors, int floats, uint32_t chunk_bytes) {
  auto payload = std::make_shared<std::string>();
  PackedWeights w;
  w.manifest.version = version;
  w.manifest.chunk_bytes = chunk_bytes;
  for (int t = 0; t < tensors; ++t) {
    WeightTensorInfo info;
    info.name = "model.layers." + std::to_string(t) + ".weight";
    info.shape = {floats};
    info.offset = payload->size();
    info.nbytes = static_cast<uint64_t>(floats) * 4;
    for (uint64_t i = 0; i < info.nbytes; ++i) {
      payload->push_back(static_cast<char>((i * 131 + t * 7 + version) & 0xff));
    }
    info.xxh64 = Checksum(absl::string_view(*payload).substr(info.offset, info.nbytes));
    w.manifest.tensors.push_back(info);
  }
  w.manifest.total_bytes = payload->size();
  w.payload = std::move(payload);
  return w;
}

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string out;
  for (const grpc::Slice& s : slices)
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

grpc::ByteBuffer FromBytes(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}

TEST(WeightsWireTest, EncodedChunkIsTheOrdinaryProtobufMessage) {
  PackedWeights w = MakeVersion(5, 1, 1000, 1024);
  absl::string_view data = absl::string_view(*w.payload).substr(1024, 1024);
  const std::string bytes = Flatten(EncodeWeightChunk(5, 1024, data, w.payload));
  v1::WeightsMessage parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  ASSERT_TRUE(parsed.has_chunk());
  EXPECT_EQ(parsed.chunk().version(), 5);
  EXPECT_EQ(parsed.chunk().offset(), 1024u);
  EXPECT_EQ(parsed.chunk().data(), data);
  // And exactly what protobuf's own serializer writes.
  EXPECT_EQ(bytes, parsed.SerializeAsString());
}

TEST(WeightsWireTest, ReferencedChunkKeepsThePayloadAlive) {
  PackedWeights w = MakeVersion(1, 1, 512, 1024);
  const std::string expected = w.payload->substr(0, 1024);
  grpc::ByteBuffer message =
      EncodeWeightChunk(1, 0, absl::string_view(*w.payload).substr(0, 1024), w.payload);
  std::weak_ptr<const std::string> watch = w.payload;
  w.payload.reset();
  EXPECT_FALSE(watch.expired());  // the slice holds it
  v1::WeightsMessage parsed;
  ASSERT_TRUE(parsed.ParseFromString(Flatten(message)));
  EXPECT_EQ(parsed.chunk().data(), expected);
  message.Clear();
  EXPECT_TRUE(watch.expired());
}

TEST(WeightsWireTest, DecodesAVersionIntoTheAssembler) {
  PackedWeights w = MakeVersion(3, 3, 700, 1024);
  WeightAssembler assembler;
  grpc::ByteBuffer manifest = EncodeWeightManifest(w.manifest);
  SFPO_ASSERT_OK(DecodeWeightsMessage(&manifest, &assembler));
  for (uint64_t off = 0; off < w.payload->size(); off += 1024) {
    grpc::ByteBuffer chunk =
        EncodeWeightChunk(3, off, absl::string_view(*w.payload).substr(off, 1024), nullptr);
    SFPO_ASSERT_OK(DecodeWeightsMessage(&chunk, &assembler));
  }
  ASSERT_TRUE(assembler.complete());
  SFPO_ASSERT_OK_AND_ASSIGN(PackedWeights back, assembler.Finish());
  EXPECT_EQ(*back.payload, *w.payload);
  EXPECT_EQ(back.manifest.version, 3);
}

TEST(WeightsWireTest, AcceptsFieldsInAnyOrderAndSkipsUnknownOnes) {
  PackedWeights w = MakeVersion(2, 1, 8, 1024);  // 32 bytes
  WeightAssembler assembler;
  grpc::ByteBuffer manifest = EncodeWeightManifest(w.manifest);
  SFPO_ASSERT_OK(DecodeWeightsMessage(&manifest, &assembler));
  // data (3) first, an unknown varint field 9, then offset (2) and version (1).
  std::string body = "\x1a" + Varint(32) + *w.payload + "\x48" + Varint(77) + "\x10" + Varint(0) +
                     "\x08" + Varint(2);
  grpc::ByteBuffer chunk = FromBytes("\x12" + Varint(body.size()) + body);
  SFPO_ASSERT_OK(DecodeWeightsMessage(&chunk, &assembler));
  SFPO_ASSERT_OK_AND_ASSIGN(PackedWeights back, assembler.Finish());
  EXPECT_EQ(*back.payload, *w.payload);
}

TEST(WeightsWireTest, RefusesMalformedAndOutOfPlaceChunks) {
  PackedWeights w = MakeVersion(4, 1, 600, 1024);
  WeightAssembler assembler;
  grpc::ByteBuffer manifest = EncodeWeightManifest(w.manifest);
  SFPO_ASSERT_OK(DecodeWeightsMessage(&manifest, &assembler));
  const std::string good =
      Flatten(EncodeWeightChunk(4, 0, absl::string_view(*w.payload).substr(0, 1024), nullptr));
  grpc::ByteBuffer truncated = FromBytes(good.substr(0, good.size() - 10));
  EXPECT_THAT(DecodeWeightsMessage(&truncated, &assembler),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("malformed")));
  grpc::ByteBuffer garbage = FromBytes(std::string("\xff\xff\xff\xff\xff\xff", 6));
  EXPECT_THAT(DecodeWeightsMessage(&garbage, &assembler),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("malformed")));
  WeightAssembler fresh;
  SFPO_ASSERT_OK(DecodeWeightsMessage(&manifest, &fresh));
  grpc::ByteBuffer skipped =
      EncodeWeightChunk(4, 1024, absl::string_view(*w.payload).substr(1024, 1024), nullptr);
  EXPECT_THAT(DecodeWeightsMessage(&skipped, &fresh),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("offset 1024")));
  WeightAssembler other;
  PackedWeights v5 = MakeVersion(5, 1, 600, 1024);
  grpc::ByteBuffer manifest5 = EncodeWeightManifest(v5.manifest);
  SFPO_ASSERT_OK(DecodeWeightsMessage(&manifest5, &other));
  grpc::ByteBuffer old =
      EncodeWeightChunk(4, 0, absl::string_view(*w.payload).substr(0, 1024), nullptr);
  EXPECT_THAT(DecodeWeightsMessage(&old, &other),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("v4")));
}

// The learner's service and its clients over real gRPC.
class WatchWeightsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LeaseTableOptions lo;
    lo.prompt_source = [](uint64_t c) { return PromptSpec{c, "t", "p", {1}, "a"}; };
    leases_ = std::make_unique<LeaseTable>(lo);
    LearnerServiceOptions so;
    so.leases = leases_.get();
    so.board = &board_;
    service_ = std::make_unique<LearnerService>(so);
    GrpcServerOptions go;
    go.services = {service_.get()};
    SFPO_ASSERT_OK_AND_ASSIGN(server_, GrpcServer::Start(go));
  }
  void TearDown() override {
    board_.Close();
    server_->Shutdown(absl::Seconds(2));
  }

  WeightBoard board_;
  std::unique_ptr<LeaseTable> leases_;
  std::unique_ptr<LearnerService> service_;
  std::unique_ptr<GrpcServer> server_;
};

TEST_F(WatchWeightsTest, AGeneratedStubReadsTheRawStream) {
  PackedWeights w = MakeVersion(7, 4, 3000, 4096);  // 48,000 bytes in 12 chunks
  board_.Publish(w);
  auto stub = v1::Learner::NewStub(
      grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  v1::WatchWeightsRequest request;
  request.set_worker_id("typed");
  request.set_have_version(-1);
  auto reader = stub->WatchWeights(&ctx, request);
  v1::WeightsMessage message;
  ASSERT_TRUE(reader->Read(&message));
  ASSERT_TRUE(message.has_manifest());
  SFPO_ASSERT_OK_AND_ASSIGN(WeightManifest manifest, ManifestFromProto(message.manifest()));
  WeightAssembler assembler;
  SFPO_ASSERT_OK(assembler.Begin(manifest));
  int chunks = 0;
  while (!assembler.complete() && reader->Read(&message)) {
    ASSERT_TRUE(message.has_chunk());
    SFPO_ASSERT_OK(assembler.AddChunk(message.chunk().version(), message.chunk().offset(),
                                      message.chunk().data()));
    ++chunks;
  }
  EXPECT_EQ(chunks, 12);
  SFPO_ASSERT_OK_AND_ASSIGN(PackedWeights back, assembler.Finish());
  EXPECT_EQ(*back.payload, *w.payload);
  ctx.TryCancel();
  reader->Finish();
}

TEST_F(WatchWeightsTest, TheWorkerClientReceivesEveryVersionAndReusesAReleasedBuffer) {
  board_.Publish(MakeVersion(1, 2, 5000, 4096));
  LearnerClientOptions co;
  co.target = server_->address();
  co.worker_id = "raw";
  std::shared_ptr<LearnerClient> client = MakeGrpcLearnerClient(co);
  std::atomic<bool> stop{false};
  struct Got {
    int64_t version;
    std::string bytes;
    const void* buffer;
  };
  absl::Mutex mu;
  std::vector<Got> got;
  std::shared_ptr<const std::string> held;  // version 2's payload, kept like a slow consumer
  std::thread watcher([&] {
    SFPO_EXPECT_OK(client->WatchWeights(
        -1,
        [&](PackedWeights w) {
          absl::MutexLock lock(&mu);
          got.push_back(Got{w.manifest.version, *w.payload, w.payload->data()});
          if (w.manifest.version == 2) held = w.payload;
        },
        stop));
  });
  auto wait_for = [&](size_t n) {
    absl::MutexLock lock(&mu);
    auto ready = [&] { return got.size() >= n; };
    return mu.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(20));
  };
  ASSERT_TRUE(wait_for(1));
  board_.Publish(MakeVersion(2, 2, 5000, 4096));
  ASSERT_TRUE(wait_for(2));
  board_.Publish(MakeVersion(3, 2, 5000, 4096));
  ASSERT_TRUE(wait_for(3));
  stop = true;
  watcher.join();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(got[i].version, i + 1);
    EXPECT_EQ(got[i].bytes, *MakeVersion(i + 1, 2, 5000, 4096).payload) << "version " << i + 1;
  }
  // Version 1 was let go before version 2 began: its buffer was reused. Version 2 is still held,
  // so version 3 got a fresh one and version 2's bytes are intact.
  EXPECT_EQ(got[1].buffer, got[0].buffer);
  EXPECT_NE(got[2].buffer, got[1].buffer);
  EXPECT_EQ(*held, *MakeVersion(2, 2, 5000, 4096).payload);
}

}  // namespace
}  // namespace sfpo
