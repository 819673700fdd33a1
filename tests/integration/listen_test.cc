// A shared server: `pycell serve --listen unix:PATH | tcp:HOST:PORT | systemd`. Several
// clients at once share one pool; each sees, stops and attaches to only its own runs; a
// token-protected listener runs nothing for a client without the token; a client that goes
// away leaves nothing behind; connections opened and dropped by the hundred leave the
// server's fds and memory flat.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>

#include "host_view.h"
#include "server_process.h"

using namespace pycell::testing;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

// No pools at all: what a dropped client leaves is then easy to see.
const std::string& noPoolConfig() {
  static TempFile config("listen-no-pools.json", R"({"profiles": {"default": {"pool": {"size": 0}},
      "datascience": {"pool": {"size": 0}}, "javascript": {"pool": {"size": 0}}}})");
  return config.path();
}

// A token file the server (maybe another uid) can read and nobody else.
class TokenFile {
 public:
  TokenFile(const SharedDir& dir, const std::string& token) : path((dir.path / "token").string()) {
    std::ofstream(path) << token << "\n";
    REQUIRE(::chmod(path.c_str(), 0600) == 0);
    if (auto uid = runAsUid()) REQUIRE(::chown(path.c_str(), *uid, *uid) == 0);
  }
  std::string path;
};

// `pycell serve --listen ...`, stopped with SIGTERM at the end, as a daemon is.
class ListeningServer {
 public:
  explicit ListeningServer(std::vector<std::string> args) : child_(commandLine(withServe(std::move(args)))) {
    auto deadline = Clock::now() + scaled(Millis{20000});
    static const std::regex listening("listening on (\\S+)");
    std::smatch m;
    for (;;) {
      std::string err = child_.stderrText();
      if (std::regex_search(err, m, listening)) {
        address = m[1];
        break;
      }
      if (child_.poll()) FAIL("the server exited before listening: " << err);
      if (Clock::now() > deadline) FAIL("the server did not say where it listens: " << err);
      std::this_thread::sleep_for(10ms);
    }
    if (auto colon = address.rfind(':'); address.starts_with("tcp:")) port = std::stoi(address.substr(colon + 1));
  }
  ~ListeningServer() { stop(); }

  // SIGTERM (this pid), then its exit code; the child's destructor kills what is left.
  std::optional<int> stop() {
    if (!child_.poll()) ::kill(child_.pid(), SIGTERM);
    auto deadline = Clock::now() + scaled(Millis{10000});
    while (!child_.poll() && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
    return child_.poll();
  }
  pid_t pid() const { return child_.pid(); }
  std::string stderrText() const { return child_.stderrText(); }

  std::string address;
  int port = 0;

 private:
  static std::vector<std::string> withServe(std::vector<std::string> args) {
    args.insert(args.begin(), "serve");
    return args;
  }
  ChildProcess child_;
};

// One client connection speaking NDJSON.
class Client {
 public:
  static std::unique_ptr<Client> unixSocket(const std::string& path) {
    Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    return std::unique_ptr<Client>(new Client(std::move(fd)));
  }
  static std::unique_ptr<Client> tcp(int port) {
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    return std::unique_ptr<Client>(new Client(std::move(fd)));
  }

