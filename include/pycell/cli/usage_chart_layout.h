#pragma once
// The layout half of the usage chart (usage_chart.h): the figures read from the samples,
// the axes and the mapping of readings to SVG coordinates, and numbers and text as the
// chart writes them. The drawing half (src/cli/usage_chart.cc) turns these into SVG.
#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace pycell::cli::chart {

// Layout, in SVG user units (pixels at 100%). Two panels share the time axis: CPU on top,
// memory below, the time labels under the memory panel only.
inline constexpr double kWidth = 800;
inline constexpr double kHeight = 420;
inline constexpr double kPlotLeft = 76;
inline constexpr double kPlotRight = 776;
inline constexpr double kTextLeft = 24;
inline constexpr double kTitleY = 30;
inline constexpr double kSubtitleY = 50;
inline constexpr double kLegendY = 70;
inline constexpr double kCpuTop = 86;
inline constexpr double kCpuBottom = 214;
inline constexpr double kMemoryTop = 238;
inline constexpr double kMemoryBottom = 366;
inline constexpr double kTimeLabelY = 382;
inline constexpr double kTimeTitleY = 406;
inline constexpr double kYTitleX = 22;
inline constexpr size_t kTitleMaxChars = 68;

struct Sample {
  double tMs;
  double cpuMs;
  double rssBytes;
};

struct Reading {
  double tMs;
  double value;
};

struct Point {
  double x;
  double y;
};

// ---- numbers as text: locale-independent, never "nan" or "inf" ----------------------------

[[nodiscard]] std::string fixed(double v, int decimals);
// Figures a person reads: fixed notation up to a billion, three significant digits beyond.
[[nodiscard]] std::string readable(double v, int decimals);
// A coordinate: one decimal, a trailing ".0" dropped.
[[nodiscard]] std::string coord(double v);
[[nodiscard]] std::string duration(double ms);

struct MemoryUnit {
  const char* name;
  double bytes;
};

// The largest unit in which the value is at least 1 (KiB at least; MiB for nothing at all).
[[nodiscard]] MemoryUnit memoryUnitFor(double bytes);
[[nodiscard]] std::string memoryText(double bytes);

// ---- text as XML ------------------------------------------------------------------------

// Any bytes as one line of XML character data: markup characters escaped; tabs and line
// breaks as spaces; invalid UTF-8 and what XML 1.0 forbids or a reader cannot see (control
// characters, U+FFFE, U+FFFF) as U+FFFD; cut to maxChars characters with an ellipsis.
[[nodiscard]] std::string xmlText(std::string_view in, size_t maxChars);

// ---- the data ---------------------------------------------------------------------------

// A finite number at object[key] that is not negative, clamped to the largest reading kept.
[[nodiscard]] std::optional<double> nonNegative(const nlohmann::json& object, const char* key);
// The usable samples, in time order (a stable sort: equal times keep their given order).
[[nodiscard]] std::vector<Sample> parseSamples(const nlohmann::json& samples);
// Percent of one core over each interval between samples, placed at the interval's end.
[[nodiscard]] std::vector<Reading> cpuUtilisation(const std::vector<Sample>& samples);
[[nodiscard]] double maxValue(const std::vector<Reading>& readings);
// Memory peak the axis must reach: the reported one, or a sampled reading above it.
[[nodiscard]] double memoryCeiling(const std::vector<Sample>& samples, std::optional<double> reportedPeak);

// ---- axes and mapping -------------------------------------------------------------------

// From 0 to a top that is a whole number of steps, each step 1, 2 or 5 times a power of ten,
// about `steps` of them.
struct Axis {
  double top;
  double step;
};

[[nodiscard]] Axis niceAxis(double dataMax, double minTop, int steps);
// Labels of one axis share their number of decimals ("0.5", "1.0"), except the origin: "0".
[[nodiscard]] std::string tickLabel(double v, double step);

struct TimeScale {
  Axis axis;   // in the display unit
  double msPerUnit;
  const char* unit;

  [[nodiscard]] double x(double tMs) const {
    return kPlotLeft + std::clamp(tMs / msPerUnit / axis.top, 0.0, 1.0) * (kPlotRight - kPlotLeft);
  }
};

// Milliseconds for runs under a second, seconds from there.
[[nodiscard]] TimeScale timeScaleFor(double lastMs);

struct Panel {
  const char* id;
  const char* colour;
  double top;
  double bottom;
  Axis axis;
  std::string axisTitle;

  [[nodiscard]] double y(double v) const { return bottom - std::clamp(v / axis.top, 0.0, 1.0) * (bottom - top); }
};

[[nodiscard]] std::vector<Point> toPoints(const std::vector<Reading>& readings, const TimeScale& time,
                                          const Panel& panel);
// More points than the plot has pixel columns only make the file bigger: beyond two per
// column, keep each column's lowest and highest point, in time order, so spikes survive.
[[nodiscard]] std::vector<Point> thin(std::vector<Point> points);

}  // namespace pycell::cli::chart
