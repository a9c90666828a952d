// Reward verifier throughput and hostile-input latency.
//   ninja -C build reward_bench && build/bench/reward_bench
// BM_ShortAnswers reports verdicts/s on one core (items_per_second) over a mix of typical short
// completions; BM_Hostile/<case> reports the time per verdict of each hostile input, with the
// slowest single verdict seen as the `max_ms` counter.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "services/reward/verifier.h"

namespace sfpo {
namespace {

struct Item {
  std::string name;
  std::string task;
  std::string completion;
  std::string gold;
};

const std::vector<Item>& ShortAnswers() {
  static const auto* items = new std::vector<Item>{
      {"boxed_int", "", "So the total is \\boxed{42}.", "42"},
      {"boxed_wrong", "", "So the total is \\boxed{41}.", "42"},
      {"frac_vs_decimal", "", "The probability is \\boxed{\\frac{1}{2}}", "0.5"},
      {"gsm8k", "", "She sold 48/2 = 24 clips in May.\n#### 72", "72"},
      {"phrase", "", "The answer is 1,000.", "1000"},
      {"sqrt", "", "\\boxed{2\\sqrt{3}}", "\\sqrt{12}"},
      {"poly", "", "\\boxed{(x+1)^2}", "x^2+2x+1"},
      {"interval", "", "\\boxed{(-\\infty, 3]}", "x \\le 3"},
      {"set", "", "\\boxed{\\{3, 2, 1\\}}", "\\{1,2,3\\}"},
      {"percent", "", "\\boxed{20\\%}", "0.2"},
      {"countdown3", "countdown3", "3*5+7", "3 5 7=22"},
      {"addition", "addition", "4690", "4690"},
  };
  return *items;
}

std::vector<Item> Hostile() {
  std::string deep_power = "2";
  for (int i = 0; i < 60; ++i) deep_power = absl::StrCat("2^{", deep_power, "}");
  return {
      {"empty", "", "", "5"},
      {"unbalanced_braces", "", "\\boxed{{{5}", "5"},
      {"million_digits", "", absl::StrCat("\\boxed{", std::string(1000000, '7'), "}"), "7"},
      {"tower_2_2_2_50", "", "\\boxed{2^{2^{2^{50}}}}", "1"},
      {"power_tower_60", "", absl::StrCat("\\boxed{", deep_power, "}"), "4"},
      {"one_mb_completion", "", std::string(1 << 20, 'a') + "\\boxed{5}", "5"},
      {"almost_cap_completion", "", std::string((256 << 10) - 16, 'a') + "\\boxed{5}", "5"},
      {"nested_braces_10000", "",
       absl::StrCat("\\boxed{", std::string(10000, '{'), "1", std::string(10000, '}'), "}"), "1"},
      {"nested_parens_1000", "",
       absl::StrCat("The answer is ", std::string(1000, '('), "1", std::string(1000, ')')), "1"},
      {"invalid_utf8", "", "\\boxed{5}\xff\xfe", "5"},
      {"code_like", "", "\\boxed{__import__('os').system('rm -rf /')}", "5"},
      {"max_digits_product", "",
       absl::StrCat("\\boxed{", std::string(399, '9'), "^{100}}"), "1"},
      {"long_polynomial", "",
       [] {
         std::string s = "\\boxed{";
         for (int i = 0; i < 200; ++i) absl::StrAppend(&s, "x^{", i % 40, "}y+");
         return s + "1}";
       }(),
       "x"},
      {"many_boxes", "",
       [] {
         std::string s;
         for (int i = 0; i < 20000; ++i) s += "\\boxed{1}";
         return s;
       }(),
       "1"},
  };
}

void BM_ShortAnswers(benchmark::State& state) {
  const auto& items = ShortAnswers();
  VerifierOptions options;
  size_t i = 0;
  int64_t correct = 0;
  for (auto _ : state) {
    const Item& item = items[i++ % items.size()];
    VerifyResult r = Score({item.task, "", item.completion, item.gold}, options,
                           absl::Now() + absl::Milliseconds(100));
    correct += r.verdict == Verdict::kCorrect;
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["correct_fraction"] =
      static_cast<double>(correct) / static_cast<double>(std::max<int64_t>(1, state.iterations()));
}
BENCHMARK(BM_ShortAnswers);

void BM_ShortAnswer(benchmark::State& state) {
  const Item& item = ShortAnswers()[state.range(0)];
  state.SetLabel(item.name);
  VerifierOptions options;
  for (auto _ : state) {
    VerifyResult r = Score({item.task, "", item.completion, item.gold}, options,
                           absl::Now() + absl::Milliseconds(100));
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ShortAnswer)->DenseRange(0, 11);

void BM_Hostile(benchmark::State& state) {
  static const std::vector<Item>* items = new std::vector<Item>(Hostile());
  const Item& item = (*items)[state.range(0)];
  VerifierOptions options;
  double max_ms = 0;
  std::string verdict;
  for (auto _ : state) {
    auto start = std::chrono::steady_clock::now();
    VerifyResult r = Score({item.task, "", item.completion, item.gold}, options,
                           absl::Now() + absl::Milliseconds(100));
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                    .count();
    max_ms = std::max(max_ms, ms);
    verdict = absl::StrCat(VerdictName(r.verdict), r.error_label.empty() ? "" : ":",
                           r.error_label);
    benchmark::DoNotOptimize(r);
  }
  state.SetLabel(absl::StrCat(item.name, " -> ", verdict));
  state.counters["max_ms"] = max_ms;
}
BENCHMARK(BM_Hostile)->DenseRange(0, 13)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace sfpo

BENCHMARK_MAIN();
