// Runs with `network: true`: their own network namespace with slirp4netns for the way out,
// never the host's network. From inside, the host's loopback (directly, or through slirp's
// gateway 10.0.2.2) and its abstract AF_UNIX sockets are out of reach; the run has tap0,
// resolver files and CA certificates. Nothing here connects anywhere but loopback and the
// gateway address that would lead to it: the listeners are the test's own, on 127.0.0.1.
//
// Where the server finds no network stack (e.g. /dev/net/tun closed to an unprivileged
// server), the cases say so with a warning and check the other half of the promise instead:
// initialize reports "unavailable" and a network run is refused with a JSON-RPC error.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "server_process.h"

using namespace pycell::testing;

namespace {

// A profile that may ask for network, with Python's policy layer off (the kernel layer and
// the network namespace are under test); no pools, to keep the servers light.
const std::string& networkConfig() {
  static TempFile config("network.json", R"({"profiles": {
      "default": {"pool": {"size": 0}},
      "net": {"networkAllowed": true, "imports": null, "builtins": {"remove": []}, "pool": {"size": 0}}}})");
  return config.path();
}

std::unique_ptr<ServerProcess> startNetServer() {
  return startServer(Framing::kNdjson, {"--config", networkConfig()});
}

// Whether network runs have their stack here. When not, checks what must hold then and
// warns that the rest of the case does not apply on this machine.
bool networkStackUp(ServerProcess& server) {
  Json init = server.initialize();
  const Json& isolation = init["isolation"];
  INFO("isolation: " << brief(isolation));
  REQUIRE(isolation.contains("network"));
  if (isolation["network"] == "slirp4netns") return true;
  REQUIRE(isolation["network"] == "unavailable");
  WARN("no network stack for this server (isolation.network = unavailable"
       << (runAsUid() ? ", server unprivileged" : "") << "): checked that network runs are refused instead");
  Json refused = server.call("execute", {{"code", "1"}, {"profile", "net"}, {"network", true}}, kExecutionTimeout);
  INFO("execute: " << brief(refused));
  REQUIRE(refused.contains("error"));
  CHECK(refused["error"]["code"] == -32000);
  CHECK(refused["error"].dump().find("network stack unavailable") != std::string::npos);
  Json session = server.call("session/create", {{"profile", "net"}, {"network", true}}, kExecutionTimeout);
  INFO("session/create: " << brief(session));
  REQUIRE(session.contains("error"));
  CHECK(session["error"]["code"] == -32000);
  CHECK(session["error"].dump().find("network stack unavailable") != std::string::npos);
  // Runs without network are not affected.
  CHECK(execute(server, {{"code", "1 + 1"}, {"profile", "net"}})["value"] == 2);
  return false;
}

Json runOnline(ServerProcess& server, const std::string& code) {
  Json result = execute(server, {{"code", code}, {"profile", "net"}, {"network", true}, {"limits", {{"timeoutMs", 10000}}}});
  INFO("result: " << brief(result));
  REQUIRE(result["status"] == "ok");
  return result["value"];
}

bool readable(const Fd& fd) {
  pollfd p{fd.get(), POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

ino_t netNamespaceInode(const std::string& proc) {
  struct stat st{};
  REQUIRE(::stat((proc + "/ns/net").c_str(), &st) == 0);
  return st.st_ino;
}

const std::string kAttempt = R"py(
import errno, socket
def attempt(family, address):
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.settimeout(3)
        s.connect(address)
        s.sendall(b'escaped')
        return 'connected'
    except socket.timeout:
        return 'timeout'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__
    finally:
        s.close()
)py";

}  // namespace

