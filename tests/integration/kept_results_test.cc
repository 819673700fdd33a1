// What the server remembers of executions: `status` lists those queued and running; a
// finished one's result can be fetched again with `result` until `forget` drops it.
#include <catch2/catch.hpp>

#include <string>

#include "server_process.h"

using namespace pycell::testing;

namespace {

const Json* listed(const Json& summary, const std::string& id) {
  for (const Json& item : summary["executions"])
    if (item["executionId"] == id) return &item;
  return nullptr;
}

Json refusal(ServerProcess& server, const std::string& method, Json params) {
  Json response = server.call(method, std::move(params));
  INFO(method << ": " << brief(response));
  REQUIRE(response.contains("error"));
  CHECK(response["error"]["code"] == -32602);
  return response["error"];
}

}  // namespace

TEST_CASE("status lists the running and the queued executions with profile, age and CPU", "[results]") {
  auto server = startServer(Framing::kNdjson, {"--max-concurrent", "1"});
  const std::string code = "import time\nprint('up', flush=True)\ntime.sleep(100)";
  int64_t first = server->request("execute", {{"code", code}, {"executionId", "r1"}, {"limits", {{"timeoutMs", 10000}}}});
  int64_t second = server->request("execute", {{"code", code}, {"executionId", "r2"}, {"limits", {{"timeoutMs", 10000}}}});
  awaitRunning(*server, "r1");

  Json summary = server->callResult("status", nullptr);
  INFO("status: " << brief(summary));
  REQUIRE(summary["executions"].is_array());
  CHECK(summary["executions"].size() == 2);
  const Json* running = listed(summary, "r1");
  const Json* queued = listed(summary, "r2");
  REQUIRE(running);
  REQUIRE(queued);
  CHECK((*running)["state"] == "running");
  CHECK((*running)["profile"] == "default");
  CHECK((*running)["ageMs"].get<int64_t>() >= 0);
  CHECK((*running)["cpuMs"].get<int64_t>() >= 0);
  CHECK((*queued)["state"] == "queued");
  CHECK((*queued)["ageMs"].get<int64_t>() >= 0);
  CHECK((*queued)["elapsedMs"] == 0);
  CHECK(summary["executions"][0]["executionId"] == "r1");  // oldest first

  server->callResult("kill", {{"executionId", "r2"}});
  server->callResult("kill", {{"executionId", "r1"}});
  CHECK(waitResult(*server, first)["status"] == "killed");
  CHECK(waitResult(*server, second)["status"] == "killed");
  CHECK(server->callResult("status", nullptr)["executions"].empty());
}

TEST_CASE("result returns a finished execution's result again until forget drops it", "[results]") {
  auto server = startServer(Framing::kNdjson);
  Json answered = waitResult(*server, server->request("execute", {{"code", "print('hi')\n6 * 7"}, {"executionId", "k1"}}));
  REQUIRE(answered["status"] == "ok");

  Json again = server->callResult("result", {{"executionId", "k1"}});
  CHECK(again == answered);

  CHECK(server->callResult("forget", {{"executionId", "k1"}})["forgotten"] == true);
  CHECK(refusal(*server, "result", {{"executionId", "k1"}})["message"].get<std::string>().find("unknown") != std::string::npos);
  refusal(*server, "status", {{"executionId", "k1"}});
  CHECK(server->callResult("forget", {{"executionId", "k1"}})["forgotten"] == false);
}

TEST_CASE("result and forget refuse an execution still running, and bad params", "[results]") {
  auto server = startServer(Framing::kNdjson);
  int64_t id = server->request("execute", {{"code", "import time\ntime.sleep(100)"}, {"executionId", "busy"},
                                          {"limits", {{"timeoutMs", 10000}}}});
  awaitRunning(*server, "busy");
  CHECK(refusal(*server, "result", {{"executionId", "busy"}})["message"].get<std::string>().find("not finished") !=
        std::string::npos);
  CHECK(refusal(*server, "forget", {{"executionId", "busy"}})["message"].get<std::string>().find("kill it first") !=
        std::string::npos);
  server->callResult("kill", {{"executionId", "busy"}});
  Json killed = waitResult(*server, id);
  CHECK(killed["status"] == "killed");
  CHECK(server->callResult("result", {{"executionId", "busy"}}) == killed);

  refusal(*server, "result", Json::object());
  refusal(*server, "result", {{"executionId", 5}});
  refusal(*server, "forget", {{"executionId", "busy"}, {"also", 1}});
  refusal(*server, "result", {{"executionId", "never-was"}});
}
