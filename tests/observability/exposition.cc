#include "tests/observability/exposition.h"

#include <cerrno>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace sfpo {
namespace testing {
namespace {

constexpr const char* kHistogramSuffixes[] = {"_bucket", "_sum", "_count"};

bool IsNameStart(char c) { return absl::ascii_isalpha(c) || c == '_' || c == ':'; }
bool IsNameChar(char c) { return IsNameStart(c) || absl::ascii_isdigit(c); }

// Reads a metric or label name at `*pos`; "" when there is none.
std::string ReadName(absl::string_view s, size_t* pos) {
  size_t i = *pos;
  if (i >= s.size() || !IsNameStart(s[i])) return "";
  while (i < s.size() && IsNameChar(s[i])) ++i;
  std::string name(s.substr(*pos, i - *pos));
  *pos = i;
  return name;
}

bool ParseDouble(absl::string_view text, double* out) {
  if (text.empty()) return false;
  const std::string s(text);
  char* end = nullptr;
  errno = 0;
  *out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && errno != ERANGE;
}

// Parses `{a="x",b="y"}` starting at `*pos` (which is at '{').
absl::Status ParseLabels(absl::string_view s, size_t* pos, Labels* labels) {
  size_t i = *pos + 1;
  while (true) {
    if (i < s.size() && s[i] == '}') break;
    std::string name = ReadName(s, &i);
    if (name.empty()) return absl::InvalidArgumentError("expected a label name");
    if (i + 1 >= s.size() || s[i] != '=' || s[i + 1] != '"') {
      return absl::InvalidArgumentError(absl::StrCat("expected =\" after label ", name));
    }
    i += 2;
    std::string value;
    while (true) {
      if (i >= s.size()) return absl::InvalidArgumentError("unterminated label value");
      const char c = s[i++];
      if (c == '"') break;
      if (c != '\\') {
        value.push_back(c);
        continue;
      }
      if (i >= s.size()) return absl::InvalidArgumentError("dangling backslash");
      const char e = s[i++];
      if (e == 'n') {
        value.push_back('\n');
      } else if (e == '\\' || e == '"') {
        value.push_back(e);
      } else {
        return absl::InvalidArgumentError(absl::StrCat("unknown escape \\", std::string(1, e)));
      }
    }
    if (!labels->emplace(name, value).second) {
      return absl::InvalidArgumentError(absl::StrCat("label ", name, " given twice"));
    }
    if (i < s.size() && s[i] == ',') {
      ++i;
      continue;
    }
    if (i < s.size() && s[i] == '}') break;
    return absl::InvalidArgumentError("expected , or } after a label");
  }
  *pos = i + 1;
  return absl::OkStatus();
}

absl::StatusOr<Sample> ParseSample(absl::string_view line) {
  Sample sample;
  size_t i = 0;
  sample.name = ReadName(line, &i);
  if (sample.name.empty()) return absl::InvalidArgumentError("expected a metric name");
  if (i < line.size() && line[i] == '{') {
    absl::Status st = ParseLabels(line, &i, &sample.labels);
    if (!st.ok()) return st;
  }
  if (i >= line.size() || line[i] != ' ') {
    return absl::InvalidArgumentError("expected a space before the value");
  }
  const std::vector<absl::string_view> rest =
      absl::StrSplit(line.substr(i + 1), ' ', absl::SkipEmpty());
  if (rest.empty() || rest.size() > 2) {
    return absl::InvalidArgumentError("expected a value and at most a timestamp");
  }
  if (!ParseDouble(rest[0], &sample.value)) {
    return absl::InvalidArgumentError(absl::StrCat("bad value '", rest[0], "'"));
  }
  double timestamp;
  if (rest.size() == 2 && !ParseDouble(rest[1], &timestamp)) {
    return absl::InvalidArgumentError(absl::StrCat("bad timestamp '", rest[1], "'"));
  }
  return sample;
}

}  // namespace

std::optional<double> Exposition::Value(const std::string& name, const Labels& labels) const {
  for (const Sample& s : samples) {
    if (s.name == name && s.labels == labels) return s.value;
  }
  return std::nullopt;
}

double Exposition::Sum(const std::string& name) const {
  double sum = 0;
  for (const Sample& s : samples) {
    if (s.name == name) sum += s.value;
  }
  return sum;
}

std::set<std::string> Exposition::LabelValues(const std::string& name,
                                              const std::string& label) const {
  std::set<std::string> values;
  for (const Sample& s : samples) {
    auto it = s.labels.find(label);
    if (s.name == name && it != s.labels.end()) values.insert(it->second);
  }
  return values;
}

std::string Exposition::FamilyOf(const std::string& sample_name) const {
  if (families.count(sample_name) > 0) return sample_name;
  for (const char* suffix : kHistogramSuffixes) {
    absl::string_view base = sample_name;
    if (!absl::ConsumeSuffix(&base, suffix)) continue;
    auto it = families.find(std::string(base));
    if (it != families.end() && (it->second.type == "histogram" || it->second.type == "summary")) {
      return it->first;
    }
  }
  return "";
}

absl::StatusOr<Exposition> ParseExposition(const std::string& text) {
  Exposition e;
  std::set<std::string> sampled;  // families whose samples have begun
  int lineno = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++lineno;
    auto fail = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("exposition line ", lineno, ": ", why, ": '", line, "'"));
    };
    if (line.empty()) continue;
    if (absl::ConsumePrefix(&line, "# ")) {
      const std::vector<std::string> f = absl::StrSplit(line, absl::MaxSplits(' ', 2));
      if (f.size() < 2 || (f[0] != "HELP" && f[0] != "TYPE")) continue;  // a plain comment
      if (f[0] == "HELP") {
        e.families[f[1]].help = f.size() > 2 ? f[2] : "";
        continue;
      }
      static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                                   "untyped"};
      if (f.size() != 3 || kTypes.count(f[2]) == 0) return fail("bad TYPE");
      Family& family = e.families[f[1]];
      if (!family.type.empty()) return fail("TYPE declared twice");
      if (sampled.count(f[1]) > 0) return fail("TYPE after the family's samples");
      family.type = f[2];
      continue;
    }
    if (absl::StartsWith(line, "#")) continue;
    absl::StatusOr<Sample> sample = ParseSample(line);
    if (!sample.ok()) return fail(sample.status().message());
    const std::string family = e.FamilyOf(sample->name);
    if (family.empty() || e.families[family].type.empty()) {
      return fail("a sample of no declared family");
    }
    sampled.insert(family);
    e.samples.push_back(*std::move(sample));
  }
  return e;
}

