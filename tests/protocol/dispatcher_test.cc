#include <catch2/catch.hpp>

#include "pycell/protocol/dispatcher.h"

using namespace pycell::protocol;

namespace {
struct Harness {
  std::vector<json> sent;
  Dispatcher d{[this](json m) { sent.push_back(std::move(m)); }};
  std::vector<Reply> parked;  // replies a handler kept for later
  Harness() {
    d.onRequest("echo", [](const json& p, Reply r) { r.result(p); });
    d.onRequest("typed", [](const json& p, Reply r) { r.result(p.at("n").get<int>() + 1); });
    d.onRequest("strict", [](const json&, Reply) { throw InvalidParams("code must be a string"); });
    d.onRequest("later", [this](const json&, Reply r) { parked.push_back(std::move(r)); });
    d.onRequest("forget", [](const json&, Reply) {});
  }
};
}  // namespace

TEST_CASE("a request gets exactly one response with its id", "[dispatch]") {
  Harness h;
  h.d.handleBody(R"({"jsonrpc":"2.0","id":1,"method":"echo","params":{"a":1}})");
  REQUIRE(h.sent.size() == 1);
  CHECK(h.sent[0]["id"] == 1);
  CHECK(h.sent[0]["result"]["a"] == 1);
}

TEST_CASE("bad JSON is answered with -32700 and id null", "[dispatch]") {
  Harness h;
  h.d.handleBody("{not json");
  REQUIRE(h.sent.size() == 1);
  CHECK(h.sent[0]["error"]["code"] == -32700);
  CHECK(h.sent[0]["id"].is_null());
}

TEST_CASE("an unknown method is -32601 and an unknown notification is ignored", "[dispatch]") {
  Harness h;
  h.d.handleBody(R"({"jsonrpc":"2.0","id":"a","method":"nope"})");
  h.d.handleBody(R"({"jsonrpc":"2.0","method":"$/whatever"})");
  REQUIRE(h.sent.size() == 1);
  CHECK(h.sent[0]["error"]["code"] == -32601);
  CHECK(h.sent[0]["id"] == "a");
}

TEST_CASE("wrong param types are -32602, whether the handler throws or nlohmann does", "[dispatch]") {
  Harness h;
  h.d.handleBody(R"({"jsonrpc":"2.0","id":1,"method":"strict","params":{}})");
  h.d.handleBody(R"({"jsonrpc":"2.0","id":2,"method":"typed","params":{"n":"x"}})");
  h.d.handleBody(R"({"jsonrpc":"2.0","id":3,"method":"echo","params":5})");
  REQUIRE(h.sent.size() == 3);
  for (const auto& m : h.sent) CHECK(m["error"]["code"] == -32602);
  CHECK(h.sent[0]["error"]["message"] == "invalid params: code must be a string");
}

TEST_CASE("malformed requests are -32600", "[dispatch]") {
  Harness h;
  h.d.handleBody(R"(42)");
  h.d.handleBody(R"({"jsonrpc":"2.0","id":1,"method":7})");
  h.d.handleBody(R"({"jsonrpc":"1.0","id":2,"method":"echo"})");
  h.d.handleBody(R"({"jsonrpc":"2.0","id":{"x":1},"method":"echo"})");
  REQUIRE(h.sent.size() == 4);
  for (const auto& m : h.sent) CHECK(m["error"]["code"] == -32600);
}

TEST_CASE("the gate refuses requests before initialize", "[dispatch]") {
  Harness h;
  bool initialized = false;
  h.d.setGate([&](std::string_view method) -> std::optional<RpcError> {
    if (!initialized && method != "echo") return RpcError{code::kServerNotInitialized, "server not initialized"};
    return std::nullopt;
  });
  h.d.handleBody(R"({"jsonrpc":"2.0","id":1,"method":"typed","params":{"n":1}})");
  initialized = true;
  h.d.handleBody(R"({"jsonrpc":"2.0","id":2,"method":"typed","params":{"n":1}})");
  REQUIRE(h.sent.size() == 2);
  CHECK(h.sent[0]["error"]["code"] == -32002);
  CHECK(h.sent[1]["result"] == 2);
}

