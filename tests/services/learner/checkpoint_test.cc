#include "services/learner/checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"

namespace sfpo {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            absl::StrCat("sfpo_ckpt_test_", getpid(), "_",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  absl::StatusOr<std::string> Write(int64_t step, const std::string& payload, int64_t keep = 3) {
    CheckpointWriteOptions o;
    o.root = root_.string();
    o.step = step;
    o.keep_last = keep;
    return WriteCheckpoint(o, absl::StrCat("{\"step\": ", step, "}"),
                           [&](const std::string& dir) {
                             std::ofstream(dir + "/model.bin") << payload;
                             std::ofstream(dir + "/optimizer.pt") << payload << payload;
                             return absl::OkStatus();
                           });
  }

  fs::path root_;
};

TEST_F(CheckpointTest, WritesADirectoryPerStepWithAManifest) {
  SFPO_ASSERT_OK_AND_ASSIGN(std::string dir, Write(7, "weights"));
  EXPECT_EQ(fs::path(dir).filename(), "step_00000007");
  EXPECT_EQ(CheckpointStep(dir), 7);
  SFPO_ASSERT_OK_AND_ASSIGN(std::string state, ReadCheckpointState(dir));
  EXPECT_THAT(state, HasSubstr("\"step\": 7"));
  EXPECT_THAT(state, HasSubstr("\"model.bin\""));
  EXPECT_THAT(state, HasSubstr("\"bytes\": 14"));  // optimizer.pt
  // No temporary directory is left behind.
  for (const auto& e : fs::directory_iterator(root_)) {
    EXPECT_EQ(e.path().filename().string().rfind(".tmp", 0), std::string::npos) << e.path();
  }
}

TEST_F(CheckpointTest, TruncatedFileIsDataLossNamingTheFile) {
  SFPO_ASSERT_OK_AND_ASSIGN(std::string dir, Write(1, "0123456789"));
  fs::resize_file(fs::path(dir) / "optimizer.pt", 5);
  EXPECT_THAT(ReadCheckpointState(dir),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("optimizer.pt is truncated")));
}

TEST_F(CheckpointTest, AlteredFileIsDataLossNamingTheFile) {
  SFPO_ASSERT_OK_AND_ASSIGN(std::string dir, Write(1, "0123456789"));
  std::ofstream(fs::path(dir) / "model.bin") << "0123456780";
  EXPECT_THAT(ReadCheckpointState(dir),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("model.bin is corrupt")));
}

TEST_F(CheckpointTest, MissingFileOrStateIsAnError) {
  SFPO_ASSERT_OK_AND_ASSIGN(std::string dir, Write(1, "x"));
  fs::remove(fs::path(dir) / "model.bin");
  EXPECT_THAT(ReadCheckpointState(dir),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("model.bin is missing")));
  fs::remove(fs::path(dir) / kTrainerStateFile);
  EXPECT_THAT(ReadCheckpointState(dir), StatusIs(absl::StatusCode::kNotFound, HasSubstr(kTrainerStateFile)));
}

TEST_F(CheckpointTest, TruncatedStateJsonIsDataLoss) {
  SFPO_ASSERT_OK_AND_ASSIGN(std::string dir, Write(1, "x"));
  fs::resize_file(fs::path(dir) / kTrainerStateFile, 10);
  EXPECT_THAT(ReadCheckpointState(dir),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("trainer_state.json")));
}

TEST_F(CheckpointTest, KeepsTheNewestN) {
  for (int64_t step : {1, 2, 3, 4, 5}) SFPO_ASSERT_OK(Write(step, "w", /*keep=*/2).status());
  std::vector<std::string> all = ListCheckpoints(root_.string());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(CheckpointStep(all[0]), 4);
  EXPECT_EQ(CheckpointStep(all[1]), 5);
}

TEST_F(CheckpointTest, FindLatestSkipsAnInvalidNewerCheckpoint) {
  SFPO_ASSERT_OK(Write(3, "good").status());
  SFPO_ASSERT_OK_AND_ASSIGN(std::string newest, Write(10, "soon truncated"));
  fs::resize_file(fs::path(newest) / "model.bin", 2);
  SFPO_ASSERT_OK_AND_ASSIGN(std::string latest, FindLatestCheckpoint(root_.string()));
  EXPECT_EQ(CheckpointStep(latest), 3);
  fs::remove_all(root_);
  EXPECT_THAT(FindLatestCheckpoint(root_.string()), StatusIs(absl::StatusCode::kNotFound, HasSubstr("no valid")));
}

TEST_F(CheckpointTest, FailedPayloadLeavesNothingBehind) {
  CheckpointWriteOptions o;
  o.root = root_.string();
  o.step = 2;
  EXPECT_THAT(WriteCheckpoint(o, "{}",
                              [](const std::string&) { return absl::InternalError("disk full"); }),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("disk full")));
  EXPECT_TRUE(fs::is_empty(root_));
  EXPECT_THAT(WriteCheckpoint(o, "[1]", [](const std::string&) { return absl::OkStatus(); }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("JSON object")));
}

TEST_F(CheckpointTest, RewritingAStepReplacesIt) {
  SFPO_ASSERT_OK(Write(4, "old").status());
  SFPO_ASSERT_OK_AND_ASSIGN(std::string dir, Write(4, "newer"));
  std::ifstream in(fs::path(dir) / "model.bin");
  std::string content;
  in >> content;
  EXPECT_EQ(content, "newer");
  SFPO_EXPECT_OK(ReadCheckpointState(dir).status());
}

}  // namespace
}  // namespace sfpo
