#include "pycell/cli/usage_chart.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>
#include <vector>

namespace pycell::cli {

namespace {

using json = nlohmann::json;

// Layout, in SVG user units (pixels at 100%). Two panels share the time axis: CPU on top,
// memory below, the time labels under the memory panel only.
constexpr double kWidth = 800;
constexpr double kHeight = 420;
constexpr double kPlotLeft = 76;
constexpr double kPlotRight = 776;
constexpr double kTextLeft = 24;
constexpr double kTitleY = 30;
constexpr double kSubtitleY = 50;
constexpr double kLegendY = 70;
constexpr double kCpuTop = 86;
constexpr double kCpuBottom = 214;
constexpr double kMemoryTop = 238;
constexpr double kMemoryBottom = 366;
constexpr double kTimeLabelY = 382;
constexpr double kTimeTitleY = 406;
constexpr double kYTitleX = 22;
constexpr size_t kTitleMaxChars = 68;

// Okabe-Ito blue and orange: told apart with every common colour-vision deficiency.
constexpr const char* kCpuColour = "#0072B2";
constexpr const char* kMemoryColour = "#E69F00";
constexpr const char* kInk = "#1f2328";
constexpr const char* kMutedInk = "#59636e";
constexpr const char* kGridColour = "#e6e8eb";
constexpr const char* kAxisColour = "#8c959f";

// Readings are clamped here: far above anything real, and far enough below the largest
// double that no axis arithmetic overflows to inf.
constexpr double kMaxValue = 1e300;

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

std::string fixed(double v, int decimals) {
  if (!std::isfinite(v)) return "0";
  char buf[420];  // 1e300 in fixed notation is 301 digits
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, decimals);
  if (ec != std::errc{}) return "0";
  std::string s(buf, end);
  if (s[0] == '-' && s.find_first_not_of("-0.") == std::string::npos) s.erase(0, 1);  // "-0.0"
  return s;
}

// Figures a person reads: fixed notation up to a billion, three significant digits beyond.
std::string readable(double v, int decimals) {
  if (!std::isfinite(v)) return "0";
  if (std::abs(v) < 1e9) return fixed(v, decimals);
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, 3);
  return ec == std::errc{} ? std::string(buf, end) : "0";
}

// A coordinate: one decimal, a trailing ".0" dropped.
std::string coord(double v) {
  std::string s = fixed(std::clamp(v, -1e6, 1e6), 1);
  if (s.ends_with(".0")) s.resize(s.size() - 2);
  return s;
}

std::string duration(double ms) {
  if (ms < 1000) return readable(ms, 0) + " ms";
  return readable(ms / 1000, ms < 60000 ? 2 : 1) + " s";
}

struct MemoryUnit {
  const char* name;
  double bytes;
};

// The largest unit in which the value is at least 1 (KiB at least; MiB for nothing at all).
MemoryUnit memoryUnitFor(double bytes) {
  static constexpr MemoryUnit kUnits[] = {
      {"TiB", 1099511627776.0}, {"GiB", 1073741824.0}, {"MiB", 1048576.0}, {"KiB", 1024.0}};
  if (bytes <= 0) return kUnits[2];
  for (const auto& unit : kUnits) {
    if (bytes >= unit.bytes) return unit;
  }
  return kUnits[3];
}

std::string memoryText(double bytes) {
  MemoryUnit unit = memoryUnitFor(bytes);
  return readable(bytes / unit.bytes, 1) + " " + unit.name;
}

// ---- text as XML ------------------------------------------------------------------------

