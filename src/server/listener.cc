#include "pycell/server/listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace pycell::server {

namespace {
constexpr int kBacklog = 128;
constexpr int kSystemdFirstFd = 3;  // SD_LISTEN_FDS_START

std::unexpected<std::string> bad(std::string why) { return std::unexpected(std::move(why)); }

bool parsePort(std::string_view text, int& port) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  return ec == std::errc() && end == text.data() + text.size() && port >= 0 && port <= 65535;
}

std::string describeSockaddr(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (ss.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(ss);
    ::inet_ntop(AF_INET, &a.sin_addr, host, sizeof host);
    port = ntohs(a.sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  if (ss.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(ss);
    ::inet_ntop(AF_INET6, &a.sin6_addr, host, sizeof host);
    port = ntohs(a.sin6_port);
    return "[" + std::string(host) + "]:" + std::to_string(port);
  }
  return "?";
}

bool loopbackSockaddr(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET)
    return (ntohl(reinterpret_cast<const sockaddr_in&>(ss).sin_addr.s_addr) >> 24) == 127;
  if (ss.ss_family == AF_INET6) return IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr);
  return false;
}

Result<Listening> listenUnix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return std::unexpected(Error{"unix socket path too long (at most " + std::to_string(sizeof addr.sun_path - 1) + " bytes): " + path});
  std::memcpy(addr.sun_path, path.data(), path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return std::unexpected(sysError("socket(AF_UNIX)"));
  struct stat st{};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return std::unexpected(Error{path + " exists and is not a socket; not replacing it"});
    // A socket file left by a server that is gone is replaced; one that answers is in use.
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe && ::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
      return std::unexpected(Error{path + " is in use: another server accepts on it"});
    if (::unlink(path.c_str()) != 0) return std::unexpected(sysError("unlink(stale socket " + path + ")"));
  }
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return std::unexpected(sysError("bind(" + path + ")"));
  if (::listen(fd.get(), kBacklog) != 0) {
    ::unlink(path.c_str());
    return std::unexpected(sysError("listen(" + path + ")"));
  }
  return Listening{std::move(fd), "unix:" + path, true, true, path};
}

Result<Listening> listenTcp(const ListenAddress& a) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  // A numeric address, or localhost: no name lookups (no resolver, no network).
  hints.ai_flags = AI_PASSIVE | (a.host == "localhost" ? 0 : AI_NUMERICHOST);
  addrinfo* found = nullptr;
  std::string port = std::to_string(a.port);
  if (int rc = ::getaddrinfo(a.host == "localhost" ? "127.0.0.1" : a.host.c_str(), port.c_str(), &hints, &found); rc != 0)
    return std::unexpected(Error{"tcp address " + a.host + ": " + ::gai_strerror(rc)});
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> hold(found, ::freeaddrinfo);
  UniqueFd fd(::socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return std::unexpected(sysError("socket(tcp)"));
  int on = 1;
  (void)::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (::bind(fd.get(), found->ai_addr, found->ai_addrlen) != 0)
    return std::unexpected(sysError("bind(tcp " + a.host + ":" + port + ")"));
  if (::listen(fd.get(), kBacklog) != 0) return std::unexpected(sysError("listen(tcp)"));
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len) != 0) return std::unexpected(sysError("getsockname"));
  return Listening{std::move(fd), "tcp:" + describeSockaddr(bound), false, loopbackSockaddr(bound), ""};
}

Result<Listening> listenSystemd() {
  const char* pid = std::getenv("LISTEN_PID");
  const char* fds = std::getenv("LISTEN_FDS");
  if (!pid || !fds || std::atoll(pid) != ::getpid() || std::atoi(fds) < 1)
    return std::unexpected(Error{"--listen systemd: no socket was passed (LISTEN_PID and LISTEN_FDS name none for this process)"});
  int fd = kSystemdFirstFd;
  int type = 0, accepting = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
    return std::unexpected(Error{"--listen systemd: fd 3 is not a stream socket"});
  len = sizeof accepting;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || !accepting)
    return std::unexpected(Error{"--listen systemd: fd 3 is not listening (use ListenStream= with Accept=no)"});
  // The sandboxes' environment is their profile's, but say it plainly: the fds are ours now.
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  (void)::fcntl(fd, F_SETFD, FD_CLOEXEC);
  (void)setNonBlocking(fd);
  sockaddr_storage bound{};
  len = sizeof bound;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) != 0) return std::unexpected(sysError("getsockname(fd 3)"));
  if (bound.ss_family == AF_UNIX) {
    std::string path = reinterpret_cast<const sockaddr_un&>(bound).sun_path;
    return Listening{UniqueFd(fd), "systemd unix:" + path, true, true, ""};
  }
  return Listening{UniqueFd(fd), "systemd tcp:" + describeSockaddr(bound), false, loopbackSockaddr(bound), ""};
}
}  // namespace

