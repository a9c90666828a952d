#include "common/tasks.h"

#include <xxhash.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "nlohmann/json.hpp"

namespace sfpo {
namespace {

// Fixed salts: changing them changes every stream and test set.
constexpr uint64_t kHeldOutSalt = 0x5F90A11CE5EEDULL;
constexpr uint64_t kStreamSalt = 0x7A5C0DE5D00DULL;
constexpr uint64_t kTestSeed = 0x7E57DA7AULL;

uint64_t Hash(const std::string& s, uint64_t salt) { return XXH3_64bits_withSeed(s.data(), s.size(), salt); }

uint64_t Hash3(uint64_t a, uint64_t b, uint64_t c) {
  uint64_t words[3] = {a, b, c};
  return XXH3_64bits_withSeed(words, sizeof(words), kStreamSalt);
}

// SplitMix64: a small deterministic generator seeded from a hash.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n).
  uint64_t Below(uint64_t n) { return Next() % n; }

 private:
  uint64_t state_;
};

int Prec(char op) { return op == '*' ? 2 : 1; }

int64_t Apply(int64_t a, char op, int64_t b) {
  return op == '+' ? a + b : op == '-' ? a - b : a * b;
}

// ---------------------------------------------------------------------------------------------
class Countdown3Task final : public Task {
 public:
  static constexpr uint64_t kHeldOutPermille = 200;  // of canonical (sorted digits, target) keys

  static absl::StatusOr<std::unique_ptr<Task>> Create(const TaskOptions& options) {
    auto task = std::unique_ptr<Countdown3Task>(new Countdown3Task());
    std::vector<std::pair<uint64_t, Problem>> held_out;
    for (int t = 0; t < 729; ++t) {
      int a = t / 81 + 1, b = (t / 9) % 9 + 1, c = t % 9 + 1;
      task->targets_[t] = Countdown3Targets(a, b, c);
      for (const auto& [target, solution] : task->targets_[t]) {
        Problem p = MakeProblem(a, b, c, target, solution);
        if (HeldOut(a, b, c, target)) {
          held_out.emplace_back(Hash(p.prompt, kTestSeed), p);
        } else {
          ++task->train_size_;
        }
      }
    }
    if (options.test_size < 1 || options.test_size > static_cast<int64_t>(held_out.size())) {
      return absl::InvalidArgumentError(absl::StrCat("countdown3 test_size must be in [1, ",
                                                     held_out.size(), "], got ",
                                                     options.test_size));
    }
    std::sort(held_out.begin(), held_out.end(),
              [](const auto& x, const auto& y) { return x.first < y.first; });
    for (int64_t i = 0; i < options.test_size; ++i) task->test_.push_back(held_out[i].second);
    return std::unique_ptr<Task>(std::move(task));
  }

  const std::string& name() const override { return name_; }
  const std::string& checker() const override { return name_; }
  int64_t train_size() const override { return train_size_; }

  Problem TrainProblem(uint64_t seed, uint64_t index) const override {
    for (uint64_t attempt = 0;; ++attempt) {
      Rng rng(Hash3(seed, index, attempt));
      int t = static_cast<int>(rng.Below(729));
      const auto& options = targets_[t];
      const auto& [target, solution] = options[rng.Below(options.size())];
      int a = t / 81 + 1, b = (t / 9) % 9 + 1, c = t % 9 + 1;
      if (!HeldOut(a, b, c, target)) return MakeProblem(a, b, c, target, solution);
    }
  }

  const std::vector<Problem>& TestSet() const override { return test_; }

  // Held out by the canonical problem (sorted digits, target), so no permutation of a test
  // problem is ever trained on.
  static bool HeldOut(int a, int b, int c, int target) {
    std::array<int, 3> d = {a, b, c};
    std::sort(d.begin(), d.end());
    std::string key = absl::StrCat(d[0], d[1], d[2], "=", target);
    return Hash(key, kHeldOutSalt) % 1000 < kHeldOutPermille;
  }

 private:
  Countdown3Task() = default;

  static Problem MakeProblem(int a, int b, int c, int target, const std::string& solution) {
    std::string spec = absl::StrCat(a, " ", b, " ", c, "=", target);
    return {absl::StrCat(spec, ":"), spec, solution};
  }

  std::string name_ = "countdown3";
  int64_t train_size_ = 0;
  std::array<std::vector<std::pair<int, std::string>>, 729> targets_;
  std::vector<Problem> test_;
};

// ---------------------------------------------------------------------------------------------
class AdditionTask final : public Task {
 public:
  static constexpr uint64_t kHeldOutPermille = 100;