  void sendRaw(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
      REQUIRE(n > 0);
      bytes.remove_prefix(static_cast<size_t>(n));
    }
  }
  int64_t request(const std::string& method, Json params = Json::object()) {
    int64_t id = nextId_++;
    sendRaw(Json{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", std::move(params)}}.dump() + "\n");
    return id;
  }
  // The response to `id`; nullopt if none came in time or the server closed the connection.
  std::optional<Json> waitResponse(int64_t id, Millis timeout = kReplyTimeout) {
    auto deadline = Clock::now() + scaled(timeout);
    for (;;) {
      for (const auto& m : messages_)
        if (m.contains("id") && m["id"] == id && !m.contains("method")) return m;
      auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
      if (left.count() <= 0 || !pump(left)) return std::nullopt;
    }
  }
  Json call(const std::string& method, Json params = Json::object(), Millis timeout = kReplyTimeout) {
    auto id = request(method, std::move(params));
    auto response = waitResponse(id, timeout);
    INFO("no answer to " << method << "; received: " << describe());
    REQUIRE(response.has_value());
    return *response;
  }
  Json callResult(const std::string& method, Json params = Json::object(), Millis timeout = kReplyTimeout) {
    Json response = call(method, std::move(params), timeout);
    INFO(method << " answered " << brief(response));
    REQUIRE(response.contains("result"));
    return response["result"];
  }
  // Whether the server closes the connection within `timeout` (what it sent is kept).
  bool waitClosed(Millis timeout = kReplyTimeout) {
    auto deadline = Clock::now() + scaled(timeout);
    while (!closed_) {
      auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      pump(left);
    }
    return true;
  }
  const std::vector<Json>& messages() const { return messages_; }
  // Every byte received so far (a client that speaks LSP framing reads these).
  std::string waitRaw(std::string_view needle, Millis timeout = kReplyTimeout) {
    raw_ = true;
    auto deadline = Clock::now() + scaled(timeout);
    while (buffer_.find(needle) == std::string::npos) {
      auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
      if (left.count() <= 0 || !pump(left)) break;
    }
    return buffer_;
  }
  std::string describe() const {
    std::string out;
    for (const auto& m : messages_) out += brief(m, 400) + "\n";
    return out + (closed_ ? "(closed)" : "");
  }
  void close() { fd_.reset(); }

 private:
  explicit Client(Fd fd) : fd_(std::move(fd)) {}
  // Reads what arrives within `timeout`; false once the connection is closed.
  bool pump(Millis timeout) {
    if (closed_) return false;
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return true;
    char buf[65536];
    ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n <= 0) {
      closed_ = true;
      return false;
    }
    buffer_.append(buf, static_cast<size_t>(n));
    if (raw_) return true;
    for (size_t nl; (nl = buffer_.find('\n')) != std::string::npos;) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (!line.empty()) messages_.push_back(Json::parse(line));
    }
    return true;
  }
  Fd fd_;
  std::string buffer_;
  std::vector<Json> messages_;
  bool closed_ = false;
  bool raw_ = false;
  int64_t nextId_ = 1;
};

int errorCode(const Json& response) {
  INFO("response: " << brief(response));
  REQUIRE(response.contains("error"));
  return response["error"].value("code", 0);
}

// Waits until `done` holds (checked every few milliseconds) or the bound passes.
bool eventually(const std::function<bool()>& done, Millis bound) {
  auto deadline = Clock::now() + scaled(bound);
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// The process's open fds, and how many of them are sockets.
struct FdCount {
  size_t all = 0, sockets = 0;
};
FdCount openFds(pid_t pid) {
  FdCount n;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n.all;
    n.sockets += std::filesystem::read_symlink(it->path(), ec).string().starts_with("socket:");
  }
  return n;
}

// Runs until it is killed (or meets its time limit): certainly running while the test does its part.
const char* kLongRun = "import time\nfor _ in range(600):\n    time.sleep(0.05)\n";

// Code that waits until `gate` exists (a host directory the profile may read), then goes on.
std::string waitFor(const std::filesystem::path& gate) {
  return "import os, time\nwhile not os.path.exists(" + pyString(gate.string()) + "):\n    time.sleep(0.01)\n";
}

}  // namespace