std::expected<ListenAddress, std::string> parseListenAddress(std::string_view text) {
  ListenAddress a;
  if (text == "systemd") {
    a.kind = ListenAddress::Kind::Systemd;
    return a;
  }
  if (text.starts_with("unix:")) {
    a.kind = ListenAddress::Kind::Unix;
    a.path = std::string(text.substr(5));
    if (a.path.empty()) return bad("unix: needs a path (unix:/run/pycell/pycell.sock)");
    if (a.path.find('\0') != std::string::npos) return bad("unix: the path holds a NUL byte");
    return a;
  }
  if (text.starts_with("tcp:")) {
    a.kind = ListenAddress::Kind::Tcp;
    std::string_view rest = text.substr(4);
    std::string_view port;
    if (rest.starts_with("[")) {
      auto close = rest.find("]:");
      if (close == std::string_view::npos) return bad("tcp: an IPv6 address goes in brackets with a port: tcp:[::1]:7777");
      a.host = std::string(rest.substr(1, close - 1));
      port = rest.substr(close + 2);
    } else {
      auto colon = rest.rfind(':');
      if (colon == std::string_view::npos) return bad("tcp: needs HOST:PORT (tcp:127.0.0.1:7777)");
      a.host = std::string(rest.substr(0, colon));
      port = rest.substr(colon + 1);
      if (a.host.find(':') != std::string::npos) return bad("tcp: an IPv6 address goes in brackets: tcp:[::1]:7777");
    }
    if (a.host.empty()) return bad("tcp: needs a host (tcp:127.0.0.1:7777; tcp:0.0.0.0:7777 for every interface, with --token-file)");
    if (!parsePort(port, a.port)) return bad("tcp: the port must be a number from 0 to 65535");
    return a;
  }
  return bad("unknown address '" + std::string(text.substr(0, 100)) + "' (unix:PATH, tcp:HOST:PORT or systemd)");
}

bool isLoopbackHost(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  return ::inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

Result<Listening> listenOn(const ListenAddress& address) {
  switch (address.kind) {
    case ListenAddress::Kind::Unix: return listenUnix(address.path);
    case ListenAddress::Kind::Tcp: return listenTcp(address);
    case ListenAddress::Kind::Systemd: return listenSystemd();
  }
  return std::unexpected(Error{"unknown listen address"});
}

Peer describePeer(int fd, bool unixSocket) {
  Peer peer;
  if (unixSocket) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
      peer.description = "unix uid " + std::to_string(cred.uid) + " pid " + std::to_string(cred.pid);
      // The socket's owner, or root (who could read the server's memory anyway).
      peer.owner = cred.uid == ::geteuid() || cred.uid == 0;
    } else {
      peer.description = "unix (no credentials)";
    }
    return peer;
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  peer.description = ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0 ? "tcp " + describeSockaddr(ss) : "tcp ?";
  return peer;
}

Result<std::string> readTokenFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) return std::unexpected(sysError("open(token file " + path + ")"));
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return std::unexpected(sysError("fstat(token file)"));
  if (!S_ISREG(st.st_mode)) return std::unexpected(Error{"token file " + path + " is not a regular file"});
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    return std::unexpected(Error{"token file " + path + " can be read by others (mode " + [&] {
                                   char m[8];
                                   std::snprintf(m, sizeof m, "%04o", static_cast<unsigned>(st.st_mode & 07777));
                                   return std::string(m);
                                 }() + "); chmod 600 it"});
  std::string text(4096, '\0');
  ssize_t n = ::read(fd.get(), text.data(), text.size());
  if (n < 0) return std::unexpected(sysError("read(token file)"));
  text.resize(static_cast<size_t>(n));
  text = text.substr(0, text.find('\n'));
  if (!text.empty() && text.back() == '\r') text.pop_back();
  if (text.empty()) return std::unexpected(Error{"token file " + path + " is empty"});
  return text;
}

}  // namespace pycell::server
