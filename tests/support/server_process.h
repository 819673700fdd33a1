// Test harness for the integration suite: runs the real `pycell` binary as a child process
// and talks to it over pipes, exactly as an editor plugin or an agent harness would.
//
// Everything here is bounded by a timeout (poll, never a blocking read), so a broken server
// makes a test fail with a description instead of hanging the suite. The harness owns only
// the processes it starts and kills them by pid in its destructors.
//
// With PYCELL_TEST_RUN_AS=<uid> in the environment, the binary is started through
// `setpriv --reuid=<uid> --regid=<uid> --clear-groups --`, so the same tests prove the server
// works unprivileged, while the test process itself keeps its own rights to inspect /proc.
#pragma once

#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace pycell::testing {

using Json = nlohmann::json;
using Millis = std::chrono::milliseconds;

// A protocol answer that needs no sandbox (status, errors, lifecycle).
inline constexpr Millis kReplyTimeout{5000};
// An execution's answer, sandbox start-up included, for code that ends on its own.
inline constexpr Millis kExecutionTimeout{30000};

enum class Framing { kNdjson, kLsp };

std::string_view framingName(Framing framing);

// The binary under test (compiled in as PYCELL_BINARY).
std::string pycellBinary();
// The uid the binary is run as (PYCELL_TEST_RUN_AS), if any.
std::optional<uid_t> runAsUid();
// The argv actually executed for `pycell <args>`: the setpriv wrapper when asked, the binary,
// then the arguments.
std::vector<std::string> commandLine(const std::vector<std::string>& args);
// The full path of a program found on PATH (for execv).
std::string findInPath(const std::string& name);

// An owned file descriptor (the tests cannot link the server's own helpers).
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release();
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// A resource limit set in a child between fork and exec (so it holds for the server and
// everything it starts, across setpriv's change of uid).
struct ChildRlimit {
  int resource;
  rlim_t soft;
  rlim_t hard;
};

// A child process with pipes on stdin and stdout and a temporary file on stderr (a file, so
// the child can never block on a full stderr pipe, whatever the test is doing).
class ChildProcess {
 public:
  explicit ChildProcess(const std::vector<std::string>& argv, const std::vector<ChildRlimit>& rlimits = {});
  ~ChildProcess();  // SIGKILL (this pid only) and reap, unless already reaped
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  int stdinFd() const { return stdin_.get(); }
  int stdoutFd() const { return stdout_.get(); }
  void closeStdin() { stdin_.reset(); }
  void closeStdout() { stdout_.reset(); }
  // Everything written to stderr so far.
  std::string stderrText() const;
  // Reaps the child if it has exited: its exit code, or 128 + signal number.
  std::optional<int> poll() const;
  std::optional<int> exitCode() const { return poll(); }
  void kill();  // SIGKILL + reap

 private:
  pid_t pid_ = -1;
  Fd stdin_;
  Fd stdout_;
  Fd stderr_file_;
  mutable std::optional<int> exit_code_;  // set once reaped, also from const observers
};

// `pycell serve ...` as a JSON-RPC peer.
class ServerProcess {
 public:
  // args are the binary's arguments, e.g. {"serve", "--framing", "ndjson"}. framing is the
  // framing this client writes and expects back.
  explicit ServerProcess(std::vector<std::string> args, Framing framing = Framing::kNdjson);
  // A whole command line (a wrapper around pycell), rather than pycell's arguments.
  struct Argv {
    std::vector<std::string> words;
    std::vector<ChildRlimit> rlimits = {};  // set in the child before exec
  };
  ServerProcess(Argv argv, Framing framing);
  // Closes stdin first and gives the server a moment to exit on EOF as the protocol says
  // (so it can remove its cgroups, which no one can do after a SIGKILL); then the child's
  // destructor SIGKILLs whatever is left and reaps it.
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  Framing framing() const { return framing_; }
  pid_t pid() const { return child_.pid(); }