TEST_CASE("a network run cannot reach a TCP listener on the host's loopback, directly or through slirp's gateway",
          "[network][security]") {
  LoopbackListener listener = listenOnLoopback();
  const int port = listener.port;

  auto server = startNetServer();
  if (!networkStackUp(*server)) return;
  Json value = runOnline(*server, "PORT = " + std::to_string(port) + kAttempt + R"py(
{'loopback': attempt(socket.AF_INET, ('127.0.0.1', PORT)),
 'gateway': attempt(socket.AF_INET, ('10.0.2.2', PORT))}
)py");
  INFO("sandbox: " << brief(value) << "; host port " << port);
  CHECK(value["loopback"] == "ECONNREFUSED");  // the sandbox's own loopback: nobody listens
  CHECK(value["gateway"] != "connected");
  CHECK(listener.receivedNothing());  // nothing was queued for accept
}

TEST_CASE("a network run cannot connect to the host's abstract AF_UNIX sockets", "[network][security]") {
  const std::string name = "pycell-network-test-" + std::to_string(::getpid());
  Fd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  REQUIRE(listener.valid());
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path + 1, name.data(), name.size());
  auto alen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&a), alen) == 0);
  REQUIRE(::listen(listener.get(), 16) == 0);

  auto server = startNetServer();
  if (!networkStackUp(*server)) return;
  Json value = runOnline(*server, "NAME = " + pyString(name) + kAttempt + R"py(
attempt(socket.AF_UNIX, '\0' + NAME)
)py");
  INFO("sandbox: " << brief(value));
  CHECK(value == "ECONNREFUSED");
  CHECK_FALSE(readable(listener));
}

TEST_CASE("a network run has tap0, resolver files and CA certificates; a run without has none of them",
          "[network]") {
  auto server = startNetServer();
  if (!networkStackUp(*server)) return;
  const std::string probe = R"py(
import errno, os, socket, ssl
def writable(path):
    try:
        open(path, 'a').close()
        return 'written'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
def read(path):
    try:
        return open(path).read()
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
def interfaces():
    try:
        return sorted(n for _, n in socket.if_nameindex())
    except OSError as e:  # offline: seccomp allows no netlink socket
        return errno.errorcode.get(e.errno, str(e.errno))
out = {'interfaces': interfaces(), 'resolv': read('/etc/resolv.conf'),
       'hosts': read('/etc/hosts'), 'nsswitch': read('/etc/nsswitch.conf')}
if isinstance(out['interfaces'], list):
    out['localhost'] = sorted({a[4][0] for a in socket.getaddrinfo('localhost', 80, socket.AF_INET, socket.SOCK_STREAM)})
    out['resolvWritable'] = writable('/etc/resolv.conf')
    out['certDir'] = len(os.listdir('/etc/ssl/certs')) if os.path.isdir('/etc/ssl/certs') else 0
    out['caCerts'] = len(ssl.create_default_context().get_ca_certs())
    # A listener of its own on 127.0.0.1, reached by the name localhost (/etc/hosts).
    srv = socket.socket()
    srv.bind(('127.0.0.1', 0))
    srv.listen(1)
    c = socket.create_connection(('localhost', srv.getsockname()[1]), timeout=5)
    conn, _ = srv.accept()
    c.sendall(b'hi')
    out['loopback'] = conn.recv(2).decode()
out
)py";
  Json online = runOnline(*server, probe);
  INFO("online: " << brief(online));
  CHECK(online["interfaces"] == Json::array({"lo", "tap0"}));
  CHECK(online["resolv"] == "nameserver 10.0.2.3\n");
  CHECK(online["hosts"].get<std::string>().find("localhost") != std::string::npos);
  CHECK(online["nsswitch"].get<std::string>().find("hosts: files dns") != std::string::npos);
  CHECK(online["localhost"] == Json::array({"127.0.0.1"}));
  CHECK(online["loopback"] == "hi");
  CHECK(online["resolvWritable"] == "EROFS");
  if (std::filesystem::exists("/etc/ssl/certs/ca-certificates.crt")) {
    CHECK(online["certDir"].get<int>() > 0);
    CHECK(online["caCerts"].get<int>() > 0);
  } else {
    WARN("the host has no /etc/ssl/certs/ca-certificates.crt: the CA certificates were not checked");
  }

  Json offline = execute(*server, {{"code", probe}, {"profile", "net"}});
  INFO("offline: " << brief(offline));
  REQUIRE(offline["status"] == "ok");
  CHECK(offline["value"]["interfaces"] == "EPERM");
  CHECK(offline["value"]["resolv"] == "ENOENT");
}

