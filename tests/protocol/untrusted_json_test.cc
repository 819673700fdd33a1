#include <catch2/catch.hpp>

#include <chrono>
#include <expected>

#include "pycell/protocol/dispatcher.h"
#include "pycell/protocol/untrusted_json.h"

using namespace pycell::protocol;

namespace {
// parseUntrustedInto as a value or why not, and with only the message.
std::expected<nlohmann::json, JsonRejection> parseUntrustedJson(std::string_view text, const JsonLimits& limits) {
  nlohmann::json value;
  if (auto why = parseUntrustedInto(text, limits, value)) return std::unexpected(std::move(*why));
  return value;
}

std::expected<nlohmann::json, std::string> parseUntrusted(std::string_view text, const JsonLimits& limits) {
  auto parsed = parseUntrustedJson(text, limits);
  if (!parsed) return std::unexpected(parsed.error().message);
  return std::move(*parsed);
}

std::string nested(size_t depth, char open = '[', char close = ']', std::string_view inner = "") {
  std::string s(depth, open);
  s += inner;
  s.append(depth, close);
  return s;
}
}  // namespace

TEST_CASE("nesting is measured exactly: at the limit is accepted, one more is refused", "[untrusted_json]") {
  CHECK(jsonNestingDepth("1") == 0);
  CHECK(jsonNestingDepth("[]") == 1);
  CHECK(jsonNestingDepth(R"({"a":[1,{"b":[]}],"c":{}})") == 4);
  CHECK(jsonNestingDepth("[[1],[2],[3]]") == 2);  // siblings do not add up

  JsonLimits limits{.maxDepth = 64, .maxBytes = 1 << 20};
  auto atLimit = parseUntrusted(nested(64), limits);
  REQUIRE(atLimit);
  CHECK(jsonDepth(*atLimit) == 64);
  auto over = parseUntrustedJson(nested(65), limits);
  REQUIRE_FALSE(over);
  CHECK(over.error().kind == JsonRejection::Kind::TooDeep);
  CHECK(over.error().message == "nesting deeper than 64 levels");

  // Objects count as arrays do, mixed too.
  std::string objects;
  for (int i = 0; i < 64; ++i) objects += i % 2 ? "[" : R"({"k":)";
  for (int i = 63; i >= 0; --i) objects += i % 2 ? "]" : "}";
  CHECK(parseUntrusted(objects, limits));
  CHECK_FALSE(parseUntrusted("[" + objects + "]", limits));
}

