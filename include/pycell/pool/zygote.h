#pragma once
// One zygote process of a pool: its control socket, its log pipe, its pidfd. It asks for
// forks and turns what the zygote sends (zygote_wire.h) into named events for its owner;
// it keeps no record of the children (the pool's ChildTable does).
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pycell/error.h"
#include "pycell/pool/child_table.h"
#include "pycell/process/event_loop.h"
#include "pycell/process/unique_fd.h"
#include "pycell/sandbox/context.h"
#include "pycell/sandbox/zygote_wire.h"

namespace pycell::pool {

class Zygote;

// What a zygote reports to its pool. Each is called from the zygote's own fd handlers.
class ZygoteEvents {
 public:
  // Preloaded and warmed up: it serves forks from now on.
  virtual void onZygoteReady(Zygote& zygote) = 0;
  // The child asked for as `id` is forked (not yet isolated): its pidfd.
  virtual void onForked(Zygote& zygote, uint64_t id, UniqueFd pidfd) = 0;
  // The zygote refused to fork `id` (0: it could not read the request).
  virtual void onForkRefused(Zygote& zygote, uint64_t id, const Error& why) = 0;
  // A child it forked ended (the zygote is its parent and reaped it).
  virtual void onChildExit(Zygote& zygote, uint64_t id, const ExitInfo& info) = 0;
  // It died, closed its socket or broke the protocol. It must be stopped and not deleted
  // from inside this call (its own handler is running).
  virtual void onZygoteDied(Zygote& zygote, const std::string& why) = 0;

 protected:
  ~ZygoteEvents() = default;
};

class Zygote {
 public:
  Zygote(EventLoop& loop, const sandbox::SandboxContext& ctx, const Profile& profile, ZygoteEvents& events,
         uint64_t serial)
      : loop_(loop), ctx_(ctx), profile_(profile), events_(events), serial_(serial) {}
  ~Zygote() { stop(); }
  Zygote(const Zygote&) = delete;
  Zygote& operator=(const Zygote&) = delete;

  // Spawns the zygote in the profile's sandbox and sends its init message.
  Status start();
  // Asks for child `id`: its cgroup (`spare`, an ended sandbox's recycled by the caller, or
  // a new one) and five pipes are made here, the zygote's ends sent, the server's ends
  // returned (the child is Forking until onForked).
  Result<PooledChild> fork(uint64_t id, std::optional<sandbox::ExecutionCgroup> spare = std::nullopt);
  // SIGKILL and reap: its pid namespace takes every child along.
  void stop();

  [[nodiscard]] uint64_t serial() const { return serial_; }
  [[nodiscard]] bool ready() const { return ready_; }
  [[nodiscard]] uint64_t forks() const { return forks_; }
  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] const nlohmann::json& imported() const { return imported_; }
  [[nodiscard]] const nlohmann::json& failed() const { return failed_; }

 private:
  void onMessage();
  void onLog();
  void handle(const sandbox::wire::Header& header, const std::string& text, std::vector<UniqueFd> fds);
  void readyReport(const std::string& text);

  EventLoop& loop_;
  const sandbox::SandboxContext& ctx_;
  const Profile& profile_;
  ZygoteEvents& events_;
  const uint64_t serial_;
  bool ready_ = false;
  uint64_t forks_ = 0;
  pid_t pid_ = -1;
  nlohmann::json imported_ = nlohmann::json::array();
  nlohmann::json failed_ = nlohmann::json::object();
  UniqueFd pidfd_, control_, log_;
  std::string logLine_;
};

}  // namespace pycell::pool
