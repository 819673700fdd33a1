// libpycell_child.so: see child_abi.h for the order of the steps. Plain syscalls only: it
// runs in a freshly cloned interpreter, between Python calls, and must leave no state
// behind but the isolation itself. The zygote's fork loop is in fork_loop.cc.
#include "pycell/sandbox/child_abi.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pycell/sandbox/caps.h"
#include "pycell/sandbox/scratch.h"

namespace {

char lastError[256];

int writeText(const char* path, const char* text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, text, strlen(text));
  int saved = errno;
  close(fd);
  errno = saved;
  return n == static_cast<ssize_t>(strlen(text)) ? 0 : -1;
}

constexpr int kMaxChildBinds = 64;

// `source` (an O_PATH fd of the zygote's bind) bound at `target`, made below the child's
// new tmpfs, with the flags the zygote's bind has (nosuid, nodev, read-only unless writable).
bool bindAgain(int source, const char* target, bool writable) {
  struct stat st{};
  if (fstat(source, &st) != 0) return false;
  if (S_ISDIR(st.st_mode)) {
    if (!pycell::sandbox::scratchMakeDirs(target, 0755)) return false;
  } else {
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", target);
    char* slash = strrchr(parent, '/');
    if (slash && slash != parent) {
      *slash = '\0';
      if (!pycell::sandbox::scratchMakeDirs(parent, 0755)) return false;
    }
    int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    close(fd);
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", source);
  // MS_REC: the zygote's mounts are locked in this child's user namespace, and a bind of
  // one that has mounts below it must take them along.
  if (mount(path, target, nullptr, MS_BIND | MS_REC, nullptr) != 0) return false;
  return pycell::sandbox::restrictBind(target, writable);
}

}  // namespace

namespace pycell::sandbox {

int childFail(const char* step) {
  snprintf(lastError, sizeof lastError, "%s: %s", step, strerror(errno));
  return -1;
}

}  // namespace pycell::sandbox

using pycell::sandbox::childFail;

extern "C" {

const char* pycell_last_error(void) { return lastError; }

int pycell_clone(int share_network) {
  // Raw clone with fork semantics (no new stack): the child continues here, as PID 1 of a
  // new pid namespace, in a new user namespace where it holds every capability until it
  // drops them in pycell_enter.
  unsigned long flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD;
  if (!share_network) flags |= CLONE_NEWNET;
  long pid = syscall(SYS_clone, flags, nullptr, nullptr, nullptr, nullptr);
  if (pid < 0) return childFail("clone");
  return static_cast<int>(pid);
}

int pycell_enter(const struct pycell_child_spec* spec) {
  if (setsid() < 0) return childFail("setsid");
  // Map our own ids and nothing else: allowed without privilege (user_namespaces(7)).
  char map[64];
  if (writeText("/proc/self/setgroups", "deny") != 0) return childFail("write setgroups");
  snprintf(map, sizeof map, "%u %u 1\n", spec->uid, spec->uid);
  if (writeText("/proc/self/uid_map", map) != 0) return childFail("write uid_map");
  snprintf(map, sizeof map, "%u %u 1\n", spec->gid, spec->gid);
  if (writeText("/proc/self/gid_map", map) != 0) return childFail("write gid_map");
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return childFail("make mounts private");
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) return childFail("mount proc");
  // The zygote's binds under /sandbox, /tmp or /dev/shm, held open before this child's own
  // tmpfs covers them, and bound again on top of it.
  int sources[kMaxChildBinds];
  int opened = 0;
  if (spec->n_binds < 0 || spec->n_binds > kMaxChildBinds) {
    errno = E2BIG;
    return childFail("too many binds");
  }
  for (; opened < spec->n_binds; ++opened) {
    sources[opened] = open(spec->binds[opened], O_PATH | O_CLOEXEC);
    if (sources[opened] < 0) return childFail("open bind source");
  }
  const char* step = nullptr;
  if (!pycell::sandbox::mountScratch("", spec->disk_mb, spec->uid, spec->gid, &step)) return childFail(step);
  for (int i = 0; i < opened; ++i) {
    if (!bindAgain(sources[i], spec->binds[i], spec->bind_writable[i] != 0)) return childFail("bind again on the child's tmpfs");
    close(sources[i]);
  }
  if (chdir("/sandbox") != 0) return childFail("chdir /sandbox");
  if (sethostname("pycell", 6) != 0) return childFail("sethostname");
  for (int i = 0; i < spec->n_rlimits; ++i) {
    rlimit rl{spec->rlimits[3 * i + 1], spec->rlimits[3 * i + 2]};
    if (setrlimit(static_cast<int>(spec->rlimits[3 * i]), &rl) != 0) return childFail("setrlimit");
  }
  step = "drop capabilities";
  if (pycell::sandbox::dropAllCapabilities(&step) != 0) return childFail(step);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return childFail("no_new_privs");
  // seccomp last: the steps above need syscalls it denies.
  if (spec->bpf && spec->bpf_len > 0) {
    sock_fprog prog{static_cast<unsigned short>(spec->bpf_len),
                    const_cast<sock_filter*>(static_cast<const sock_filter*>(spec->bpf))};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) return childFail("seccomp");
  }
  return 0;
}

}  // extern "C"