TEST_CASE("a network run has a network namespace of its own, in a single run and in a session", "[network][security]") {
  auto server = startNetServer();
  if (!networkStackUp(*server)) return;
  const ino_t host = netNamespaceInode("/proc/self");
  // The server's too: it is where a shared network would come from.
  CHECK(netNamespaceInode("/proc/" + std::to_string(server->pid())) == host);
  const std::string code = "import os\nos.stat('/proc/self/ns/net').st_ino";
  Json single = runOnline(*server, code);
  CHECK(single.get<uint64_t>() != static_cast<uint64_t>(host));

  Json created = server->callResult("session/create", {{"profile", "net"}, {"network", true}}, kExecutionTimeout);
  INFO("session/create: " << brief(created));
  const std::string session = created["session"].get<std::string>();
  Json first = execute(*server, {{"code", code}, {"session", session}, {"network", true}});
  INFO("session run: " << brief(first));
  REQUIRE(first["status"] == "ok");
  CHECK(first["value"].get<uint64_t>() != static_cast<uint64_t>(host));
  // The session's network stays up between runs.
  Json second = execute(*server, {{"code", "import socket\nsorted(n for _, n in socket.if_nameindex())"}, {"session", session}, {"network", true}});
  INFO("second run: " << brief(second));
  CHECK(second["value"] == Json::array({"lo", "tap0"}));
  CHECK_FALSE(server->call("session/close", {{"session", session}}).contains("error"));
}

TEST_CASE("when slirp4netns fails, the network run is refused with an error, not run on the host's network",
          "[network][security]") {
  // A stand-in slirp4netns first on the server's PATH, that gives up the way a real one does
  // when it cannot enter the namespace.
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("pycell-fake-slirp-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  struct Remove {
    fs::path dir;
    ~Remove() {
      std::error_code ignored;
      fs::remove_all(dir, ignored);
    }
  } removeLater{dir};
  {
    std::ofstream script(dir / "slirp4netns");
    script << "#!/bin/sh\necho 'stand-in: setns(CLONE_NEWNET): Operation not permitted' >&2\nexit 1\n";
  }
  fs::permissions(dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read |
                           fs::perms::others_exec);
  fs::permissions(dir / "slirp4netns", fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                           fs::perms::others_read | fs::perms::others_exec);
  const char* path = ::getenv("PATH");
  std::vector<std::string> argv = {findInPath("env"), "PATH=" + dir.string() + ":" + (path ? path : "/usr/bin:/bin")};
  for (auto& word : commandLine({"serve", "--framing", "ndjson", "--config", networkConfig()})) argv.push_back(word);
  ServerProcess server(ServerProcess::Argv{argv}, Framing::kNdjson);
  if (!networkStackUp(server)) return;  // unavailable before slirp4netns is even tried

  Json refused = server.call("execute", {{"code", "1"}, {"profile", "net"}, {"network", true}}, kExecutionTimeout);
  INFO("execute: " << brief(refused));
  REQUIRE(refused.contains("error"));
  CHECK(refused["error"]["code"] == -32000);
  const std::string text = refused["error"].dump();
  CHECK(text.find("network stack unavailable") != std::string::npos);
  CHECK(text.find("stand-in") != std::string::npos);  // what slirp4netns said is passed on
  Json session = server.call("session/create", {{"profile", "net"}, {"network", true}}, kExecutionTimeout);
  INFO("session/create: " << brief(session));
  REQUIRE(session.contains("error"));
  CHECK(session["error"].dump().find("network stack unavailable") != std::string::npos);
  // The server goes on, and so do runs without network.
  CHECK(execute(server, {{"code", "1 + 1"}, {"profile", "net"}})["value"] == 2);
}