TEST_CASE("brackets inside strings do not count, escaped quotes included", "[untrusted_json]") {
  JsonLimits limits{.maxDepth = 2, .maxBytes = 1 << 20};
  // 100 brackets inside one string: depth 1.
  std::string text = R"(["[[[[)" + std::string(100, '[') + R"(\"[[[{{{\\"])";
  CHECK(jsonNestingDepth(text) == 1);
  auto parsed = parseUntrusted(text, limits);
  REQUIRE(parsed);
  CHECK((*parsed)[0].get<std::string>().starts_with("[[[["));

  // An escaped backslash before the closing quote ends the string: what follows counts.
  CHECK(jsonNestingDepth(R"(["a\\",[[1]]])") == 3);
  CHECK_FALSE(parseUntrusted(R"(["a\\",[[1]]])", limits));
  // An escaped quote does not end it: the brackets after it are still inside.
  CHECK(jsonNestingDepth(R"(["a\"[[[", 1])") == 1);
  // Keys are strings too.
  CHECK(jsonNestingDepth(R"({"[[[[": {"}}}": 1}})") == 2);
}

TEST_CASE("a 1,000,000-deep document is refused quickly, without a crash", "[untrusted_json]") {
  std::string deep = nested(1'000'000);
  auto start = std::chrono::steady_clock::now();
  auto parsed = parseUntrustedJson(deep, JsonLimits{.maxDepth = 64, .maxBytes = 64u << 20});
  auto elapsed = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(parsed);
  CHECK(parsed.error().kind == JsonRejection::Kind::TooDeep);
  CHECK(elapsed < std::chrono::milliseconds(500));
  // Unbalanced and objects alike; and without stopping early the count is exact.
  CHECK_FALSE(parseUntrusted(std::string(1'000'000, '{'), {}));
  CHECK(jsonNestingDepth(deep) == 1'000'000);
  CHECK(jsonNestingDepth(deep, 10) == 11);
}

TEST_CASE("size is checked before depth, and bad JSON is reported with where it broke", "[untrusted_json]") {
  auto big = parseUntrustedJson(std::string(2000, ' ') + "1", JsonLimits{.maxDepth = 64, .maxBytes = 1000});
  REQUIRE_FALSE(big);
  CHECK(big.error().kind == JsonRejection::Kind::TooLarge);
  CHECK(big.error().message == "message of 2001 bytes exceeds the limit of 1000 bytes");

  auto bad = parseUntrustedJson("{not json", {});
  REQUIRE_FALSE(bad);
  CHECK(bad.error().kind == JsonRejection::Kind::Invalid);
  CHECK(bad.error().message.starts_with("not valid JSON at line 1, column 3: syntax error"));
  // The complaint quotes what it read: never more than a few hundred bytes of it.
  auto unterminated = parseUntrustedJson("\"" + std::string(100000, 'x'), {});
  REQUIRE_FALSE(unterminated);
  CHECK(unterminated.error().message.size() < 400);

  CHECK_FALSE(parseUntrusted("", {}));
  CHECK_FALSE(parseUntrusted("[1,]", {}));
  CHECK(parseUntrusted("  {\"a\": \"b\"}  ", {}));
}

TEST_CASE("dumpSafe replaces invalid UTF-8 with U+FFFD and never throws", "[untrusted_json]") {
  nlohmann::json value = {{"ok", "héllo"}, {"bad", std::string("a\xff") + "b\xc3"}};
  CHECK_THROWS(value.dump());  // what it protects against
  std::string text;
  REQUIRE_NOTHROW(text = dumpSafe(value));
  CHECK(text == "{\"bad\":\"a\xef\xbf\xbd" "b\xef\xbf\xbd\",\"ok\":\"héllo\"}");
  // A bad key too.
  nlohmann::json keyed = {{std::string("k\xfe"), 1}};
  CHECK(dumpSafe(keyed) == "{\"k\xef\xbf\xbd\":1}");
}

TEST_CASE("dumpSafe writes a value nested deeper than the stack would allow, iteratively", "[untrusted_json]") {
  // Built by hand, not parsed: what a careless caller might hold.
  nlohmann::json deep = nlohmann::json::array();
  nlohmann::json* cursor = &deep;
  for (int i = 0; i < 200'000; ++i) {
    cursor->push_back(i % 2 ? nlohmann::json::array() : nlohmann::json::object());
    cursor = &cursor->back();
    if (cursor->is_object()) {
      (*cursor)["k"] = nlohmann::json::array();
      cursor = &(*cursor)["k"];
    }
  }
  cursor->push_back("end\xff");
  CHECK(jsonDepth(deep) > 200'000);
  std::string text = dumpSafe(deep);
  REQUIRE(text.size() > 400'000);
  CHECK(text.starts_with("[{\"k\":[[{\"k\":[[{\"k\":"));
  CHECK(text.find("\"end\xef\xbf\xbd\"") != std::string::npos);
  CHECK(jsonNestingDepth(text) == jsonDepth(deep));
  CHECK(approxJsonBytes(deep) > 200'000 * sizeof(nlohmann::json));

  // Below the threshold both writers agree with nlohmann's own output.
  nlohmann::json small = {{"a", {1, 2, {{"b", nullptr}}}}, {"c", "x"}, {"d", nlohmann::json::object()}};
  CHECK(dumpSafe(small) == small.dump());
  nlohmann::json wrapped = small;
  for (int i = 0; i < 300; ++i) wrapped = nlohmann::json::array({wrapped, nlohmann::json::array(), 1});
  std::string expected;
  {
    // The same text nlohmann writes (300 levels are fine for its recursive writer here).
    expected = wrapped.dump();
  }
  CHECK(dumpSafe(wrapped) == expected);
}

TEST_CASE("a UTF-8 string is cut on a character boundary", "[untrusted_json]") {
  std::string s = "aé日🐍";  // 1 + 2 + 3 + 4 bytes
  CHECK(utf8PrefixLength(s, 100) == s.size());
  CHECK(utf8PrefixLength(s, 1) == 1);
  CHECK(utf8PrefixLength(s, 2) == 1);  // inside é
  CHECK(utf8PrefixLength(s, 3) == 3);
  CHECK(utf8PrefixLength(s, 4) == 3);
  CHECK(utf8PrefixLength(s, 5) == 3);
  CHECK(utf8PrefixLength(s, 6) == 6);
  CHECK(utf8PrefixLength(s, 9) == 6);  // inside the snake
  CHECK(utf8PrefixLength(s, 0) == 0);
  CHECK(truncateUtf8(s, 8) == "aé日");
  CHECK(truncateUtf8("abc", 10) == "abc");
  // A string that itself ends inside a character: the whole length is cut back too.
  CHECK(utf8PrefixLength("ab\xe6\x97", 10) == 2);
  // Stray continuation bytes are not a character: a cut among them stays where it is.
  CHECK(utf8PrefixLength("\x80\x80\x80\x80\x80", 4) == 4);
}

TEST_CASE("the dispatcher answers a too-deep message with -32600 and the request's id", "[untrusted_json][dispatch]") {
  std::vector<json> sent;
  Dispatcher d([&](json m) { sent.push_back(std::move(m)); });
  d.onRequest("status", [](const json&, Reply r) { r.result("fine"); });
  d.setLimits({.maxDepth = 64, .maxBytes = 64u << 20});

  d.handleBody(R"({"jsonrpc":"2.0","id":7,"method":"status","params":)" + nested(200'000) + "}");
  // The id after the deep part is found as well; an "id" inside params is not the request's.
  d.handleBody(R"({"jsonrpc":"2.0","method":"status","params":{"id":99,"x":)" + nested(100) + R"(},"id":"late"})");
  d.handleBody("[" + nested(100) + "]");  // a batch: id null
  d.handleBody(R"({"jsonrpc":"2.0","id":8,"method":"status","params":)" + nested(63) + "}");  // 64 in all: fine
  REQUIRE(sent.size() == 4);
  CHECK(sent[0]["id"] == 7);
  CHECK(sent[0]["error"]["code"] == -32600);
  CHECK(sent[0]["error"]["message"] == "invalid request: nesting deeper than 64 levels");
  CHECK(sent[0]["error"]["data"]["maxDepth"] == 64);
  CHECK(sent[1]["id"] == "late");
  CHECK(sent[2]["id"].is_null());
  CHECK(sent[3]["result"] == "fine");
}

TEST_CASE("recoverId reads only the top-level id, escapes and all", "[untrusted_json][dispatch]") {
  CHECK(recoverId(R"({"params":{"id":1},"id":2})") == 2);
  CHECK(recoverId(R"({"method":"id","id":"a\"b"})") == "a\"b");
  CHECK(recoverId(R"({"code":"\"id\": 5","id":null})").is_null());
  CHECK(recoverId(R"([{"id":1}])").is_null());
  CHECK(recoverId(R"({"params":[[[[)").is_null());  // cut short before any id
  CHECK(recoverId(R"({"id":-4,"params":[[[[)") == -4);
}

TEST_CASE("a handler that throws anything is answered -32603 once, and a reply dropped while unwinding answers",
          "[untrusted_json][dispatch]") {
  std::vector<json> sent;
  Dispatcher d([&](json m) { sent.push_back(std::move(m)); });
  d.onRequest("odd", [](const json&, Reply) { throw 42; });
  d.onRequest("answersThenThrows", [](const json&, Reply r) {
    r.result(1);
    throw std::runtime_error("after");
  });
  d.handleBody(R"({"jsonrpc":"2.0","id":1,"method":"odd"})");
  d.handleBody(R"({"jsonrpc":"2.0","id":2,"method":"answersThenThrows"})");
  REQUIRE(sent.size() == 2);
  CHECK(sent[0]["error"]["code"] == -32603);
  CHECK(sent[1]["result"] == 1);

  // A callback (not the dispatcher) holds the last Reply and throws: it still answers.
  std::vector<json> late;
  try {
    Reply r(5, [&](json m) { late.push_back(std::move(m)); });
    throw std::runtime_error("in a callback");
  } catch (const std::exception&) {
  }
  REQUIRE(late.size() == 1);
  CHECK(late[0]["error"]["code"] == -32603);
  CHECK(late[0]["id"] == 5);
}

TEST_CASE("a batch of more than 1000 messages is refused whole", "[untrusted_json][dispatch]") {
  std::vector<json> sent;
  int ran = 0;
  Dispatcher d([&](json m) { sent.push_back(std::move(m)); });
  d.onRequest("status", [&](const json&, Reply r) {
    ++ran;
    r.result(1);
  });
  std::string batch = "[";
  for (int i = 0; i < 1001; ++i) batch += (i ? "," : "") + std::string(R"({"jsonrpc":"2.0","id":1,"method":"status"})");
  d.handleBody(batch + "]");
  REQUIRE(sent.size() == 1);
  CHECK(sent[0]["error"]["code"] == -32600);
  CHECK(sent[0]["error"]["data"]["maxBatch"] == 1000);
  CHECK(ran == 0);
  d.handleBody("[1,1]");  // a small batch is answered as ever: one array, an entry each
  REQUIRE(sent.size() == 2);
  CHECK(sent[1].size() == 2);
}
