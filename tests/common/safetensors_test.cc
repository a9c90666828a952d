#include "common/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "common/status_matchers.h"

namespace sfpo {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::string TempDir() {
  std::string dir = ::testing::TempDir() + "/sfpo_st_XXXXXX";
  EXPECT_NE(mkdtemp(dir.data()), nullptr);
  return dir;
}

// A file made of the 8-byte length of `header`, `header`, then `data`.
std::string RawFile(const std::string& dir, const std::string& name, const std::string& header,
                    const std::string& data, int64_t length_override = -1) {
  const std::string path = dir + "/" + name;
  std::ofstream out(path, std::ios::binary);
  uint64_t n = length_override >= 0 ? static_cast<uint64_t>(length_override) : header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>(n >> (8 * i)));
  out << header << data;
  return path;
}

std::vector<uint8_t> Bytes(size_t n, uint8_t start) {
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(start + i);
  return out;
}

TEST(SafetensorsTest, RoundTripsF32Bf16AndF16WithMetadata) {
  const std::string dir = TempDir();
  const std::vector<float> f32 = {1.5f, -2.0f, 3.25f, 0.0f, 1e-3f, 7.0f};
  const std::vector<uint8_t> bf16 = Bytes(8, 10), f16 = Bytes(6, 50);
  std::vector<TensorToWrite> tensors = {
      {"a.weight", SafetensorsDtype::kF32, {2, 3}, f32.data(), f32.size() * 4},
      {"b", SafetensorsDtype::kBF16, {4}, bf16.data(), bf16.size()},
      {"c.scalar", SafetensorsDtype::kF16, {}, f16.data(), 2},
      {"d.empty", SafetensorsDtype::kF32, {0, 5}, nullptr, 0},
  };
  SFPO_ASSERT_OK(WriteSafetensors(dir + "/m.safetensors", tensors, {{"format", "pt"}}));
  SFPO_ASSERT_OK_AND_ASSIGN(auto file, SafetensorsFile::Open(dir + "/m.safetensors"));
  EXPECT_EQ(file->metadata().at("format"), "pt");
  ASSERT_EQ(file->tensors().size(), 4u);
  for (const TensorToWrite& t : tensors) {
    const TensorView* view = file->Find(t.name);
    ASSERT_NE(view, nullptr) << t.name;
    EXPECT_EQ(view->dtype, t.dtype);
    EXPECT_EQ(view->shape, t.shape);
    ASSERT_EQ(view->size_bytes, t.size_bytes);
    if (t.size_bytes) EXPECT_EQ(std::memcmp(view->data, t.data, t.size_bytes), 0) << t.name;
  }
  EXPECT_EQ(file->Find("missing"), nullptr);
  // The data section starts 8-byte aligned, as the reference writer leaves it.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(file->Find("a.weight")->data) % 8, 0u);
}

TEST(SafetensorsTest, ShardedCheckpointRoundTripsThroughTheIndex) {
  const std::string dir = TempDir() + "/ckpt";
  std::vector<std::vector<uint8_t>> data;
  std::vector<TensorToWrite> tensors;
  for (int i = 0; i < 5; ++i) data.push_back(Bytes(400, static_cast<uint8_t>(i)));
  for (int i = 0; i < 5; ++i) {
    tensors.push_back({"t" + std::to_string(i), SafetensorsDtype::kF32, {100}, data[i].data(), 400});
  }
  SFPO_ASSERT_OK(WriteShardedSafetensors(dir, tensors, /*max_shard_bytes=*/1000));
  SFPO_ASSERT_OK_AND_ASSIGN(auto checkpoint, SafetensorsCheckpoint::Open(dir));
  EXPECT_EQ(checkpoint->files().size(), 3u);  // 2 + 2 + 1 tensors
  EXPECT_THAT(checkpoint->FileOf("t4"), HasSubstr("model-00003-of-00003.safetensors"));
  ASSERT_EQ(checkpoint->tensors().size(), 5u);
  for (int i = 0; i < 5; ++i) {
    const TensorView* view = checkpoint->Find("t" + std::to_string(i));
    ASSERT_NE(view, nullptr);
    EXPECT_EQ(std::memcmp(view->data, data[i].data(), 400), 0);
  }
  // A single file opens through the same entry point, by path or by directory.
  const std::string single = TempDir();
  SFPO_ASSERT_OK(WriteSafetensors(single + "/model.safetensors", tensors));
  SFPO_ASSERT_OK_AND_ASSIGN(auto one, SafetensorsCheckpoint::Open(single));
  EXPECT_EQ(one->tensors().size(), 5u);
}

TEST(SafetensorsTest, RejectsAFileShorterThanTheHeaderLength) {
  const std::string dir = TempDir();
  const std::string path = dir + "/short.safetensors";
  std::ofstream(path, std::ios::binary) << "abc";
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("short.safetensors"), HasSubstr("truncated"))));
}

TEST(SafetensorsTest, RejectsAHeaderRunningPastTheEnd) {
  const std::string dir = TempDir();
  const std::string path = RawFile(dir, "h.safetensors", "{}", "", /*length_override=*/1000);
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("h.safetensors"), HasSubstr("truncated"))));
}

