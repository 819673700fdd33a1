// The mount step of the isolation sequence (isolate.cc): runs a root file system plan
// (mounts.h, planned by the server) in the child's new mount namespace. Fixed buffers and
// plain syscalls: it runs between clone and execve (or in a zygote's fresh child).
#include <fcntl.h>
#include <linux/mount.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>

#include "pycell/sandbox/isolate.h"
#include "pycell/sandbox/mounts.h"

namespace pycell::sandbox {

namespace {

// The three directories of the scratch tmpfs (mounts.h) and where each is bound: the one
// list that mountScratch builds and perSandbox reads.
struct ScratchDir {
  const char* name;
  const char* target;
  mode_t mode;
  bool owned;  // chowned to the sandbox's ids; the others are world-writable and sticky
};
constexpr ScratchDir kScratchDirs[] = {
    {"sandbox", kWorkDir, 0755, true}, {"tmp", "/tmp", 01777, false}, {"shm", "/dev/shm", 01777, false}};

// mkdir -p of an absolute path.
bool makeDirs(const char* path, mode_t mode) {
  char buf[PATH_MAX];
  size_t n = strlen(path);
  if (n >= sizeof buf) {
    errno = ENAMETOOLONG;
    return false;
  }
  memcpy(buf, path, n + 1);
  for (char* p = buf + 1; *p; ++p) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, mode) != 0 && errno != EEXIST) return false;
    *p = '/';
  }
  return mkdir(buf, mode) == 0 || errno == EEXIST;
}

// Mounts the shared tmpfs at `root` + kScratchMountPoint, makes its three directories and
// binds them at `root`/sandbox (0755, owned by uid:gid), `root`/tmp and `root`/dev/shm
// (1777); then detaches the tmpfs from its temporary mount point (the binds keep it).
// The three targets must exist. Returns false with errno set and `*step` naming the step.
bool mountScratch(const char* root, int64_t diskMb, unsigned uid, unsigned gid, const char** step) {
  char scratch[PATH_MAX], source[PATH_MAX], target[PATH_MAX], options[128];
  auto fail = [&](const char* what) {
    *step = what;
    return false;
  };
  // Paths too long for PATH_MAX are refused rather than cut short.
  auto join = [](char (&out)[PATH_MAX], const char* a, const char* sep, const char* b) {
    int n = snprintf(out, sizeof out, "%s%s%s", a, sep, b);
    if (n < 0 || n >= static_cast<int>(sizeof out)) {
      errno = ENAMETOOLONG;
      return false;
    }
    return true;
  };
  if (!join(scratch, root, "", kScratchMountPoint)) return fail("sandbox tmpfs path");
  snprintf(options, sizeof options, "mode=0700,nr_inodes=%d,size=%lldm", kScratchInodes, static_cast<long long>(diskMb));
  if (mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, options) != 0) return fail("mount the sandbox's tmpfs");
  for (const ScratchDir& d : kScratchDirs) {
    if (!join(source, scratch, "/", d.name) || !join(target, root, "", d.target)) return fail("sandbox tmpfs path");
    if (mkdir(source, 0700) != 0) return fail("mkdir in the sandbox's tmpfs");
    if (d.owned && chown(source, uid, gid) != 0) return fail("chown the working directory");
    if (chmod(source, d.mode) != 0) return fail("chmod in the sandbox's tmpfs");
    if (mount(source, target, nullptr, MS_BIND, nullptr) != 0) return fail("bind the sandbox's tmpfs");
  }
  if (umount2(scratch, MNT_DETACH) != 0) return fail("detach the sandbox's tmpfs");
  return true;
}

// Sets nosuid and nodev (and read-only unless `writable`) on the mount at `target` and
// every mount below it (mount_setattr, Linux 5.12); older kernels get the plain remount of
// the top mount, keeping the flags a user namespace must keep (the kernel locks them).
bool restrictBind(const char* target, bool writable) {
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (writable ? 0 : MOUNT_ATTR_RDONLY);
  if (syscall(SYS_mount_setattr, AT_FDCWD, target, AT_RECURSIVE, &attr, sizeof attr) == 0) return true;
  struct statvfs sv{};
  unsigned long locked = 0;
  if (statvfs(target, &sv) == 0) {
    if (sv.f_flag & ST_NOEXEC) locked |= MS_NOEXEC;
    if (sv.f_flag & ST_NOATIME) locked |= MS_NOATIME;
    if (sv.f_flag & ST_NODIRATIME) locked |= MS_NODIRATIME;
    if (sv.f_flag & ST_RELATIME) locked |= MS_RELATIME;
    if (sv.f_flag & ST_RDONLY) locked |= MS_RDONLY;
  }
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | locked | (writable ? 0 : MS_RDONLY);
  return mount(nullptr, target, nullptr, flags, nullptr) == 0;
}

// The step is "mounts"; the detail says what, and where inside the sandbox.
bool fail(StepFailure& f, const char* what, const std::string& target = {}) {
  int err = errno;
  char detail[sizeof f.detail];
  std::snprintf(detail, sizeof detail, "%s%s%s", what, target.empty() ? "" : " ", target.c_str());
  f = stepFailure("mounts", err, detail);
  return false;
}

