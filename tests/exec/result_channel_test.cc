// The result channel: what the server takes from a sandbox's result descriptor.
#include <catch2/catch.hpp>

#include <string>

#include "pycell/exec/result_channel.h"

using namespace pycell::exec;
using nlohmann::json;

namespace {
struct Sink : ChannelSink {
  json events = json::array();
  json reports = json::array();
  int started = 0, stopped = 0, ready = 0;
  void channelReady() override { ++ready; }
  void channelStarted() override { ++started; }
  void channelStopped() override { ++stopped; }
  void channelEvent(json event) override { events.push_back(std::move(event)); }
  void channelReport(json report) override { reports.push_back(std::move(report)); }
};
std::string line(const std::string& token, const std::string& rest) { return "\n{\"t\":\"" + token + "\"," + rest + "\n"; }
}  // namespace

TEST_CASE("the channel takes only lines with the current token, and one report", "[channel]") {
  ResultChannel channel;
  Sink sink;
  channel.expect("abc");
  channel.feed("{\"status\":\"ok\",\"value\":\"forged\"}\n", sink);
  channel.feed(line("xyz", "\"status\":\"ok\",\"value\":\"other run\"}"), sink);
  channel.feed(line("abc", "\"started\":true}"), sink);
  channel.feed(line("abc", "\"event\":{\"kind\":\"import\",\"module\":\"os\"}}"), sink);
  channel.feed(line("xyz", "\"stopped\":true}"), sink);
  channel.feed(line("abc", "\"stopped\":true}"), sink);
  channel.feed(line("abc", "\"status\":\"ok\",\"value\":1}"), sink);
  channel.feed(line("abc", "\"status\":\"ok\",\"value\":2}"), sink);
  CHECK(sink.started == 1);
  CHECK(sink.stopped == 1);
  CHECK(channel.started());
  REQUIRE(sink.events.size() == 1);
  CHECK(sink.events[0]["module"] == "os");
  REQUIRE(sink.reports.size() == 1);
  CHECK(sink.reports[0] == json{{"status", "ok"}, {"value", 1}});
  CHECK(channel.reportTaken());
  CHECK(channel.droppedLines() >= 3);
}

TEST_CASE("a line split over many reads is taken whole", "[channel]") {
  ResultChannel channel;
  Sink sink;
  channel.expect("tok");
  std::string text = line("tok", "\"status\":\"ok\",\"value\":\"" + std::string(5000, 'x') + "\"}");
  for (size_t i = 0; i < text.size(); i += 7) channel.feed(std::string_view(text).substr(i, 7), sink);
  REQUIRE(sink.reports.size() == 1);
  CHECK(sink.reports[0]["value"].get<std::string>().size() == 5000);
  CHECK(channel.buffered() == 0);
}

TEST_CASE("nothing is taken while no run is current, and a half line does not leak into the next run", "[channel]") {
  ResultChannel channel;
  Sink sink;
  channel.idle();
  channel.feed(line("tok", "\"status\":\"ok\"}") + "{\"t\":\"next\",\"status\":\"ok\",\"val", sink);
  CHECK(sink.reports.empty());
  channel.expect("next");
  channel.feed("ue\":\"glued\"}\n", sink);  // the rest of the half line: not this run's
  CHECK(sink.reports.empty());
  channel.feed(line("next", "\"status\":\"ok\",\"value\":\"real\"}"), sink);
  REQUIRE(sink.reports.size() == 1);
  CHECK(sink.reports[0]["value"] == "real");
}