TEST(SafetensorsTest, RejectsTruncatedDataNamingTheTensor) {
  const std::string dir = TempDir();
  const std::vector<float> values(16, 1.0f);
  SFPO_ASSERT_OK(WriteSafetensors(dir + "/full.safetensors",
                                  {{"x", SafetensorsDtype::kF32, {4}, values.data(), 16},
                                   {"y", SafetensorsDtype::kF32, {12}, values.data(), 48}}));
  std::ifstream in(dir + "/full.safetensors", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(dir + "/cut.safetensors", std::ios::binary) << bytes.substr(0, bytes.size() - 5);
  EXPECT_THAT(SafetensorsFile::Open(dir + "/cut.safetensors"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("cut.safetensors"), HasSubstr("tensor \"y\""),
                             HasSubstr("run past the end"))));
}

TEST(SafetensorsTest, RejectsOverlappingOffsetsNamingBothTensors) {
  const std::string dir = TempDir();
  const std::string path = RawFile(
      dir, "o.safetensors",
      R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
          "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
      std::string(12, '\0'));
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("o.safetensors"), HasSubstr("tensor \"b\""),
                             HasSubstr("overlap tensor \"a\""))));
}

TEST(SafetensorsTest, RejectsOutOfRangeOffsets) {
  const std::string dir = TempDir();
  const std::string path = RawFile(
      dir, "r.safetensors", R"({"w": {"dtype": "F16", "shape": [4], "data_offsets": [100, 108]}})",
      std::string(8, '\0'));
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("r.safetensors"), HasSubstr("tensor \"w\""),
                             HasSubstr("[100, 108)"))));
}

TEST(SafetensorsTest, RejectsAnUnknownDtypeNamingTheTensor) {
  const std::string dir = TempDir();
  for (const char* dtype : {"I64", "F8_E4M3", "float"}) {
    const std::string path = RawFile(
        dir, "d.safetensors",
        std::string(R"({"ids": {"dtype": ")") + dtype + R"(", "shape": [1], "data_offsets": [0, 8]}})",
        std::string(8, '\0'));
    EXPECT_THAT(SafetensorsFile::Open(path),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("d.safetensors"), HasSubstr("tensor \"ids\""),
                               HasSubstr(std::string("unsupported dtype \"") + dtype))));
  }
}

TEST(SafetensorsTest, RejectsAByteRangeThatDoesNotMatchTheShape) {
  const std::string dir = TempDir();
  const std::string path = RawFile(
      dir, "s.safetensors", R"({"w": {"dtype": "BF16", "shape": [3, 2], "data_offsets": [0, 10]}})",
      std::string(10, '\0'));
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("tensor \"w\""), HasSubstr("needs 12"))));
}

TEST(SafetensorsTest, RejectsMalformedHeaders) {
  const std::string dir = TempDir();
  EXPECT_THAT(SafetensorsFile::Open(RawFile(dir, "j.safetensors", "{\"a\": ", "")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a valid JSON object")));
  EXPECT_THAT(SafetensorsFile::Open(RawFile(dir, "k.safetensors", R"({"a": {"dtype": "F32"}})", "")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("tensor \"a\""), HasSubstr("shape"))));
  EXPECT_THAT(SafetensorsFile::Open(RawFile(
                  dir, "l.safetensors", R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})",
                  std::string(4, '\0'))),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tensor \"a\"")));
  EXPECT_THAT(SafetensorsFile::Open(dir + "/absent.safetensors"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("absent.safetensors")));
}

TEST(SafetensorsTest, RejectsAnIndexThatDisagreesWithItsShards) {
  const std::string dir = TempDir();
  const std::vector<uint8_t> data = Bytes(8, 0);
  SFPO_ASSERT_OK(WriteSafetensors(dir + "/s1.safetensors",
                                  {{"a", SafetensorsDtype::kF32, {2}, data.data(), 8},
                                   {"b", SafetensorsDtype::kF32, {2}, data.data(), 8}}));
  SFPO_ASSERT_OK(WriteSafetensors(dir + "/s2.safetensors",
                                  {{"a", SafetensorsDtype::kF32, {2}, data.data(), 8}}));
  auto write_index = [&](const std::string& map) {
    std::ofstream(dir + "/model.safetensors.index.json") << R"({"weight_map": )" << map << "}";
  };
  write_index(R"({"a": "s1.safetensors", "b": "s1.safetensors", "c": "s1.safetensors"})");
  EXPECT_THAT(SafetensorsCheckpoint::Open(dir),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("index.json"), HasSubstr("tensor \"c\""), HasSubstr("not found"))));
  write_index(R"({"a": "s1.safetensors"})");
  EXPECT_THAT(SafetensorsCheckpoint::Open(dir),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("s1.safetensors"), HasSubstr("tensor \"b\""),
                             HasSubstr("not listed"))));
  write_index(R"({"a": "s1.safetensors", "b": "s2.safetensors"})");
  EXPECT_THAT(SafetensorsCheckpoint::Open(dir),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("tensor \"a\""), HasSubstr("also present in"))));
}

TEST(SafetensorsTest, WriteRejectsSizeMismatchAndDuplicates) {
  const std::string dir = TempDir();
  const std::vector<uint8_t> data = Bytes(8, 0);
  EXPECT_THAT(WriteSafetensors(dir + "/w.safetensors", {{"a", SafetensorsDtype::kF32, {3}, data.data(), 8}}),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("\"a\""), HasSubstr("needs 12"))));
  EXPECT_THAT(WriteSafetensors(dir + "/w.safetensors",
                               {{"a", SafetensorsDtype::kF32, {2}, data.data(), 8},
                                {"a", SafetensorsDtype::kF32, {2}, data.data(), 8}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("written twice")));
}

}  // namespace
}  // namespace sfpo
