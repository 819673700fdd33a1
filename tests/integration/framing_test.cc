// Transport and dispatch as a client sees them over a real pipe: framing detection, frames
// split or coalesced by the pipe, bad input that must not stop the server, error codes.
#include <catch2/catch.hpp>

#include <thread>

#include "server_process.h"

using namespace pycell::testing;
using namespace std::chrono_literals;

namespace {

Framing anyFraming() { return GENERATE(Framing::kNdjson, Framing::kLsp); }

Json statusRequest(int id) { return {{"jsonrpc", "2.0"}, {"id", id}, {"method", "status"}}; }

int errorCode(const Json& response) {
  INFO("response: " << brief(response));
  REQUIRE(response.contains("error"));
  return response["error"].value("code", 0);
}

void requireHealthy(ServerProcess& server) {
  CHECK(server.call("status").contains("result"));
  CHECK(executeCode(server, "print('ok')")["stdout"] == "ok\n");
}

}  // namespace

TEST_CASE("auto framing recognises NDJSON and LSP from the first byte", "[framing]") {
  Framing framing = anyFraming();
  INFO("client framing: " << framingName(framing));
  ServerProcess server({"serve"}, framing);
  if (framing == Framing::kLsp) server.initialize();
  requireHealthy(server);
  CHECK(server.malformedOutput().empty());
}

TEST_CASE("frames split across writes and several frames in one write are all understood",
          "[framing]") {
  Framing framing = anyFraming();
  INFO("framing: " << framingName(framing));
  auto server = startServer(framing);

  std::string first = frameMessage(framing, statusRequest(101).dump());
  std::string second = frameMessage(framing, statusRequest(102).dump());
  std::string third = frameMessage(framing, statusRequest(103).dump());
  server->sendRaw(first.substr(0, 7));
  std::this_thread::sleep_for(100ms);
  server->sendRaw(first.substr(7) + second + third.substr(0, third.size() - 2));
  std::this_thread::sleep_for(100ms);
  server->sendRaw(third.substr(third.size() - 2));

  for (int id : {101, 102, 103}) {
    auto response = server->waitResponse(Json(id), kReplyTimeout);
    INFO("id " << id << ": " << server->describe());
    REQUIRE(response);
    CHECK(response->contains("result"));
  }
}

TEST_CASE("LSP headers other than Content-Length are accepted and ignored", "[framing]") {
  auto server = startServer(Framing::kLsp);
  std::string body = statusRequest(7).dump();
  server->sendRaw("Content-Length: " + std::to_string(body.size()) +
                  "\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n" + body);
  auto response = server->waitResponse(Json(7), kReplyTimeout);
  INFO(server->describe());
  REQUIRE(response);
  CHECK(response->contains("result"));
}

TEST_CASE("bad JSON gets -32700 with a null id and the server goes on", "[framing]") {
  Framing framing = anyFraming();
  INFO("framing: " << framingName(framing));
  auto server = startServer(framing);

  std::string bad = GENERATE(std::string(R"({"jsonrpc": "2.0", "id": 5, "method": )"),
                             std::string("this is not json"), std::string("{\"a\": \"\xff\xfe\"}"));
  INFO("sent: " << bad);
  size_t before = server->messages().size();
  server->sendRaw(frameMessage(framing, bad));
  auto response = server->waitMessage(
      [](const Json& m) { return m.is_object() && m.contains("error") && m.contains("id"); },
      kReplyTimeout, before);
  INFO(server->describe());
  REQUIRE(response);
  CHECK((*response)["id"].is_null());
  CHECK(errorCode(*response) == -32700);
  requireHealthy(*server);
}

TEST_CASE("an unknown method gets -32601 and an unknown $/ notification is ignored",
          "[framing]") {
  Framing framing = anyFraming();
  INFO("framing: " << framingName(framing));
  auto server = startServer(framing);

  CHECK(errorCode(server->call("no/such/method", {{"x", 1}})) == -32601);
  size_t before = server->messages().size();
  server->notify("$/somethingNew", {{"x", 1}});
  int64_t status = server->request("status");
  REQUIRE(server->waitResponse(status, kReplyTimeout));
  // Nothing answers a notification: the only response since is the status one.
  for (size_t i = before; i < server->messages().size(); ++i) {
    const Json& m = server->messages()[i];
    INFO("message: " << brief(m));
    if (!m.contains("method")) CHECK(m.value("id", Json()) == status);
  }
}