// Decodes the UTF-8 sequence at in[i] and moves i past it. An invalid sequence (bad lead or
// continuation byte, overlong, surrogate, beyond U+10FFFF) gives U+FFFD.
char32_t nextCodePoint(std::string_view in, size_t& i) {
  static constexpr char32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
  auto lead = static_cast<unsigned char>(in[i]);
  size_t length = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 0;
  if (length == 0 || i + length > in.size()) {
    ++i;
    return 0xFFFD;
  }
  char32_t c = length == 1 ? lead : lead & (0x7Fu >> length);
  for (size_t k = 1; k < length; ++k) {
    auto next = static_cast<unsigned char>(in[i + k]);
    if ((next & 0xC0) != 0x80) {
      ++i;
      return 0xFFFD;
    }
    c = (c << 6) | (next & 0x3F);
  }
  i += length;
  if (c < kSmallest[length] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0xFFFD;
  return c;
}

void appendUtf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// Any bytes as one line of XML character data: markup characters escaped; tabs and line
// breaks as spaces; invalid UTF-8 and what XML 1.0 forbids or a reader cannot see (control
// characters, U+FFFE, U+FFFF) as U+FFFD; cut to maxChars characters with an ellipsis.
std::string xmlText(std::string_view in, size_t maxChars) {
  std::string out;
  size_t count = 0;
  for (size_t i = 0; i < in.size();) {
    char32_t c = nextCodePoint(in, i);
    if (++count == maxChars && i < in.size()) {
      out += "\xE2\x80\xA6";  // U+2026 HORIZONTAL ELLIPSIS
      break;
    }
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
    if (c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0xFFFE || c == 0xFFFF) c = 0xFFFD;
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: appendUtf8(out, c);
    }
  }
  return out;
}

// ---- the data ---------------------------------------------------------------------------