  static absl::StatusOr<std::unique_ptr<Task>> Create(const TaskOptions& options) {
    if (options.addition_max_digits < 1 || options.addition_max_digits > 9) {
      return absl::InvalidArgumentError(absl::StrCat(
          "addition_max_digits must be in [1, 9], got ", options.addition_max_digits));
    }
    if (options.test_size < 1 || options.test_size > 100000) {
      return absl::InvalidArgumentError(
          absl::StrCat("addition test_size must be in [1, 100000], got ", options.test_size));
    }
    auto task = std::unique_ptr<AdditionTask>(new AdditionTask(options.addition_max_digits));
    std::set<std::string> seen;
    for (uint64_t i = 0; static_cast<int64_t>(task->test_.size()) < options.test_size; ++i) {
      if (i > 1000 * static_cast<uint64_t>(options.test_size) + 100000) {
        return absl::InvalidArgumentError(absl::StrCat(
            "addition with ", options.addition_max_digits, " digits has too few problems for ",
            options.test_size, " held-out ones"));
      }
      Problem p = task->Generate(kTestSeed, i, 0);
      if (HeldOut(p.prompt) && seen.insert(p.prompt).second) task->test_.push_back(std::move(p));
    }
    return std::unique_ptr<Task>(std::move(task));
  }

  const std::string& name() const override { return name_; }
  const std::string& checker() const override { return name_; }
  int64_t train_size() const override {
    int64_t n = 1;
    for (int i = 0; i < max_digits_; ++i) n *= 10;
    return n * n;
  }

  Problem TrainProblem(uint64_t seed, uint64_t index) const override {
    for (uint64_t attempt = 0;; ++attempt) {
      Problem p = Generate(seed, index, attempt);
      if (!HeldOut(p.prompt)) return p;
    }
  }
  const std::vector<Problem>& TestSet() const override { return test_; }

  static bool HeldOut(const std::string& prompt) {
    return Hash(prompt, kHeldOutSalt) % 1000 < kHeldOutPermille;
  }

 private:
  explicit AdditionTask(int max_digits) : max_digits_(max_digits) {}

  int64_t Operand(Rng* rng) const {
    int digits = 1 + static_cast<int>(rng->Below(max_digits_));
    int64_t lo = 1;
    for (int i = 1; i < digits; ++i) lo *= 10;
    int64_t hi = lo * 10;
    if (digits == 1) lo = 0;
    return lo + static_cast<int64_t>(rng->Below(static_cast<uint64_t>(hi - lo)));
  }

  Problem Generate(uint64_t seed, uint64_t index, uint64_t attempt) const {
    Rng rng(Hash3(seed, index, attempt));
    int64_t a = Operand(&rng);
    int64_t b = Operand(&rng);
    std::string sum = absl::StrCat(a + b);
    return {absl::StrCat(a, "+", b, "="), sum, sum};
  }

  std::string name_ = "addition";
  int max_digits_;
  std::vector<Problem> test_;
};

// ---------------------------------------------------------------------------------------------
// A bijection on [0, n) for each key: a 4-round Feistel network on the next even power of two,
// cycle-walking back into range. Lets the JSONL stream visit every problem once per epoch
// without storing a permutation.
class Permutation {
 public:
  Permutation(uint64_t n, uint64_t key) : n_(n), key_(key) {
    bits_ = 2;
    while ((1ULL << bits_) < n_) bits_ += 2;
    half_ = bits_ / 2;
  }
  uint64_t operator()(uint64_t x) const {
    do {
      x = Encrypt(x);
    } while (x >= n_);
    return x;
  }

