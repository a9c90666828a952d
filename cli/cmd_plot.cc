// `sfpo plot RUN_DIR... -o FILE.svg|png [--x rollouts|wallclock|both]`: reward and accuracy
// curves of several runs (for example GRPO against SFPO) from their step logs
// (RUN_DIR/steps.jsonl), one line per run, as a self-contained SVG drawn here. PNG output
// converts that SVG with rsvg-convert or ImageMagick's convert, whichever is on PATH.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "cli/commands.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace sfpo {
namespace {

// One learner step of one run: the x values and the plotted y values (absent when the step
// log has none, e.g. accuracy on steps without evaluation).
struct StepPoint {
  double rollouts = 0;
  double wallclock_s = 0;
  std::optional<double> reward_mean;
  std::optional<double> accuracy;
};

struct Run {
  std::string label;  // the legend: the run directory's name
  std::vector<StepPoint> points;
};

// A number field of a step-log line: absent or null -> nullopt; another type -> error.
absl::StatusOr<std::optional<double>> OptionalNumber(const nlohmann::json& line, const char* key,
                                                     const std::string& where) {
  auto it = line.find(key);
  if (it == line.end() || it->is_null()) return std::optional<double>();
  if (!it->is_number()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": '", key, "' is not a number"));
  }
  return std::optional<double>(it->get<double>());
}

absl::StatusOr<double> RequiredNumber(const nlohmann::json& line, const char* key,
                                      const std::string& where) {
  SFPO_ASSIGN_OR_RETURN(std::optional<double> value, OptionalNumber(line, key, where));
  if (!value) return absl::InvalidArgumentError(absl::StrCat(where, ": no number '", key, "'"));
  return *value;
}

// Reads RUN_DIR/steps.jsonl. Errors name the file and, for a bad line, its number:
// NOT_FOUND when the file cannot be opened, INVALID_ARGUMENT for a line that is not a JSON
// object, lacks step/rollouts_total/wallclock_s/reward_mean, or holds a non-number there, and
// for a log without steps.
absl::StatusOr<Run> ReadRun(const std::string& dir, const std::string& label) {
  const std::string path = absl::StrCat(absl::StripSuffix(dir, "/"), "/steps.jsonl");
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open the step log"));
  Run run;
  run.label = label;
  std::string text;
  for (int lineno = 1; std::getline(in, text); ++lineno) {
    if (absl::StripAsciiWhitespace(text).empty()) continue;
    const std::string where = absl::StrCat(path, ":", lineno);
    nlohmann::json line = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (line.is_discarded() || !line.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": not a JSON object"));
    }
    StepPoint p;
    SFPO_RETURN_IF_ERROR(RequiredNumber(line, "step", where).status());
    SFPO_ASSIGN_OR_RETURN(p.rollouts, RequiredNumber(line, "rollouts_total", where));
    SFPO_ASSIGN_OR_RETURN(p.wallclock_s, RequiredNumber(line, "wallclock_s", where));
    if (!line.contains("reward_mean")) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": no 'reward_mean'"));
    }
    SFPO_ASSIGN_OR_RETURN(p.reward_mean, OptionalNumber(line, "reward_mean", where));
    SFPO_ASSIGN_OR_RETURN(p.accuracy, OptionalNumber(line, "accuracy", where));
    run.points.push_back(p);
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  if (run.points.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no steps"));
  return run;
}

// Legends: each run's directory name, or its path as given when two names collide.
std::vector<std::string> RunLabels(const std::vector<std::string>& dirs) {
  std::vector<std::string> labels;
  for (const std::string& d : dirs) {
    std::string trimmed(absl::StripSuffix(d, "/"));
    const size_t slash = trimmed.find_last_of('/');
    labels.push_back(slash == std::string::npos ? trimmed : trimmed.substr(slash + 1));
  }
  for (size_t i = 0; i < labels.size(); ++i) {
    if (std::count(labels.begin(), labels.end(), labels[i]) > 1) {
      for (size_t j = 0; j < labels.size(); ++j) {
        if (j != i && labels[j] == labels[i]) labels[j] = dirs[j];
      }
      labels[i] = dirs[i];
    }
  }
  return labels;
}

// --- Drawing ------------------------------------------------------------------------------

// A linear axis over [lo, hi] with "nice" tick positions (1, 2 or 5 times a power of ten).
struct Axis {
  double lo = 0;
  double hi = 1;
  std::vector<double> ticks;
};

