// The layout half of the usage chart: numbers and text as the chart writes them, the
// figures read from the samples, the axes and the mapping of readings to coordinates.
#include "pycell/cli/usage_chart_layout.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace pycell::cli::chart {

namespace {

using json = nlohmann::json;

// Readings are clamped here: far above anything real, and far enough below the largest
// double that no axis arithmetic overflows to inf.
constexpr double kMaxValue = 1e300;

}  // namespace

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

std::string readable(double v, int decimals) {
  if (!std::isfinite(v)) return "0";
  if (std::abs(v) < 1e9) return fixed(v, decimals);
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, 3);
  return ec == std::errc{} ? std::string(buf, end) : "0";
}

std::string coord(double v) {
  std::string s = fixed(std::clamp(v, -1e6, 1e6), 1);
  if (s.ends_with(".0")) s.resize(s.size() - 2);
  return s;
}

std::string duration(double ms) {
  if (ms < 1000) return readable(ms, 0) + " ms";
  return readable(ms / 1000, ms < 60000 ? 2 : 1) + " s";
}

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

namespace {

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

}  // namespace

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

namespace {

std::optional<double> finiteNumber(const json& object, const char* key) {
  if (!object.is_object()) return std::nullopt;
  auto it = object.find(key);
  if (it == object.end() || !it->is_number()) return std::nullopt;
  auto v = it->get<double>();
  if (!std::isfinite(v)) return std::nullopt;
  return v;
}

}  // namespace

std::optional<double> nonNegative(const json& object, const char* key) {
  auto v = finiteNumber(object, key);
  if (!v || *v < 0) return std::nullopt;
  return std::min(*v, kMaxValue);
}

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

double memoryCeiling(const std::vector<Sample>& samples, std::optional<double> reportedPeak) {
  double m = reportedPeak.value_or(0);
  for (const auto& s : samples) m = std::max(m, s.rssBytes);
  return m;
}

// ---- axes and mapping -------------------------------------------------------------------

Axis niceAxis(double dataMax, double minTop, int steps) {
  double span = std::max(dataMax, minTop);
  double raw = span / steps;
  double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double f = raw / magnitude;
  double step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * magnitude;
  return {std::ceil(span / step - 1e-9) * step, step};
}

std::string tickLabel(double v, double step) {
  if (v == 0) return "0";
  int decimals = step >= 1 ? 0 : std::min(6, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  return readable(v, decimals);
}

TimeScale timeScaleFor(double lastMs) {
  if (lastMs < 1000) return {niceAxis(lastMs, 100, 8), 1, "ms"};
  return {niceAxis(lastMs / 1000, 1, 8), 1000, "s"};
}

std::vector<Point> toPoints(const std::vector<Reading>& readings, const TimeScale& time, const Panel& panel) {
  std::vector<Point> out;
  out.reserve(readings.size());
  for (const auto& r : readings) out.push_back({time.x(r.tMs), panel.y(r.value)});
  return out;
}

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

}  // namespace pycell::cli::chart
