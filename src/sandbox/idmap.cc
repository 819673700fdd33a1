#include "pycell/sandbox/idmap.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/mount.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <map>
#include <tuple>

#include "pycell/process/log.h"
#include "pycell/sandbox/isolate.h"

namespace pycell::sandbox {

namespace {

// A user namespace mapping `ownerUid`/`ownerGid` (inside) onto `uid`/`gid` (outside), one id
// each: what an id-mapped mount is given. Made once per pair by a child that exists only
// while its maps are written and its namespace opened; kept open for the server's lifetime.
Result<int> mappingNamespace(unsigned ownerUid, unsigned ownerGid, unsigned uid, unsigned gid) {
  static std::map<std::tuple<unsigned, unsigned, unsigned, unsigned>, UniqueFd> made;
  auto key = std::tuple{ownerUid, ownerGid, uid, gid};
  if (auto it = made.find(key); it != made.end()) return it->second.get();
  auto hold = makePipe();
  if (!hold) return std::unexpected(hold.error());
  int pidfd = -1;
  long pid = cloneSandbox(Namespaces{.user = true}, &pidfd);
  if (pid < 0) return std::unexpected(sysError("clone (id-mapping namespace)"));
  if (pid == 0) {
    hold->write.reset();
    char c;
    [[maybe_unused]] auto n = ::read(hold->read.get(), &c, 1);  // until the server has opened our namespace
    ::_exit(0);
  }
  UniqueFd pidfdOwned(pidfd);
  hold->read.reset();
  std::string proc = "/proc/" + std::to_string(pid);
  Status st = writeFile(proc + "/uid_map", std::to_string(ownerUid) + " " + std::to_string(uid) + " 1\n");
  if (st) st = writeFile(proc + "/gid_map", std::to_string(ownerGid) + " " + std::to_string(gid) + " 1\n");
  UniqueFd ns;
  if (st) {
    ns = UniqueFd(::open((proc + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns) st = std::unexpected(sysError(proc + "/ns/user"));
  }
  hold->write.reset();
  while (::waitpid(static_cast<pid_t>(pid), nullptr, 0) < 0 && errno == EINTR) {
  }
  if (!st) return std::unexpected(st.error());
  int fd = ns.get();
  made.emplace(key, std::move(ns));
  return fd;
}

// fchmodat2 (Linux 6.6) has the same number on every architecture; older headers lack it.
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

#if defined(__x86_64__)
constexpr uint32_t kNativeArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr uint32_t kNativeArch = AUDIT_ARCH_AARCH64;
#else
#error "setIdBitsFilter: unknown architecture"
#endif

}  // namespace

Result<UniqueFd> idmappedTree(const std::string& path, unsigned sandboxUid, unsigned sandboxGid) {
  UniqueFd tree(static_cast<int>(
      ::syscall(SYS_open_tree, AT_FDCWD, path.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE)));
  if (!tree) return std::unexpected(sysError("open_tree " + path));
  struct stat st{};
  if (::fstat(tree.get(), &st) != 0) return std::unexpected(sysError("stat " + path));
  if (st.st_uid == sandboxUid && st.st_gid == sandboxGid) return UniqueFd();
  auto ns = mappingNamespace(st.st_uid, st.st_gid, sandboxUid, sandboxGid);
  if (!ns) return std::unexpected(ns.error());
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
  attr.userns_fd = static_cast<uint64_t>(*ns);
  if (::syscall(SYS_mount_setattr, tree.get(), "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) != 0)
    return std::unexpected(sysError("id-mapped mount of " + path));
  return tree;
}

bool attachIdmappedBinds(std::vector<MountOp>& mounts, unsigned sandboxUid, unsigned sandboxGid,
                         std::vector<UniqueFd>& keep) {
  bool any = false;
  for (auto& op : mounts) {
    if (op.kind != MountOp::Kind::BindWritable) continue;
    auto tree = idmappedTree(op.source, sandboxUid, sandboxGid);
    if (!tree) {
      log::warn("allowWrite " + op.source + ": no id-mapped mount (" + tree.error().message() +
                "); the sandbox writes there as its own host uid " + std::to_string(sandboxUid));
      continue;
    }
    if (!*tree) continue;
    op.fd = tree->get();
    keep.push_back(std::move(*tree));
    any = true;
  }
  return any;
}

const std::vector<sock_filter>& setIdBitsFilter() {
  static const std::vector<sock_filter> program = [] {
    std::vector<sock_filter> p;
    auto args = [](int i) { return static_cast<uint32_t>(offsetof(seccomp_data, args) + 8 * i); };  // low 32 bits
    p.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)));
    // Another ABI: the main filter refuses those calls.
    p.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kNativeArch, 1, 0));
    p.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    p.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
    // (system call, argument holding the mode): a mode with S_ISUID or S_ISGID is refused.
    std::vector<std::pair<long, int>> calls = {
#ifdef SYS_chmod
        {SYS_chmod, 1},
#endif
#ifdef SYS_open
        {SYS_open, 2},
#endif
#ifdef SYS_creat
        {SYS_creat, 1},
#endif
#ifdef SYS_mknod
        {SYS_mknod, 1},
#endif
        {SYS_fchmod, 1}, {SYS_fchmodat, 2}, {SYS_fchmodat2, 2}, {SYS_openat, 3}, {SYS_mknodat, 2},
    };
    for (auto [nr, arg] : calls) {
      p.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 4));
      p.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, args(arg)));
      p.push_back(BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, S_ISUID | S_ISGID, 0, 1));
      p.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)));
      p.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    }
    // openat2 takes its mode in a structure a filter cannot read: "not here" (callers fall
    // back to openat).
    p.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1));
    p.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)));
    p.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    return p;
  }();
  return program;
}

