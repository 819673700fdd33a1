// The child run's pumps and ending, over a real process (a shell, not a sandbox) and real
// pipes: the request and stdin go down, output and the result channel come up, and the run
// is drained only once the kernel said the process ended and every pipe reached EOF.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "pycell/exec/child_run.h"

using namespace pycell;
using namespace pycell::exec;
using nlohmann::json;

namespace {

struct Recorder : RunEvents {
  EventLoop& loop;
  std::string out, err;
  json reports = json::array();
  json events = json::array();
  std::optional<RunEnd> end;
  int drained = 0;
  std::string failed;
  explicit Recorder(EventLoop& l) : loop(l) {}
  void runOutput(std::string_view stream, std::string_view chunk) override {
    (stream == "stdout" ? out : err).append(chunk);
  }
  void runEvent(json event) override { events.push_back(std::move(event)); }
  void runReport(json report) override { reports.push_back(std::move(report)); }
  void runExited(const RunEnd& e) override {
    CHECK(drained == 0);
    end = e;
  }
  void runDrained() override {
    ++drained;
    loop.stop();
  }
  void runFailed(const std::string& why) override { failed = why; }
};

// A shell with the sandbox's descriptor layout: 0 stdin, 1 stdout, 2 stderr, 3 the request,
// 4 the result channel.
SandboxProcess spawnShell(const std::string& script) {
  int in[2], out[2], err[2], req[2], res[2];
  for (int* p : {in, out, err, req, res}) REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    ::dup2(req[0], 3);
    ::dup2(res[1], 4);
    ::setsid();
    ::execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  for (int fd : {in[0], out[1], err[1], req[0], res[1]}) ::close(fd);
  SandboxProcess p;
  p.pid = pid;
  p.pidfd = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  p.stdinW = UniqueFd(in[1]);
  p.stdoutR = UniqueFd(out[0]);
  p.stderrR = UniqueFd(err[0]);
  p.requestW = UniqueFd(req[1]);
  p.resultR = UniqueFd(res[0]);
  return p;
}

// The base class over a plain process the test reaps itself (as an own sandbox does).
class ShellRun final : public ChildRun {
 public:
  ShellRun(EventLoop& loop, RunEvents& events, SandboxProcess proc, std::string request, std::string input,
           bool probeRequest = false)
      : ChildRun(loop, events, /*pidNamespace=*/false) {
    probeRequest_ = probeRequest;
    begin(proc, std::move(request), std::move(input), "tok");
    (void)loop_.watch(pidfd_.get(), EPOLLIN, [this](uint32_t) {
      RunEnd end;
      if (::wait4(pid_, &end.waitStatus, WNOHANG, &end.usage) != pid_) return;
      loop_.unwatch(pidfd_.get());
      exited(end);
    });
  }
  ~ShellRun() override {
    if (pidfd_) loop_.unwatch(pidfd_.get());
    if (!exited_) {
      stop();
      ::waitpid(pid_, nullptr, 0);
    }
  }
  void stopNow() override {}
  [[nodiscard]] bool received() const { return requestReceived(); }
};

}  // namespace

TEST_CASE("a child run feeds the request and stdin, reads output and one report, and ends on the kernel's word",
          "[child_run]") {
  EventLoop loop;
  Recorder rec(loop);
  std::string script =
      "read -r line <&3; echo \"request: $line\"; cat; echo oops >&2;"
      "printf '\\n{\"t\":\"tok\",\"started\":true}\\n' >&4;"
      "printf '\\n{\"t\":\"tok\",\"event\":{\"kind\":\"import\",\"module\":\"os\"}}\\n' >&4;"
      "printf '\\n{\"t\":\"other\",\"status\":\"ok\",\"value\":\"forged\"}\\n' >&4;"
      "printf '\\n{\"t\":\"tok\",\"status\":\"ok\",\"value\":7}\\n' >&4; exit 3";
  ShellRun run(loop, rec, spawnShell(script), "{\"code\":\"x\"}", "some stdin");
  loop.run();
  CHECK(rec.failed.empty());
  CHECK(rec.out == "request: {\"code\":\"x\"}\nsome stdin");
  CHECK(rec.err == "oops\n");
  REQUIRE(rec.reports.size() == 1);
  CHECK(rec.reports[0]["value"] == 7);
  REQUIRE(rec.events.size() == 1);
  CHECK(rec.events[0]["module"] == "os");
  REQUIRE(rec.end);
  CHECK(WIFEXITED(rec.end->waitStatus));
  CHECK(WEXITSTATUS(rec.end->waitStatus) == 3);
  CHECK(rec.drained == 1);
  CHECK(run.channelProblem().empty());
}

TEST_CASE("stopping a child run kills its process group, and the run drains once", "[child_run]") {
  EventLoop loop;
  Recorder rec(loop);
  // A process that would outlive any test, with a child of its own holding stdout open.
  ShellRun run(loop, rec, spawnShell("sleep 1000 & echo up; exec sleep 1000"), "", "");
  bool stopped = false;
  loop.addTimer(std::chrono::milliseconds(0), [&] {
    run.stop();
    stopped = true;
  });
  loop.run();
  CHECK(stopped);
  REQUIRE(rec.end);
  CHECK(WIFSIGNALED(rec.end->waitStatus));
  CHECK(WTERMSIG(rec.end->waitStatus) == SIGKILL);
  CHECK(rec.drained == 1);
}

TEST_CASE("a request larger than the pipe is written as the process reads it", "[child_run]") {
  EventLoop loop;
  Recorder rec(loop);
  std::string big(1 << 20, 'r');
  ShellRun run(loop, rec, spawnShell("wc -c <&3"), big, "");
  loop.run();
  CHECK(rec.out.find(std::to_string(big.size() + 1)) != std::string::npos);  // the line and its newline
  CHECK(rec.drained == 1);
}

TEST_CASE("with the request probe, the kernel tells at the end whether the process read any of its request",
          "[child_run]") {
  // A process that exits at once may close its end before the request goes: the write gets
  // EPIPE, as in the server, which ignores SIGPIPE.
  struct IgnoreSigpipe {
    void (*before)(int) = ::signal(SIGPIPE, SIG_IGN);
    ~IgnoreSigpipe() { ::signal(SIGPIPE, before); }
  } ignoreSigpipe;
  EventLoop loop;
  SECTION("it never read") {
    Recorder rec(loop);
    ShellRun run(loop, rec, spawnShell("exit 0"), "{\"code\":\"x\"}", "", /*probeRequest=*/true);
    loop.run();
    REQUIRE(rec.end);
    CHECK_FALSE(run.received());
  }
  SECTION("it read its line, then died") {
    Recorder rec(loop);
    ShellRun run(loop, rec, spawnShell("read -r line <&3; kill -9 $$"), "{\"code\":\"x\"}", "", true);
    loop.run();
    REQUIRE(rec.end);
    CHECK(WIFSIGNALED(rec.end->waitStatus));
    CHECK(run.received());
  }
  SECTION("it read part of a request larger than the pipe") {
    Recorder rec(loop);
    ShellRun run(loop, rec, spawnShell("head -c 100 <&3 >/dev/null"), std::string(1 << 20, 'r'), "", true);
    loop.run();
    REQUIRE(rec.end);
    CHECK(run.received());
  }
  SECTION("without the probe, the pipe cannot be asked: taken as read") {
    Recorder rec(loop);
    ShellRun run(loop, rec, spawnShell("exit 0"), "{\"code\":\"x\"}", "");
    loop.run();
    CHECK(run.received());
  }
}
