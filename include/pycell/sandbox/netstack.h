#pragma once
// The network of a sandbox run with `network: true`: the sandbox still gets a network
// namespace of its own (so nothing on the host's loopback and none of its abstract AF_UNIX
// sockets are in reach), and slirp4netns, started by the server for that namespace, gives
// it a tap0 interface with outbound access through a user-mode TCP/IP stack. The route to
// the host's loopback that slirp would offer (10.0.2.2) is switched off.
#include <sys/types.h>

#include <chrono>
#include <string>

#include "pycell/error.h"
#include "pycell/process/unique_fd.h"

namespace pycell::sandbox {

// slirp4netns's fixed addresses (its default 10.0.2.0/24 network).
inline constexpr const char* kNetStackDns = "10.0.2.3";

// Whether network runs can have a network stack here, found once by the probe.
struct NetStackSupport {
  bool available = false;
  std::string binary;  // slirp4netns, absolute
  std::string detail;  // what was found, or why there is none
  std::string fix;     // how to make it work, when it does not
  [[nodiscard]] const char* mode() const { return available ? "slirp4netns" : "unavailable"; }
};

// Looks for slirp4netns on PATH and checks what it needs: a network namespace per sandbox,
// a user namespace to reach it through (unless the server is root), and /dev/net/tun
// (opened to see that this user may, then closed).
[[nodiscard]] NetStackSupport probeNetStack(bool netNamespace, bool userNamespace);

// One slirp4netns process serving one sandbox's network namespace. Destroying it kills and
// reaps the process (and with it the sandbox's route out).
class NetStack {
 public:
  NetStack() = default;
  NetStack(NetStack&& other) noexcept;
  NetStack& operator=(NetStack&& other) noexcept;
  NetStack(const NetStack&) = delete;
  NetStack& operator=(const NetStack&) = delete;
  ~NetStack();

  // Starts slirp4netns for the network namespace of `targetPid` (it enters the target's user
  // namespace to reach it). Fails at once when the binary cannot be started.
  [[nodiscard]] static Result<NetStack> start(const std::string& binary, pid_t targetPid);

  // Waits, at most `timeout`, until the interface is configured (slirp4netns writes its ready
  // fd). An error carries what slirp4netns said when it gave up.
  [[nodiscard]] Status awaitReady(std::chrono::milliseconds timeout);

  [[nodiscard]] bool running() const { return pid_ > 0; }
  [[nodiscard]] pid_t pid() const { return pid_; }

 private:
  void stop();
  [[nodiscard]] std::string output();  // what slirp4netns wrote so far (non-blocking)

  pid_t pid_ = -1;
  UniqueFd pidfd_;
  UniqueFd readyR_;  // slirp4netns writes "1" here once tap0 is up
  UniqueFd exitW_;   // slirp4netns exits when this closes
  UniqueFd logR_;    // its stdout and stderr, for the error message; closed once ready
};

}  // namespace pycell::sandbox