WritableBindsSupport probeWritableBinds(const std::vector<std::string>& paths, unsigned sandboxUid,
                                        unsigned sandboxGid, bool seccomp) {
  WritableBindsSupport s;
  if (::geteuid() != 0) {
    s.mode = "server";
    s.detail = "the sandbox writes as the server's own uid " + std::to_string(::geteuid());
    return s;
  }
  if (sandboxUid == 0) {
    s.mode = "server";
    s.detail = "sandboxes keep the server's uid 0";
    return s;
  }
  std::string nobody = "files the sandbox creates belong to its host uid " + std::to_string(sandboxUid) +
                       ", and it writes only where that uid may";
  if (!seccomp) {
    s.mode = "nobody";
    s.detail = "no seccomp filter to refuse set-id bits, so no id-mapped mounts; " + nobody;
    return s;
  }
  std::vector<std::string> tried = paths;
  char dir[] = "/tmp/pycell-idmap-probe-XXXXXX";
  bool madeDir = false;
  if (tried.empty()) {
    if (!::mkdtemp(dir)) {
      s.mode = "nobody";
      s.detail = "mkdtemp for the id-mapped mount probe: " + sysError("mkdtemp").message() + "; " + nobody;
      return s;
    }
    madeDir = true;
    tried.push_back(dir);
  }
  std::string failed;
  size_t worked = 0;
  for (const auto& path : tried) {
    auto tree = idmappedTree(path, sandboxUid, sandboxGid);
    if (tree) ++worked;
    else failed += (failed.empty() ? "" : "; ") + tree.error().message();
  }
  if (madeDir) ::rmdir(dir);
  // Paths that fail fall back one by one at each run; the others still get their mapping.
  s.idmapped = worked > 0;
  if (failed.empty()) {
    s.mode = "owner";
    s.detail = "id-mapped mounts: files a sandbox creates belong to the directory's owner; set-id bits refused";
  } else {
    s.mode = worked > 0 ? "mixed" : "nobody";
    s.detail = failed + (worked > 0 ? "; there " : "; ") + nobody;
  }
  return s;
}

}  // namespace pycell::sandbox
