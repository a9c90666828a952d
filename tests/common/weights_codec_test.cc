#include "common/weights_codec.h"

#include <torch/torch.h>

#include "common/status_matchers.h"
#include "common/weights_torch.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sfpo {
namespace {

using ::testing::HasSubstr;

struct TinyImpl : torch::nn::Module {
  TinyImpl() {
    a = register_parameter("a", torch::arange(6, torch::kFloat32).reshape({2, 3}));
    b = register_parameter("b", torch::tensor({0.5f, -1.25f}));
  }
  torch::Tensor a, b;
};

absl::StatusOr<PackedWeights> Reassemble(const PackedWeights& w) {
  WeightAssembler asm_;
  SFPO_RETURN_IF_ERROR(asm_.Begin(w.manifest));
  const std::string& p = *w.payload;
  for (size_t off = 0; off < p.size(); off += w.manifest.chunk_bytes) {
    SFPO_RETURN_IF_ERROR(asm_.AddChunk(w.manifest.version, off,
                                       absl::string_view(p).substr(off, w.manifest.chunk_bytes)));
  }
  return asm_.Finish();
}

TEST(WeightsCodecTest, PacksChunksReassemblesAndAppliesExactly) {
  TinyImpl src;
  SFPO_ASSERT_OK_AND_ASSIGN(PackedWeights w, PackModuleWeights(src, WireDType::kF32, 7, 1024));
  EXPECT_EQ(w.manifest.total_bytes, 32u);
  SFPO_ASSERT_OK_AND_ASSIGN(PackedWeights back, Reassemble(w));
  EXPECT_EQ(back.manifest.version, 7);
  TinyImpl dst;
  {
    torch::NoGradGuard g;
    dst.a.zero_();
    dst.b.zero_();
  }
  SFPO_ASSERT_OK(ApplyPackedWeights(back, dst));
  EXPECT_TRUE(torch::equal(dst.a, src.a));
  EXPECT_TRUE(torch::equal(dst.b, src.b));
}

TEST(WeightsCodecTest, Bf16RoundsLikeTorch) {
  TinyImpl src;
  SFPO_ASSERT_OK_AND_ASSIGN(PackedWeights w, PackModuleWeights(src, WireDType::kBF16, 1, 1024));
  EXPECT_EQ(w.manifest.total_bytes, 16u);
  TinyImpl dst;
  SFPO_ASSERT_OK(ApplyPackedWeights(w, dst));
  EXPECT_TRUE(torch::equal(dst.b, src.b.to(torch::kBFloat16).to(torch::kFloat32)));
}

TEST(WeightsCodecTest, CorruptedChunkFailsItsTensorsChecksum) {
  TinyImpl src;
  SFPO_ASSERT_OK_AND_ASSIGN(PackedWeights w, PackModuleWeights(src, WireDType::kF32, 3, 1024));
  std::string bad = *w.payload;
  bad[26] ^= 0x40;  // inside "b"
  WeightAssembler asm_;
  SFPO_ASSERT_OK(asm_.Begin(w.manifest));
  SFPO_ASSERT_OK(asm_.AddChunk(3, 0, bad));
  EXPECT_THAT(asm_.Finish(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("tensor 'b'")));
}

TEST(WeightsCodecTest, RejectsOutOfOrderOversizedAndForeignChunks) {
  TinyImpl src;
  SFPO_ASSERT_OK_AND_ASSIGN(PackedWeights w, PackModuleWeights(src, WireDType::kF32, 3, 1024));
  WeightAssembler asm_;
  EXPECT_THAT(asm_.AddChunk(3, 0, "x"), StatusIs(absl::StatusCode::kFailedPrecondition));
  SFPO_ASSERT_OK(asm_.Begin(w.manifest));
  EXPECT_THAT(asm_.AddChunk(4, 0, "x"), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(asm_.AddChunk(3, 8, "x"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected 0")));
  EXPECT_THAT(asm_.AddChunk(3, 0, std::string(33, 'x')), StatusIs(absl::StatusCode::kInvalidArgument));
  SFPO_ASSERT_OK(asm_.AddChunk(3, 0, w.payload->substr(0, 10)));
  EXPECT_THAT(asm_.Finish(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("10 of 32")));
}

TEST(WeightsCodecTest, RejectsInconsistentManifestsAndMismatchedModels) {
  TinyImpl src;
  SFPO_ASSERT_OK_AND_ASSIGN(PackedWeights w, PackModuleWeights(src, WireDType::kF32, 3, 1024));
  WeightManifest m = w.manifest;
  m.tensors[1].offset = 20;
  EXPECT_THAT(ValidateManifest(m), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'b'")));
  m = w.manifest;
  m.total_bytes = 40;
  EXPECT_THAT(ValidateManifest(m), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("total_bytes")));
  m = w.manifest;
  m.tensors[1].name = "a";
  EXPECT_THAT(ValidateManifest(m), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("duplicate")));
  PackedWeights renamed = w;
  renamed.manifest.tensors[1].name = "c";
  TinyImpl dst;
  EXPECT_THAT(ApplyPackedWeights(renamed, dst), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'c'")));
  PackedWeights reshaped = w;
  reshaped.manifest.tensors[0].shape = {3, 2};
  EXPECT_THAT(ApplyPackedWeights(reshaped, dst), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("[3,2]")));
}

}  // namespace
}  // namespace sfpo
