#include "pycell/server/server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "pycell/process/log.h"
#include "pycell/protocol/jsonrpc.h"

namespace pycell::server {

namespace {
// While accepting fails for want of fds, the listener rests this long between tries.
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);
// A closed client's socket is drained this long at most, and so many at once at most
// (beyond that, closed at once).
constexpr auto kLinger = std::chrono::seconds(2);
constexpr size_t kMaxLingering = 64;
// Read and dropped per wakeup of a lingering socket: a client that keeps sending cannot hold
// the loop (the socket stays readable, so the loop comes back to it on its next turn).
constexpr int kLingerReadsPerWakeup = 16;
}  // namespace

Server::Server(EventLoop& loop, const sandbox::SandboxContext& ctx, Dialect dialect)
    : loop_(loop), ctx_(ctx), dialect_(dialect), scheduler_(loop, ctx, /*usePools=*/true) {}

Server::~Server() {
  clients_.clear();
  lingering_.clear();
  if (listening_ && !listening_->createdPath.empty()) ::unlink(listening_->createdPath.c_str());
}

Status Server::serveStdio(protocol::Framing framing, int inFd, int outFd, std::optional<int> clientPid) {
  stdio_ = std::make_unique<Connection>(loop_, ctx_, scheduler_, framing, inFd, outFd, dialect_, ConnectionScope{},
                                        [this](Connection::End end) { quit(end.exitCode, end.reason); });
  if (clientPid)
    if (auto st = stdio_->watchClientProcess(*clientPid); !st) return st;
  return stdio_->start();
}

Status Server::listen(ListenOptions options) {
  if (options.address.kind == ListenAddress::Kind::Tcp && !isLoopbackHost(options.address.host) && options.token.empty())
    return std::unexpected(Error{"tcp:" + options.address.host + " is reachable beyond this machine: --token-file is required"});
  auto listening = listenOn(options.address);
  if (!listening) return std::unexpected(listening.error());
  // Beyond loopback, anyone who can route a packet here could run code: not without a token.
  if (!listening->loopbackOnly && options.token.empty())
    return std::unexpected(Error{listening->description + " is reachable beyond this machine: --token-file is required"});
  listening_ = std::move(*listening);
  listenOptions_ = std::move(options);
  if (auto st = watchListener(); !st) return st;
  // Clients (and tests) learn a port picked by the kernel from this line.
  log::info("listening on " + listening_->description + (listenOptions_->token.empty() ? "" : " (token required)"));
  return {};
}

Status Server::watchListener() {
  return loop_.watch(listening_->fd.get(), EPOLLIN, [this](uint32_t) { acceptAll(); });
}

void Server::acceptAll() {
  while (!acceptPaused_) {
    UniqueFd fd(::accept4(listening_->fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN) return;
      // Out of fds (or memory): rest instead of spinning on a listener that stays readable.
      log::warn("accept: " + std::string(std::strerror(errno)) + "; accepting again shortly");
      acceptPaused_ = true;
      loop_.unwatch(listening_->fd.get());
      loop_.addTimer(kAcceptBackoff, [this] {
        acceptPaused_ = false;
        if (watchListener()) acceptAll();
      });
      return;
    }
    if (clients_.size() >= static_cast<size_t>(listenOptions_->maxConnections)) {
      refuse(std::move(fd), "too many connections (" + std::to_string(clients_.size()) + " open, at most " +
                                std::to_string(listenOptions_->maxConnections) + "); try again later");
      continue;
    }
    Peer peer = describePeer(fd.get(), listening_->unixSocket);
    UniqueFd out(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0));
    if (!out) {  // told, and closed at once: no fd is kept for it
      refuse(std::move(fd), "the server is out of file descriptors", /*linger=*/false);
      continue;
    }
    uint64_t id = nextClient_++;
    ConnectionScope scope{.client = id,
                          .shared = true,
                          // The server's view is its owner's: a unix peer of the same uid (or root).
                          .admin = listening_->unixSocket && peer.owner,
                          .token = listenOptions_->token,
                          .maxExecutions = listenOptions_->maxExecutionsPerConnection,
                          .peer = "connection " + std::to_string(id) + " (" + peer.description + ")"};
    log::debug(scope.peer + ": connected");
    Client& client = clients_[id];
    client.in = std::move(fd);
    client.out = std::move(out);
    client.connection = std::make_unique<Connection>(loop_, ctx_, scheduler_, listenOptions_->framing, client.in.get(),
                                                     client.out.get(), dialect_, std::move(scope),
                                                     [this, id](Connection::End end) { dropClient(id, end); });
    if (auto st = client.connection->start(); !st) {
      log::warn("connection " + std::to_string(id) + ": " + st.error().message());
      clients_.erase(id);
    }
  }
}