  // One JSON-RPC message, framed (LSP Content-Length counts bytes).
  void send(const Json& message);
  // Bytes exactly as given, no framing added.
  void sendRaw(std::string_view bytes);
  // Sends a request with a fresh integer id and returns the id.
  int64_t request(const std::string& method, Json params = Json::object());
  void notify(const std::string& method, Json params = Json::object());

  // The response (the whole message) with this id, or nullopt when none came in time or the
  // server closed stdout.
  std::optional<Json> waitResponse(int64_t id, Millis timeout);
  std::optional<Json> waitResponse(const Json& id, Millis timeout);
  // The first message at index >= from (in arrival order) that matches.
  std::optional<Json> waitMessage(const std::function<bool(const Json&)>& match, Millis timeout,
                                  size_t from = 0);
  // Reads whatever is available now without waiting.
  void drain();

  // Every message received so far, in order; notifications alone.
  const std::vector<Json>& messages() const { return messages_; }
  std::vector<Json> notifications() const;
  // Bytes on stdout that were not a well-formed frame holding JSON: must stay empty.
  const std::vector<std::string>& malformedOutput() const { return malformed_; }

  void closeStdin();
  // Stops listening: closes our end of its stdout, so its next write fails with EPIPE.
  void closeStdout();
  // The exit code (128 + signal when killed by one), or nullopt if still running at timeout.
  std::optional<int> waitExit(Millis timeout);
  bool exited();

  std::string stderrText() const { return child_.stderrText(); }
  // A few lines for failure messages: pid, exit state, the tail of stderr, the last messages.
  std::string describe() const;

  // request() + waitResponse(); throws with describe() when no response arrives in time.
  Json call(const std::string& method, Json params = Json::object(),
            Millis timeout = kReplyTimeout);
  // call() that expects a `result` and returns it; throws with the message otherwise.
  Json callResult(const std::string& method, Json params = Json::object(),
                  Millis timeout = kReplyTimeout);
  // Sends `initialize` (and then `initialized`) and returns the initialize result.
  Json initialize();

 private:
  // Waits up to `timeout` for stdout to become readable and parses what arrived. Returns
  // false once stdout is closed.
  bool pump(Millis timeout);
  void parseFrames();
  bool parseNdjson();
  bool parseLsp();
  void accept(std::string_view body);

  Framing framing_;
  std::vector<std::string> args_;
  ChildProcess child_;
  std::string buffer_;
  bool stdout_closed_ = false;
  std::vector<Json> messages_;
  std::vector<std::string> malformed_;
  int64_t next_id_ = 1;
};

// Which zygote pools a test server keeps when the test gives no config of its own. The
// built-in config has three (default, datascience, and javascript's started sandboxes); the datascience zygote imports numpy, pandas and matplotlib and
// warms its children with a group-by (about a second of CPU at every server start), so a
// test server starts that pool, and the javascript one, only for the tests that use it (Pools::All). Without it the
// datascience profile still works, one-shot. A test that passes --config gets just that.
enum class Pools { Default, All };

// Starts `pycell serve --framing <framing> <extra...>`; under LSP framing also performs
// the initialize handshake, as every LSP client does.
std::unique_ptr<ServerProcess> startServer(Framing framing, const std::vector<std::string>& extra = {},
                                           Pools pools = Pools::Default);

// startServer() where Python's policy layer is off in the built-in profiles (no import
// lists, no removed builtins): for tests of the kernel layer, which import ctypes and
// socket to try what the kernel must refuse. policy_test.cc covers the policy layer.
std::unique_ptr<ServerProcess> startKernelServer(Framing framing, std::vector<std::string> extra = {},
                                                 Pools pools = Pools::Default);
// The config file that does it (both pools kept), for tests that start the binary themselves.
const std::string& kernelOnlyConfig();

// Sends `execute` and returns its `result`; throws with the response or the server's state
// when the answer is an error or does not come within `timeout`.
Json execute(ServerProcess& server, Json params, Millis timeout = kExecutionTimeout);
// execute() with just code and optional limits.
Json executeCode(ServerProcess& server, const std::string& code, Json limits = nullptr,
                 Millis timeout = kExecutionTimeout);

