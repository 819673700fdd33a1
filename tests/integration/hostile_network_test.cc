// Hostile code after the network: sockets of every family, listeners on the host's loopback
// (the test listens on 127.0.0.1 and ::1 outside the sandbox and checks nothing arrives), the
// host's AF_UNIX sockets, and DNS. Each case runs the code through the real server.
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
#include <filesystem>
#include <string>

#include "hostile_support.h"
#include "server_process.h"

using namespace pycell::testing;
using namespace pycell::testing::hostile;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// True when something is waiting on `fd` (a connection, a datagram).
bool readable(const Fd& fd) {
  pollfd p{fd.get(), POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

}  // namespace

// ---- sockets --------------------------------------------------------------------------------

TEST_CASE("no network socket can be created; AF_UNIX works", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server,
      "import socket, errno\n"
      "def try_socket(*args):\n"
      "    try:\n"
      "        socket.socket(*args).close()\n"
      "        return 'ok'\n"
      "    except OSError as e:\n"
      "        return errno.errorcode.get(e.errno, str(e.errno))\n"
      "out = {\n"
      "  'inet': try_socket(socket.AF_INET, socket.SOCK_STREAM),\n"
      "  'inet6': try_socket(socket.AF_INET6, socket.SOCK_STREAM),\n"
      "  'udp': try_socket(socket.AF_INET, socket.SOCK_DGRAM),\n"
      "  'raw': try_socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),\n"
      "  'netlink': try_socket(socket.AF_NETLINK, socket.SOCK_RAW, 0),\n"
      "  'packet': try_socket(socket.AF_PACKET, socket.SOCK_RAW, 0),\n"
      "  'unix': try_socket(socket.AF_UNIX, socket.SOCK_STREAM),\n"
      "}\n"
      "a, b = socket.socketpair()\n"
      "a.sendall(b'ping')\n"
      "out['socketpair'] = b.recv(4).decode()\n"
      "try:\n"
      "    socket.create_connection(('127.0.0.1', 80), timeout=1)\n"
      "    out['connect'] = 'ok'\n"
      "except OSError as e:\n"
      "    out['connect'] = errno.errorcode.get(e.errno, str(e.errno))\n"
      "out",
      {{"timeoutMs", 5000}});
  INFO("sandbox: " << brief(value));
  for (const char* family : {"inet", "inet6", "udp", "raw", "netlink", "packet", "connect"}) {
    INFO(family << ": " << value[family]);
    CHECK(value[family] == "EPERM");
  }
  CHECK(value["unix"] == "ok");
  CHECK(value["socketpair"] == "ping");
}

