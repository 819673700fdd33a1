// What a client may send and what it cannot do to the server (PROTOCOL.md section 1, Limits):
// messages nested far deeper than any value needs, more queued work than the budget, answers
// it never reads. Each is answered (or held back) and the server keeps serving; the deep
// messages are built as text here, since this process must not recurse through them either.
// The message-size limit is covered in framing_test.cc.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "host_view.h"
#include "server_process.h"

using namespace pycell::testing;
using namespace std::chrono_literals;

namespace {

Framing anyFraming() { return GENERATE(Framing::kNdjson, Framing::kLsp); }

std::string nestedArrays(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

std::string nestedObjects(size_t depth) {
  std::string s;
  s.reserve(depth * 6 + 2);
  for (size_t i = 0; i < depth; ++i) s += "{\"a\":";
  s += "1";
  s.append(depth, '}');
  return s;
}

// The fds the process's epoll instance watches (its event loop: the server has one).
std::vector<int> epollWatched(pid_t pid) {
  std::vector<int> fds;
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return fds;
  while (dirent* e = ::readdir(d)) {
    char target[256];
    ssize_t n = ::readlink((dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
    if (n <= 0 || std::string_view(target, static_cast<size_t>(n)) != "anon_inode:[eventpoll]") continue;
    std::ifstream info("/proc/" + std::to_string(pid) + "/fdinfo/" + e->d_name);
    std::string line;
    while (std::getline(info, line)) {
      if (line.rfind("tfd:", 0) == 0) fds.push_back(std::stoi(line.substr(4)));
    }
  }
  ::closedir(d);
  return fds;
}

void requireServing(ServerProcess& server) {
  INFO(server.describe());
  REQUIRE_FALSE(server.exited());
  Json result = executeCode(server, "print(1)");
  INFO("result: " << brief(result));
  CHECK(result["status"] == "ok");
  CHECK(result["stdout"] == "1\n");
}

void requireTooDeep(ServerProcess& server, const Json& id) {
  auto response = server.waitResponse(id, kReplyTimeout);
  INFO(server.describe());
  REQUIRE(response);
  INFO("response: " << brief(*response));
  REQUIRE(response->contains("error"));
  CHECK((*response)["error"]["code"] == -32600);
  CHECK((*response)["error"]["message"].get<std::string>().find("nesting deeper than 64") != std::string::npos);
  CHECK((*response)["error"]["data"]["maxDepth"] == 64);
}

}  // namespace

TEST_CASE("a status request whose params nest 200,000 arrays gets -32600 with its id, and the server goes on",
          "[limits]") {
  Framing framing = anyFraming();
  INFO("framing: " << framingName(framing));
  auto server = startServer(framing);
  server->sendRaw(frameMessage(framing, R"({"jsonrpc":"2.0","id":7001,"method":"status","params":)" + nestedArrays(200'000) + "}"));
  requireTooDeep(*server, Json(7001));
  requireServing(*server);
}

TEST_CASE("execute with inputs nested 100,000 deep gets -32600 with its id, nothing runs, and the server goes on",
          "[limits]") {
  Framing framing = anyFraming();
  INFO("framing: " << framingName(framing));
  auto server = startServer(framing);
  std::string deep = GENERATE(as<std::string>{}, "arrays", "objects");
  INFO("nesting: " << deep);
  std::string inputs = deep == "arrays" ? nestedArrays(100'000) : nestedObjects(100'000);
  // The id comes after the deep part: found all the same.
  server->sendRaw(frameMessage(framing, R"J({"jsonrpc":"2.0","method":"execute","params":{"code":"print('ran')","inputs":)J" +
                                     inputs + R"(},"id":"deep-1"})"));
  requireTooDeep(*server, Json("deep-1"));
  CHECK(server->callResult("status", nullptr)["executionsTotal"] == 0);
  requireServing(*server);

  // Just inside the limit: envelope, params and 62 levels of inputs make 64.
  server->sendRaw(frameMessage(framing, R"J({"jsonrpc":"2.0","id":"deep-2","method":"execute","params":{"code":"import json\nprint(json.dumps(inputs).count('['))","inputs":)J" +
                                     nestedArrays(62) + "}}"));
  auto response = server->waitResponse(Json("deep-2"), kExecutionTimeout);
  INFO(server->describe());
  REQUIRE(response);
  INFO("response: " << brief(*response));
  REQUIRE(response->contains("result"));
  CHECK((*response)["result"]["stdout"] == "62\n");
}

TEST_CASE("a batch nested too deep gets one -32600 with id null, and the server goes on", "[limits]") {
  auto server = startServer(Framing::kNdjson);
  server->sendRaw("[" + std::string(R"({"jsonrpc":"2.0","id":1,"method":"status","params":)") + nestedArrays(1000) + "}]\n");
  auto response = server->waitMessage([](const Json& m) { return m.is_object() && m.contains("error"); }, kReplyTimeout);
  INFO(server->describe());
  REQUIRE(response);
  CHECK((*response)["id"].is_null());
  CHECK((*response)["error"]["code"] == -32600);
  requireServing(*server);
}

TEST_CASE("pycell mcp: a tools/call nested 100,000 deep gets -32600, and run_python still works", "[limits][mcp]") {
  ServerProcess server({"mcp"}, Framing::kNdjson);
  Json init = server.callResult("initialize", {{"protocolVersion", "2025-06-18"},
                                               {"capabilities", Json::object()},
                                               {"clientInfo", {{"name", "limits-test"}, {"version", "0"}}}});
  CHECK(init.contains("serverInfo"));
  server.notify("notifications/initialized");
  server.sendRaw(R"J({"jsonrpc":"2.0","id":"mcp-deep","method":"tools/call","params":{"name":"run_python","arguments":{"code":"print(1)","inputs":)J" +
                 nestedArrays(100'000) + "}}}\n");
  requireTooDeep(server, Json("mcp-deep"));
  Json call = server.callResult("tools/call", {{"name", "run_python"}, {"arguments", {{"code", "print(1)"}}}},
                                kExecutionTimeout);
  INFO("tools/call: " << brief(call));
  CHECK(call["isError"] == false);
  CHECK(call["structuredContent"]["stdout"] == "1\n");
}

TEST_CASE("queued work past --max-queued-bytes is refused with -32001, nothing of it runs, and memory stays bounded",
          "[limits]") {
  constexpr size_t kBudget = 8u << 20;
  constexpr int kRequests = 64;
  constexpr size_t kCodeBytes = 2u << 20;  // 64 x 2 MiB: 128 MiB offered against an 8 MiB budget
  bool inSession = GENERATE(false, true);
  INFO((inSession ? "waiting in a session's queue" : "waiting in the server's queue"));
  // The blocker below must outlast the sending, however slow the machine.
  TempFile config("limits-config.json", R"({"profiles": {"default": {"limits": {"timeoutMs": 120000}}}})");
  auto server = startServer(Framing::kNdjson, {"--max-concurrent", "1", "--max-queued-bytes", std::to_string(kBudget),
                                               "--config", config.path()});
  pid_t pid = server->pid();
  Json where = Json::object();
  if (inSession) where["session"] = server->callResult("session/create", Json::object(), kExecutionTimeout)["session"];

  // One execution holds the only slot (or the session's interpreter) until killed, so
  // everything after it waits.
  Json blockerParams = where;
  blockerParams.update({{"code", "import time\ntime.sleep(60)"}, {"executionId", "blocker"}});
  int64_t blocker = server->request("execute", blockerParams);
  awaitRunning(*server, "blocker");
  long baselineKb = procStatusKb(pid, "VmRSS");

  std::vector<int64_t> ids;
  const std::string filler(kCodeBytes, '#');
  for (int i = 0; i < kRequests; ++i) {
    Json params = where;
    params.update({{"code", "print(" + std::to_string(i) + ")\n" + filler + "\n"}, {"executionId", "big-" + std::to_string(i)}});
    ids.push_back(server->request("execute", params));
  }
  // A refusal is sent while its request is read, so by the answer to this status every
  // refusal has come; the accepted ones wait behind the blocker.
  Json status = server->callResult("status", nullptr);
  INFO("status: " << brief(status));
  std::vector<int64_t> accepted;
  int refused = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    auto response = server->waitResponse(ids[i], 0ms);
    if (!response) {
      accepted.push_back(ids[i]);
      Json state = server->callResult("status", {{"executionId", "big-" + std::to_string(i)}});
      CHECK(state["state"] == "queued");
      continue;
    }
    INFO("response: " << brief(*response));
    REQUIRE(response->contains("error"));
    CHECK((*response)["error"]["code"] == -32001);
    CHECK((*response)["error"]["message"].get<std::string>().starts_with("server busy: queued work exceeds 8 MiB"));
    ++refused;
  }
  INFO(server->describe());
  INFO(accepted.size() << " accepted, " << refused << " refused");
  CHECK(accepted.size() >= 2);
  CHECK(accepted.size() <= 4);  // 8 MiB of 2 MiB requests, with their overhead
  CHECK(refused == kRequests - static_cast<int>(accepted.size()));
  CHECK(status["queued"] == accepted.size());
  CHECK(status["queuedBytes"].get<size_t>() <= kBudget);

  // 128 MiB went through the server; it never held more than the budget and a message or two.
  long peakKb = procStatusKb(pid, "VmHWM");
  INFO("VmRSS " << baselineKb << " kB before, peak VmHWM " << peakKb << " kB");
  CHECK(baselineKb > 0);
  CHECK(peakKb < baselineKb + 64 * 1024);

  // The accepted ones run once the blocker is gone; the refused ones never ran.
  CHECK(server->callResult("kill", {{"executionId", "blocker"}})["killed"] == true);
  CHECK(waitResult(*server, blocker)["status"] == "killed");
  for (int64_t id : accepted) {
    Json result = waitResult(*server, id);
    INFO("result: " << brief(result));
    CHECK(result["status"] == "ok");
  }
  Json after = server->callResult("status", nullptr);
  CHECK(after["queuedBytes"] == 0);
  CHECK(after["executionsTotal"] == 1 + accepted.size());
  requireServing(*server);
}

TEST_CASE("a client that never reads its answers makes the server stop reading, not grow; all are answered once it reads",
          "[limits]") {
  ChildProcess child(commandLine({"serve", "--framing", "ndjson"}));
  // `initialize` has a large answer (isolation, profiles): ~1.5 kB for ~60 bytes asked.
  constexpr int kRequests = 60'000;
  std::string requests;
  for (int i = 0; i < kRequests; ++i)
    requests += R"({"jsonrpc":"2.0","id":)" + std::to_string(i) + R"(,"method":"initialize","params":{}})" "\n";
  std::string_view pending = requests;

  // First one round trip: the server is up and reading.
  std::string ready = R"({"jsonrpc":"2.0","id":"ready","method":"status"})" "\n";
  REQUIRE(::write(child.stdinFd(), ready.data(), ready.size()) == static_cast<ssize_t>(ready.size()));
  std::string buffer;
  char chunk[65536];
  for (auto until = std::chrono::steady_clock::now() + 30s;
       buffer.find("\"ready\"") == std::string::npos && std::chrono::steady_clock::now() < until;) {
    pollfd p{child.stdoutFd(), POLLIN, 0};
    if (::poll(&p, 1, 1000) <= 0) continue;
    ssize_t n = ::read(child.stdoutFd(), chunk, sizeof chunk);
    if (n <= 0) break;
    buffer.append(chunk, static_cast<size_t>(n));
  }
  INFO("stderr: " << child.stderrText());
  REQUIRE(buffer.find("\"ready\"") != std::string::npos);
  buffer.clear();
  // Measured from here: a sanitizer build's runtime starts larger, and grows the same.
  const long baselineKb = procStatusKb(child.pid(), "VmRSS");
  INFO("server VmRSS when ready " << baselineKb << " kB");

  auto stdinWatched = [&] {
    auto fds = epollWatched(child.pid());
    return std::find(fds.begin(), fds.end(), 0) != fds.end();
  };
  // Write without reading until the server stops watching its stdin (its answers pile up).
  auto deadline = std::chrono::steady_clock::now() + 60s;
  bool paused = false;
  while (!pending.empty() && std::chrono::steady_clock::now() < deadline) {
    pollfd p{child.stdinFd(), POLLOUT, 0};
    if (::poll(&p, 1, 20) > 0) {
      ssize_t n = ::write(child.stdinFd(), pending.data(), std::min<size_t>(pending.size(), 65536));
      if (n > 0) pending.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    REQUIRE_FALSE(child.poll());
    if (!stdinWatched()) {
      paused = true;
      break;
    }
  }
  INFO(requests.size() - pending.size() << " of " << requests.size() << " bytes written");
  REQUIRE(paused);  // not: the whole 90 MB of answers held in the server
  long pausedKb = procStatusKb(child.pid(), "VmRSS");
  CHECK(pausedKb < baselineKb + 56 * 1024);

  // Now read: every request gets its answer, and the rest of the requests go in.
  size_t answers = 0;
  deadline = std::chrono::steady_clock::now() + 120s;
  while (answers < kRequests && std::chrono::steady_clock::now() < deadline) {
    pollfd p[2] = {{child.stdoutFd(), POLLIN, 0}, {child.stdinFd(), POLLOUT, 0}};
    ::poll(p, pending.empty() ? 1 : 2, 1000);
    if (!pending.empty() && (p[1].revents & POLLOUT)) {
      ssize_t n = ::write(child.stdinFd(), pending.data(), std::min<size_t>(pending.size(), 65536));
      if (n > 0) pending.remove_prefix(static_cast<size_t>(n));
    }
    if (p[0].revents & (POLLIN | POLLHUP)) {
      ssize_t n = ::read(child.stdoutFd(), chunk, sizeof chunk);
      if (n <= 0) break;
      buffer.append(chunk, static_cast<size_t>(n));
      size_t start = 0;
      for (size_t nl; (nl = buffer.find('\n', start)) != std::string::npos; start = nl + 1) {
        if (std::string_view(buffer).substr(start, nl - start).find("\"serverInfo\"") != std::string_view::npos) ++answers;
      }
      buffer.erase(0, start);
    }
  }
  CHECK(answers == static_cast<size_t>(kRequests));
  long peakKb = procStatusKb(child.pid(), "VmHWM");
  INFO("peak VmHWM " << peakKb << " kB");
  CHECK(peakKb < baselineKb + 88 * 1024);
  REQUIRE_FALSE(child.poll());
  child.closeStdin();
}
