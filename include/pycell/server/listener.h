#pragma once
// Where a shared server listens (`pycell serve --listen ADDRESS`) and who connected: the
// address forms, the listening socket, and what the kernel says of each peer.
#include <string>
#include <string_view>

#include "pycell/error.h"
#include "pycell/process/unique_fd.h"

namespace pycell::server {

struct ListenAddress {
  enum class Kind { Unix, Tcp, Systemd } kind = Kind::Unix;
  std::string path;  // unix: the socket file
  std::string host;  // tcp: an IPv4 or IPv6 address (no brackets), or "localhost"
  int port = 0;      // tcp: 0 picks a free one (the log names it)
};

// `unix:PATH`, `tcp:HOST:PORT` (IPv6 in brackets: `tcp:[::1]:7777`) or `systemd` (the socket
// passed by socket activation); a message naming what is wrong otherwise.
[[nodiscard]] std::expected<ListenAddress, std::string> parseListenAddress(std::string_view text);

// Whether a TCP host is a loopback address (127.0.0.0/8, ::1, localhost).
[[nodiscard]] bool isLoopbackHost(const std::string& host);

struct Listening {
  UniqueFd fd;
  std::string description;  // "unix:/run/pycell.sock", "tcp:127.0.0.1:41234"
  bool unixSocket = false;
  bool loopbackOnly = false;  // only loopback peers can reach it (a unix socket, or a loopback TCP address)
  std::string createdPath;    // a socket file this process made (removed at exit)
};

// Binds and listens (non-blocking, close-on-exec). A unix socket's file is made with the
// process's umask; a stale one (nobody accepts on it) is replaced, a live one is refused.
// `systemd` takes fd 3 when LISTEN_PID is this process and LISTEN_FDS is 1 or more.
[[nodiscard]] Result<Listening> listenOn(const ListenAddress& address);

struct Peer {
  std::string description;  // "unix uid 1000 pid 4242", "tcp 127.0.0.1:53124"
  bool owner = false;       // a unix peer running as this process's effective uid, or as root
};
[[nodiscard]] Peer describePeer(int fd, bool unixSocket);

// The first line of a token file, without its line end; an error if the file cannot be
// read, is empty, or can be read by others than its owner (group or world readable).
[[nodiscard]] Result<std::string> readTokenFile(const std::string& path);

}  // namespace pycell::server
