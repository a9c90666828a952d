#include "common/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace sfpo {
namespace {

using Json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100u << 20;  // 100 MiB, as the reference implementation.

absl::Status Invalid(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

absl::Status InvalidTensor(const std::string& path, const std::string& name,
                           const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": tensor \"", name, "\": ", what));
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

bool IsDirectory(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool IsFile(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Writes `bytes` pieces to `path` through a temp file renamed into place.
absl::Status WriteFileAtomically(const std::string& path,
                                 const std::vector<std::pair<const void*, size_t>>& pieces) {
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    return absl::InternalError(absl::StrCat(path, ": cannot create: ", std::strerror(errno)));
  }
  for (const auto& [data, size] : pieces) {
    if (size > 0 && std::fwrite(data, 1, size, f) != size) {
      std::fclose(f);
      std::remove(tmp.c_str());
      return absl::InternalError(absl::StrCat(path, ": write failed: ", std::strerror(errno)));
    }
  }
  if (std::fflush(f) != 0 || fsync(fileno(f)) != 0) {
    std::fclose(f);
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat(path, ": flush failed: ", std::strerror(errno)));
  }
  std::fclose(f);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat(path, ": rename failed: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status CheckTensorToWrite(const std::string& path, const TensorToWrite& t) {
  if (t.name.empty() || t.name == "__metadata__") {
    return Invalid(path, absl::StrCat("invalid tensor name \"", t.name, "\""));
  }
  int64_t numel = 1;
  for (int64_t d : t.shape) {
    if (d < 0) return InvalidTensor(path, t.name, "negative dimension");
    numel *= d;
  }
  const size_t expected = static_cast<size_t>(numel) * SafetensorsDtypeSize(t.dtype);
  if (expected != t.size_bytes) {
    return InvalidTensor(path, t.name,
                         absl::StrCat(t.size_bytes, " bytes given, shape ", ShapeString(t.shape),
                                      " of ", SafetensorsDtypeName(t.dtype), " needs ", expected));
  }
  if (t.size_bytes > 0 && t.data == nullptr) return InvalidTensor(path, t.name, "no data");
  return absl::OkStatus();
}

}  // namespace

const char* SafetensorsDtypeName(SafetensorsDtype dtype) {
  switch (dtype) {
    case SafetensorsDtype::kF32:
      return "F32";
    case SafetensorsDtype::kBF16:
      return "BF16";
    case SafetensorsDtype::kF16:
      return "F16";
  }
  return "?";
}

size_t SafetensorsDtypeSize(SafetensorsDtype dtype) {
  return dtype == SafetensorsDtype::kF32 ? 4 : 2;
}

absl::StatusOr<SafetensorsDtype> ParseSafetensorsDtype(absl::string_view name) {
  if (name == "F32") return SafetensorsDtype::kF32;
  if (name == "BF16") return SafetensorsDtype::kBF16;
  if (name == "F16") return SafetensorsDtype::kF16;
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported dtype \"", name, "\" (supported: F32, BF16, F16)"));
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ---------------------------------------------------------------------------------------------
// SafetensorsFile

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) munmap(map_, map_size_);
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    return absl::InternalError(absl::StrCat(path, ": fstat failed: ", std::strerror(errno)));
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return Invalid(path, absl::StrCat("truncated: ", size,
                                      " bytes, shorter than the 8-byte header length"));
  }
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) {
    return absl::InternalError(absl::StrCat(path, ": mmap failed: ", std::strerror(errno)));
  }
  file->map_ = map;
  file->map_size_ = size;
  const auto* bytes = static_cast<const uint8_t*>(map);

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > kMaxHeaderBytes) {
    return Invalid(path, absl::StrCat("header length ", header_len, " exceeds the 100 MiB limit"));
  }
  if (header_len > size - 8) {
    return Invalid(path, absl::StrCat("truncated: the header needs ", header_len,
                                      " bytes but only ", size - 8, " follow the length"));
  }
  const uint8_t* data = bytes + 8 + header_len;
  const size_t data_size = size - 8 - header_len;

  Json header = Json::parse(bytes + 8, bytes + 8 + header_len, nullptr, false);
  if (header.is_discarded() || !header.is_object()) {
    return Invalid(path, "the header is not a valid JSON object");
  }
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const Json& entry = it.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) return Invalid(path, "__metadata__ is not an object");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string()) {
          return Invalid(path, absl::StrCat("__metadata__ value of \"", m.key(), "\" is not a string"));
        }
        file->metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!entry.is_object()) return InvalidTensor(path, name, "header entry is not an object");
    auto dtype_it = entry.find("dtype");
    auto shape_it = entry.find("shape");
    auto offsets_it = entry.find("data_offsets");
    if (dtype_it == entry.end() || !dtype_it->is_string()) {
      return InvalidTensor(path, name, "missing or non-string \"dtype\"");
    }
    absl::StatusOr<SafetensorsDtype> dtype = ParseSafetensorsDtype(dtype_it->get<std::string>());
    if (!dtype.ok()) return InvalidTensor(path, name, std::string(dtype.status().message()));
    TensorView view;
    view.name = name;
    view.dtype = *dtype;
    if (shape_it == entry.end() || !shape_it->is_array()) {
      return InvalidTensor(path, name, "missing or non-array \"shape\"");
    }
    for (const Json& d : *shape_it) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0)) {
        return InvalidTensor(path, name, "shape entries must be non-negative integers");
      }
      view.shape.push_back(d.get<int64_t>());
    }
    if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
        !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned()) {
      return InvalidTensor(path, name, "\"data_offsets\" must be two non-negative integers");
    }
    const uint64_t begin = (*offsets_it)[0].get<uint64_t>();
    const uint64_t end = (*offsets_it)[1].get<uint64_t>();
    if (end < begin) {
      return InvalidTensor(path, name, absl::StrCat("data_offsets [", begin, ", ", end, ") end before they begin"));
    }
    if (end > data_size) {
      return InvalidTensor(path, name,
                           absl::StrCat("data_offsets [", begin, ", ", end,
                                        ") run past the end of the data (", data_size,
                                        " bytes): the file is truncated or the header is corrupt"));
    }
    const uint64_t expected = static_cast<uint64_t>(view.numel()) * SafetensorsDtypeSize(view.dtype);
    if (end - begin != expected) {
      return InvalidTensor(path, name,
                           absl::StrCat("data_offsets [", begin, ", ", end, ") hold ", end - begin,
                                        " bytes but shape ", ShapeString(view.shape), " of ",
                                        SafetensorsDtypeName(view.dtype), " needs ", expected));
    }
    view.data = data + begin;
    view.size_bytes = end - begin;
    file->tensors_.push_back(std::move(view));
  }
  std::sort(file->tensors_.begin(), file->tensors_.end(),
            [](const TensorView& a, const TensorView& b) {
              return a.data != b.data ? a.data < b.data : a.size_bytes < b.size_bytes;
            });
  for (size_t i = 1; i < file->tensors_.size(); ++i) {
    const TensorView& prev = file->tensors_[i - 1];
    const TensorView& cur = file->tensors_[i];
    if (cur.data < prev.data + prev.size_bytes) {
      return InvalidTensor(path, cur.name,
                           absl::StrCat("data_offsets [", cur.data - data, ", ",
                                        cur.data - data + cur.size_bytes, ") overlap tensor \"",
                                        prev.name, "\" [", prev.data - data, ", ",
                                        prev.data - data + prev.size_bytes, ")"));
    }
  }
  for (size_t i = 0; i < file->tensors_.size(); ++i) file->index_[file->tensors_[i].name] = i;
  return file;
}

