// The drawing half of the usage chart: the SVG document, its panels, axes, legend and
// titles, placed by the layout half (usage_chart_layout.h).
#include "pycell/cli/usage_chart.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "pycell/cli/usage_chart_layout.h"

namespace pycell::cli {

namespace {

using json = nlohmann::json;
using namespace chart;  // this file draws what the layout half places

// Okabe-Ito blue and orange: told apart with every common colour-vision deficiency.
constexpr const char* kCpuColour = "#0072B2";
constexpr const char* kMemoryColour = "#E69F00";
constexpr const char* kInk = "#1f2328";
constexpr const char* kMutedInk = "#59636e";
constexpr const char* kGridColour = "#e6e8eb";
constexpr const char* kAxisColour = "#8c959f";

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
