// The isolation sequence (see isolate.h): isolate() lists the steps in their order, one
// line each; each step's body follows below it, or lives in its concern's file (the mount
// executor in mount_exec.cc, the capability drop in caps.cc).
#include "pycell/sandbox/isolate.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pycell/sandbox/caps.h"

namespace pycell::sandbox {

namespace {

using Step = std::expected<void, StepFailure>;

Step failed(const char* step, const char* detail = "") { return std::unexpected(stepFailure(step, errno, detail)); }

int writeText(const char* path, const char* text) {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = ::write(fd, text, strlen(text));
  int saved = errno;
  ::close(fd);
  errno = saved;
  return n == static_cast<ssize_t>(strlen(text)) ? 0 : -1;
}

// ids: the child of a zygote maps its own ids (the zygote's, seen as insideUid/Gid); then
// every child takes the sandbox's ids and drops its supplementary groups. In a user
// namespace this comes first, before any mount: files made in the new tmpfs need a mapped
// uid, and since uid 0 is not mapped there, the switch does not strip the namespace's
// capabilities. Without a user namespace (degraded, as root) the switch comes with the
// capability drop instead, because there it does drop them.
Step switchIds(const IsolationSpec& spec) {
  const IdPlan& ids = spec.ids;
  if (ids.childWritesMaps) {
    char map[64];
    if (writeText("/proc/self/setgroups", "deny") != 0) return failed("ids", "/proc/self/setgroups");
    snprintf(map, sizeof map, "%u %u 1\n", ids.insideUid, ids.outerUid);
    if (writeText("/proc/self/uid_map", map) != 0) return failed("ids", "/proc/self/uid_map");
    snprintf(map, sizeof map, "%u %u 1\n", ids.insideGid, ids.outerGid);
    if (writeText("/proc/self/gid_map", map) != 0) return failed("ids", "/proc/self/gid_map");
  }
  // Supplementary groups go, where the kernel lets us: in a user namespace setgroups is
  // denied (and a root server dropped its own at start, so none were inherited).
  if (::setgroups(0, nullptr) != 0 && errno != EPERM) return failed("ids", "setgroups");
  unsigned uid = spec.namespaces.user ? ids.insideUid : ids.outerUid;
  unsigned gid = spec.namespaces.user ? ids.insideGid : ids.outerGid;
  if (::setresgid(gid, gid, gid) != 0) return failed("ids", "setresgid");
  if (::setresuid(uid, uid, uid) != 0) return failed("ids", "setresuid");
  return {};
}

Step mounts(const IsolationSpec& spec) {
  if (!spec.namespaces.mount) {
    if (::chdir(spec.hostWorkDir.c_str()) != 0) return failed("chdir", spec.hostWorkDir.c_str());
    return {};
  }
  StepFailure f;
  RootSteps root{spec.mounts, spec.mountsFromTemplate, spec.childRootTemplate.empty() ? nullptr : &spec.childRootTemplate};
  if (!applyMountPlan(root, "/tmp", f)) return std::unexpected(f);
  return {};
}

// The five fds become 0..4, by way of fds >= 10 so that none lands on another still
// needed; then every other fd goes (now, or at the execve that follows).
Step placeFds(const IsolationSpec& spec, int (&fds)[5]) {
  int high[5];
  for (int i = 0; i < 5; ++i)
    if ((high[i] = ::fcntl(fds[i], F_DUPFD_CLOEXEC, 10)) < 0) return failed("fds", "dup");
  for (int i = 0; i < 5; ++i)
    if (::dup3(high[i], i, 0) != i) return failed("fds", "dup3");
  for (int i = 0; i < 5; ++i) fds[i] = i;
  unsigned flags = spec.execFollows ? CLOSE_RANGE_CLOEXEC : 0;
  if (::syscall(SYS_close_range, 5U, ~0U, flags) != 0) return failed("fds", "close_range");
  return {};
}

Step rlimits(const IsolationSpec& spec) {
  static const char* const kNames[RLIM_NLIMITS] = {
      "RLIMIT_CPU",    "RLIMIT_FSIZE",   "RLIMIT_DATA",  "RLIMIT_STACK",  "RLIMIT_CORE",   "RLIMIT_RSS",
      "RLIMIT_NPROC",  "RLIMIT_NOFILE",  "RLIMIT_MEMLOCK", "RLIMIT_AS",   "RLIMIT_LOCKS",  "RLIMIT_SIGPENDING",
      "RLIMIT_MSGQUEUE", "RLIMIT_NICE",  "RLIMIT_RTPRIO", "RLIMIT_RTTIME"};
  for (const auto& r : spec.rlimits) {
    rlimit rl{r.soft, r.hard};
    if (::setrlimit(r.resource, &rl) != 0)
      return failed("setrlimit", r.resource >= 0 && r.resource < RLIM_NLIMITS ? kNames[r.resource] : "?");
  }
  return {};
}

Step capabilities(const IsolationSpec& spec) {
  // Without a user namespace (degraded, as root) the uid switch is what drops privilege.
  if (!spec.namespaces.user && ::geteuid() == 0 && spec.ids.outerUid != 0) {
    if (auto st = switchIds(spec); !st) return st;
  }
  const char* call = "capset";
  if (dropAllCapabilities(&call) != 0) return failed("capabilities", call);
  return {};
}

}  // namespace

std::expected<void, StepFailure> isolate(const IsolationSpec& spec, int (&fds)[5]) {
  if (::setsid() < 0) return failed("setsid");
  if (spec.namespaces.user) {
    if (auto st = switchIds(spec); !st) return st;
  }
  if (namespaceFlags(spec.namespaces).cgroupAfterJoin && ::unshare(CLONE_NEWCGROUP) != 0) return failed("cgroup namespace");
  if (auto st = mounts(spec); !st) return st;
  if (spec.namespaces.uts && ::sethostname("pycell", 6) != 0) return failed("hostname");
  if (auto st = placeFds(spec, fds); !st) return st;
  if (auto st = rlimits(spec); !st) return st;
  if (auto st = capabilities(spec); !st) return st;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return failed("no_new_privs");
  // seccomp last: every step above makes system calls the filter refuses. The set-id filter
  // first, since the main one may refuse the call that installs a filter.
  if (!spec.seccompSetIdBits.empty() && installSeccompFilter(spec.seccompSetIdBits) != 0)
    return failed("seccomp", "set-id bits filter");
  if (!spec.seccomp.empty() && installSeccompFilter(spec.seccomp) != 0) return failed("seccomp");
  return {};
}

NamespaceFlags namespaceFlags(const Namespaces& ns) {
  NamespaceFlags flags;
  if (ns.user) flags.atClone |= CLONE_NEWUSER;
  if (ns.pid) flags.atClone |= CLONE_NEWPID;
  if (ns.mount) flags.atClone |= CLONE_NEWNS;
  if (ns.net) flags.atClone |= CLONE_NEWNET;
  if (ns.ipc) flags.atClone |= CLONE_NEWIPC;
  if (ns.uts) flags.atClone |= CLONE_NEWUTS;
  flags.cgroupAfterJoin = ns.cgroup;
  return flags;
}

long cloneSandbox(const Namespaces& ns, int* pidfd) {
  clone_args args{};
  args.flags = namespaceFlags(ns).atClone | CLONE_PIDFD;
  args.pidfd = reinterpret_cast<uint64_t>(pidfd);
  args.exit_signal = SIGCHLD;
  return ::syscall(SYS_clone3, &args, sizeof args);
}

int installSeccompFilter(const std::vector<sock_filter>& program) {
  sock_fprog prog{static_cast<unsigned short>(program.size()), const_cast<sock_filter*>(program.data())};
  return ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}

StepFailure stepFailure(const char* step, int err, const char* detail) {
  StepFailure f;
  snprintf(f.step, sizeof f.step, "%s", step ? step : "?");
  f.err = err;
  snprintf(f.detail, sizeof f.detail, "%s", detail ? detail : "");
  return f;
}

void writeStepFailure(int fd, const StepFailure& failure) {
  StepFailureRecord record{};
  memcpy(record.magic, kStepFailureMagic, sizeof record.magic);
  record.err = failure.err;
  memcpy(record.step, failure.step, sizeof record.step);
  memcpy(record.detail, failure.detail, sizeof record.detail);
  record.step[sizeof record.step - 1] = '\0';
  record.detail[sizeof record.detail - 1] = '\0';
  ssize_t n;
  do {
    n = ::write(fd, &record, sizeof record);
  } while (n < 0 && errno == EINTR);
}

std::optional<StepFailure> readStepFailure(int fd, const void* head, size_t have) {
  StepFailureRecord record{};
  have = have < sizeof record ? have : sizeof record;
  if (head && have > 0) memcpy(&record, head, have);
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0 && !(flags & O_NONBLOCK)) (void)::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  while (have < sizeof record) {
    ssize_t n = ::read(fd, reinterpret_cast<char*>(&record) + have, sizeof record - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    have += static_cast<size_t>(n);
  }
  StepFailure failure;
  if (!decodeStepFailure(&record, have, failure)) return std::nullopt;
  return failure;
}

bool decodeStepFailure(const void* data, size_t size, StepFailure& out) {
  if (size != sizeof(StepFailureRecord)) return false;
  StepFailureRecord record;
  memcpy(&record, data, sizeof record);
  if (memcmp(record.magic, kStepFailureMagic, sizeof record.magic) != 0) return false;
  out = StepFailure{};
  memcpy(out.step, record.step, sizeof out.step);
  memcpy(out.detail, record.detail, sizeof out.detail);
  out.step[sizeof out.step - 1] = '\0';
  out.detail[sizeof out.detail - 1] = '\0';
  out.err = record.err;
  return true;
}

}  // namespace pycell::sandbox