 private:
  uint64_t Encrypt(uint64_t x) const {
    uint64_t mask = (1ULL << half_) - 1;
    uint64_t left = x >> half_;
    uint64_t right = x & mask;
    for (uint64_t round = 0; round < 4; ++round) {
      uint64_t f = Hash3(key_, round, right) & mask;
      uint64_t next = left ^ f;
      left = right;
      right = next;
    }
    return (left << half_) | right;
  }
  uint64_t n_;
  uint64_t key_;
  int bits_;
  int half_;
};

class JsonlTask final : public Task {
 public:
  static absl::StatusOr<std::unique_ptr<Task>> Create(const std::string& path,
                                                      const TaskOptions& options) {
    if (!(options.jsonl_held_out_fraction > 0.0 && options.jsonl_held_out_fraction < 1.0)) {
      return absl::InvalidArgumentError("jsonl_held_out_fraction must be in (0, 1)");
    }
    std::ifstream in(path);
    if (!in.good()) return absl::NotFoundError(absl::StrCat("cannot open task file ", path));
    auto task = std::unique_ptr<JsonlTask>(new JsonlTask(path));
    uint64_t threshold = static_cast<uint64_t>(options.jsonl_held_out_fraction * 1e6);
    std::string line;
    int line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      auto bad = [&](const std::string& why) {
        return absl::InvalidArgumentError(absl::StrCat(path, ":", line_no, ": ", why));
      };
      if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
      if (!j.contains("prompt") || !j["prompt"].is_string()) return bad("missing string \"prompt\"");
      if (!j.contains("answer")) return bad("missing \"answer\"");
      Problem p;
      p.prompt = j["prompt"].get<std::string>();
      if (j["answer"].is_string()) {
        p.answer = j["answer"].get<std::string>();
      } else if (j["answer"].is_number()) {
        p.answer = j["answer"].dump();
      } else {
        return bad("\"answer\" must be a string or a number");
      }
      if (p.answer.empty()) return bad("empty \"answer\"");
      p.solution = j.contains("solution") && j["solution"].is_string()
                       ? j["solution"].get<std::string>()
                       : p.answer;
      bool held_out = Hash(p.prompt, kHeldOutSalt) % 1000000 < threshold;
      (held_out ? task->test_ : task->train_).push_back(std::move(p));
    }
    if (task->test_.empty() && task->train_.size() >= 2) {
      // Too small for the hash split to hold anything out: hold out the last problem.
      task->test_.push_back(std::move(task->train_.back()));
      task->train_.pop_back();
    }
    if (task->train_.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": needs at least 2 problems (one is held out for testing)"));
    }
    if (static_cast<int64_t>(task->test_.size()) > options.test_size) {
      task->test_.resize(options.test_size);
    }
    return std::unique_ptr<Task>(std::move(task));
  }

  const std::string& name() const override { return name_; }
  const std::string& checker() const override { return checker_; }
  int64_t train_size() const override { return static_cast<int64_t>(train_.size()); }

  Problem TrainProblem(uint64_t seed, uint64_t index) const override {
    uint64_t n = train_.size();
    uint64_t epoch = index / n;
    Permutation perm(n, Hash3(seed, epoch, 0x1D));
    return train_[perm(index % n)];
  }
  const std::vector<Problem>& TestSet() const override { return test_; }

 private:
  explicit JsonlTask(std::string path) : name_(std::move(path)) {}
  std::string name_;
  std::string checker_ = "math";
  std::vector<Problem> train_;
  std::vector<Problem> test_;
};

}  // namespace

std::vector<std::pair<int, std::string>> Countdown3Targets(int a, int b, int c) {
  std::map<int, std::string> best;
  const int digits[3] = {a, b, c};
  const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
  const char ops[3] = {'+', '-', '*'};
  for (const auto& perm : perms) {
    int x = digits[perm[0]], y = digits[perm[1]], z = digits[perm[2]];
    for (char o1 : ops) {
      for (char o2 : ops) {
        // (x o1 y) o2 z
        {
          int64_t v = Apply(Apply(x, o1, y), o2, z);
          bool parens = Prec(o1) < Prec(o2);
          std::string inner = absl::StrCat(x, std::string(1, o1), y);
          std::string s = absl::StrCat(parens ? absl::StrCat("(", inner, ")") : inner,
                                       std::string(1, o2), z);
          if (v >= 0 && v <= 99) {
            auto it = best.find(static_cast<int>(v));
            if (it == best.end() || s.size() < it->second.size() ||
                (s.size() == it->second.size() && s < it->second)) {
              best[static_cast<int>(v)] = s;
            }
          }
        }
        // x o1 (y o2 z)
        {
          int64_t v = Apply(x, o1, Apply(y, o2, z));
          bool parens = Prec(o2) < Prec(o1) || (Prec(o2) == Prec(o1) && o1 == '-');
          std::string inner = absl::StrCat(y, std::string(1, o2), z);
          std::string s = absl::StrCat(x, std::string(1, o1),
                                       parens ? absl::StrCat("(", inner, ")") : inner);
          if (v >= 0 && v <= 99) {
            auto it = best.find(static_cast<int>(v));
            if (it == best.end() || s.size() < it->second.size() ||
                (s.size() == it->second.size() && s < it->second)) {
              best[static_cast<int>(v)] = s;
            }
          }
        }
      }
    }
  }
  return {best.begin(), best.end()};
}

absl::StatusOr<std::unique_ptr<Task>> CreateTask(const std::string& name_or_path,
                                                 const TaskOptions& options) {
  if (name_or_path == "countdown3") return Countdown3Task::Create(options);
  if (name_or_path == "addition") return AdditionTask::Create(options);
  if (absl::EndsWith(name_or_path, ".jsonl") || name_or_path.find('/') != std::string::npos) {
    return JsonlTask::Create(name_or_path, options);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown task '", name_or_path,
      "' (built-in: countdown3, addition; or a path to a .jsonl file of {\"prompt\", \"answer\"})"));
}

}  // namespace sfpo
