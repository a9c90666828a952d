#include "services/learner/checkpoint.h"

#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/match.h"
#include "common/logging.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace sfpo {
namespace {

namespace fs = std::filesystem;
constexpr char kPrefix[] = "step_";

struct FileDigest {
  uint64_t size = 0;
  uint64_t xxh64 = 0;
};

absl::StatusOr<FileDigest> Digest(const fs::path& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return absl::DataLossError(absl::StrCat("cannot open ", path.string(), ": ", std::strerror(errno)));
  }
  XXH64_state_t* state = XXH64_createState();
  XXH64_reset(state, 0);
  std::vector<char> buffer(1 << 20);
  FileDigest d;
  size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), f)) > 0) {
    XXH64_update(state, buffer.data(), n);
    d.size += n;
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  d.xxh64 = XXH64_digest(state);
  XXH64_freeState(state);
  if (failed) return absl::DataLossError(absl::StrCat("cannot read ", path.string()));
  return d;
}

absl::Status WriteTextFile(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.flush();
  if (!out.good()) return absl::InternalError(absl::StrCat("cannot write ", path.string()));
  return absl::OkStatus();
}

// Flushes a file or directory to disk (best effort on file systems without fsync for dirs).
void SyncPath(const fs::path& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return;
  fsync(fileno(f));
  std::fclose(f);
}

}  // namespace

int64_t CheckpointStep(const std::string& dir) {
  const std::string name = fs::path(dir).filename().string();
  if (!absl::StartsWith(name, kPrefix)) return -1;
  int64_t step;
  if (!absl::SimpleAtoi(name.substr(sizeof(kPrefix) - 1), &step) || step < 0) return -1;
  return step;
}

absl::StatusOr<std::string> WriteCheckpoint(
    const CheckpointWriteOptions& options, const std::string& state_json,
    const std::function<absl::Status(const std::string& dir)>& write_payload) {
  nlohmann::json state = nlohmann::json::parse(state_json, nullptr, /*allow_exceptions=*/false);
  if (!state.is_object()) {
    return absl::InvalidArgumentError("checkpoint state must be a JSON object");
  }
  std::error_code ec;
  const fs::path root(options.root);
  fs::create_directories(root, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", root.string(), ": ", ec.message()));
  const std::string name = absl::StrFormat("%s%08d", kPrefix, options.step);
  const fs::path final_dir = root / name;
  const fs::path tmp_dir = root / absl::StrCat(".tmp.", name, ".", getpid());
  fs::remove_all(tmp_dir, ec);
  fs::create_directories(tmp_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", tmp_dir.string(), ": ", ec.message()));

  absl::Status status = write_payload(tmp_dir.string());
  if (status.ok()) {
    nlohmann::json files = nlohmann::json::object();
    std::vector<fs::path> entries;
    for (const auto& entry : fs::directory_iterator(tmp_dir, ec)) entries.push_back(entry.path());
    std::sort(entries.begin(), entries.end());
    for (const fs::path& p : entries) {
      if (!fs::is_regular_file(p) || p.filename() == kTrainerStateFile) continue;
      absl::StatusOr<FileDigest> d = Digest(p);
      if (!d.ok()) {
        status = d.status();
        break;
      }
      SyncPath(p);
      files[p.filename().string()] = {{"bytes", d->size},
                                      {"xxh64", absl::StrFormat("%016x", d->xxh64)}};
    }
    if (status.ok()) {
      state["files"] = files;
      status = WriteTextFile(tmp_dir / kTrainerStateFile, state.dump(2) + "\n");
      SyncPath(tmp_dir / kTrainerStateFile);
      SyncPath(tmp_dir);
    }
  }
  if (status.ok() && fs::exists(final_dir)) {
    fs::remove_all(final_dir, ec);
    if (ec) status = absl::InternalError(absl::StrCat("cannot replace ", final_dir.string()));
  }
  if (status.ok()) {
    fs::rename(tmp_dir, final_dir, ec);
    if (ec) {
      status = absl::InternalError(absl::StrCat("cannot rename ", tmp_dir.string(), " to ",
                                                final_dir.string(), ": ", ec.message()));
    }
    SyncPath(root);
  }
  if (!status.ok()) {
    fs::remove_all(tmp_dir, ec);
    return status;
  }
  if (options.keep_last > 0) {
    std::vector<std::string> all = ListCheckpoints(options.root);
    for (size_t i = 0; i + options.keep_last < all.size(); ++i) fs::remove_all(all[i], ec);
  }
  return final_dir.string();
}

absl::StatusOr<std::string> ReadCheckpointState(const std::string& dir) {
  const fs::path state_path = fs::path(dir) / kTrainerStateFile;
  std::ifstream in(state_path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("no ", state_path.string()));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  nlohmann::json state = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!state.is_object() || !state.contains("files") || !state["files"].is_object()) {
    return absl::DataLossError(
        absl::StrCat(state_path.string(), " is not a valid trainer state (truncated?)"));
  }
  for (const auto& [name, info] : state["files"].items()) {
    const fs::path p = fs::path(dir) / name;
    if (!info.is_object() || !info.contains("bytes") || !info.contains("xxh64") ||
        !info["bytes"].is_number_unsigned() || !info["xxh64"].is_string()) {
      return absl::DataLossError(
          absl::StrCat(state_path.string(), ": malformed manifest entry for ", name));
    }
    if (!fs::exists(p)) {
      return absl::DataLossError(absl::StrCat("checkpoint file ", p.string(), " is missing"));
    }
    SFPO_ASSIGN_OR_RETURN(FileDigest d, Digest(p));
    const uint64_t expected = info["bytes"].get<uint64_t>();
    if (d.size != expected) {
      return absl::DataLossError(absl::StrCat("checkpoint file ", p.string(), " is truncated or ",
                                              "resized: ", d.size, " bytes, expected ", expected));
    }
    if (absl::StrFormat("%016x", d.xxh64) != info["xxh64"].get<std::string>()) {
      return absl::DataLossError(
          absl::StrCat("checkpoint file ", p.string(), " is corrupt: content hash mismatch"));
    }
  }
  return text;
}

std::vector<std::string> ListCheckpoints(const std::string& root) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (!entry.is_directory()) continue;
    const int64_t step = CheckpointStep(entry.path().string());
    if (step >= 0) found.emplace_back(step, entry.path().string());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

absl::StatusOr<std::string> FindLatestCheckpoint(const std::string& root) {
  std::vector<std::string> all = ListCheckpoints(root);
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    absl::StatusOr<std::string> state = ReadCheckpointState(*it);
    if (state.ok()) return *it;
    SFPO_LOG(WARNING) << "skipping invalid checkpoint " << *it << ": " << state.status().message();
  }
  return absl::NotFoundError(absl::StrCat("no valid checkpoint under ", root));
}

}  // namespace sfpo
