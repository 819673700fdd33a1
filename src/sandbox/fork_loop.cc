// libpycell_child.so: the zygote's fork loop (see child_abi.h). Plain
// syscalls only, as in child_abi.cc: it runs inside a Python interpreter that runs no
// Python while the loop serves.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pycell/sandbox/child_abi.h"
#include "pycell/sandbox/fd_passing.h"
#include "pycell/sandbox/isolate.h"
#include "pycell/sandbox/zygote_wire.h"

using pycell::sandbox::childFail;
using pycell::sandbox::IsolationSpec;
namespace wire = pycell::sandbox::wire;

namespace {

// Everything here lives on the stack or in a small malloc'd table: between forks the zygote
// should write as few of its pages as it can (each one written is copied once per fork).

struct Child {
  pid_t pid;
  long id;
};

struct Children {
  Child* items = nullptr;
  size_t size = 0, capacity = 0;

  bool add(pid_t pid, long id) {
    if (size == capacity) {
      size_t grown = capacity ? capacity * 2 : 64;
      auto* more = static_cast<Child*>(realloc(items, grown * sizeof(Child)));
      if (!more) return false;
      items = more;
      capacity = grown;
    }
    items[size++] = {pid, id};
    return true;
  }
  long take(pid_t pid) {  // the id, or 0 for a pid we did not fork for the server
    for (size_t i = 0; i < size; ++i) {
      if (items[i].pid != pid) continue;
      long id = items[i].id;
      items[i] = items[--size];
      return id;
    }
    return 0;
  }
};

int send(int ctl, wire::Op op, const wire::Header& header, const char* text, int fd) {
  char buf[sizeof(wire::Header) + 512];
  size_t n = wire::encode(op, header, text ? std::string_view(text, strnlen(text, 512)) : std::string_view(), buf, sizeof buf);
  return pycell::sandbox::sendWithFds(ctl, buf, n, &fd, fd >= 0 ? 1 : 0) < 0 ? -1 : 0;
}

void sendError(int ctl, uint64_t id, const char* message) {
  wire::Header h;
  h.id = id;
  (void)send(ctl, wire::Op::Error, h, message, -1);
}

bool singleThreaded() {
  char status[4096];
  int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = read(fd, status, sizeof status - 1);
  close(fd);
  if (n <= 0) return false;
  status[n] = 0;
  const char* line = strstr(status, "\nThreads:");
  return line && strtol(line + 10, nullptr, 10) == 1;
}

// Reports every child that ended: how, and what it used (the server cannot wait for them).
void reapChildren(int ctl, Children& children) {
  for (;;) {
    int status = 0;
    rusage usage{};
    pid_t pid = wait4(-1, &status, WNOHANG, &usage);
    if (pid <= 0) return;
    long id = children.take(pid);
    if (id == 0) continue;
    wire::Header h;
    h.id = static_cast<uint64_t>(id);
    h.status = status;
    h.utimeMs = usage.ru_utime.tv_sec * 1000L + usage.ru_utime.tv_usec / 1000;
    h.stimeMs = usage.ru_stime.tv_sec * 1000L + usage.ru_stime.tv_usec / 1000;
    h.maxrssKb = usage.ru_maxrss;
    (void)send(ctl, wire::Op::Exit, h, nullptr, -1);
  }
}

void closeAll(const int* fds, int n) {
  for (int i = 0; i < n; ++i) close(fds[i]);
}
struct Request {
  uint64_t id = 0;
  int fds[5] = {-1, -1, -1, -1, -1};
};

// One Fork request: 1 with `request` filled, 0 if it was refused (answered Error), -1 on a
// socket error, -2 at EOF (the server is gone).
int receiveRequest(int ctl, Request& request) {
  char buf[sizeof(wire::Header) + 64];
  int fds[pycell::sandbox::kMaxPassedFds];
  int nfds = 0;
  bool truncated = false;
  ssize_t n = pycell::sandbox::receiveWithFds(ctl, buf, sizeof buf, fds, &nfds, &truncated);
  if (n < 0 && errno == EAGAIN) return 0;
  if (n < 0) return childFail("recvmsg");
  if (n == 0) return -2;
  auto message = wire::decode(buf, static_cast<size_t>(n), nfds, truncated);
  if (!message || message->op() != wire::Op::Fork) {
    closeAll(fds, nfds);
    sendError(ctl, message ? message->header.id : 0, message ? "not a fork request" : message.error());
    return 0;
  }
  if (!singleThreaded()) {
    // A forked copy of a threaded process can hang on a lock another thread held.
    closeAll(fds, nfds);
    sendError(ctl, message->header.id, "zygote is not single-threaded");
    return 0;
  }
  request.id = message->header.id;
  for (int i = 0; i < 5; ++i) request.fds[i] = fds[i];
  return 1;
}

// In the new child, first: wait for the server's go.
void awaitServer(int (&fds)[5]) {
  // Die with the zygote. (If it is already gone, so is its pid namespace, and we with it.)
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  // The server writes one byte on the request pipe once we are in our cgroup: what we
  // allocate or fork from here on is counted there.
  char go = 0;
  ssize_t got;
  do {
    got = read(fds[3], &go, 1);
  } while (got < 0 && errno == EINTR);
  if (got != 1) {
    pycell::sandbox::writeStepFailure(fds[4], pycell::sandbox::stepFailure("wait for the server", got == 0 ? EPIPE : errno));
    _exit(127);
  }
}

// Then the isolation sequence; a failed step is written on the result pipe and the child
// exits.
void isolateOrExit(const IsolationSpec& spec, int (&fds)[5]) {
  auto isolated = pycell::sandbox::isolate(spec, fds);
  if (!isolated) {
    pycell::sandbox::writeStepFailure(fds[4], isolated.error());
    _exit(127);
  }
}

// The serve loop's setup and its parent-side steps. None of these runs in a new child: the
// child's path after clone stays inline in pycell_serve_forks.

// Blocks SIGCHLD (`saved` gets the mask before) and opens the signalfd that reports it; -1
// with the mask restored if either fails.
int openChildSignals(sigset_t& saved) {
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &chld, &saved) != 0) return childFail("block SIGCHLD");
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) {
    childFail("signalfd");
    sigprocmask(SIG_SETMASK, &saved, nullptr);
    return -1;
  }
  return sfd;
}

