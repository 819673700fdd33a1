#include "pycell/sandbox/mounts.h"

#include <fcntl.h>
#include <linux/mount.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "pycell/sandbox/scratch.h"
#include "pycell/sandbox/netstack.h"

namespace pycell::sandbox {

namespace {

bool isSymlink(const std::string& path, std::string& target) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return false;
  char buf[PATH_MAX];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
  if (n <= 0) return false;
  target.assign(buf, static_cast<size_t>(n));
  return true;
}

bool exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

// A host directory shown read-only at the same path, or recreated as the symlink it is
// (merged-/usr systems have /bin -> usr/bin).
void addHostPath(std::vector<MountOp>& plan, const std::string& path) {
  std::string link;
  if (isSymlink(path, link)) {
    plan.push_back({MountOp::Kind::Symlink, path, link, {}});
  } else if (exists(path)) {
    plan.push_back({MountOp::Kind::BindReadOnly, path, path, {}});
  }
}

// The interpreter's prefix, when it lives outside /usr (a venv, pyenv, conda...).
std::string prefixOf(const std::string& exe) {
  auto bin = exe.substr(0, exe.rfind('/'));
  auto prefix = bin.substr(0, bin.rfind('/'));
  return prefix.empty() ? "/" : prefix;
}

}  // namespace