TEST_CASE("wrong parameters get -32602 and the server goes on", "[framing]") {
  auto server = startServer(Framing::kNdjson);
  Json params;
  SECTION("code is not a string") { params = {{"code", 42}}; }
  SECTION("code is missing") { params = {{"stdin", "x"}}; }
  SECTION("a limit of the wrong type") { params = {{"code", "1"}, {"limits", {{"timeoutMs", "fast"}}}}; }
  SECTION("a negative limit") { params = {{"code", "1"}, {"limits", {{"memoryMb", -5}}}}; }
  SECTION("a limit looser than the profile allows") {
    params = {{"code", "1"}, {"limits", {{"timeoutMs", 10000000}}}};
  }
  SECTION("an unknown profile") { params = {{"code", "1"}, {"profile", "no-such-profile"}}; }
  SECTION("params that are not an object") { params = Json::array({"1"}); }
  SECTION("status with an executionId that is not a string") {
    CHECK(errorCode(server->call("status", {{"executionId", 12}})) == -32602);
    requireHealthy(*server);
    return;
  }
  INFO("params: " << params.dump());
  CHECK(errorCode(server->call("execute", params)) == -32602);
  requireHealthy(*server);
}

TEST_CASE("a message over --max-message-bytes is refused and the next request still works",
          "[framing]") {
  Framing framing = anyFraming();
  INFO("framing: " << framingName(framing));
  auto server = startServer(framing, {"--max-message-bytes", "1000"});

  size_t before = server->messages().size();
  int64_t big = server->request("execute", {{"code", "x = '" + std::string(3000, 'a') + "'\nx"}});
  auto refused = server->waitMessage(
      [&](const Json& m) {
        return m.is_object() && m.contains("error") && m.contains("id") &&
               (m["id"] == big || m["id"].is_null());
      },
      kReplyTimeout, before);
  INFO(server->describe());
  REQUIRE(refused);
  INFO("refusal: " << brief(*refused));
  CHECK((*refused)["error"]["code"].is_number_integer());
  // The body was skipped, not executed.
  CHECK_FALSE(server->waitResponse(big, 200ms).value_or(Json::object()).contains("result"));
  requireHealthy(*server);
}

TEST_CASE("multi-byte UTF-8 code and output round-trip in LSP framing", "[framing]") {
  auto server = startServer(Framing::kLsp);
  const std::string text = "héllo wörld ✓ 日本語 🐍";
  // Two requests back to back: a byte count off by one would break the second.
  int64_t first = server->request("execute", {{"code", "s = " + pyString(text) + "\nprint(s)\ns"}});
  int64_t second = server->request("execute", {{"code", "len(" + pyString(text) + ")"}});

  Json result = waitResult(*server, first);
  INFO("result: " << brief(result));
  CHECK(result["status"] == "ok");
  CHECK(result["stdout"] == text + "\n");
  CHECK(result["value"] == text);
  Json count = waitResult(*server, second);
  CHECK(count["value"] == 19);  // characters, whatever the byte count
  CHECK(server->malformedOutput().empty());
}

TEST_CASE("a batch gets one answer per request", "[framing]") {
  auto server = startServer(Framing::kNdjson);
  Json batch = Json::array({statusRequest(201),
                            {{"jsonrpc", "2.0"}, {"id", 202}, {"method", "no/such/method"}},
                            {{"jsonrpc", "2.0"}, {"method", "$/somethingNew"}}});
  server->sendRaw(batch.dump() + "\n");
  auto ok = server->waitResponse(Json(201), kReplyTimeout);
  auto unknown = server->waitResponse(Json(202), kReplyTimeout);
  INFO(server->describe());
  REQUIRE(ok);
  REQUIRE(unknown);
  CHECK(ok->contains("result"));
  CHECK(errorCode(*unknown) == -32601);
}