TEST_CASE("two clients of one unix socket share the pool, and neither can reach the other's runs", "[listen]") {
  SharedDir dir("listen");
  SharedDir gates("gates");
  std::string socket = (dir.path / "pycell.sock").string();
  TempFile config("listen-gates.json", R"({"profiles": {"default": {"allowRead": [)" + Json(gates.path.string()).dump() +
                                           R"(]}, "datascience": {"pool": {"size": 0}}, "javascript": {"pool": {"size": 0}}}})");
  ListeningServer server({"--listen", "unix:" + socket, "--config", config.path()});
  struct stat st{};
  REQUIRE(::stat(socket.c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));

  auto a = Client::unixSocket(socket);
  auto b = Client::unixSocket(socket);
  // Both are served from the same warm pool.
  Json first = a->callResult("execute", {{"code", "6*7"}, {"executionId", "mine"}}, kExecutionTimeout);
  REQUIRE_STATUS(first, "ok");
  CHECK(first["value"] == 42);
  Json second = b->callResult("execute", {{"code", "6*8"}}, kExecutionTimeout);
  REQUIRE_STATUS(second, "ok");
  CHECK(second["value"] == 48);
  Json pools = a->callResult("status")["pools"];
  REQUIRE(pools.size() == 1);
  INFO("pool: " << brief(pools[0]));
  CHECK(pools[0]["profile"] == "default");
  CHECK(pools[0]["zygoteStarts"] == 1);  // one zygote served both clients

  // A's session, and a run of A's in it that is running while B tries everything.
  Json session = a->callResult("session/create", {{"session", "s"}}, kExecutionTimeout);
  CHECK(session["session"] == "s");
  a->callResult("execute", {{"code", "counter = 1"}, {"session", "s"}}, kExecutionTimeout);
  int64_t longRun = a->request("execute", {{"code", waitFor(gates.path / "go") + "counter += 1\ncounter"},
                                           {"session", "s"}, {"executionId", "long"}});
  REQUIRE(eventually([&] { return a->callResult("status", {{"executionId", "long"}})["state"] == "running"; }, 20000ms));

  CHECK(errorCode(b->call("status", {{"executionId", "long"}})) == -32602);
  CHECK(errorCode(b->call("status", {{"executionId", "mine"}})) == -32602);
  CHECK(errorCode(b->call("kill", {{"executionId", "long"}})) == -32602);
  CHECK(errorCode(b->call("kill", {{"session", "s"}})) == -32602);
  CHECK(errorCode(b->call("result", {{"executionId", "mine"}})) == -32602);
  CHECK(b->callResult("forget", {{"executionId", "mine"}})["forgotten"] == false);
  CHECK(b->callResult("session/close", {{"session", "s"}})["closed"] == false);
  Json intrusion = b->call("execute", {{"code", "counter = 1000"}, {"session", "s"}});
  CHECK(errorCode(intrusion) == -32602);
  // B may use the same ids for its own: they are B's.
  Json own = b->callResult("execute", {{"code", "'b'"}, {"executionId", "mine"}}, kExecutionTimeout);
  CHECK(own["value"] == "b");
  b->close();  // and B leaving does not touch A's runs either
  std::ofstream(gates.path / "go") << "go";

  // A's run finished unharmed, its state its own; A's first result is still A's.
  auto longDone = a->waitResponse(longRun, kExecutionTimeout);
  REQUIRE(longDone.has_value());
  INFO("A's run: " << brief(*longDone));
  REQUIRE(longDone->contains("result"));
  REQUIRE_STATUS((*longDone)["result"], "ok");
  CHECK((*longDone)["result"]["value"] == 2);
  CHECK(a->callResult("result", {{"executionId", "mine"}})["value"] == 42);
  CHECK(a->callResult("session/close", {{"session", "s"}})["closed"] == true);

  CHECK(server.stop() == 128 + SIGTERM);
  CHECK_FALSE(std::filesystem::exists(socket));  // its socket file goes with it
}

TEST_CASE("each connection's framing is its own: LSP on one, NDJSON on another", "[listen]") {
  SharedDir dir("listen");
  std::string socket = (dir.path / "pycell.sock").string();
  ListeningServer server({"--listen", "unix:" + socket, "--config", noPoolConfig()});
  auto lsp = Client::unixSocket(socket);
  std::string body = R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}})";
  lsp->sendRaw("Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  auto ndjson = Client::unixSocket(socket);
  CHECK(ndjson->callResult("execute", {{"code", "1+1"}}, kExecutionTimeout)["value"] == 2);
  std::string raw = lsp->waitRaw("serverInfo");
  INFO("LSP client received: " << raw.substr(0, 400));
  CHECK(raw.starts_with("Content-Length: "));
  CHECK(raw.find("\"serverInfo\"") != std::string::npos);
}