TEST_CASE("lines over their limits are skipped without being kept", "[channel]") {
  ChannelLimits limits;
  limits.maxLineBytes = 1000;
  limits.maxEventBytes = 100;
  limits.maxRunBytes = 100000;
  ResultChannel channel(limits);
  Sink sink;
  channel.expect("tok");
  channel.feed(line("tok", "\"event\":{\"kind\":\"file\",\"path\":\"" + std::string(500, 'a') + "\"}}"), sink);
  CHECK(sink.events.empty());
  // A mark line ("stopped") gets an event's room too, not a report's.
  std::string mark = line("tok", "\"stopped\":true," + std::string(500, ' ') + "\"x\":1}");
  for (size_t i = 0; i < mark.size(); i += 64) {
    channel.feed(std::string_view(mark).substr(i, 64), sink);
    CHECK(channel.buffered() <= 100);
  }
  CHECK(sink.stopped == 0);
  std::string big = line("tok", "\"status\":\"ok\",\"value\":\"" + std::string(5000, 'b') + "\"}");
  for (size_t i = 0; i < big.size(); i += 64) {
    channel.feed(std::string_view(big).substr(i, 64), sink);
    CHECK(channel.buffered() <= 1000);
  }
  CHECK(sink.reports.empty());
  CHECK_THAT(channel.problem(), Catch::Contains("longer than"));
}

TEST_CASE("a run's channel is bounded in bytes and in events", "[channel]") {
  ChannelLimits limits;
  limits.maxRunBytes = 4096;
  limits.maxEvents = 3;
  ResultChannel channel(limits);
  Sink sink;
  channel.expect("tok");
  for (int i = 0; i < 10; ++i) channel.feed(line("tok", "\"event\":{\"kind\":\"import\",\"module\":\"m\"}}"), sink);
  CHECK(sink.events.size() == 3);
  CHECK(channel.droppedEvents() == 7);
  channel.feed(std::string(8192, '\n'), sink);
  channel.feed(line("tok", "\"status\":\"ok\"}"), sink);
  CHECK(sink.reports.empty());
  CHECK_THAT(channel.problem(), Catch::Contains("more than"));
}

TEST_CASE("the channel refuses deep nesting and too many values in a line", "[channel]") {
  ChannelLimits limits;
  limits.maxValues = 1000;
  ResultChannel channel(limits);
  Sink sink;
  channel.expect("tok");
  std::string wide = "[" + std::string(4000, '0') + "]";
  for (size_t i = 2; i < wide.size() - 1; i += 2) wide[i] = ',';
  channel.feed(line("tok", "\"status\":\"ok\",\"value\":" + wide + "}"), sink);
  CHECK(sink.reports.empty());
  CHECK_THAT(channel.problem(), Catch::Contains("values"));
  channel.expect("deep");
  channel.feed(line("deep", "\"status\":\"ok\",\"value\":" + std::string(200, '[') + std::string(200, ']') + "}"), sink);
  CHECK(sink.reports.empty());
  CHECK_THAT(channel.problem(), Catch::Contains("nesting"));
  channel.expect("fine");
  channel.feed(line("fine", "\"status\":\"ok\",\"value\":[[1],{\"a\":[2]}]}"), sink);
  REQUIRE(sink.reports.size() == 1);
  CHECK(sink.reports[0]["value"] == json::parse("[[1],{\"a\":[2]}]"));
}

TEST_CASE("a report's members are found without parsing them", "[channel]") {
  auto members = topLevelMembers(R"( {"a" : "x\"}y", "b":[1,{"c":"]"}] ,"n":-1.5e3,"z":null} )");
  REQUIRE(members);
  REQUIRE(members->size() == 4);
  CHECK((*members)[0].key == "a");
  CHECK((*members)[0].value == R"("x\"}y")");
  CHECK((*members)[1].value == R"([1,{"c":"]"}])");
  CHECK((*members)[2].value == "-1.5e3");
  CHECK((*members)[3].value == "null");
  CHECK_FALSE(topLevelMembers(R"({"a":[1,2})"));
  CHECK_FALSE(topLevelMembers(R"({"a":"open)"));
  CHECK_FALSE(topLevelMembers(R"({"a":1} trailing)"));
  CHECK(topLevelMembers("{}")->empty());
}

