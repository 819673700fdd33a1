// The server's life: initialize, the LSP rule about requests before it, shutdown and exit,
// EOF, and following the client process.
#include <catch2/catch.hpp>

#include <map>
#include <sstream>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "server_process.h"

using namespace pycell::testing;
using namespace std::chrono_literals;

namespace {

Framing anyFraming() { return GENERATE(Framing::kNdjson, Framing::kLsp); }

int errorCode(const Json& response) {
  INFO("response: " << brief(response));
  REQUIRE(response.contains("error"));
  return response["error"].value("code", 0);
}


bool hasBooleans(const Json& object, std::initializer_list<const char*> keys) {
  for (const char* key : keys) {
    if (!object.contains(key) || !object[key].is_boolean()) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("initialize reports the server, its profiles and the isolation in force",
          "[lifecycle]") {
  Framing framing = anyFraming();
  INFO("framing: " << framingName(framing));
  ServerProcess server({"serve", "--framing", std::string(framingName(framing))}, framing);

  Json init = server.initialize();
  INFO("initialize: " << brief(init));
  CHECK(init["serverInfo"]["name"] == "pycell");
  CHECK(init["serverInfo"]["version"].is_string());
  CHECK(init["capabilities"].is_object());

  const Json& isolation = init["isolation"];
  REQUIRE(isolation.is_object());
  CHECK(hasBooleans(isolation, {"userNamespace", "pidNamespace", "mountNamespace",
                                "networkNamespace", "ipcNamespace", "seccomp"}));
  CHECK((isolation["cgroup"] == "v2" || isolation["cgroup"] == "v1" ||
         isolation["cgroup"] == "none"));
  CHECK((isolation["memoryLimit"] == "cgroup" || isolation["memoryLimit"] == "per-process"));
  CHECK((isolation["pidsLimit"] == "cgroup" || isolation["pidsLimit"] == "per-sandbox" ||
         isolation["pidsLimit"] == "per-user"));
  // This suite runs where user namespaces work, and without --allow-degraded.
  CHECK(isolation["level"] == "isolated");

  const Json& profiles = init["profiles"];
  bool hasDefault = false;
  if (profiles.is_object()) hasDefault = profiles.contains("default");
  if (profiles.is_array()) {
    for (const auto& p : profiles) hasDefault = hasDefault || p.value("name", "") == "default";
  }
  CHECK(hasDefault);
}

TEST_CASE("a request before initialize in LSP framing gets -32002", "[lifecycle]") {
  ServerProcess server({"serve", "--framing", "lsp"}, Framing::kLsp);
  CHECK(errorCode(server.call("status")) == -32002);
  CHECK(errorCode(server.call("execute", {{"code", "print(1)"}})) == -32002);

  server.initialize();
  CHECK(server.call("status").contains("result"));
}

TEST_CASE("shutdown then exit ends the server with exit code 0", "[lifecycle]") {
  Framing framing = anyFraming();
  INFO("framing: " << framingName(framing));
  auto server = startServer(framing);

  Json response = server->call("shutdown", nullptr);
  INFO("shutdown: " << brief(response));
  REQUIRE(response.contains("result"));
  CHECK(response["result"].is_null());
  // Requests after shutdown are invalid.
  CHECK(errorCode(server->call("status")) == -32600);

  server->notify("exit", nullptr);
  INFO(server->describe());
  CHECK(server->waitExit(5000ms) == 0);
}

TEST_CASE("exit without shutdown ends the server with exit code 1", "[lifecycle]") {
  Framing framing = anyFraming();
  INFO("framing: " << framingName(framing));
  auto server = startServer(framing);
  server->notify("exit", nullptr);
  INFO(server->describe());
  CHECK(server->waitExit(5000ms) == 1);
}

TEST_CASE("EOF on stdin ends the server with exit code 0", "[lifecycle]") {
  Framing framing = anyFraming();
  INFO("framing: " << framingName(framing));
  auto server = startServer(framing);
  REQUIRE(server->call("status").contains("result"));
  server->closeStdin();
  INFO(server->describe());
  CHECK(server->waitExit(5000ms) == 0);
}

TEST_CASE("EOF without shutdown ends the runs in flight as killed: input closed before the run finished",
          "[lifecycle]") {
  auto server = startServer(Framing::kNdjson);
  auto id = server->request("execute", {{"code", "import sys, time\nsys.stdout.write('running\\n')\nsys.stdout.flush()\ntime.sleep(600)"},
                                        {"executionId", "in-flight"},
                                        {"stream", true}});
  // Running, and has printed: it is in flight when the input ends.
  REQUIRE(server->waitMessage([](const Json& m) {
    return m.value("method", "") == "execute/output" && m["params"].value("executionId", "") == "in-flight" &&
           m["params"].value("text", "").ends_with("\n");
  }, kExecutionTimeout));
  server->closeStdin();
  auto response = server->waitResponse(id, 10000ms);
  INFO(server->describe());
  REQUIRE(response.has_value());
  const Json& result = (*response)["result"];
  CHECK(result["status"] == "killed");
  CHECK(result["error"]["type"] == "Killed");
  CHECK(result["error"]["message"] == "input closed before the run finished");
  CHECK(result["stdout"] == "running\n");
  CHECK(server->waitExit(5000ms) == 0);
}

TEST_CASE("the server exits when the client process dies", "[lifecycle]") {
  StandInClient client;
  std::unique_ptr<ServerProcess> server;

  SECTION("named by --client-process-id") {
    server = startServer(Framing::kNdjson, {"--client-process-id", std::to_string(client.pid())});
  }
  SECTION("named by initialize.processId") {
    server = std::make_unique<ServerProcess>(std::vector<std::string>{"serve", "--framing", "lsp"},
                                             Framing::kLsp);
    Json init = server->call("initialize",
                             {{"processId", client.pid()}, {"capabilities", Json::object()}});
    REQUIRE(init.contains("result"));
    server->notify("initialized", Json::object());
  }

  // Alive while the client lives...
  REQUIRE(server->call("status").contains("result"));
  std::this_thread::sleep_for(300ms);
  CHECK_FALSE(server->exited());
  // ...and gone soon after it dies, without EOF on its stdin.
  client.kill();
  INFO(server->describe());
  CHECK(server->waitExit(5000ms).has_value());
}

TEST_CASE("a script that writes execute and shutdown, then closes stdin, still gets its result", "[lifecycle]") {
  std::string input = Json{{"jsonrpc", "2.0"}, {"id", 1}, {"method", "execute"},
                           {"params", {{"code", "import time\ntime.sleep(0.3)\n6 * 7"}}}}.dump() +
                      "\n" + Json{{"jsonrpc", "2.0"}, {"id", 2}, {"method", "shutdown"}}.dump() + "\n";
  CommandResult r = runPycell({"serve"}, input);
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exitCode == 0);
  auto nl = r.out.find('\n');
  REQUIRE(nl != std::string::npos);
  Json first = Json::parse(r.out.substr(0, nl));
  Json second = Json::parse(r.out.substr(nl + 1, r.out.find('\n', nl + 1) - nl - 1));
  // The shutdown answer waits for the execution in flight, so it comes second.
  CHECK(first["id"] == 1);
  CHECK(first["result"]["status"] == "ok");
  CHECK(first["result"]["value"] == 42);
  CHECK(second["id"] == 2);
  CHECK(second["result"].is_null());
}

TEST_CASE("an execute with a workDoneToken reports $/progress begin, report and end", "[lifecycle]") {
  auto server = startServer(Framing::kLsp);
  int64_t id = server->request("execute", {{"code", "print('tick', flush=True)\n1"}, {"workDoneToken", "tok-1"}});
  Json result = waitResult(*server, id);
  CHECK(result["status"] == "ok");
  server->drain();
  std::vector<std::string> kinds;
  for (const auto& n : server->notifications())
    if (n.value("method", "") == "$/progress" && n["params"]["token"] == "tok-1") kinds.push_back(n["params"]["value"]["kind"]);
  REQUIRE(kinds.size() >= 2);
  CHECK(kinds.front() == "begin");
  CHECK(kinds.back() == "end");
}

TEST_CASE("stdin may be a regular file: pycell serve < requests.ndjson answers every request", "[lifecycle]") {
  // epoll refuses regular files; the server reads one from its loop instead.
  TempFile requests("requests.ndjson",
                    R"J({"jsonrpc":"2.0","id":1,"method":"execute","params":{"code":"print(6 * 7)"}})J" "\n"
                    R"J({"jsonrpc":"2.0","id":2,"method":"execute","params":{"code":"1 +"}})J" "\n"
                    R"J({"jsonrpc":"2.0","id":3,"method":"shutdown"})J" "\n");
  CommandResult r = runCommand({"/bin/sh", "-c", "exec \"$0\" serve < \"$1\"", pycellBinary(), requests.path()});
  INFO("exit " << (r.exitCode ? std::to_string(*r.exitCode) : "none") << "\nout: " << r.out << "\nerr: " << r.err);
  REQUIRE(r.exitCode == 0);
  std::map<int, Json> answers;  // by id: executions answer in the order they finish
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    Json answer = Json::parse(line);
    answers[answer["id"].get<int>()] = answer;
  }
  REQUIRE(answers.size() == 3);
  CHECK(answers[1]["result"]["stdout"] == "42\n");
  CHECK(answers[2]["result"]["status"] == "error");
  CHECK(answers[3]["result"].is_null());
}