TEST_CASE("a TCP listener with a token runs nothing for a client without it, or with a wrong one", "[listen]") {
  SharedDir dir("listen");
  TokenFile token(dir, "s3cret-token-of-the-test");
  // The run writes a marker into a directory of the host: it shows whether anything ran.
  std::filesystem::permissions(dir.path, std::filesystem::perms::all);
  TempFile config("listen-token.json", R"({"profiles": {"default": {"pool": {"size": 0}, "allowWrite": [)" +
                                           Json(dir.path.string()).dump() +
                                           R"(]}, "datascience": {"pool": {"size": 0}}, "javascript": {"pool": {"size": 0}}}})");
  ListeningServer server({"--listen", "tcp:127.0.0.1:0", "--token-file", token.path, "--config", config.path()});
  REQUIRE(server.port > 0);
  auto marker = [&](const std::string& name) {
    return "open(" + pyString((dir.path / name).string()) + ", 'w').write('ran')\n'done'";
  };

  SECTION("no initialize: refused, and nothing ran") {
    auto c = Client::tcp(server.port);
    CHECK(errorCode(c->call("execute", {{"code", marker("no-init")}})) == -32003);
    CHECK(errorCode(c->call("status")) == -32003);
    CHECK_FALSE(std::filesystem::exists(dir.path / "no-init"));
  }
  SECTION("initialize without a token, or with a wrong one: refused and closed") {
    for (Json params : {Json::object(), Json{{"token", "s3cret-token-of-the-tesT"}}, Json{{"token", "s3cret"}}}) {
      auto c = Client::tcp(server.port);
      int64_t init = c->request("initialize", params);
      c->request("execute", {{"code", marker("wrong")}});
      auto answer = c->waitResponse(init);
      REQUIRE(answer.has_value());
      CHECK(errorCode(*answer) == -32003);
      CHECK(c->waitClosed());
      INFO("received: " << c->describe());
      CHECK(c->messages().size() == 1);  // nothing after the refusal was read
    }
    CHECK_FALSE(std::filesystem::exists(dir.path / "wrong"));
  }
  SECTION("before the token, only small messages, and only for a while") {
    auto c = Client::tcp(server.port);
    // 100 KiB of code, more than a stranger may send: refused as too large, nothing runs.
    std::string big = marker("big") + "\n#" + std::string(100 << 10, 'x');
    CHECK(errorCode(c->call("execute", {{"code", big}})) == -32600);
    CHECK_FALSE(std::filesystem::exists(dir.path / "big"));
    // Saying nothing: closed after 10 s, with a word of why.
    CHECK(c->waitClosed(Millis{30000}));
    INFO("received: " << c->describe());
    REQUIRE_FALSE(c->messages().empty());
    CHECK(c->messages().back()["error"]["code"] == -32003);
    // Once in, the server's own limit holds again.
    auto in = Client::tcp(server.port);
    in->callResult("initialize", {{"token", "s3cret-token-of-the-test"}});
    Json ran = in->callResult("execute", {{"code", big}}, kExecutionTimeout);
    REQUIRE_STATUS(ran, "ok");
    CHECK(std::filesystem::exists(dir.path / "big"));
  }
  SECTION("the right token runs, and a TCP client does not get the server's view") {
    auto c = Client::tcp(server.port);
    Json init = c->callResult("initialize", {{"token", "s3cret-token-of-the-test"}});
    CHECK(init["serverInfo"]["name"] == "pycell");
    Json ran = c->callResult("execute", {{"code", marker("right")}}, kExecutionTimeout);
    REQUIRE_STATUS(ran, "ok");
    CHECK(std::filesystem::exists(dir.path / "right"));
    CHECK(errorCode(c->call("status")) == -32003);
    CHECK(c->callResult("status", {{"executionId", ran["executionId"]}})["status"] == "ok");
  }
}

TEST_CASE("a non-loopback TCP address without a token is refused at start", "[listen]") {
  auto result = runPycell({"serve", "--listen", "tcp:0.0.0.0:0", "--config", noPoolConfig()});
  CHECK(result.exitCode == 2);
  CHECK(result.err.find("--token-file is required") != std::string::npos);
  auto bad = runPycell({"serve", "--listen", "udp:1.2.3.4:5"});
  CHECK(bad.exitCode == 2);
  CHECK(bad.err.find("unix:PATH, tcp:HOST:PORT or systemd") != std::string::npos);
}