TEST_CASE("UDP and IPv6 TCP to listeners on the host's loopback get nothing through",
          "[security]") {
  Fd udp(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  REQUIRE(udp.valid());
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(udp.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(udp.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const int udpPort = ntohs(addr.sin_port);

  Fd tcp6(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  int tcp6Port = 0;
  sockaddr_in6 addr6{};
  addr6.sin6_family = AF_INET6;
  addr6.sin6_addr = in6addr_loopback;
  if (tcp6.valid() && ::bind(tcp6.get(), reinterpret_cast<sockaddr*>(&addr6), sizeof addr6) == 0 &&
      ::listen(tcp6.get(), 16) == 0) {
    socklen_t len6 = sizeof addr6;
    REQUIRE(::getsockname(tcp6.get(), reinterpret_cast<sockaddr*>(&addr6), &len6) == 0);
    tcp6Port = ntohs(addr6.sin6_port);
  } else {
    WARN("no IPv6 loopback here: only UDP is checked");
    tcp6.reset();
  }

  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server, "UDP, TCP6 = " + std::to_string(udpPort) + ", " + std::to_string(tcp6Port) + R"py(
import errno, socket
def attempt(f):
    try:
        f()
        return 'ok'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b'escaped', ('127.0.0.1', UDP))
def udp_connected():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(('127.0.0.1', UDP))
    s.send(b'escaped')
def tcp6():
    s = socket.create_connection(('::1', TCP6), timeout=2)
    s.sendall(b'escaped')
out = {'udp': attempt(udp), 'udp_connected': attempt(udp_connected)}
if TCP6:
    out['tcp6'] = attempt(tcp6)
out
)py", {{"timeoutMs", 5000}});
  INFO("sandbox: " << brief(value) << "; udp port " << udpPort << ", tcp6 port " << tcp6Port);
  CHECK(value["udp"] == "EPERM");
  CHECK(value["udp_connected"] == "EPERM");
  if (tcp6Port) CHECK(value["tcp6"] == "EPERM");
  CHECK_FALSE(readable(udp));
  if (tcp6.valid()) CHECK_FALSE(readable(tcp6));
}

TEST_CASE("the host's AF_UNIX sockets, abstract and on disk, are out of reach", "[security]") {
  // AF_UNIX sockets may be created in the sandbox: what keeps the host's out of reach is the
  // network namespace (abstract names) and the mount namespace (paths).
  const std::string abstractName = "pycell-hostile-" + std::to_string(::getpid());
  Fd abstract(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  REQUIRE(abstract.valid());
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path + 1, abstractName.data(), abstractName.size());
  socklen_t alen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + abstractName.size());
  REQUIRE(::bind(abstract.get(), reinterpret_cast<sockaddr*>(&a), alen) == 0);
  REQUIRE(::listen(abstract.get(), 16) == 0);

  const std::string path =
      (fs::temp_directory_path() / ("pycell-hostile-" + std::to_string(::getpid()) + ".sock")).string();
  ::unlink(path.c_str());
  Fd onDisk(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  REQUIRE(onDisk.valid());
  sockaddr_un p{};
  p.sun_family = AF_UNIX;
  REQUIRE(path.size() < sizeof p.sun_path);
  std::memcpy(p.sun_path, path.data(), path.size());
  REQUIRE(::bind(onDisk.get(), reinterpret_cast<sockaddr*>(&p), sizeof p) == 0);
  ::chmod(path.c_str(), 0777);  // the server may run as another uid
  REQUIRE(::listen(onDisk.get(), 16) == 0);
  struct Unlink {
    std::string path;
    ~Unlink() { ::unlink(path.c_str()); }
  } unlinkLater{path};

  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server, "ABSTRACT, PATH = " + pyString(abstractName) + ", " + pyString(path) + R"py(
import errno, socket
def connect(address, kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_UNIX, kind)
    try:
        s.settimeout(2)
        s.connect(address)
        s.sendall(b'escaped')
        return 'connected'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()
out = {'abstract': connect('\0' + ABSTRACT), 'path': connect(PATH)}
for p in ('/dev/log', '/run/systemd/journal/socket', '/run/systemd/private', '/var/run/docker.sock',
          '/run/docker.sock', '/run/containerd/containerd.sock', '/run/dbus/system_bus_socket',
          '/var/run/nscd/socket'):
    out[p] = connect(p, socket.SOCK_DGRAM if p == '/dev/log' else socket.SOCK_STREAM)
out
)py", {{"timeoutMs", 5000}});
  INFO("sandbox: " << brief(value));
  CHECK(value["abstract"] == "ECONNREFUSED");
  CHECK(value["path"] == "ENOENT");
  for (const auto& [where, outcome] : value.items()) {
    INFO(where << ": " << outcome);
    CHECK(outcome != "connected");
  }
  CHECK_FALSE(readable(abstract));
  CHECK_FALSE(readable(onDisk));
}

TEST_CASE("DNS resolution fails inside the sandbox", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Stopwatch clock;
  Json value = requireValue(*server, R"py(
import errno, socket
def resolve(f):
    try:
        return 'resolved: %r' % (f(),)
    except OSError as e:
        return type(e).__name__
def raw_query():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b'\0' * 12, ('127.0.0.53', 53))
{
  'getaddrinfo': resolve(lambda: socket.getaddrinfo('example.com', 443)),
  'getaddrinfo_pypi': resolve(lambda: socket.getaddrinfo('pypi.org', 443, socket.AF_INET6)),
  'gethostbyname': resolve(lambda: socket.gethostbyname('example.org')),
  'raw_query': resolve(raw_query),
}
)py", {{"timeoutMs", 8000}});
  INFO("sandbox: " << brief(value));
  CHECK(value["getaddrinfo"] == "gaierror");
  CHECK(value["getaddrinfo_pypi"] == "gaierror");
  CHECK(value["gethostbyname"] == "gaierror");
  CHECK(value["raw_query"] == "PermissionError");
  CHECK(clock.elapsed() < 8000ms);  // no resolver timeouts either
}