TEST_CASE("a batch is answered with one array, once every request in it is answered", "[dispatch]") {
  Harness h;
  h.d.handleBody(R"([{"jsonrpc":"2.0","id":1,"method":"echo","params":{"x":1}},
                     {"jsonrpc":"2.0","method":"echo"},
                     {"jsonrpc":"2.0","id":2,"method":"later"},
                     5])");
  CHECK(h.sent.empty());  // "later" still holds its reply
  REQUIRE(h.parked.size() == 1);
  h.parked[0].result("done");
  REQUIRE(h.sent.size() == 1);
  REQUIRE(h.sent[0].is_array());
  CHECK(h.sent[0].size() == 3);  // the notification gets no entry; the invalid 5 does

  h.d.handleBody("[]");
  CHECK(h.sent.back()["error"]["code"] == -32600);
}

TEST_CASE("a handler that forgets its reply still answers: -32603 from the Reply's destructor", "[dispatch]") {
  Harness h;
  h.d.handleBody(R"({"jsonrpc":"2.0","id":9,"method":"forget"})");
  REQUIRE(h.sent.size() == 1);
  CHECK(h.sent[0]["error"]["code"] == -32603);
  CHECK(h.sent[0]["id"] == 9);
}

TEST_CASE("a reply answered twice sends only the first answer (cancel racing completion)", "[dispatch]") {
  Harness h;
  h.d.handleBody(R"({"jsonrpc":"2.0","id":4,"method":"later"})");
  REQUIRE(h.parked.size() == 1);
  h.parked[0].error(code::kRequestCancelled, "request cancelled");
  h.parked[0].result("too late");
  REQUIRE(h.sent.size() == 1);
  CHECK(h.sent[0]["error"]["code"] == -32800);
}

TEST_CASE("a withdrawn reply sends nothing: not a later answer, not the destructor's -32603 (MCP cancel)", "[dispatch]") {
  Harness h;
  h.d.handleBody(R"({"jsonrpc":"2.0","id":5,"method":"later"})");
  REQUIRE(h.parked.size() == 1);
  h.parked[0].withdraw();
  CHECK(h.parked[0].answered());
  h.parked[0].result("too late");
  h.parked.clear();
  CHECK(h.sent.empty());
  // The id is free again: a new request with it is taken, not refused as a duplicate.
  h.d.handleBody(R"({"jsonrpc":"2.0","id":5,"method":"later"})");
  REQUIRE(h.parked.size() == 1);
  h.parked[0].result("ok");
  REQUIRE(h.sent.size() == 1);
  CHECK(h.sent[0]["result"] == "ok");
}

TEST_CASE("a batch with a withdrawn request answers the others and frees every id", "[dispatch]") {
  Harness h;
  h.d.handleBody(R"([{"jsonrpc":"2.0","id":1,"method":"later"},{"jsonrpc":"2.0","id":2,"method":"later"}])");
  REQUIRE(h.parked.size() == 2);
  h.parked[0].withdraw();
  CHECK(h.sent.empty());
  h.parked[1].result("two");
  REQUIRE(h.sent.size() == 1);
  REQUIRE(h.sent[0].is_array());
  REQUIRE(h.sent[0].size() == 1);
  CHECK(h.sent[0][0]["id"] == 2);
  h.parked.clear();
  // Withdrawn alone: nothing at all is sent for the batch.
  h.d.handleBody(R"([{"jsonrpc":"2.0","id":1,"method":"later"}])");
  REQUIRE(h.parked.size() == 1);
  h.parked[0].withdraw();
  h.parked.clear();
  CHECK(h.sent.size() == 1);
}