std::optional<double> finiteNumber(const json& object, const char* key) {
  if (!object.is_object()) return std::nullopt;
  auto it = object.find(key);
  if (it == object.end() || !it->is_number()) return std::nullopt;
  auto v = it->get<double>();
  if (!std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<double> nonNegative(const json& object, const char* key) {
  auto v = finiteNumber(object, key);
  if (!v || *v < 0) return std::nullopt;
  return std::min(*v, kMaxValue);
}

// The usable samples, in time order (a stable sort: equal times keep their given order).
std::vector<Sample> parseSamples(const json& samples) {
  std::vector<Sample> out;
  if (!samples.is_array()) return out;
  for (const auto& s : samples) {
    auto t = nonNegative(s, "tMs");
    auto cpu = finiteNumber(s, "cpuMs");
    auto rss = finiteNumber(s, "rssBytes");
    if (!t || !cpu || !rss) continue;
    out.push_back({*t, std::clamp(*cpu, 0.0, kMaxValue), std::clamp(*rss, 0.0, kMaxValue)});
  }
  std::stable_sort(out.begin(), out.end(), [](const Sample& a, const Sample& b) { return a.tMs < b.tMs; });
  return out;
}

// Percent of one core over each interval between samples, placed at the interval's end.
// Samples at the same instant count as one reading; a cumulative counter that goes backwards
// (a garbage sample) counts as no CPU used and becomes the new baseline.
std::vector<Reading> cpuUtilisation(const std::vector<Sample>& samples) {
  std::vector<Reading> out;
  if (samples.empty()) return out;
  const Sample* previous = &samples[0];
  for (size_t i = 1; i < samples.size(); ++i) {
    double dt = samples[i].tMs - previous->tMs;
    if (dt <= 0) continue;
    double used = std::max(0.0, samples[i].cpuMs - previous->cpuMs);
    out.push_back({samples[i].tMs, std::min(used / dt * 100, kMaxValue)});
    previous = &samples[i];
  }
  return out;
}

double maxValue(const std::vector<Reading>& readings) {
  double m = 0;
  for (const auto& r : readings) m = std::max(m, r.value);
  return m;
}

// ---- axes and mapping -------------------------------------------------------------------

// From 0 to a top that is a whole number of steps, each step 1, 2 or 5 times a power of ten,
// about `steps` of them.
struct Axis {
  double top;
  double step;
};

Axis niceAxis(double dataMax, double minTop, int steps) {
  double span = std::max(dataMax, minTop);
  double raw = span / steps;
  double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double f = raw / magnitude;
  double step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * magnitude;
  return {std::ceil(span / step - 1e-9) * step, step};
}

// Labels of one axis share their number of decimals ("0.5", "1.0"), except the origin: "0".
std::string tickLabel(double v, double step) {
  if (v == 0) return "0";
  int decimals = step >= 1 ? 0 : std::min(6, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  return readable(v, decimals);
}

struct TimeScale {
  Axis axis;   // in the display unit
  double msPerUnit;
  const char* unit;

  double x(double tMs) const {
    return kPlotLeft + std::clamp(tMs / msPerUnit / axis.top, 0.0, 1.0) * (kPlotRight - kPlotLeft);
  }
};

// Milliseconds for runs under a second, seconds from there.
TimeScale timeScaleFor(double lastMs) {
  if (lastMs < 1000) return {niceAxis(lastMs, 100, 8), 1, "ms"};
  return {niceAxis(lastMs / 1000, 1, 8), 1000, "s"};
}

struct Panel {
  const char* id;
  const char* colour;
  double top;
  double bottom;
  Axis axis;
  std::string axisTitle;

  double y(double v) const { return bottom - std::clamp(v / axis.top, 0.0, 1.0) * (bottom - top); }
};

std::vector<Point> toPoints(const std::vector<Reading>& readings, const TimeScale& time, const Panel& panel) {
  std::vector<Point> out;
  out.reserve(readings.size());
  for (const auto& r : readings) out.push_back({time.x(r.tMs), panel.y(r.value)});
  return out;
}

// More points than the plot has pixel columns only make the file bigger: beyond two per
// column, keep each column's lowest and highest point, in time order, so spikes survive.
std::vector<Point> thin(std::vector<Point> points) {
  constexpr auto kMaxPoints = static_cast<size_t>(2 * (kPlotRight - kPlotLeft));
  if (points.size() <= kMaxPoints) return points;
  std::vector<Point> out;
  for (size_t i = 0; i < points.size();) {
    double column = std::floor(points[i].x);
    size_t high = i, low = i, j = i;
    for (; j < points.size() && std::floor(points[j].x) == column; ++j) {
      if (points[j].y < points[high].y) high = j;  // screen y grows downwards
      if (points[j].y > points[low].y) low = j;
    }
    out.push_back(points[std::min(high, low)]);
    if (high != low) out.push_back(points[std::max(high, low)]);
    i = j;
  }
  return out;
}

// ---- drawing ----------------------------------------------------------------------------

std::string pointList(const std::vector<Point>& points) {
  std::string s;
  for (const auto& p : points) s += (s.empty() ? "" : " ") + coord(p.x) + "," + coord(p.y);
  return s;
}

void line(std::string& svg, double x1, double y1, double x2, double y2, std::string_view extra = "") {
  svg += "<line x1=\"" + coord(x1) + "\" y1=\"" + coord(y1) + "\" x2=\"" + coord(x2) + "\" y2=\"" + coord(y2) +
         "\"" + std::string(extra) + "/>\n";
}

void text(std::string& svg, double x, double y, std::string_view attributes, std::string_view content) {
  svg += "<text x=\"" + coord(x) + "\" y=\"" + coord(y) + "\"" + std::string(attributes) + ">" +
         std::string(content) + "</text>\n";
}

// Light grid lines at every tick of both axes, value labels on the left, the axis title
// turned along the left edge, and the baseline.
void drawFrame(std::string& svg, const Panel& panel, const TimeScale& time) {
  svg += "<g class=\"grid\" stroke=\"" + std::string(kGridColour) + "\" stroke-width=\"1\" shape-rendering=\"crispEdges\">\n";
  for (double k = 1; k * time.axis.step <= time.axis.top * (1 + 1e-9); ++k) {
    double x = time.x(k * time.axis.step * time.msPerUnit);
    line(svg, x, panel.top, x, panel.bottom);
  }
  for (double k = 1; k * panel.axis.step <= panel.axis.top * (1 + 1e-9); ++k) {
    line(svg, kPlotLeft, panel.y(k * panel.axis.step), kPlotRight, panel.y(k * panel.axis.step));
  }
  svg += "</g>\n<g class=\"y-labels\" font-size=\"11\" fill=\"" + std::string(kMutedInk) + "\" text-anchor=\"end\">\n";
  for (double k = 0; k * panel.axis.step <= panel.axis.top * (1 + 1e-9); ++k) {
    text(svg, kPlotLeft - 8, panel.y(k * panel.axis.step) + 4, "", tickLabel(k * panel.axis.step, panel.axis.step));
  }
  svg += "</g>\n";
  double middle = (panel.top + panel.bottom) / 2;
  svg += "<text class=\"axis-title\" transform=\"translate(" + coord(kYTitleX) + "," + coord(middle) +
         ") rotate(-90)\" text-anchor=\"middle\" font-size=\"12\" fill=\"" + kInk + "\">" + panel.axisTitle +
         "</text>\n";
  line(svg, kPlotLeft, panel.bottom, kPlotRight, panel.bottom,
       " stroke=\"" + std::string(kAxisColour) + "\" stroke-width=\"1\" shape-rendering=\"crispEdges\"");
}

// A dashed horizontal line with a label at its right end (one core; the reported peak).
struct Reference {
  double value;
  std::string label;
};

void drawReference(std::string& svg, const Panel& panel, const Reference& reference) {
  double y = panel.y(reference.value);
  line(svg, kPlotLeft, y, kPlotRight, y,
       " class=\"reference\" stroke=\"" + std::string(kAxisColour) + "\" stroke-width=\"1\" stroke-dasharray=\"4 3\"");
  text(svg, kPlotRight - 4, y - 4,
       " text-anchor=\"end\" font-size=\"11\" fill=\"" + std::string(kMutedInk) +
           "\" stroke=\"#ffffff\" stroke-width=\"3\" paint-order=\"stroke\"",
       reference.label);
}

// The series: a light area down to the baseline under a solid line; a lone point as a dot.
void drawSeries(std::string& svg, const Panel& panel, const std::vector<Point>& points) {
  if (points.empty()) {
    text(svg, (kPlotLeft + kPlotRight) / 2, (panel.top + panel.bottom) / 2 + 4,
         " class=\"note\" text-anchor=\"middle\" font-size=\"12\" fill=\"" + std::string(kMutedInk) + "\"",
         "needs at least two samples");
    return;
  }
  std::string list = pointList(points);
  std::string colour = panel.colour;
  svg += "<polygon class=\"area\" fill=\"" + colour + "\" fill-opacity=\"0.15\" stroke=\"none\" points=\"" + list +
         " " + coord(points.back().x) + "," + coord(panel.bottom) + " " + coord(points.front().x) + "," +
         coord(panel.bottom) + "\"/>\n";
  svg += "<polyline class=\"line\" fill=\"none\" stroke=\"" + colour +
         "\" stroke-width=\"2\" stroke-linejoin=\"round\" stroke-linecap=\"round\" points=\"" + list + "\"/>\n";
  if (points.size() == 1) {
    svg += "<circle cx=\"" + coord(points[0].x) + "\" cy=\"" + coord(points[0].y) + "\" r=\"3\" fill=\"" + colour +
           "\"/>\n";
  }
}

void drawPanel(std::string& svg, const Panel& panel, const TimeScale& time, const std::vector<Reading>& readings,
               const std::optional<Reference>& reference) {
  svg += "<g id=\"" + std::string(panel.id) + "\" class=\"panel " + panel.id + "\">\n";
  drawFrame(svg, panel, time);
  if (reference) drawReference(svg, panel, *reference);
  drawSeries(svg, panel, thin(toPoints(readings, time, panel)));
  svg += "</g>\n";
}

void drawTimeAxis(std::string& svg, const TimeScale& time) {
  svg += "<g id=\"time-axis\" font-size=\"11\" fill=\"" + std::string(kMutedInk) + "\" text-anchor=\"middle\">\n";
  for (double k = 0; k * time.axis.step <= time.axis.top * (1 + 1e-9); ++k) {
    double x = time.x(k * time.axis.step * time.msPerUnit);
    line(svg, x, kMemoryBottom, x, kMemoryBottom + 4, " stroke=\"" + std::string(kAxisColour) + "\"");
    text(svg, x, kTimeLabelY, "", tickLabel(k * time.axis.step, time.axis.step));
  }
  text(svg, (kPlotLeft + kPlotRight) / 2, kTimeTitleY, " class=\"axis-title\" font-size=\"12\" fill=\"" + std::string(kInk) + "\"",
       std::string("Time since start (") + time.unit + ")");
  svg += "</g>\n";
}

void drawLegend(std::string& svg, const char* memoryUnit) {
  struct Item {
    const char* colour;
    std::string label;
  };
  const Item items[] = {{kCpuColour, "CPU, % of one core"}, {kMemoryColour, std::string("Memory (RSS), ") + memoryUnit}};
  svg += "<g id=\"legend\" font-size=\"12\" fill=\"" + std::string(kInk) + "\">\n";
  double x = kPlotLeft;
  for (const auto& item : items) {
    line(svg, x, kLegendY - 4, x + 18, kLegendY - 4,
         " stroke=\"" + std::string(item.colour) + "\" stroke-width=\"3\" stroke-linecap=\"round\"");
    text(svg, x + 24, kLegendY, "", item.label);
    x += 180;
  }
  svg += "</g>\n";
}

// "Peak memory 41.2 MiB · CPU 1.23 s (user 1.10 s + system 0.13 s) · Wall 1.34 s · 27 samples",
// from the usage summary where it has the figure, from the samples otherwise.
std::string subtitle(const std::vector<Sample>& samples, const json& usage) {
  double sampledPeak = 0, sampledCpu = 0;
  for (const auto& s : samples) {
    sampledPeak = std::max(sampledPeak, s.rssBytes);
    sampledCpu = std::max(sampledCpu, s.cpuMs);
  }
  std::vector<std::string> parts;
  auto peak = nonNegative(usage, "peakMemoryBytes");
  if (peak || !samples.empty()) parts.push_back("Peak memory " + memoryText(peak.value_or(sampledPeak)));
  auto user = nonNegative(usage, "cpuUserMs");
  auto system = nonNegative(usage, "cpuSysMs");
  if (user && system) {
    parts.push_back("CPU " + duration(*user + *system) + " (user " + duration(*user) + " + system " + duration(*system) + ")");
  } else if (!samples.empty()) {
    parts.push_back("CPU " + duration(sampledCpu));
  }
  auto wall = nonNegative(usage, "wallMs");
  if (wall) {
    parts.push_back("Wall " + duration(*wall));
  } else if (!samples.empty()) {
    parts.push_back("Wall " + duration(samples.back().tMs));
  }
  parts.push_back(std::to_string(samples.size()) + (samples.size() == 1 ? " sample" : " samples"));
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : " &#183; ") + p;
  return out;
}

void drawNoSamples(std::string& svg) {
  svg += "<rect class=\"empty\" x=\"" + coord(kTextLeft) + "\" y=\"" + coord(kCpuTop) + "\" width=\"" +
         coord(kPlotRight - kTextLeft) + "\" height=\"" + coord(kMemoryBottom - kCpuTop) +
         "\" rx=\"6\" fill=\"#f6f8fa\" stroke=\"" + kGridColour + "\"/>\n";
  text(svg, (kTextLeft + kPlotRight) / 2, (kCpuTop + kMemoryBottom) / 2 + 5,
       " class=\"note\" text-anchor=\"middle\" font-size=\"15\" fill=\"" + std::string(kMutedInk) + "\"",
       "No samples were recorded");
}

// Memory peak the axis must reach: the reported one, or a sampled reading above it.
double memoryCeiling(const std::vector<Sample>& samples, std::optional<double> reportedPeak) {
  double m = reportedPeak.value_or(0);
  for (const auto& s : samples) m = std::max(m, s.rssBytes);
  return m;
}

void drawCpuPanel(std::string& svg, const std::vector<Sample>& samples, const TimeScale& time) {
  std::vector<Reading> cpu = cpuUtilisation(samples);
  Panel panel{"cpu", kCpuColour, kCpuTop, kCpuBottom, niceAxis(maxValue(cpu), 100, 4), "CPU (%)"};
  std::optional<Reference> oneCore;
  if (panel.axis.top > 100) oneCore = Reference{100, "1 core"};
  drawPanel(svg, panel, time, cpu, oneCore);
}

void drawMemoryPanel(std::string& svg, const std::vector<Sample>& samples, std::optional<double> reportedPeak,
                     const TimeScale& time) {
  double ceiling = memoryCeiling(samples, reportedPeak);
  MemoryUnit unit = memoryUnitFor(ceiling);
  std::vector<Reading> memory;
  for (const auto& s : samples) memory.push_back({s.tMs, s.rssBytes / unit.bytes});
  Panel panel{"memory", kMemoryColour, kMemoryTop, kMemoryBottom, niceAxis(ceiling / unit.bytes, 1, 4),
              std::string("Memory (") + unit.name + ")"};
  // A reported peak below a sampled reading would contradict the line: it is not drawn.
  std::optional<Reference> peak;
  if (reportedPeak && *reportedPeak > 0 && *reportedPeak >= ceiling) {
    peak = Reference{*reportedPeak / unit.bytes, "peak " + memoryText(*reportedPeak)};
  }
  drawPanel(svg, panel, time, memory, peak);
}

// The root element, the accessible title, a white background, then the visible title and
// subtitle.
std::string documentStart(const std::string& heading, const std::string& summary) {
  std::string svg = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  svg += "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" + coord(kWidth) + "\" height=\"" +
         coord(kHeight) + "\" viewBox=\"0 0 " + coord(kWidth) + " " + coord(kHeight) +
         "\" font-family=\"sans-serif\">\n";
  svg += "<title>" + heading + "</title>\n<desc>CPU utilisation and resident memory over time</desc>\n";
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
  text(svg, kTextLeft, kTitleY, " class=\"title\" font-size=\"17\" font-weight=\"bold\" fill=\"" + std::string(kInk) + "\"",
       heading);
  text(svg, kTextLeft, kSubtitleY, " class=\"subtitle\" font-size=\"12\" fill=\"" + std::string(kMutedInk) + "\"",
       summary);
  return svg;
}

}  // namespace

std::string renderUsageChart(const json& samples, const json& usage, std::string_view title) {
  std::vector<Sample> parsed = parseSamples(samples);
  std::string heading = xmlText(title, kTitleMaxChars);
  if (heading.find_first_not_of(' ') == std::string::npos) heading = "Resource usage";
  std::string svg = documentStart(heading, subtitle(parsed, usage));
  if (parsed.empty()) {
    drawNoSamples(svg);
    return svg + "</svg>\n";
  }
  auto reportedPeak = nonNegative(usage, "peakMemoryBytes");
  TimeScale time = timeScaleFor(parsed.back().tMs);
  drawLegend(svg, memoryUnitFor(memoryCeiling(parsed, reportedPeak)).name);
  drawCpuPanel(svg, parsed, time);
  drawMemoryPanel(svg, parsed, reportedPeak, time);
  drawTimeAxis(svg, time);
  return svg + "</svg>\n";
}

}  // namespace pycell::cli