TEST_CASE("a client that disconnects mid-run leaves nothing behind", "[listen]") {
  SharedDir dir("listen");
  std::string socket = (dir.path / "pycell.sock").string();
  ListeningServer server({"--listen", "unix:" + socket, "--config", noPoolConfig()});
  auto admin = Client::unixSocket(socket);
  // Idle, with no pools: no process below the server, and its cgroups as they are now.
  REQUIRE(admin->callResult("execute", {{"code", "1"}}, kExecutionTimeout)["status"] == "ok");
  REQUIRE(eventually([&] { return descendants(server.pid()).empty(); }, 10000ms));
  auto cgroupsBefore = pycellCgroups(server.pid());

  auto leaving = Client::unixSocket(socket);
  leaving->request("execute", {{"code", kLongRun}, {"executionId", "run"}});
  leaving->callResult("session/create", {{"session", "kept"}}, kExecutionTimeout);
  leaving->request("execute", {{"code", kLongRun}, {"session", "kept"}});
  REQUIRE(eventually([&] { return admin->callResult("status")["running"] == 2; }, 20000ms));
  REQUIRE(descendants(server.pid()).size() >= 2);
  leaving->close();

  CHECK(eventually([&] {
    Json s = admin->callResult("status");
    return s["running"] == 0 && s["queued"] == 0 && s["sessions"].empty();
  }, 10000ms));
  CHECK(eventually([&] { return descendants(server.pid()).empty(); }, 10000ms));
  INFO("processes: " << describeProcesses(descendants(server.pid())));
  CHECK(eventually([&] { return pycellCgroups(server.pid()) == cgroupsBefore; }, 10000ms));
  // The server goes on for the others.
  CHECK(admin->callResult("execute", {{"code", "2+2"}}, kExecutionTimeout)["value"] == 4);
}

TEST_CASE("200 connections opened and dropped leave the server's fds and memory flat", "[listen]") {
  SharedDir dir("listen");
  std::string socket = (dir.path / "pycell.sock").string();
  // No pool: a pool's children come and go on their own schedule, and so do their fds.
  ListeningServer server({"--listen", "unix:" + socket, "--config", noPoolConfig()});
  auto churn = [&](int n) {
    for (int i = 0; i < n; ++i) {
      auto c = Client::unixSocket(socket);
      if (i % 4 == 0) {  // some run something and leave with its result kept
        c->callResult("execute", {{"code", "x = list(range(1000))\nlen(x)"}}, kExecutionTimeout);
      } else if (i % 4 == 1) {  // some leave a request unanswered
        c->request("execute", {{"code", "sum(range(10**5))"}});
      } else if (i % 4 == 2) {
        c->callResult("initialize", Json::object());
      }  // and some say nothing at all
      c->close();
    }
  };
  auto admin = Client::unixSocket(socket);
  // Settled: nothing running, and no socket left but the listener and admin's connection (a
  // connection has two fds: the socket and its duplicate for writing).
  auto settled = [&] {
    return eventually([&] { return admin->callResult("status")["running"] == 0 && openFds(server.pid()).sockets == 3; },
                      20000ms);
  };
  churn(20);  // warm: allocator arenas, the result store
  REQUIRE(settled());
  size_t fdsBefore = openFds(server.pid()).all;
  long rss0 = procStatusKb(server.pid(), "VmRSS");
  churn(200);
  CHECK(settled());
  long rss1 = procStatusKb(server.pid(), "VmRSS");
  churn(200);
  CHECK(settled());
  long rss2 = procStatusKb(server.pid(), "VmRSS");
  INFO("fds before " << fdsBefore << ", after " << openFds(server.pid()).all);
  CHECK(openFds(server.pid()).all == fdsBefore);
  // Flat: the first 200 may fill caches (a sanitizer's quarantine among them); the next 200
  // add next to nothing (under 10 KiB a connection would show here).
  INFO("server RSS: warm " << rss0 << " KiB, after 200 " << rss1 << " KiB, after 400 " << rss2 << " KiB");
  CHECK(rss1 - rss0 < 16384);
  CHECK(rss2 - rss1 < 2048);
}