const TensorView* SafetensorsFile::Find(absl::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

// ---------------------------------------------------------------------------------------------
// SafetensorsCheckpoint

absl::StatusOr<std::unique_ptr<SafetensorsCheckpoint>> SafetensorsCheckpoint::Open(
    const std::string& path_or_dir) {
  auto checkpoint = std::make_unique<SafetensorsCheckpoint>();
  auto add_file = [&](const std::string& path) -> absl::StatusOr<const SafetensorsFile*> {
    SFPO_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(path));
    for (const TensorView& view : file->tensors()) {
      auto [it, inserted] = checkpoint->by_name_.emplace(view.name, std::make_pair(&view, file.get()));
      if (!inserted) {
        return InvalidTensor(path, view.name,
                             absl::StrCat("also present in ", it->second.second->path()));
      }
    }
    checkpoint->files_.push_back(std::move(file));
    return checkpoint->files_.back().get();
  };

  if (!IsDirectory(path_or_dir)) {
    SFPO_RETURN_IF_ERROR(add_file(path_or_dir).status());
    return checkpoint;
  }
  const std::string index_path = path_or_dir + "/model.safetensors.index.json";
  if (!IsFile(index_path)) {
    const std::string single = path_or_dir + "/model.safetensors";
    if (!IsFile(single)) {
      return absl::NotFoundError(absl::StrCat(
          path_or_dir, ": holds neither model.safetensors nor model.safetensors.index.json"));
    }
    SFPO_RETURN_IF_ERROR(add_file(single).status());
    return checkpoint;
  }

  FILE* f = std::fopen(index_path.c_str(), "rb");
  if (f == nullptr) return absl::NotFoundError(absl::StrCat(index_path, ": cannot open"));
  std::string text;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
  std::fclose(f);
  Json index = Json::parse(text, nullptr, false);
  if (index.is_discarded() || !index.is_object() || !index.contains("weight_map") ||
      !index["weight_map"].is_object()) {
    return Invalid(index_path, "not a JSON object with a \"weight_map\" object");
  }
  std::map<std::string, std::string> weight_map;
  std::set<std::string> shards;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
    if (!it.value().is_string()) {
      return InvalidTensor(index_path, it.key(), "weight_map value is not a file name");
    }
    const std::string shard = it.value().get<std::string>();
    if (shard.empty() || shard.find('/') != std::string::npos) {
      return InvalidTensor(index_path, it.key(), absl::StrCat("bad shard name \"", shard, "\""));
    }
    weight_map[it.key()] = shard;
    shards.insert(shard);
  }
  for (const std::string& shard : shards) {
    SFPO_RETURN_IF_ERROR(add_file(path_or_dir + "/" + shard).status());
  }
  for (const auto& [name, shard] : weight_map) {
    auto it = checkpoint->by_name_.find(name);
    if (it == checkpoint->by_name_.end() ||
        it->second.second->path() != path_or_dir + "/" + shard) {
      return InvalidTensor(index_path, name, absl::StrCat("listed in ", shard, " but not found there"));
    }
  }
  for (const auto& [name, entry] : checkpoint->by_name_) {
    if (weight_map.count(name) == 0) {
      return InvalidTensor(entry.second->path(), name, "not listed in model.safetensors.index.json");
    }
  }
  return checkpoint;
}

