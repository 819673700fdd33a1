#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "pycell/cli/usage_chart.h"

using nlohmann::json;
using pycell::cli::renderUsageChart;

namespace {

// One sample every 50 ms for `count` samples: CPU at `cpuPercent` of a core, memory
// growing linearly from `startMiB` to `endMiB`.
json steadyRun(int count, double cpuPercent, double startMiB, double endMiB) {
  json samples = json::array();
  for (int i = 0; i < count; ++i) {
    double fraction = count > 1 ? static_cast<double>(i) / (count - 1) : 0;
    samples.push_back({{"tMs", i * 50},
                       {"cpuMs", static_cast<int64_t>(i * 50 * cpuPercent / 100)},
                       {"rssBytes", static_cast<int64_t>((startMiB + fraction * (endMiB - startMiB)) * 1048576)}});
  }
  return samples;
}

const json kUsage = {{"wallMs", 1234}, {"cpuUserMs", 1100}, {"cpuSysMs", 130}, {"peakMemoryBytes", 31457280}};

struct Point {
  double x;
  double y;
};

// The text of one panel: from its group's start to the next top-level group.
std::string panel(const std::string& svg, const std::string& id) {
  auto start = svg.find("<g id=\"" + id + "\"");
  if (start == std::string::npos) return "";
  auto end = svg.find("<g id=\"", start + 1);
  return svg.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

std::string attribute(const std::string& element, const std::string& name) {
  auto start = element.find(" " + name + "=\"");
  if (start == std::string::npos) return "";
  start += name.size() + 3;
  return element.substr(start, element.find('"', start) - start);
}

// The points of the panel's polyline (none when it has no polyline).
std::vector<Point> polyline(const std::string& svg, const std::string& id) {
  std::string text = panel(svg, id);
  auto start = text.find("<polyline");
  if (start == std::string::npos) return {};
  std::istringstream in(attribute(text.substr(start, text.find("/>", start) - start), "points"));
  std::vector<Point> points;
  Point p{};
  char comma = 0;
  while (in >> p.x >> comma >> p.y) points.push_back(p);
  return points;
}

bool contains(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

// Checks every chart with a real XML parser: well-formed, an SVG root with its viewBox, and
// every coordinate a finite number on the canvas.
const char* const kChecker = R"(import math, sys, xml.etree.ElementTree as ET
NS = '{http://www.w3.org/2000/svg}'
def on_canvas(x, y, where):
    assert math.isfinite(x) and math.isfinite(y) and 0 <= x <= 800 and 0 <= y <= 420, where
for path in sys.argv[1:]:
    root = ET.parse(path).getroot()
    assert root.tag == NS + 'svg', path
    assert root.get('viewBox') == '0 0 800 420', path
    assert root.find(NS + 'title') is not None, path
    for element in root.iter():
        for name, value in element.attrib.items():
            assert 'nan' not in value.lower() and 'inf' not in value.lower(), (path, name, value)
        for a, b in (('x', 'y'), ('x1', 'y1'), ('x2', 'y2'), ('cx', 'cy')):
            if element.get(a) is not None and not element.get(a).endswith('%'):
                on_canvas(float(element.get(a)), float(element.get(b)), (path, element.tag))
        for pair in (element.get('points') or '').split():
            x, y = pair.split(',')
            on_canvas(float(x), float(y), (path, element.tag))
)";

// Owns a directory of charts; removes it unless PYCELL_USAGE_CHART_DIR named it (set that
// to keep the charts and look at them in a browser).
struct ChartDirectory {
  std::filesystem::path path;
  bool keep = false;

  ChartDirectory() {
    if (const char* dir = std::getenv("PYCELL_USAGE_CHART_DIR")) {
      path = dir;
      keep = true;
    } else {
      path = std::filesystem::temp_directory_path() / ("pycell-usage-chart-" + std::to_string(::getpid()));
    }
    std::filesystem::create_directories(path);
  }
  ~ChartDirectory() {
    std::error_code ignored;
    if (!keep) std::filesystem::remove_all(path, ignored);
  }
  std::string write(const std::string& name, const std::string& content) const {
    auto file = path / name;
    std::ofstream(file, std::ios::binary) << content;
    return file.string();
  }
};

// Markup, control characters, a NUL, a stray byte, an overlong '/', an encoded surrogate, U+FFFE.
constexpr char kHostileTitle[] = "a<b>&\"c\"'\x01\x7f\t\n\xff\xC0\xAF\xED\xA0\x80\xEF\xBF\xBE\0z";

std::vector<std::pair<std::string, std::string>> sampleCharts() {
  double nan = std::numeric_limits<double>::quiet_NaN();
  double inf = std::numeric_limits<double>::infinity();
  json garbage = json::array({42, "x", nullptr, json::array({1, 2}), json::object(),
                              {{"tMs", "50"}, {"cpuMs", 1}, {"rssBytes", 1}},
                              {{"tMs", true}, {"cpuMs", 1}, {"rssBytes", 1}},
                              {{"tMs", nan}, {"cpuMs", 1}, {"rssBytes", 1}},
                              {{"tMs", 10}, {"cpuMs", inf}, {"rssBytes", 1}},
                              {{"tMs", -50}, {"cpuMs", 1}, {"rssBytes", 1}}});
  json huge = json::array({{{"tMs", 0}, {"cpuMs", 0}, {"rssBytes", std::numeric_limits<uint64_t>::max()}},
                           {{"tMs", 1e300}, {"cpuMs", 1.7e308}, {"rssBytes", 1.7e308}},
                           {{"tMs", 1.7e308}, {"cpuMs", 0}, {"rssBytes", -1.7e308}}});
  json jumbled = json::array({{{"tMs", 300}, {"cpuMs", 90}, {"rssBytes", 3 << 20}},
                              {{"tMs", 100}, {"cpuMs", 50}, {"rssBytes", 1 << 20}},
                              {{"tMs", 100}, {"cpuMs", 70}, {"rssBytes", 2 << 20}},
                              {{"tMs", 200}, {"cpuMs", 10}, {"rssBytes", -5}},
                              {{"tMs", 0}, {"cpuMs", -3}, {"rssBytes", 0}}});
  json zeros = json::array();
  for (int i = 0; i < 5; ++i) zeros.push_back({{"tMs", 0}, {"cpuMs", 0}, {"rssBytes", 0}});
  json tiny = json::array({{{"tMs", 0}, {"cpuMs", 0}, {"rssBytes", 1}}, {{"tMs", 1}, {"cpuMs", 0}, {"rssBytes", 3}}});
  return {
      {"typical.svg", renderUsageChart(steadyRun(25, 80, 12, 30), kUsage, "fib.py \xE2\x80\x94 ok")},
      {"threads.svg", renderUsageChart(steadyRun(60, 340, 40, 41), kUsage, "threads.py")},
      {"long.svg", renderUsageChart(steadyRun(5000, 95, 100, 3000), json::object(), "long.py")},
      {"empty.svg", renderUsageChart(json::array(), kUsage, "empty.py")},
      {"null.svg", renderUsageChart(nullptr, nullptr, "")},
      {"one.svg", renderUsageChart(steadyRun(1, 0, 7, 7), kUsage, "one.py")},
      {"zeros.svg", renderUsageChart(zeros, json::object(), "zeros")},
      {"tiny.svg", renderUsageChart(tiny, {{"wallMs", -1}, {"cpuUserMs", "x"}}, "tiny")},
      {"garbage.svg", renderUsageChart(garbage, json::array(), "garbage")},
      {"huge.svg", renderUsageChart(huge, {{"wallMs", 1e300}, {"peakMemoryBytes", 1.7e308}}, "huge")},
      {"jumbled.svg", renderUsageChart(jumbled, kUsage, "jumbled")},
      {"title.svg", renderUsageChart(steadyRun(3, 50, 1, 2), kUsage, std::string(kHostileTitle, sizeof kHostileTitle - 1))},
      {"long-title.svg", renderUsageChart(steadyRun(3, 50, 1, 2), kUsage, std::string(500, 'x') + "\xE2\x82\xAC")},
  };
}

}  // namespace

TEST_CASE("every chart, degenerate inputs included, is well-formed SVG with every coordinate on the canvas", "[chart]") {
  ChartDirectory dir;
  std::string command = std::string(PYCELL_PYTHON3) + " '" + dir.write("check.py", kChecker) + "'";
  for (const auto& [name, svg] : sampleCharts()) {
    CAPTURE(name);
    CHECK(svg.rfind("<?xml", 0) == 0);
    CHECK(contains(svg, "xmlns=\"http://www.w3.org/2000/svg\""));
    CHECK_FALSE(contains(svg, "nan"));
    CHECK_FALSE(contains(svg, "inf"));
    command += " '" + dir.write(name, svg) + "'";
  }
  CHECK(std::system(command.c_str()) == 0);
}

TEST_CASE("a typical run draws CPU and memory with one point per interval and per sample", "[chart]") {
  std::string svg = renderUsageChart(steadyRun(25, 80, 12, 30), kUsage, "fib.py");
  CHECK(polyline(svg, "cpu").size() == 24);
  CHECK(polyline(svg, "memory").size() == 25);
  CHECK(contains(panel(svg, "cpu"), "<polygon class=\"area\""));
  CHECK(contains(panel(svg, "memory"), "<polygon class=\"area\""));
  CHECK(contains(svg, "<g id=\"legend\""));
  CHECK(contains(svg, "CPU, % of one core"));
  CHECK(contains(svg, "Memory (RSS), MiB"));
}

TEST_CASE("axes carry units: percent, MiB, and seconds from one second on", "[chart]") {
  std::string svg = renderUsageChart(steadyRun(25, 80, 12, 30), kUsage, "fib.py");  // 0 to 1.2 s
  CHECK(contains(svg, ">CPU (%)</text>"));
  CHECK(contains(svg, ">Memory (MiB)</text>"));
  CHECK(contains(svg, ">Time since start (s)</text>"));
  CHECK(contains(panel(svg, "time-axis"), ">0.2</text>"));
  CHECK(contains(panel(svg, "cpu"), ">100</text>"));
  CHECK(contains(panel(svg, "memory"), ">30</text>"));
}

TEST_CASE("runs under a second are labelled in milliseconds at 1-2-5 steps", "[chart]") {
  std::string svg = renderUsageChart(steadyRun(10, 50, 1, 2), kUsage, "quick.py");  // 0 to 450 ms
  CHECK(contains(svg, ">Time since start (ms)</text>"));
  std::string axis = panel(svg, "time-axis");
  for (const char* label : {">0</text>", ">100</text>", ">200</text>", ">500</text>"}) CHECK(contains(axis, label));
  CHECK_FALSE(contains(axis, ">450</text>"));
}

TEST_CASE("small and large memory switch to KiB and GiB", "[chart]") {
  CHECK(contains(renderUsageChart(steadyRun(3, 50, 0.1, 0.5), json::object(), "t"), ">Memory (KiB)</text>"));
  CHECK(contains(renderUsageChart(steadyRun(3, 50, 1000, 6000), json::object(), "t"), ">Memory (GiB)</text>"));
}

TEST_CASE("growing memory draws a line that rises on screen", "[chart]") {
  auto points = polyline(renderUsageChart(steadyRun(20, 50, 10, 200), kUsage, "grow.py"), "memory");
  REQUIRE(points.size() == 20);
  CHECK(points.back().y < points.front().y);
  CHECK(points.back().x > points.front().x);
  for (size_t i = 1; i < points.size(); ++i) CHECK(points[i].y <= points[i - 1].y);
}

TEST_CASE("CPU utilisation is CPU time over wall time between samples", "[chart]") {
  json samples = json::array({{{"tMs", 0}, {"cpuMs", 0}, {"rssBytes", 1 << 20}},
                              {{"tMs", 100}, {"cpuMs", 50}, {"rssBytes", 1 << 20}},    // 50 %
                              {{"tMs", 200}, {"cpuMs", 150}, {"rssBytes", 1 << 20}},   // 100 %
                              {{"tMs", 300}, {"cpuMs", 150}, {"rssBytes", 1 << 20}}});  // 0 %
  auto points = polyline(renderUsageChart(samples, kUsage, "t"), "cpu");
  REQUIRE(points.size() == 3);
  double baseline = points[2].y;
  CHECK(points[1].y < points[0].y);
  CHECK((baseline - points[1].y) == Approx(2 * (baseline - points[0].y)).margin(0.2));
}

TEST_CASE("threads can use more than one core, marked by a reference line", "[chart]") {
  std::string svg = renderUsageChart(steadyRun(20, 340, 10, 11), kUsage, "threads.py");
  std::string cpu = panel(svg, "cpu");
  CHECK(contains(cpu, ">1 core</text>"));
  CHECK(contains(cpu, ">400</text>"));
  CHECK_FALSE(contains(renderUsageChart(steadyRun(20, 80, 10, 11), kUsage, "t"), ">1 core</text>"));
}

TEST_CASE("the subtitle states peak memory, total CPU and wall time", "[chart]") {
  std::string svg = renderUsageChart(steadyRun(25, 80, 12, 30), kUsage, "fib.py");
  CHECK(contains(svg, "Peak memory 30.0 MiB"));
  CHECK(contains(svg, "CPU 1.23 s (user 1.10 s + system 130 ms)"));
  CHECK(contains(svg, "Wall 1.23 s"));
  CHECK(contains(svg, "25 samples"));
  CHECK(contains(panel(svg, "memory"), ">peak 30.0 MiB</text>"));
}

TEST_CASE("without a usage summary the subtitle comes from the samples", "[chart]") {
  std::string svg = renderUsageChart(steadyRun(25, 80, 12, 30), json::object(), "fib.py");
  CHECK(contains(svg, "Peak memory 30.0 MiB"));
  CHECK(contains(svg, "CPU 960 ms"));
  CHECK(contains(svg, "Wall 1.20 s"));
}

TEST_CASE("the title is escaped for XML", "[chart]") {
  std::string svg = renderUsageChart(steadyRun(3, 50, 1, 2), kUsage, "<script>&\"'</script>");
  CHECK(contains(svg, "&lt;script&gt;&amp;&quot;&apos;&lt;/script&gt;"));
  CHECK_FALSE(contains(svg, "<script>"));
}

TEST_CASE("a long title is cut with an ellipsis", "[chart]") {
  std::string svg = renderUsageChart(steadyRun(3, 50, 1, 2), kUsage, std::string(500, 'x'));
  CHECK(contains(svg, std::string(67, 'x') + "\xE2\x80\xA6<"));
  CHECK_FALSE(contains(svg, std::string(68, 'x')));
}

TEST_CASE("no samples gives a message instead of panels", "[chart]") {
  for (const json& samples : {json::array(), json(nullptr), json("x"), json::array({1, 2})}) {
    std::string svg = renderUsageChart(samples, kUsage, "empty.py");
    CHECK(contains(svg, "No samples were recorded"));
    CHECK_FALSE(contains(svg, "<polyline"));
    CHECK(contains(svg, "0 samples"));
    CHECK(svg.ends_with("</svg>\n"));
  }
}

TEST_CASE("one sample draws a memory dot and says CPU needs two samples", "[chart]") {
  std::string svg = renderUsageChart(steadyRun(1, 0, 7, 7), kUsage, "one.py");
  CHECK(polyline(svg, "cpu").empty());
  CHECK(contains(panel(svg, "cpu"), "needs at least two samples"));
  CHECK(polyline(svg, "memory").size() == 1);
  CHECK(contains(panel(svg, "memory"), "<circle"));
}

TEST_CASE("entries that are not objects with numeric fields are skipped", "[chart]") {
  json samples = steadyRun(4, 50, 1, 2);
  samples.insert(samples.begin() + 1, json("garbage"));
  samples.push_back({{"tMs", "250"}, {"cpuMs", 1}, {"rssBytes", 1}});
  samples.push_back({{"tMs", 250}, {"cpuMs", 1}});
  samples.push_back({{"tMs", -1}, {"cpuMs", 1}, {"rssBytes", 1}});
  std::string svg = renderUsageChart(samples, kUsage, "t");
  CHECK(polyline(svg, "memory").size() == 4);
  CHECK(polyline(svg, "cpu").size() == 3);
}

TEST_CASE("samples out of order are drawn in time order", "[chart]") {
  json samples = steadyRun(6, 50, 1, 6);
  std::swap(samples[1], samples[4]);
  auto points = polyline(renderUsageChart(samples, kUsage, "t"), "memory");
  REQUIRE(points.size() == 6);
  for (size_t i = 1; i < points.size(); ++i) CHECK(points[i].x > points[i - 1].x);
}

TEST_CASE("thousands of samples are thinned to what the plot can show", "[chart]") {
  json samples = steadyRun(20000, 90, 100, 200);
  samples[10000]["rssBytes"] = 4000LL << 20;  // one spike must survive the thinning
  std::string svg = renderUsageChart(samples, kUsage, "long.py");
  auto points = polyline(svg, "memory");
  CHECK(points.size() <= 1400);
  CHECK(points.size() > 700);
  double top = points[0].y;
  for (const auto& p : points) top = std::min(top, p.y);
  CHECK(top < points.back().y - 50);
  CHECK(svg.size() < 200000);
}

TEST_CASE("the same input gives the same bytes", "[chart]") {
  json samples = steadyRun(40, 70, 5, 9);
  CHECK(renderUsageChart(samples, kUsage, "t") == renderUsageChart(samples, kUsage, "t"));
}