// `bound` times PYCELL_TEST_TIME_SCALE (3 in the sanitizer build, else 1): for the few
// bounds that say "promptly", which a 2-3 times slower build must still meet in proportion.
Millis scaled(Millis bound);

// One message's bytes in `framing`: the body and a newline, or a Content-Length header and it.
std::string frameMessage(Framing framing, const std::string& body);

// `status`'s entry for the pool of `profile`; throws when there is none.
Json poolOf(ServerProcess& server, const std::string& profile);
// Waits until the profile's pool has its target of ready children (or throws).
Json awaitFullPool(ServerProcess& server, const std::string& profile = "default", Millis timeout = Millis{20000});

// A one-shot `pycell <args>` run to completion, as a shell script would.
struct CommandResult {
  std::optional<int> exitCode;  // nullopt: killed by the harness at timeout
  std::string out;
  std::string err;
  Millis elapsed{0};
};
CommandResult runPycell(const std::vector<std::string>& args, std::string_view input = {},
                        Millis timeout = kExecutionTimeout);
// The same for any command line (e.g. pycell under a wrapper that takes features away).
CommandResult runCommand(const std::vector<std::string>& argv, std::string_view input = {},
                         Millis timeout = kExecutionTimeout);

// A TCP listener on the host's loopback (127.0.0.1, a free port), outside any sandbox: an
// escape test points a run at it and then checks that nothing arrived (`receivedNothing`).
struct LoopbackListener {
  Fd fd;
  int port = 0;
  // No connection waiting and nothing readable, right now.
  [[nodiscard]] bool receivedNothing() const;
};
// Throws when the socket cannot be made (the machine has no loopback).
LoopbackListener listenOnLoopback();

// The status, and enough of the result to understand a failure.
#define REQUIRE_STATUS(result, expected)                  \
  do {                                                    \
    const ::pycell::testing::Json& checked_ = (result);   \
    INFO("result: " << ::pycell::testing::brief(checked_)); \
    REQUIRE(checked_.value("status", "") == (expected));  \
  } while (0)

// A file in the temporary directory, readable by everyone (the server may run as another
// uid), removed in the destructor.
class TempFile {
 public:
  TempFile(std::string_view stem, std::string_view contents);
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A directory under /tmp every uid may use (the server may run as nobody), removed with
// what it holds at the end.
class SharedDir {
 public:
  explicit SharedDir(std::string_view stem = "dir");
  ~SharedDir();
  SharedDir(const SharedDir&) = delete;
  SharedDir& operator=(const SharedDir&) = delete;
  std::filesystem::path path;
};

// A Python string literal holding `text` (JSON string syntax is valid Python).
std::string pyString(std::string_view text);

// `value` dumped and cut to `max` characters, for failure messages.
std::string brief(const Json& value, size_t max = 3000);

// The `result` of the response to request `id`; throws when it is an error or does not come.
Json waitResult(ServerProcess& server, int64_t id, Millis timeout = kExecutionTimeout);

// The execute/output notification of a streamed execution with which its text (joined
// from index `from` on) first contains `needle` (nullopt if it did not come in time).
std::optional<Json> awaitOutput(ServerProcess& server, const std::string& executionId, const std::string& needle,
                                size_t from = 0, Millis timeout = kExecutionTimeout);

// Polls `status {executionId}` until the execution is running; throws with what the server
// said when it finishes first or does not get there in time.
void awaitRunning(ServerProcess& server, const std::string& executionId,
                  Millis timeout = kExecutionTimeout);

// A process the test owns and can kill, standing in for an editor (--client-process-id).
class StandInClient {
 public:
  StandInClient() {
    pid_ = ::fork();
    if (pid_ == 0) {
      for (;;) ::pause();
    }
    if (pid_ < 0) throw std::runtime_error("fork failed");
  }
  ~StandInClient() { kill(); }
  pid_t pid() const { return pid_; }
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);  // reaped, so even a server polling kill(pid, 0) sees it gone
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

// Wall time since construction.
class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  Millis elapsed() const {
    return std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - start_);
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

}  // namespace pycell::testing