std::vector<MountOp> planRootfs(const RootfsOptions& o) {
  using K = MountOp::Kind;
  std::vector<MountOp> plan;
  for (const char* p : {"/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"}) addHostPath(plan, p);
  plan.push_back({K::Dir, "/etc", {}, {}});
  // Only what the dynamic loader, Python and its common libraries read; no passwd shadow,
  // no host names, no credentials.
  for (const char* p : {"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
                        "/etc/matplotlibrc", "/etc/fonts", "/etc/mime.types", "/etc/alternatives",
                        "/etc/python3", "/etc/python3.9", "/etc/python3.10", "/etc/python3.11", "/etc/python3.12",
                        "/etc/python3.13"}) {
    addHostPath(plan, p);
  }
  if (o.network) {
    // Names resolve through /etc/hosts, then slirp4netns's DNS forwarder; TLS verifies with
    // the host's CA bundle (the certificates the links in /etc/ssl/certs point to are in /usr).
    plan.push_back({K::File, "/etc/resolv.conf", std::string("nameserver ") + kNetStackDns + "\n", {}});
    plan.push_back({K::File, "/etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n", {}});
    plan.push_back({K::File, "/etc/nsswitch.conf",
                    "passwd: files\ngroup: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n", {}});
    for (const char* p : {"/etc/ssl/certs", "/etc/pki/tls/certs", "/etc/pki/ca-trust/extracted", "/etc/services",
                          "/etc/protocols", "/etc/gai.conf"})
      addHostPath(plan, p);
  } else {
    addHostPath(plan, "/etc/nsswitch.conf");
  }
  for (const auto& exe : {o.python, o.pythonRealPath}) {
    std::string prefix = prefixOf(exe);
    if (prefix != "/usr" && prefix != "/" && prefix.rfind("/usr/", 0) != 0) plan.push_back({K::BindReadOnly, prefix, prefix, {}});
  }
  plan.push_back({K::Proc, "/proc", {}, {}});
  plan.push_back({K::Tmpfs, "/dev", {}, "mode=0755,size=64k"});
  for (const char* dev : {"null", "zero", "full", "random", "urandom"})
    plan.push_back({K::BindDevice, std::string("/dev/") + dev, std::string("/dev/") + dev, {}});
  for (auto [name, target] : {std::pair{"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"},
                              {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"}})
    plan.push_back({K::Symlink, std::string("/dev/") + name, target, {}});
  plan.push_back({K::Dir, "/dev/shm", {}, {}});
  plan.push_back({K::RemountReadOnly, "/dev", {}, {}});
  plan.push_back({K::Dir, kWorkDir, {}, {}});
  plan.push_back({K::Dir, "/tmp", {}, {}});
  plan.push_back({K::Dir, kScratchMountPoint, {}, {}});
  // /sandbox, /tmp and /dev/shm: one tmpfs of diskMb for all three (scratch.h).
  plan.push_back({K::Scratch, kScratchMountPoint, {},
                  std::to_string(o.diskMb) + ":" + std::to_string(o.insideUid) + ":" + std::to_string(o.insideGid)});
  // After the tmpfs, so a bind under /tmp lands on it rather than under it.
  for (const auto& bind : o.extraBinds)
    plan.push_back({bind.writable ? K::BindWritable : K::BindReadOnly, bind.path, bind.path, {}});
  plan.push_back({K::File, kBootstrapPath, o.bootstrapSource, {}});
  for (const auto& [path, contents] : o.extraFiles) plan.push_back({K::File, path, contents, {}});
  return plan;
}

bool onSandboxTmpfs(const std::string& path) {
  for (std::string dir : {kWorkDir, "/tmp", "/dev/shm"})
    if (path == dir || path.rfind(dir + "/", 0) == 0) return true;
  return false;
}

// ---- child side: no allocation beyond fixed buffers, no exceptions ---------------------

namespace {

bool fail(ChildFailure& f, const char* step) {
  f.step = step;
  f.err = errno;
  return false;
}

bool makeDirs(const char* path, mode_t mode) { return scratchMakeDirs(path, mode); }

bool makeParent(const char* path) {
  char buf[PATH_MAX];
  std::strncpy(buf, path, sizeof buf - 1);
  buf[sizeof buf - 1] = '\0';
  char* slash = std::strrchr(buf, '/');
  if (!slash || slash == buf) return true;
  *slash = '\0';
  return makeDirs(buf, 0755);
}

bool touch(const char* path) {
  int fd = ::open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

// Flags that a mount in a user namespace must keep when remounted (the kernel locks them).
unsigned long lockedFlags(const char* path) {
  struct statvfs sv{};
  if (::statvfs(path, &sv) != 0) return 0;
  unsigned long flags = 0;
  if (sv.f_flag & ST_NOSUID) flags |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV) flags |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  return flags;
}

// Read-only, nosuid and nodev for the bind and every mount below it.
bool makeReadOnly(const char* path) { return restrictBind(path, false); }

bool isBind(MountOp::Kind k) {
  return k == MountOp::Kind::BindReadOnly || k == MountOp::Kind::BindWritable || k == MountOp::Kind::BindDevice;
}

// The source was opened (O_PATH) before the staging tmpfs went up, so a source under the
// staging directory's own path (/tmp) is still the host's.
bool bindSource(int sourceFd, const char* target, ChildFailure& f) {
  struct stat st{};
  if (::fstat(sourceFd, &st) != 0) return fail(f, "stat bind source");
  if (S_ISDIR(st.st_mode) ? !makeDirs(target, 0755) : !(makeParent(target) && touch(target)))
    return fail(f, "create bind target");
  char source[64];
  std::snprintf(source, sizeof source, "/proc/self/fd/%d", sourceFd);
  if (::mount(source, target, nullptr, MS_BIND | MS_REC, nullptr) != 0) return fail(f, "bind mount");
  return true;
}

bool executeOp(const MountOp& op, const char* staging, const char* target, int sourceFd, ChildFailure& f) {
  using K = MountOp::Kind;
  switch (op.kind) {
    case K::Dir:
      return makeDirs(target, 0755) || fail(f, "mkdir");
    case K::Tmpfs:
      if (!makeDirs(target, 0755)) return fail(f, "mkdir tmpfs target");
      return ::mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, op.data.c_str()) == 0 || fail(f, "mount tmpfs");
    case K::BindReadOnly:
      if (!bindSource(sourceFd, target, f)) return false;
      return makeReadOnly(target) || fail(f, "remount bind read-only");
    case K::BindWritable:
      if (!bindSource(sourceFd, target, f)) return false;
      return restrictBind(target, true) || fail(f, "remount bind nosuid,nodev");
    case K::Scratch: {
      long long diskMb = 0;
      unsigned uid = 0, gid = 0;
      if (std::sscanf(op.data.c_str(), "%lld:%u:%u", &diskMb, &uid, &gid) != 3) {
        errno = EINVAL;
        return fail(f, "sandbox tmpfs options");
      }
      const char* step = nullptr;
      return mountScratch(staging, diskMb, uid, gid, &step) || fail(f, step);
    }
    case K::BindDevice:
      return bindSource(sourceFd, target, f);
    case K::Proc:
      if (!makeDirs(target, 0755)) return fail(f, "mkdir /proc");
      return ::mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0 || fail(f, "mount proc");
    case K::Symlink:
      if (!makeParent(target)) return fail(f, "mkdir symlink parent");
      return ::symlink(op.source.c_str(), target) == 0 || fail(f, "symlink");
    case K::File: {
      if (!makeParent(target)) return fail(f, "mkdir file parent");
      int fd = ::open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) return fail(f, "create file");
      bool ok = ::write(fd, op.source.data(), op.source.size()) == static_cast<ssize_t>(op.source.size());
      ::close(fd);
      return ok || fail(f, "write file");
    }
    case K::RemountReadOnly:
      return ::mount(nullptr, target, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | lockedFlags(target), nullptr) == 0 ||
             fail(f, "remount read-only");
  }
  return true;
}

}  // namespace

bool executeRootfsPlan(const std::vector<MountOp>& plan, const char* staging, ChildFailure& f) {
  // Nothing we mount may propagate back to the host.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return fail(f, "make mounts private");
  constexpr size_t kMaxBinds = 256;
  int sources[kMaxBinds];
  size_t opened = 0;
  for (const auto& op : plan) {
    if (!isBind(op.kind)) continue;
    if (opened == kMaxBinds) {
      errno = E2BIG;
      return fail(f, "too many bind mounts");
    }
    sources[opened] = ::open(op.source.c_str(), O_PATH | O_CLOEXEC);
    if (sources[opened] < 0) return fail(f, "open bind source");
    ++opened;
  }
  if (::mount("tmpfs", staging, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16m") != 0) return fail(f, "mount root tmpfs");
  char target[PATH_MAX];
  size_t next = 0;
  for (const auto& op : plan) {
    if (std::snprintf(target, sizeof target, "%s%s", staging, op.target.c_str()) >= static_cast<int>(sizeof target)) {
      errno = ENAMETOOLONG;
      return fail(f, "mount target path");
    }
    if (!executeOp(op, staging, target, isBind(op.kind) ? sources[next++] : -1, f)) return false;
  }
  for (size_t i = 0; i < opened; ++i) ::close(sources[i]);
  // pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only ours
  // (the trick from pivot_root(2)'s NOTES).
  if (::chdir(staging) != 0) return fail(f, "chdir staging");
  if (::syscall(SYS_pivot_root, ".", ".") != 0) return fail(f, "pivot_root");
  if (::umount2(".", MNT_DETACH) != 0) return fail(f, "detach old root");
  if (::chdir("/") != 0) return fail(f, "chdir /");
  if (::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr) != 0)
    return fail(f, "remount root read-only");
  if (::chdir(kWorkDir) != 0) return fail(f, "chdir working directory");
  return true;
}

}  // namespace pycell::sandbox