bool makeParent(const char* path) {
  char buf[PATH_MAX];
  std::snprintf(buf, sizeof buf, "%s", path);
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

bool isBind(MountOp::Kind k) {
  return k == MountOp::Kind::BindReadOnly || k == MountOp::Kind::BindWritable || k == MountOp::Kind::BindDevice;
}

// The source was opened (O_PATH) before the staging tmpfs went up, so a source under the
// staging directory's own path (/tmp) is still the one the parent's view has there.
bool bindSource(int sourceFd, const char* target, const MountOp& op, StepFailure& f) {
  struct stat st{};
  if (::fstat(sourceFd, &st) != 0) return fail(f, "stat bind source", op.source);
  if (S_ISDIR(st.st_mode) ? !makeDirs(target, 0755) : !(makeParent(target) && touch(target)))
    return fail(f, "create bind target", op.target);
  char source[64];
  std::snprintf(source, sizeof source, "/proc/self/fd/%d", sourceFd);
  // MS_REC: a bind of a path with mounts below it takes them along (in a user namespace
  // the kernel refuses to reveal what they cover).
  if (::mount(source, target, nullptr, MS_BIND | MS_REC, nullptr) != 0) return fail(f, "bind", op.target);
  return true;
}

// An id-mapped copy of the source the server made (idmap.h): attached where the bind would go.
bool attachTree(int treeFd, const char* target, const MountOp& op, StepFailure& f) {
  struct stat st{};
  if (::fstat(treeFd, &st) != 0) return fail(f, "stat id-mapped bind source", op.source);
  if (S_ISDIR(st.st_mode) ? !makeDirs(target, 0755) : !(makeParent(target) && touch(target)))
    return fail(f, "create bind target", op.target);
  if (::syscall(SYS_move_mount, treeFd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) != 0)
    return fail(f, "attach id-mapped bind", op.target);
  return true;
}

bool executeOp(const MountOp& op, const char* staging, const char* target, int sourceFd, StepFailure& f) {
  using K = MountOp::Kind;
  switch (op.kind) {
    case K::Dir:
      return makeDirs(target, 0755) || fail(f, "mkdir", op.target);
    case K::Tmpfs:
      if (!makeDirs(target, 0755)) return fail(f, "mkdir", op.target);
      return ::mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, op.data.c_str()) == 0 || fail(f, "mount tmpfs", op.target);
    case K::BindReadOnly:
      if (!bindSource(sourceFd, target, op, f)) return false;
      return restrictBind(target, false) || fail(f, "remount bind read-only", op.target);
    case K::BindWritable:
      if (op.fd >= 0) {
        if (!attachTree(sourceFd, target, op, f)) return false;
      } else if (!bindSource(sourceFd, target, op, f)) {
        return false;
      }
      return restrictBind(target, true) || fail(f, "remount bind nosuid,nodev", op.target);
    case K::BindDevice:
      return bindSource(sourceFd, target, op, f);
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
    case K::Proc:
      if (!makeDirs(target, 0755)) return fail(f, "mkdir", op.target);
      return ::mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0 || fail(f, "mount proc", op.target);
    case K::Symlink:
      if (!makeParent(target)) return fail(f, "mkdir", op.target);
      return ::symlink(op.source.c_str(), target) == 0 || fail(f, "symlink", op.target);
    case K::File: {
      if (!makeParent(target)) return fail(f, "mkdir", op.target);
      int fd = ::open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) return fail(f, "create file", op.target);
      bool ok = ::write(fd, op.source.data(), op.source.size()) == static_cast<ssize_t>(op.source.size());
      ::close(fd);
      return ok || fail(f, "write file", op.target);
    }
    case K::RemountReadOnly:
      return ::mount(nullptr, target, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | lockedFlags(target), nullptr) == 0 ||
             fail(f, "remount read-only", op.target);
  }
  return true;
}

}  // namespace

// Whether an op is built anew in each sandbox (its /proc, its scratch tmpfs, and what lands on
// that tmpfs) rather than once in a zygote's template of its children's root.
bool perSandbox(const MountOp& op) {
  if (op.kind == MountOp::Kind::Proc || op.kind == MountOp::Kind::Scratch) return true;
  for (const ScratchDir& d : kScratchDirs) {
    size_t n = std::strlen(d.target);
    if (op.target.size() > n && op.target.compare(0, n, d.target) == 0 && op.target[n] == '/') return true;
  }
  return false;
}

