#pragma once
// A session: one sandboxed interpreter that keeps its globals, imports and working
// directory across executions (a notebook kernel). Same isolation as a single run: it is a
// pooled child (or a sandbox of its own where no pool serves the request) whose bootstrap
// loops over requests instead of running one. Requests go down as lines on the request
// pipe, results come up as lines on the result pipe; stdout and stderr stay open, and a
// run's output is everything read before its result line.
#include <sys/resource.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "pycell/error.h"
#include "pycell/exec/result_channel.h"
#include "pycell/exec/run.h"
#include "pycell/exec/spawn.h"
#include "pycell/pool/pool.h"
#include "pycell/process/event_loop.h"
#include "pycell/process/unique_fd.h"
#include "pycell/sandbox/cgroup.h"
#include "pycell/sandbox/context.h"

namespace pycell::exec {

using nlohmann::json;

struct SessionSettings {
  uint64_t client = 0;  // the connection that created it (ExecutionRequest::client)
  std::string id;
  std::string profile = "default";
  Limits limits;
  bool network = false;
};

class Session : private ChannelSink {
 public:
  enum class State { Starting, Idle, Busy, Ended };
  using Ready = std::function<void(Status)>;
  using Notify = std::function<void()>;

  Session(EventLoop& loop, const sandbox::SandboxContext& ctx, SessionSettings settings, uint64_t serial);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session();

  // `ready` is called once: when the interpreter says it is ready, or with why it never will.
  void onReady(Ready ready) { ready_ = std::move(ready); }
  // After each run's result (the session can take the next request).
  void onFree(Notify free) { free_ = std::move(free); }
  // Once, when the sandbox is gone (closed, killed, crashed, expired).
  void onEnded(Notify ended) { ended_ = std::move(ended); }

  [[nodiscard]] Status startOwn();  // a sandbox of its own
  void startPooled(pool::Pool& pool, pool::PooledChild child);

  // Sends one run's request (which carries `token`); its output, its activity and the one
  // result line with that token go to `events`. The run ends there (runExited, runDrained)
  // with the result, or with the session.
  [[nodiscard]] std::unique_ptr<Run> run(RunEvents& events, const std::string& requestLine, const std::string& token);
  // Stops the current run: KeyboardInterrupt now, SIGKILL if it has not ended after the grace.
  void interrupt();
  // Kills the sandbox (the current run, if any, ends with it).
  void terminate(const std::string& why);

  [[nodiscard]] const std::string& id() const { return settings_.id; }
  [[nodiscard]] const SessionSettings& settings() const { return settings_; }
  [[nodiscard]] State state() const { return state_; }
  [[nodiscard]] const std::string& endReason() const { return endReason_; }
  // Told to end (closed, killed, expired) and waiting for the kernel to say it has.
  [[nodiscard]] bool closing() const { return !endReason_.empty(); }
  [[nodiscard]] bool usesPool() const { return pool_ != nullptr; }
  [[nodiscard]] pid_t pid() const { return proc_.pid; }
  [[nodiscard]] json toJson() const;
  // The cgroup outlives the session until the kernel lets it be removed.
  [[nodiscard]] sandbox::ExecutionCgroup takeCgroup() { return std::move(proc_.cgroup); }

 private:
  struct Pipe {
    UniqueFd fd;
    bool open = false;
  };
  void begin();
  void watchInput(Pipe& pipe, int which);
  void readPipe(Pipe& pipe, int which);
  // ChannelSink: lines that carry the current token (see result_channel.h).
  void channelReady() override;
  void channelStarted() override;
  void channelStopped() override;
  void channelEvent(json event) override;
  void channelReport(json report) override;
  // Bytes read while no run is current: counted, dropped, and bounded.
  void takeIdleBytes(size_t n);
  [[nodiscard]] rusage runUsage();
  template <class F>
  void guarded(F&& f) noexcept;
  void drainOutput();
  void pumpRequests();
  void sendInterrupt();
  void exited(int status, const rusage& usage);
  void onOwnExit();
  void setState(State s);
  void armIdleTimer();
  void end(const std::string& why);
  // The current run is over (its result came, or the interpreter is gone).
  void endRun(const RunEnd& end);

  EventLoop& loop_;
  const sandbox::SandboxContext& ctx_;
  SessionSettings settings_;
  uint64_t serial_;
  Ready ready_;
  Notify free_, ended_;

  State state_ = State::Starting;
  SandboxProcess proc_;
  pool::Pool* pool_ = nullptr;
  uint64_t pooledId_ = 0;
  Pipe stdout_, stderr_, result_;
  std::string outgoing_;    // request lines not yet taken by the pipe
  bool outWatched_ = false;
  ResultChannel channel_;
  size_t idleBytes_ = 0;    // read since the last run ended (a thread the program left running)
  RunEvents* current_ = nullptr;
  bool runStarted_ = false;       // the current run's code is executing (its "started" line came)
  bool interruptWanted_ = false;  // interrupt() came before that
  bool reportGraceGiven_ = false;  // the run's "stopped" came and extended the grace (once)
  int64_t lastCpuUserMs_ = 0, lastCpuSysMs_ = 0;  // the kernel's totals at the last run's end
  uint64_t runs_ = 0;
  std::string stderrHead_;  // what the interpreter said before it was ready
  std::string endReason_;
  std::optional<EventLoop::TimerId> idleTimer_, graceTimer_, startTimer_;
  std::optional<EventLoop::TimerId> resendTimer_;  // a JavaScript session's repeated SIGINT
  std::chrono::steady_clock::time_point createdAt_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point lastUsed_ = createdAt_;
};

[[nodiscard]] const char* sessionStateName(Session::State s);

}  // namespace pycell::exec