// Empties the signalfd; the children are reaped after, all at once.
void drainSignals(int sfd) {
  signalfd_siginfo info;
  while (read(sfd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
  }
}

// After the clone for request `id`: the child (`pid`) is remembered for its exit report, and
// its pidfd sent to the server. A failed clone (pid < 0, with `cloneErrno`) refuses the
// request; so does a child that cannot be remembered, killed and reaped first.
void adoptChild(int ctl, Children& children, uint64_t id, long pid, int pidfd, int cloneErrno) {
  if (pid < 0) {
    errno = cloneErrno;
    childFail("clone3");
    sendError(ctl, id, pycell_last_error());
    return;
  }
  if (!children.add(static_cast<pid_t>(pid), static_cast<long>(id))) {
    kill(static_cast<pid_t>(pid), SIGKILL);
    while (waitpid(static_cast<pid_t>(pid), nullptr, 0) < 0 && errno == EINTR) {
    }
    close(pidfd);
    sendError(ctl, id, "out of memory");
    return;
  }
  wire::Header h;
  h.id = id;
  (void)send(ctl, wire::Op::Forked, h, nullptr, pidfd);
  close(pidfd);
}

}  // namespace

extern "C" {

long pycell_serve_forks(int ctl, const struct pycell_fork_hooks* hooks) {
  const IsolationSpec* spec = pycell::sandbox::childIsolationSpec();
  if (!spec) {
    errno = EINVAL;
    return childFail("no isolation spec (init not received)");
  }
  // SIGCHLD arrives on a signalfd, polled with the server's socket; the mask at the call
  // comes back in each child.
  sigset_t saved;
  int sfd = openChildSignals(saved);
  if (sfd < 0) return -1;
  Children children;
  long result = 0;
  for (;;) {
    pollfd ready[2] = {{ctl, POLLIN, 0}, {sfd, POLLIN, 0}};
    if (poll(ready, 2, -1) < 0) {
      if (errno == EINTR) continue;
      result = childFail("poll");
      break;
    }
    if (ready[1].revents) {
      drainSignals(sfd);
      reapChildren(ctl, children);
    }
    if (!ready[0].revents) continue;
    Request request;
    int got = receiveRequest(ctl, request);
    if (got == 0) continue;
    if (got < 0) {
      result = got == -2 ? 0 : -1;  // -2: the server is gone
      break;
    }
    hooks->before();
    int pidfd = -1;
    long pid = pycell::sandbox::cloneSandbox(spec->namespaces, &pidfd);
    if (pid == 0) {
      awaitServer(request.fds);
      hooks->after_child();
      sigprocmask(SIG_SETMASK, &saved, nullptr);
      free(children.items);
      isolateOrExit(*spec, request.fds);
      return static_cast<long>(request.id);
    }
    int saved_errno = errno;
    hooks->after_parent();
    closeAll(request.fds, 5);
    adoptChild(ctl, children, request.id, pid, pidfd, saved_errno);
  }
  close(sfd);
  sigprocmask(SIG_SETMASK, &saved, nullptr);
  free(children.items);
  return result;
}

}  // extern "C"