// Told why, in the one framing every client reads before it has sent anything: a JSON line.
void Server::refuse(UniqueFd fd, const std::string& why, bool linger) {
  log::warn("connection refused: " + why);
  std::string line = protocol::json{{"jsonrpc", "2.0"}, {"id", nullptr}, {"error", {{"code", protocol::code::kQueueFull}, {"message", why}}}}.dump() + "\n";
  (void)::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (linger) lingerClose(std::move(fd));
}

void Server::lingerClose(UniqueFd fd) {
  (void)::shutdown(fd.get(), SHUT_WR);  // the client reads what was sent, then the end
  if (lingering_.size() >= kMaxLingering) return;
  int raw = fd.get();
  auto drain = [this, raw](uint32_t) {
    char buf[4096];
    for (int i = 0; i < kLingerReadsPerWakeup; ++i) {
      ssize_t n = ::read(raw, buf, sizeof buf);
      if (n > 0) continue;
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) endLinger(raw);
      return;
    }
  };
  if (!loop_.watch(raw, EPOLLIN, drain)) return;
  lingering_[raw] = Lingering{std::move(fd), loop_.addTimer(kLinger, [this, raw] { endLinger(raw); })};
}

void Server::endLinger(int fd) {
  auto it = lingering_.find(fd);
  if (it == lingering_.end()) return;
  loop_.unwatch(fd);
  loop_.cancelTimer(it->second.timer);
  lingering_.erase(it);
}

void Server::dropClient(uint64_t id, Connection::End end) {
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  log::debug(it->second.connection->scope().peer + ": closed; ending its runs");
  // Its executions and sessions end now; what they answer goes nowhere.
  scheduler_.dropClient(id, end.reason);
  // Destroyed on the next turn: we are inside its own callbacks. Its socket goes last.
  loop_.addTimer(std::chrono::milliseconds(0), [this, id] {
    auto it = clients_.find(id);
    if (it == clients_.end()) return;
    UniqueFd socket = std::move(it->second.in);
    clients_.erase(it);  // the connection first: it stops watching the socket
    lingerClose(std::move(socket));
  });
}

void Server::quit(int code, exec::StopReason reason) {
  exitCode_ = code;
  stopReason_ = reason;
  loop_.stop();
}

int Server::run() {
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, sig);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  signalFd_.reset(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (signalFd_) {
    (void)loop_.watch(signalFd_.get(), EPOLLIN, [this](uint32_t) {
      signalfd_siginfo info{};
      if (::read(signalFd_.get(), &info, sizeof info) == sizeof info) {
        log::info(std::string("received ") + strsignal(static_cast<int>(info.ssi_signo)) + "; stopping every sandbox");
        quit(128 + static_cast<int>(info.ssi_signo), exec::StopReason::Shutdown);
      }
    });
  }
  loop_.run();
  // Every run still here answers "killed", then the answers get a bounded time to go out.
  scheduler_.shutdown(stopReason_);
  if (stdio_) stdio_->finalFlush();
  for (auto& [id, client] : clients_) client.connection->finalFlush();
  return exitCode_;
}

}  // namespace pycell::server