Axis NiceAxis(double lo, double hi, int target_ticks = 5) {
  if (!(hi > lo)) {  // one value (or none): open a window around it
    const double pad = lo == 0 ? 0.5 : std::fabs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const double raw = (hi - lo) / target_ticks;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * magnitude;
    if (step >= raw) break;
  }
  Axis axis;
  axis.lo = std::floor(lo / step) * step;
  axis.hi = std::ceil(hi / step) * step;
  for (double t = axis.lo; t <= axis.hi + step * 1e-9; t += step) {
    axis.ticks.push_back(std::fabs(t) < step * 1e-9 ? 0.0 : t);
  }
  return axis;
}

// A tick label: up to 4 significant digits, thousands as k and millions as M.
std::string FormatTick(double v) {
  const double a = std::fabs(v);
  if (a >= 1e6) return absl::StrFormat("%gM", v / 1e6);
  if (a >= 1e4) return absl::StrFormat("%gk", v / 1e3);
  return absl::StrFormat("%.4g", v);
}

std::string XmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Tableau 10: distinguishable, and readable on white.
constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

enum class XKind { kRollouts, kWallclock };
enum class YKind { kReward, kAccuracy };

// One panel: a y series against an x series, a line per run.
struct PanelSpec {
  XKind x;
  YKind y;
};

constexpr double kPanelW = 460, kPanelH = 300;                      // the plot area
constexpr double kLeft = 70, kRight = 20, kTop = 40, kBottom = 55;  // around it
constexpr double kCellW = kLeft + kPanelW + kRight, kCellH = kTop + kPanelH + kBottom;

std::optional<double> YOf(const StepPoint& p, YKind y) {
  return y == YKind::kReward ? p.reward_mean : p.accuracy;
}

// Wall-clock seconds shown in the unit that keeps the numbers readable.
struct TimeUnit {
  double seconds;
  const char* name;
};
TimeUnit PickTimeUnit(double max_seconds) {
  if (max_seconds >= 3 * 3600) return {3600, "h"};
  if (max_seconds >= 3 * 60) return {60, "min"};
  return {1, "s"};
}