namespace {

// The bind sources of the ops a root build runs, opened (O_PATH) before anything is mounted.
struct Sources {
  static constexpr size_t kMax = 256;
  int fds[kMax];
  size_t count = 0;
  size_t next = 0;
  ~Sources() {
    for (size_t i = 0; i < count; ++i) ::close(fds[i]);
  }
};

enum class Part { Shared, PerSandbox, All };

bool runs(const MountOp& op, Part part) {
  return part == Part::All || (part == Part::PerSandbox) == perSandbox(op);
}

bool openSources(const std::vector<MountOp>& plan, Part part, Sources& s, StepFailure& f) {
  for (const auto& op : plan) {
    if (!isBind(op.kind) || !runs(op, part)) continue;
    if (s.count == Sources::kMax) {
      errno = E2BIG;
      return fail(f, "too many bind mounts");
    }
    s.fds[s.count] = op.fd >= 0 ? ::fcntl(op.fd, F_DUPFD_CLOEXEC, 0) : ::open(op.source.c_str(), O_PATH | O_CLOEXEC);
    if (s.fds[s.count] < 0) return fail(f, "open bind source", op.source);
    ++s.count;
  }
  return true;
}

// Runs `part` of `plan` below `staging`, in the plan's order; the shared part first, then the
// per-sandbox part, on every path, so that every root's mounts come in one order.
bool runOps(const std::vector<MountOp>& plan, Part part, const char* staging, Sources& s, StepFailure& f) {
  char target[PATH_MAX];
  for (const auto& op : plan) {
    if (!runs(op, part)) continue;
    if (std::snprintf(target, sizeof target, "%s%s", staging, op.target.c_str()) >= static_cast<int>(sizeof target)) {
      errno = ENAMETOOLONG;
      return fail(f, "mount target path", op.target);
    }
    if (!executeOp(op, staging, target, isBind(op.kind) ? s.fds[s.next++] : -1, f)) return false;
  }
  return true;
}

constexpr unsigned long kRootTmpfsFlags = MS_NOSUID | MS_NODEV;
constexpr const char* kRootTmpfsOptions = "mode=0755,size=16m";
constexpr unsigned long kReadOnlyRoot = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV;

// A zygote's template of its children's root: the shared part of their plan, in a tmpfs at
// `dir` below this root's staging, read-only once built. Each child binds a copy of it and
// adds its own /proc and scratch tmpfs (applyMountPlan with fromTemplate).
bool buildTemplate(const std::vector<MountOp>& plan, const char* dir, Sources& s, StepFailure& f) {
  if (!makeDirs(dir, 0755)) return fail(f, "mkdir", kRootTemplateDir);
  if (::mount("tmpfs", dir, "tmpfs", kRootTmpfsFlags, kRootTmpfsOptions) != 0) return fail(f, "mount template tmpfs");
  if (!runOps(plan, Part::Shared, dir, s, f)) return false;
  return ::mount(nullptr, dir, nullptr, kReadOnlyRoot, nullptr) == 0 || fail(f, "remount template read-only");
}

}  // namespace

bool applyMountPlan(const RootSteps& root, const char* staging, StepFailure& f) {
  // Nothing we mount may propagate back to the parent's view.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return fail(f, "make mounts private");
  // Every source is opened before the first mount, so a source under the staging
  // directory's own path (/tmp) is still the one the parent's view has there.
  Sources own, template_;
  Part part = root.fromTemplate ? Part::PerSandbox : Part::All;
  if (!openSources(root.plan, part, own, f)) return false;
  if (root.childTemplate && !openSources(*root.childTemplate, Part::Shared, template_, f)) return false;
  if (root.fromTemplate) {
    // The template, as this child's copy of its zygote's mounts has it, is locked to this
    // namespace (it came from a more privileged one) and pivot_root refuses a locked mount; a
    // recursive bind of it onto itself is a new mount, ours.
    staging = kRootTemplateDir;
    if (::mount(staging, staging, nullptr, MS_BIND | MS_REC, nullptr) != 0) return fail(f, "bind the root template");
  } else {
    if (::mount("tmpfs", staging, "tmpfs", kRootTmpfsFlags, kRootTmpfsOptions) != 0) return fail(f, "mount root tmpfs");
    if (!runOps(root.plan, Part::Shared, staging, own, f)) return false;
  }
  if (root.childTemplate) {
    char dir[PATH_MAX];
    std::snprintf(dir, sizeof dir, "%s%s", staging, kRootTemplateDir);
    if (!buildTemplate(*root.childTemplate, dir, template_, f)) return false;
  }
  if (!runOps(root.plan, Part::PerSandbox, staging, own, f)) return false;
  // pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only ours
  // (the trick from pivot_root(2)'s NOTES).
  if (::chdir(staging) != 0) return fail(f, "chdir staging");
  if (::syscall(SYS_pivot_root, ".", ".") != 0) return fail(f, "pivot_root");
  if (::umount2(".", MNT_DETACH) != 0) return fail(f, "detach old root");
  if (::chdir("/") != 0) return fail(f, "chdir /");
  // A template root is read-only already (and its flags are locked here).
  if (!root.fromTemplate && ::mount(nullptr, "/", nullptr, kReadOnlyRoot, nullptr) != 0) return fail(f, "remount root read-only");
  if (::chdir(kWorkDir) != 0) return fail(f, "chdir", kWorkDir);
  return true;
}

}  // namespace pycell::sandbox
