#pragma once
// A run in a sandbox process the server holds pipes to: a sandbox of its own (spawned for
// this run) or a pooled child (forked by a zygote). Both feed the request and stdin, read
// stdout, stderr and the result channel, and end the same way; they differ in how they
// start, who reaps the process, and what happens to it afterwards.
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "pycell/error.h"
#include "pycell/exec/result_channel.h"
#include "pycell/exec/run.h"
#include "pycell/exec/spawn.h"
#include "pycell/pool/pool.h"
#include "pycell/process/event_loop.h"

namespace pycell::exec {

class ChildRun : public Run, private ChannelSink {
 public:
  ChildRun(const ChildRun&) = delete;
  ChildRun& operator=(const ChildRun&) = delete;
  ~ChildRun() override;

  void stop() override;
  void release() override;
  [[nodiscard]] pid_t samplePid() const override { return pid_; }
  [[nodiscard]] sandbox::CgroupUsage cgroupUsage() const override;
  [[nodiscard]] std::optional<int64_t> cgroupCpuUs() const override;
  [[nodiscard]] sandbox::ExecutionCgroup takeCgroup() override { return std::move(cgroup_); }
  [[nodiscard]] std::string channelProblem() const override { return channel_.problem(); }

 protected:
  ChildRun(EventLoop& loop, RunEvents& events, bool pidNamespace);
  // Takes the process's pipe ends, writes `requestLine` (as a line) and `stdinData`, and
  // watches the rest.
  void begin(SandboxProcess& proc, std::string requestLine, std::string stdinData, const std::string& token);
  // The kernel's exit report: kills what is left, then waits (bounded) for the pipes to drain.
  void exited(const RunEnd& end);
  // The sandbox's init is dead, so every writer is gone: reads the pipes to their end.
  void readAll();
  template <class F>
  void guarded(F&& f) noexcept;

  EventLoop& loop_;
  RunEvents& events_;
  bool pidNamespace_;
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  sandbox::ExecutionCgroup cgroup_;
  bool exited_ = false;
  // The cgroup's CPU when the run started (a pooled child's set-up and warm-up; zero for a
  // sandbox of its own, whose set-up is the run's, as RLIMIT_CPU counts it).
  sandbox::CgroupCpu cpuAtStart_;

 private:
  struct Incoming {
    UniqueFd fd;
    bool open = false;
  };
  struct Outgoing {
    UniqueFd fd;
    std::string data;
    size_t offset = 0;
    size_t sent = 0;  // bytes the pipe took, all told (kept when `data` is let go)
  };
  void watch(Incoming& in, std::string_view name);
  // Reads what the pipe holds now (at most `maxReads` reads); true when it reached EOF.
  bool read(Incoming& in, std::string_view name, size_t maxReads = 16);
  void send(Outgoing& out);
  bool pump(Outgoing& out);
  void channelEvent(nlohmann::json event) override { events_.runEvent(std::move(event)); }
  void channelReport(nlohmann::json report) override { events_.runReport(std::move(report)); }
  void maybeDrained();

  Incoming stdout_, stderr_, result_;
  Outgoing stdin_, request_;
  // With probeRequest_: a second write end of the request pipe, held until the run is
  // released, so the pipe (and what is still unread in it) outlives the child and its exit
  // can be asked whether it read any of the request (requestReceived). The child never sees
  // EOF on its request then: only for a child that reads one line (the bootstrap does).
  UniqueFd requestProbe_;
  ResultChannel channel_;
  bool drained_ = false;
  std::optional<EventLoop::TimerId> drainTimer_;

 protected:
  bool probeRequest_ = false;  // set before begin()
  [[nodiscard]] bool programStarted() const { return channel_.started(); }
  // A kernel fact: the child has read some of its request (fewer bytes are left in the pipe
  // than went in). True too when the pipe cannot be asked.
  [[nodiscard]] bool requestReceived() const;
};

// A sandbox spawned for this one run, reaped by the server (its pidfd).
class OwnSandboxRun final : public ChildRun {
 public:
  [[nodiscard]] static Result<std::unique_ptr<OwnSandboxRun>> start(EventLoop& loop, RunEvents& events,
                                                                    const sandbox::SandboxContext& ctx,
                                                                    const SpawnSettings& settings,
                                                                    std::string requestLine, std::string stdinData,
                                                                    const std::string& token);
  // A sandbox started ahead of this run (a StartedPool's): `cpuWhenReady` is its start-up.
  [[nodiscard]] static std::unique_ptr<OwnSandboxRun> adopt(EventLoop& loop, RunEvents& events,
                                                            const sandbox::SandboxContext& ctx, SandboxProcess proc,
                                                            sandbox::CgroupCpu cpuWhenReady, std::string requestLine,
                                                            std::string stdinData, const std::string& token);
  ~OwnSandboxRun() override;
  void stopNow() override;

 private:
  OwnSandboxRun(EventLoop& loop, RunEvents& events, bool pidNamespace) : ChildRun(loop, events, pidNamespace) {}
  void onExit();

  std::string hostWorkDir_;  // degraded mode without a mount namespace
  sandbox::NetStack net_;    // with network: its slirp4netns, ended with the run
};

// A child a zygote forked and warmed; the zygote reaps it and reports how it ended.
class PooledChildRun final : public ChildRun {
 public:
  PooledChildRun(EventLoop& loop, RunEvents& events, bool pidNamespace, pool::Pool& pool, pool::PooledChild child,
                 std::string requestLine, std::string stdinData, const std::string& token);
  ~PooledChildRun() override;
  void stopNow() override;
  // Only a child that never started the program and saw no memory kill in its cgroup
  // (kernel facts, not what the child wrote), and that either read none of its request or
  // was SIGKILLed from outside (a ready child killed while the request reached it reads it
  // on its way out). One killed by its own memory limit is answered memory_limit once; a
  // program that meets its other limits while compiling dies of another signal or reports.
  [[nodiscard]] bool retryable(const RunEnd& end) const override {
    if (programStarted() || cgroup_.usage().oomKills != 0) return false;
    bool killed = WIFSIGNALED(end.waitStatus) && WTERMSIG(end.waitStatus) == SIGKILL;
    return killed || !requestReceived();
  }

 private:
  pool::Pool& pool_;
  uint64_t childId_ = 0;
};

}  // namespace pycell::exec