void DrawPanel(const std::vector<Run>& runs, const PanelSpec& spec, double ox, double oy,
               std::string* svg) {
  // Data ranges over every run.
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  double wall_max = 0;
  for (const Run& r : runs) {
    for (const StepPoint& p : r.points) wall_max = std::max(wall_max, p.wallclock_s);
  }
  const TimeUnit unit = PickTimeUnit(wall_max);
  auto x_of = [&](const StepPoint& p) {
    return spec.x == XKind::kRollouts ? p.rollouts : p.wallclock_s / unit.seconds;
  };
  for (const Run& r : runs) {
    for (const StepPoint& p : r.points) {
      const std::optional<double> y = YOf(p, spec.y);
      if (!y) continue;
      xmin = std::min(xmin, x_of(p));
      xmax = std::max(xmax, x_of(p));
      ymin = std::min(ymin, *y);
      ymax = std::max(ymax, *y);
    }
  }
  const bool has_data = std::isfinite(xmin);
  if (!has_data) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  xmin = std::min(xmin, 0.0);  // both x axes count from the start of the run
  const Axis ax = NiceAxis(xmin, xmax);
  const Axis ay = NiceAxis(ymin, ymax);
  const double px = ox + kLeft, py = oy + kTop;
  auto sx = [&](double v) { return px + (v - ax.lo) / (ax.hi - ax.lo) * kPanelW; };
  auto sy = [&](double v) { return py + kPanelH - (v - ay.lo) / (ay.hi - ay.lo) * kPanelH; };

  const char* y_name = spec.y == YKind::kReward ? "reward_mean" : "accuracy";
  const char* x_name = spec.x == XKind::kRollouts ? "rollouts" : "wallclock";
  const std::string x_title = spec.x == XKind::kRollouts
                                  ? std::string("rollouts (samples trained on)")
                                  : absl::StrCat("wall-clock (", unit.name, ")");
  const std::string y_title = spec.y == YKind::kReward ? "mean reward" : "accuracy (eval)";
  absl::StrAppendFormat(svg, "<g class=\"panel\" id=\"panel-%s-%s\">\n", y_name, x_name);
  absl::StrAppendFormat(svg, "<text class=\"title\" x=\"%.1f\" y=\"%.1f\">%s vs %s</text>\n",
                        px + kPanelW / 2, oy + 24, XmlEscape(y_title), XmlEscape(x_title));
  // Grid and ticks.
  for (double t : ax.ticks) {
    absl::StrAppendFormat(svg,
                          "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                          "<text class=\"xtick\" x=\"%.1f\" y=\"%.1f\">%s</text>\n",
                          sx(t), py, sx(t), py + kPanelH, sx(t), py + kPanelH + 16, FormatTick(t));
  }
  for (double t : ay.ticks) {
    absl::StrAppendFormat(svg,
                          "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                          "<text class=\"ytick\" x=\"%.1f\" y=\"%.1f\">%s</text>\n",
                          px, sy(t), px + kPanelW, sy(t), px - 6, sy(t) + 4, FormatTick(t));
  }
  absl::StrAppendFormat(svg,
                        "<rect class=\"frame\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                        "height=\"%.1f\"/>\n",
                        px, py, kPanelW, kPanelH);
  absl::StrAppendFormat(svg, "<text class=\"axis\" x=\"%.1f\" y=\"%.1f\">%s</text>\n",
                        px + kPanelW / 2, py + kPanelH + 40, XmlEscape(x_title));
  absl::StrAppendFormat(svg,
                        "<text class=\"axis\" transform=\"translate(%.1f,%.1f) rotate(-90)\">"
                        "%s</text>\n",
                        ox + 18, py + kPanelH / 2, XmlEscape(y_title));
  if (!has_data) {
    absl::StrAppendFormat(svg, "<text class=\"nodata\" x=\"%.1f\" y=\"%.1f\">no data</text>\n",
                          px + kPanelW / 2, py + kPanelH / 2);
  }
  // One polyline per run that has points here; a lone point also gets a marker.
  for (size_t i = 0; i < runs.size(); ++i) {
    std::string points;
    int n = 0;
    double last_x = 0, last_y = 0;
    for (const StepPoint& p : runs[i].points) {
      const std::optional<double> y = YOf(p, spec.y);
      if (!y) continue;
      last_x = sx(x_of(p));
      last_y = sy(*y);
      absl::StrAppendFormat(&points, "%s%.2f,%.2f", n == 0 ? "" : " ", last_x, last_y);
      ++n;
    }
    if (n == 0) continue;
    const char* color = kColors[i % (sizeof(kColors) / sizeof(kColors[0]))];
    absl::StrAppendFormat(svg,
                          "<polyline class=\"series\" data-run=\"%s\" stroke=\"%s\" "
                          "points=\"%s\"/>\n",
                          XmlEscape(runs[i].label), color, points);
    if (n == 1) {
      absl::StrAppendFormat(svg, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\" fill=\"%s\"/>\n", last_x,
                            last_y, color);
    }
  }
  svg->append("</g>\n");
}

std::string RenderSvg(const std::vector<Run>& runs, const std::vector<XKind>& xs) {
  const double legend_h = 28.0 + 18.0 * ((runs.size() + 3) / 4);
  const double width = kCellW * xs.size();
  const double height = legend_h + 2 * kCellH;
  std::string svg = absl::StrFormat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
      "viewBox=\"0 0 %.0f %.0f\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" "
      "font-size=\"12\">\n",
      width, height, width, height);
  svg +=
      "<style>"
      ".grid{stroke:#e4e4e4;stroke-width:1}"
      ".frame{fill:none;stroke:#444;stroke-width:1}"
      ".series{fill:none;stroke-width:1.8;stroke-linejoin:round}"
      ".xtick{text-anchor:middle;fill:#444}.ytick{text-anchor:end;fill:#444}"
      ".axis{text-anchor:middle;fill:#222}.title{text-anchor:middle;font-weight:bold;fill:#222}"
      ".nodata{text-anchor:middle;fill:#999}"
      "</style>\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  // Legend: four runs a row.
  svg += "<g class=\"legend\">\n";
  for (size_t i = 0; i < runs.size(); ++i) {
    const double lx = 20 + 240.0 * (i % 4), ly = 20 + 18.0 * (i / 4);
    const char* color = kColors[i % (sizeof(kColors) / sizeof(kColors[0]))];
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                          "stroke-width=\"3\"/><text x=\"%.1f\" y=\"%.1f\">%s</text>\n",
                          lx, ly, lx + 24, ly, color, lx + 30, ly + 4, XmlEscape(runs[i].label));
  }
  svg += "</g>\n";
  const YKind ys[] = {YKind::kReward, YKind::kAccuracy};
  for (int row = 0; row < 2; ++row) {
    for (size_t col = 0; col < xs.size(); ++col) {
      DrawPanel(runs, PanelSpec{xs[col], ys[row]}, kCellW * col, legend_h + kCellH * row, &svg);
    }
  }
  svg += "</svg>\n";
  return svg;
}