std::vector<const TensorView*> SafetensorsCheckpoint::tensors() const {
  std::vector<const TensorView*> out;
  out.reserve(by_name_.size());
  for (const auto& [name, entry] : by_name_) out.push_back(entry.first);
  return out;
}

const TensorView* SafetensorsCheckpoint::Find(absl::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second.first;
}

std::string SafetensorsCheckpoint::FileOf(absl::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? std::string() : it->second.second->path();
}

std::vector<std::string> SafetensorsCheckpoint::files() const {
  std::vector<std::string> out;
  for (const auto& f : files_) out.push_back(f->path());
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writing

absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    SFPO_RETURN_IF_ERROR(CheckTensorToWrite(path, t));
    if (!names.insert(t.name).second) return InvalidTensor(path, t.name, "written twice");
    header[t.name] = {{"dtype", SafetensorsDtypeName(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.size_bytes}}};
    offset += t.size_bytes;
  }
  std::string header_text = header.dump();
  // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
  while ((header_text.size() + 8) % 8 != 0) header_text.push_back(' ');
  uint8_t length[8];
  uint64_t n = header_text.size();
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(n >> (8 * i));
  std::vector<std::pair<const void*, size_t>> pieces = {{length, 8},
                                                        {header_text.data(), header_text.size()}};
  for (const TensorToWrite& t : tensors) pieces.emplace_back(t.data, t.size_bytes);
  return WriteFileAtomically(path, pieces);
}

absl::Status WriteShardedSafetensors(const std::string& dir,
                                     const std::vector<TensorToWrite>& tensors,
                                     size_t max_shard_bytes) {
  if (!IsDirectory(dir) && mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::InternalError(absl::StrCat(dir, ": cannot create: ", std::strerror(errno)));
  }
  std::vector<std::vector<TensorToWrite>> shards;
  size_t current = 0;
  uint64_t total = 0;
  for (const TensorToWrite& t : tensors) {
    if (shards.empty() || (current > 0 && current + t.size_bytes > max_shard_bytes)) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(t);
    current += t.size_bytes;
    total += t.size_bytes;
  }
  if (shards.empty()) shards.emplace_back();
  Json weight_map = Json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string name =
        absl::StrFormat("model-%05d-of-%05d.safetensors", i + 1, shards.size());
    SFPO_RETURN_IF_ERROR(WriteSafetensors(dir + "/" + name, shards[i]));
    for (const TensorToWrite& t : shards[i]) weight_map[t.name] = name;
  }
  Json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  const std::string text = index.dump(2) + "\n";
  return WriteFileAtomically(dir + "/model.safetensors.index.json", {{text.data(), text.size()}});
}

}  // namespace sfpo