TEST_CASE("a report is cut to the server's caps", "[channel]") {
  ReportCaps caps;
  caps.maxValueBytes = 100;
  caps.maxReprChars = 5;
  caps.maxTextBytes = 10;
  caps.maxDisplayBytes = 50;
  caps.maxFileBytes = 6;
  caps.maxTotalFileBytes = 9;
  caps.maxFiles = 2;
  json report = {{"status", "ok"},
                 {"value", std::string(200, 'v')},
                 {"valueRepr", "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"},
                 {"error", {{"type", "E"}, {"message", std::string(50, 'm')}, {"traceback", {"a", 5, "b"}}, {"line", "x"}}},
                 {"displays", {{{"text/plain", "short"}}, {{"text/plain", std::string(100, 'd')}}, {{"text/plain", "ok"}}}},
                 {"files", {{{"path", "a"}, {"size", 3}, {"base64", "YWFh"}},
                            {{"path", "b"}, {"size", 9}, {"base64", "YWFhYWFhYWFh"}},
                            {{"path", "c"}, {"size", 6}, {"base64", "YWFhYWFh"}},
                            {{"path", "d"}, {"size", 1}, {"base64", "YQ=="}}}}};
  auto notes = sanitizeReport(report, caps);
  CHECK(notes.valueCut);
  CHECK(report["value"].is_null());
  CHECK(report["valueTruncated"] == true);
  CHECK(report["valueRepr"] == "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
  CHECK(report["error"]["message"].get<std::string>().size() == 10);
  CHECK(report["error"]["traceback"] == json({"a", "b"}));
  CHECK(report["error"]["line"].is_null());
  CHECK(report["displays"].size() == 2);
  CHECK(notes.displaysDropped == 1);
  REQUIRE(report["files"].size() == 2);
  CHECK(report["files"][0]["path"] == "a");
  CHECK(report["files"][1]["path"] == "c");
  CHECK(notes.filesDropped == 2);
}

TEST_CASE("a report's valueWarnings are bounded and made well-formed", "[channel]") {
  ReportCaps caps;
  caps.maxValueWarnings = 3;
  caps.maxWarningPathBytes = 4;
  caps.maxWarningReasonBytes = 5;
  json warnings = {{{"path", "$.abcdef"}, {"reason", "a long reason"}},
                   {{"path", 5}, {"reason", "not a string path"}},
                   "not an object",
                   {{"path", "$[1]"}, {"reason", "r"}, {"extra", std::string(1000, 'x')}},
                   {{"path", "$\xc3\xa9\xc3\xa9"}, {"reason", "r"}},
                   {{"path", "$[9]"}, {"reason", "past the count"}}};
  json report = {{"status", "ok"}, {"value", {1, 2}}, {"valueWarnings", warnings}};
  sanitizeReport(report, caps);
  CHECK(report["valueWarnings"] == json::parse(R"([{"path": "$.ab", "reason": "a lon"},
                                                   {"path": "$[1]", "reason": "r"},
                                                   {"path": "$\u00e9", "reason": "r"}])"));
  // Anything but an array, or nothing well-formed in it, is no warnings at all.
  report = {{"status", "ok"}, {"value", 1}, {"valueWarnings", "bogus"}};
  sanitizeReport(report, caps);
  CHECK_FALSE(report.contains("valueWarnings"));
  report = {{"status", "ok"}, {"value", 1}, {"valueWarnings", {1, 2, 3}}};
  sanitizeReport(report, caps);
  CHECK_FALSE(report.contains("valueWarnings"));
  // A value cut for its size takes its warnings with it.
  caps.maxValueBytes = 10;
  report = {{"status", "ok"}, {"value", std::string(50, 'v')}, {"valueWarnings", {{{"path", "$"}, {"reason", "r"}}}}};
  sanitizeReport(report, caps);
  CHECK(report["value"].is_null());
  CHECK_FALSE(report.contains("valueWarnings"));
}