absl::StatusOr<std::vector<ListedMetric>> ParseMetricList(const std::string& text) {
  static const std::set<std::string> kTypes = {"counter", "gauge", "histogram"};
  static const std::set<std::string> kRoles = {"learner", "rollout", "reward"};
  std::vector<ListedMetric> list;
  std::set<std::string> names;
  int lineno = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++lineno;
    line = absl::StripAsciiWhitespace(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    auto fail = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("metric list line ", lineno, ": ", why, ": '", line, "'"));
    };
    const std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 3) return fail("want NAME TYPE ROLE [LABEL=v1|v2...]");
    ListedMetric m{f[0], f[1], f[2], {}};
    if (kTypes.count(m.type) == 0) return fail(absl::StrCat("unknown type ", m.type));
    if (kRoles.count(m.role) == 0) return fail(absl::StrCat("unknown role ", m.role));
    if (!names.insert(m.name).second) return fail(absl::StrCat(m.name, " listed twice"));
    for (size_t k = 3; k < f.size(); ++k) {
      const std::pair<std::string, std::string> kv = absl::StrSplit(f[k], absl::MaxSplits('=', 1));
      if (kv.first.empty()) return fail(absl::StrCat("bad label spec ", f[k]));
      if (kv.second.empty() || kv.second == "*") {
        m.labels[kv.first] = std::nullopt;
      } else {
        m.labels[kv.first] = std::set<std::string>(absl::StrSplit(kv.second, '|'));
      }
    }
    list.push_back(std::move(m));
  }
  return list;
}

}  // namespace testing
}  // namespace sfpo