TEST_CASE("connections and executions per connection are limited", "[listen]") {
  SharedDir dir("listen");
  std::string socket = (dir.path / "pycell.sock").string();
  ListeningServer server({"--listen", "unix:" + socket, "--config", noPoolConfig(), "--max-connections", "2",
                          "--max-executions-per-connection", "1"});
  auto a = Client::unixSocket(socket);
  auto b = Client::unixSocket(socket);
  CHECK(a->callResult("execute", {{"code", "1"}}, kExecutionTimeout)["value"] == 1);
  CHECK(b->callResult("execute", {{"code", "2"}}, kExecutionTimeout)["value"] == 2);
  auto third = Client::unixSocket(socket);  // the kernel accepts; the server answers and closes
  REQUIRE(third->waitClosed());
  REQUIRE(third->messages().size() == 1);
  CHECK(third->messages()[0]["error"]["code"] == -32001);
  CHECK(third->messages()[0]["error"]["message"].get<std::string>().find("too many connections") != std::string::npos);

  int64_t running = a->request("execute", {{"code", kLongRun}, {"executionId", "one"}});
  CHECK(errorCode(a->call("execute", {{"code", "3"}})) == -32001);       // a second of A's at once
  CHECK(b->callResult("execute", {{"code", "4"}}, kExecutionTimeout)["value"] == 4);  // B's own are not counted
  CHECK(a->callResult("kill", {{"executionId", "one"}})["killed"] == true);
  auto killed = a->waitResponse(running, kExecutionTimeout);
  REQUIRE(killed.has_value());
  CHECK((*killed)["result"]["status"] == "killed");
  CHECK(a->callResult("execute", {{"code", "5"}}, kExecutionTimeout)["value"] == 5);
  b->close();
  // A place is free again once B has gone.
  CHECK(eventually([&] {
    auto c = Client::unixSocket(socket);
    auto answer = c->waitResponse(c->request("execute", {{"code", "6"}}), kExecutionTimeout);
    return answer && answer->contains("result") && (*answer)["result"]["value"] == 6;
  }, 10000ms));
}

TEST_CASE("socket activation: the listening socket passed as fd 3 (LISTEN_FDS)", "[listen]") {
  SharedDir dir("listen");
  std::string socket = (dir.path / "activated.sock").string();
  Fd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket.c_str(), sizeof addr.sun_path - 1);
  REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::chmod(socket.c_str(), 0666) == 0);  // the server may run as another uid
  REQUIRE(::listen(listener.get(), 16) == 0);
  auto argv = commandLine({"serve", "--listen", "systemd", "--config", noPoolConfig()});
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // As systemd does: the socket at fd 3, LISTEN_PID naming the process that execs.
    if (listener.get() == 3) ::fcntl(3, F_SETFD, 0);  // dup2 onto itself would keep close-on-exec
    else if (::dup2(listener.get(), 3) != 3) ::_exit(120);
    std::string self = std::to_string(::getpid());
    ::setenv("LISTEN_PID", self.c_str(), 1);
    ::setenv("LISTEN_FDS", "1", 1);
    int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  listener.reset();  // the server holds it now
  struct Reap {
    pid_t pid;
    ~Reap() {
      ::kill(pid, SIGTERM);
      int st = 0;
      ::waitpid(pid, &st, 0);
    }
  } reap{pid};
  auto c = Client::unixSocket(socket);
  Json result = c->callResult("execute", {{"code", "import os\nsorted(k for k in os.environ if k.startswith('LISTEN'))"}},
                              kExecutionTimeout);
  REQUIRE_STATUS(result, "ok");
  CHECK(result["value"] == Json::array());
}

TEST_CASE("SIGTERM stops a shared server: each client's runs in flight are answered killed, nothing is left", "[listen]") {
  SharedDir dir("listen");
  std::string socket = (dir.path / "pycell.sock").string();
  auto mountsBefore = pycellMounts();
  ListeningServer server({"--listen", "unix:" + socket, "--config", noPoolConfig()});
  DescendantTracker tracker(server.pid());
  auto a = Client::unixSocket(socket);
  auto b = Client::unixSocket(socket);
  int64_t runA = a->request("execute", {{"code", kLongRun}, {"executionId", "a"}});
  int64_t runB = b->request("execute", {{"code", kLongRun}, {"executionId", "b"}});
  REQUIRE(eventually([&] { return a->callResult("status")["running"] == 2; }, 20000ms));
  tracker.sampleNow();
  CHECK(server.stop() == 128 + SIGTERM);
  for (auto [client, id] : {std::pair{a.get(), runA}, std::pair{b.get(), runB}}) {
    auto answer = client->waitResponse(id, kReplyTimeout);
    INFO("received: " << client->describe());
    REQUIRE(answer.has_value());
    CHECK((*answer)["result"]["status"] == "killed");
  }
  auto left = awaitNothingLeft(tracker, mountsBefore);
  INFO(left.describe());
  CHECK(left.empty());
  CHECK_FALSE(std::filesystem::exists(socket));
}
