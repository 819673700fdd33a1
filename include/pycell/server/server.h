#pragma once
// The server process: one scheduler (pools, queues, executions, sessions) and the clients
// it serves through connections (connection.h). Either one client on stdin/stdout, with
// which the server lives and ends, or the clients a listener accepts (listener.h), each
// scoped to its own runs, until a signal stops the server.
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "pycell/error.h"
#include "pycell/exec/scheduler.h"
#include "pycell/process/event_loop.h"
#include "pycell/process/unique_fd.h"
#include "pycell/protocol/framing.h"
#include "pycell/sandbox/context.h"
#include "pycell/server/connection.h"
#include "pycell/server/listener.h"

namespace pycell::server {

struct ListenOptions {
  ListenAddress address;
  protocol::Framing framing = protocol::Framing::Auto;  // each connection's, decided on its first byte
  std::string token;  // non-empty: every connection presents it in initialize
  int maxConnections = 64;
  int maxExecutionsPerConnection = 16;
};

class Server {
 public:
  Server(EventLoop& loop, const sandbox::SandboxContext& ctx, Dialect dialect = Dialect::Pycell);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();

  // The one client on these fds (borrowed); `clientPid`: its process, whose death ends the server.
  [[nodiscard]] Status serveStdio(protocol::Framing framing, int inFd, int outFd, std::optional<int> clientPid);
  // Clients on a socket; refuses a non-loopback address without a token.
  [[nodiscard]] Status listen(ListenOptions options);
  // Runs until the stdio client ends (exit, EOF, its death) or a signal; returns the exit code.
  int run();
  // Connections open now (listener).
  [[nodiscard]] size_t connections() const { return clients_.size(); }

 private:
  struct Client {
    UniqueFd in, out;  // the socket, and a duplicate for writing (the loop watches each once)
    std::unique_ptr<Connection> connection;
  };
  void quit(int code, exec::StopReason reason);
  [[nodiscard]] Status watchListener();  // accepts whenever a connection waits
  void acceptAll();
  // Tells a connection why it is not served, then closes it (`linger`: gracefully).
  void refuse(UniqueFd fd, const std::string& why, bool linger = true);
  void dropClient(uint64_t id, Connection::End end);
  // Closes a client's socket gracefully: no more is written, what it still sends is read
  // and dropped until it closes (or a moment passes). A close with unread input makes the
  // kernel reset the connection, and a client may then lose the last answer it was sent.
  void lingerClose(UniqueFd fd);
  void endLinger(int fd);

  EventLoop& loop_;
  const sandbox::SandboxContext& ctx_;
  Dialect dialect_;
  exec::Scheduler scheduler_;
  std::unique_ptr<Connection> stdio_;  // after the scheduler: its last answers are written at shutdown
  std::optional<ListenOptions> listenOptions_;
  std::optional<Listening> listening_;
  std::map<uint64_t, Client> clients_;
  struct Lingering {
    UniqueFd fd;
    EventLoop::TimerId timer = 0;
  };
  std::map<int, Lingering> lingering_;  // by fd
  uint64_t nextClient_ = 1;
  bool acceptPaused_ = false;
  int exitCode_ = 0;
  exec::StopReason stopReason_ = exec::StopReason::Shutdown;
  UniqueFd signalFd_;
};

}  // namespace pycell::server
