// Test helpers: the Prometheus text exposition format read back into samples, and the list of
// metric families in deploy/metrics.txt.
#ifndef SFPO_TESTS_OBSERVABILITY_EXPOSITION_H_
#define SFPO_TESTS_OBSERVABILITY_EXPOSITION_H_

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sfpo {
namespace testing {

using Labels = std::map<std::string, std::string>;

struct Sample {
  std::string name;  // as written: a histogram's samples end in _bucket, _sum or _count
  Labels labels;
  double value = 0;
};

struct Family {
  std::string type;  // counter, gauge, histogram, summary or untyped
  std::string help;
};

// One scrape of /metrics.
struct Exposition {
  std::map<std::string, Family> families;  // by family name
  std::vector<Sample> samples;

  // The value of the sample named `name` with exactly `labels`; nullopt when there is none.
  std::optional<double> Value(const std::string& name, const Labels& labels = {}) const;
  // The sum over every sample named `name` (any labels); 0 when there is none.
  double Sum(const std::string& name) const;
  // The values label `label` takes on the samples named `name`.
  std::set<std::string> LabelValues(const std::string& name, const std::string& label) const;
  // The family a sample name belongs to: `name` itself, or for a histogram's _bucket/_sum/_count
  // the histogram's name; "" when no declared family owns it.
  std::string FamilyOf(const std::string& sample_name) const;
};

// Parses the text format (0.0.4). INVALID_ARGUMENT naming the line for anything else: a line
// that is neither a comment nor a sample, a malformed label set or value, a TYPE declared twice
// or after its samples, a sample of no declared family.
absl::StatusOr<Exposition> ParseExposition(const std::string& text);

// One line of deploy/metrics.txt: NAME TYPE ROLE [LABEL=v1|v2|...]. A label listed as `L=*` (or
// `L=`) takes values not known in advance: nullopt.
struct ListedMetric {
  std::string name;
  std::string type;
  std::string role;
  std::map<std::string, std::optional<std::set<std::string>>> labels;
};

// Parses deploy/metrics.txt ('#' starts a comment). INVALID_ARGUMENT naming the line when one
// has fewer than three fields, an unknown type or role, or a name listed twice.
absl::StatusOr<std::vector<ListedMetric>> ParseMetricList(const std::string& text);

}  // namespace testing
}  // namespace sfpo

#endif  // SFPO_TESTS_OBSERVABILITY_EXPOSITION_H_