absl::Status WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc | std::ios::binary);
  out << content;
  out.close();
  if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// The first of `names` found as an executable on PATH, or "".
std::string FindOnPath(const std::vector<std::string>& names) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return "";
  for (const std::string& name : names) {
    for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
      const std::string candidate = absl::StrCat(dir, "/", name);
      if (access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  return "";
}

// Runs argv[0] with argv (no shell) and waits; an error unless it exits 0.
absl::Status RunTool(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  if (posix_spawn(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot run ", argv[0]));
  }
  int status = 0;
  if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat(argv[0], " failed converting the SVG to PNG"));
  }
  return absl::OkStatus();
}

// Writes `svg` as a PNG at `png_path` with rsvg-convert or ImageMagick's convert.
absl::Status WritePng(const std::string& svg, const std::string& png_path) {
  const std::string tool = FindOnPath({"rsvg-convert", "convert"});
  if (tool.empty()) {
    return absl::FailedPreconditionError(
        "PNG output needs rsvg-convert (Debian: librsvg2-bin) or convert (Debian: imagemagick) "
        "on PATH; neither was found. Write an .svg instead");
  }
  const std::string svg_path = png_path + ".tmp.svg";
  SFPO_RETURN_IF_ERROR(WriteFile(svg_path, svg));
  absl::Status status =
      absl::EndsWith(tool, "rsvg-convert")
          ? RunTool({tool, "--format=png", "--background-color=white", "-o", png_path, svg_path})
          : RunTool({tool, "-background", "white", svg_path, png_path});
  std::remove(svg_path.c_str());
  return status;
}

struct PlotFlags {
  std::vector<std::string> run_dirs;
  std::string output;
  std::string x = "both";
};

absl::Status RunPlot(const PlotFlags& flags) {
  const bool png = absl::EndsWith(flags.output, ".png");
  if (!png && !absl::EndsWith(flags.output, ".svg")) {
    return absl::InvalidArgumentError(
        absl::StrCat("-o ", flags.output, ": the output must end in .svg or .png"));
  }
  std::vector<XKind> xs;
  if (flags.x != "wallclock") xs.push_back(XKind::kRollouts);
  if (flags.x != "rollouts") xs.push_back(XKind::kWallclock);
  const std::vector<std::string> labels = RunLabels(flags.run_dirs);
  std::vector<Run> runs;
  for (size_t i = 0; i < flags.run_dirs.size(); ++i) {
    SFPO_ASSIGN_OR_RETURN(Run run, ReadRun(flags.run_dirs[i], labels[i]));
    runs.push_back(std::move(run));
  }
  const std::string svg = RenderSvg(runs, xs);
  return png ? WritePng(svg, flags.output) : WriteFile(flags.output, svg);
}

}  // namespace

void AddPlotCommand(CLI::App* root, CommandTable* table) {
  auto flags = std::make_shared<PlotFlags>();
  CLI::App* plot = root->add_subcommand(
      "plot", "Plot reward and accuracy against rollouts and wall-clock for several runs");
  plot->add_option("run_dirs", flags->run_dirs, "Run directories, each with a steps.jsonl")
      ->required();
  plot->add_option("-o,--output", flags->output,
                   "Output file: .svg, or .png (needs rsvg-convert or convert)")
      ->required();
  plot->add_option("--x", flags->x, "x axes: rollouts, wallclock or both")
      ->check(CLI::IsMember({"rollouts", "wallclock", "both"}))
      ->capture_default_str();
  table->emplace_back(plot, [flags]() -> int {
    absl::Status status = RunPlot(*flags);
    if (!status.ok()) return FailWith(status);
    std::cerr << "sfpo: wrote " << flags->output << " (" << flags->run_dirs.size() << " runs)\n";
    return 0;
  });
}

}  // namespace sfpo
