#include "services/reward/offline_check.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"

namespace sfpo {
namespace {

std::string Emit(absl::string_view verdict, absl::string_view extracted,
                 absl::string_view reason) {
  nlohmann::json j;
  j["verdict"] = std::string(verdict);
  j["extracted"] = std::string(extracted);
  j["reason"] = std::string(reason);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// A JSON string, or a number written as text (gold answers are often bare numbers).
bool ReadText(const nlohmann::json& j, const char* key, std::string* out) {
  auto it = j.find(key);
  if (it == j.end()) return false;
  if (it->is_string()) {
    *out = it->get<std::string>();
    return true;
  }
  if (it->is_number()) {
    *out = it->dump();
    return true;
  }
  return false;
}

}  // namespace

std::string CheckJsonLine(absl::string_view line, int64_t line_no,
                          const OfflineCheckOptions& options, VerdictCounts* counts) {
  auto fail = [&](const std::string& why) {
    if (counts != nullptr) ++(*counts)[static_cast<int>(Verdict::kError)];
    return Emit("error", "", absl::StrCat("line ", line_no, ": ", why));
  };
  nlohmann::json j = nlohmann::json::parse(line.begin(), line.end(), nullptr,
                                           /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return fail("not a JSON object");
  std::string gold, prediction, task = options.task, prompt;
  if (!ReadText(j, "gold", &gold)) return fail("missing string \"gold\"");
  if (!ReadText(j, "prediction", &prediction)) return fail("missing string \"prediction\"");
  for (auto [key, out] : {std::pair<const char*, std::string*>{"task", &task}, {"prompt", &prompt}}) {
    auto it = j.find(key);
    if (it == j.end()) continue;
    if (!it->is_string()) return fail(absl::StrCat("\"", key, "\" must be a string"));
    *out = it->get<std::string>();
  }
  VerifyResult r = Score({task, prompt, prediction, gold}, options.verifier,
                         absl::Now() + options.item_deadline);
  if (counts != nullptr) ++(*counts)[static_cast<int>(r.verdict)];
  return Emit(VerdictName(r.verdict), r.extracted, r.reason);
}

VerdictCounts CheckJsonLines(std::istream& in, std::ostream& out,
                             const OfflineCheckOptions& options) {
  VerdictCounts counts = {0, 0, 0, 0};
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out << CheckJsonLine(line, line_no, options, &counts) << '\n';
  }
  out.flush();
  return counts;
}

}  // namespace sfpo
