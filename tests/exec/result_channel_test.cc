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
  int started = 0, ready = 0;
  void channelReady() override { ++ready; }
  void channelStarted() override { ++started; }
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
  channel.feed(line("abc", "\"status\":\"ok\",\"value\":1}"), sink);
  channel.feed(line("abc", "\"status\":\"ok\",\"value\":2}"), sink);
  CHECK(sink.started == 1);
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

TEST_CASE("deep nesting and too many values are refused by the parse", "[channel]") {
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  std::string why;
  CHECK_FALSE(parseLimited(deep, 128, 1u << 20, &why));
  CHECK_THAT(why, Catch::Contains("nesting"));
  std::string wide = "[" + std::string(20000, '0') + "]";
  for (size_t i = 2; i < wide.size() - 1; i += 2) wide[i] = ',';
  CHECK_FALSE(parseLimited(wide, 128, 1000, &why));
  CHECK_THAT(why, Catch::Contains("values"));
  CHECK(parseLimited("[[1],{\"a\":[2]}]", 3, 100) == json::parse("[[1],{\"a\":[2]}]"));
  CHECK_FALSE(parseLimited("[[[1]]]", 3, 100));
  CHECK_FALSE(parseLimited("{\"a\":\"\xff\"}", 8, 100));  // invalid UTF-8 never becomes a string
}

TEST_CASE("utf8Prefix never ends inside a character", "[channel]") {
  std::string s = std::string(994, 'a') + "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9";  // 1002 bytes
  std::string_view cut = utf8Prefix(s, 1000);
  CHECK(cut.size() == 1000);
  CHECK(utf8Prefix(s, 999).size() == 998);
  CHECK(utf8Prefix("\xf0\x9f\x98\x80x", 3).empty());
  CHECK(utf8Prefix("abc", 10) == "abc");
  CHECK(json(std::string(utf8Prefix(s, 999))).dump().size() > 0);
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