TEST_CASE("oversize and bad-header frames are answered and recover the id where they can", "[dispatch]") {
  Harness h;
  h.d.handleFrame(Frame{Frame::Kind::Oversize, R"({"jsonrpc":"2.0","id":"big-1","method":"execute","params":{"code":"xxxx)", 99999, {}});
  h.d.handleFrame(Frame{Frame::Kind::BadHeader, {}, 0, "missing Content-Length header"});
  REQUIRE(h.sent.size() == 2);
  CHECK(h.sent[0]["id"] == "big-1");
  CHECK(h.sent[0]["error"]["code"] == -32600);
  CHECK(h.sent[1]["error"]["code"] == -32700);
}

TEST_CASE("recoverId finds numeric and string ids and gives null otherwise", "[dispatch]") {
  CHECK(recoverId(R"({"id": 12, "method":"x")") == 12);
  CHECK(recoverId(R"({"method":"x","id":"abc")") == "abc");
  CHECK(recoverId(R"({"method":"x")").is_null());
}

TEST_CASE("a second request with the id of one in flight is -32600 and runs nothing; the id is free once answered",
          "[dispatch]") {
  Harness h;
  h.d.handleBody(R"({"jsonrpc":"2.0","id":7,"method":"later"})");
  REQUIRE(h.parked.size() == 1);
  h.d.handleBody(R"({"jsonrpc":"2.0","id":7,"method":"later"})");
  CHECK(h.parked.size() == 1);  // nothing of the second ran
  REQUIRE(h.sent.size() == 1);
  CHECK(h.sent[0]["id"] == 7);
  CHECK(h.sent[0]["error"]["code"] == -32600);
  CHECK(h.sent[0]["error"]["message"] == "invalid request: id 7 is already in use by a request not yet answered");
  CHECK(h.sent[0]["error"]["data"]["id"] == 7);
  // "7" is another id than 7; a string id is tracked the same way.
  h.d.handleBody(R"({"jsonrpc":"2.0","id":"7","method":"echo","params":{}})");
  REQUIRE(h.sent.size() == 2);
  CHECK(h.sent[1].contains("result"));
  CHECK(h.d.requestsInFlight() == 1);

  h.parked[0].result("first");
  REQUIRE(h.sent.size() == 3);
  CHECK(h.sent[2]["result"] == "first");
  CHECK(h.d.requestsInFlight() == 0);
  h.d.handleBody(R"({"jsonrpc":"2.0","id":7,"method":"echo","params":{"again":true}})");
  REQUIRE(h.sent.size() == 4);
  CHECK(h.sent[3]["result"]["again"] == true);
}

TEST_CASE("in a batch, a duplicate id is refused in place, and the batch's ids are free once its array is sent",
          "[dispatch]") {
  Harness h;
  h.d.handleBody(R"([{"jsonrpc":"2.0","id":1,"method":"later"},
                     {"jsonrpc":"2.0","id":1,"method":"echo","params":{}},
                     {"jsonrpc":"2.0","id":2,"method":"echo","params":{}}])");
  REQUIRE(h.parked.size() == 1);
  CHECK(h.sent.empty());
  CHECK(h.d.requestsInFlight() == 2);  // 2 is answered, but its answer waits for the array
  h.d.handleBody(R"({"jsonrpc":"2.0","id":2,"method":"echo","params":{}})");
  REQUIRE(h.sent.size() == 1);
  CHECK(h.sent[0]["error"]["code"] == -32600);
  h.parked[0].result("done");
  REQUIRE(h.sent.size() == 2);
  REQUIRE(h.sent[1].is_array());
  REQUIRE(h.sent[1].size() == 3);
  CHECK(h.sent[1][0]["error"]["code"] == -32600);  // the duplicate, answered at once
  CHECK(h.sent[1][1]["result"].is_object());
  CHECK(h.sent[1][2]["result"] == "done");
  CHECK(h.d.requestsInFlight() == 0);
}
