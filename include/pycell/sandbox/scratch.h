#pragma once
// The sandbox's writable space: /sandbox (its working directory), /tmp and /dev/shm are
// three directories of ONE tmpfs of diskMb, so whatever a run keeps in files (and in
// POSIX shared memory, which lives in /dev/shm) holds diskMb at most all together, with or
// without a memory cgroup. Used by both the one-shot sandbox (mounts.cc, before
// pivot_root) and a pooled child (child_abi.cc, in the zygote's root): plain syscalls, no
// allocation, no exceptions.
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <climits>

namespace pycell::sandbox {

// Inodes of the shared tmpfs (files and directories of all three together).
inline constexpr int kScratchInodes = 16384;
// Where the shared tmpfs is mounted while its directories are bound into place; an empty
// directory of the sandbox's root (the rootfs plan makes it), unmounted again at once.
inline constexpr const char* kScratchMountPoint = "/.pycell/scratch";

// mkdir -p of an absolute path.
inline bool scratchMakeDirs(const char* path, mode_t mode) {
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
inline bool mountScratch(const char* root, int64_t diskMb, unsigned uid, unsigned gid, const char** step) {
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
  struct Dir {
    const char* name;
    const char* target;
    mode_t mode;
    bool owned;
  };
  const Dir dirs[] = {{"sandbox", "/sandbox", 0755, true}, {"tmp", "/tmp", 01777, false}, {"shm", "/dev/shm", 01777, false}};
  for (const Dir& d : dirs) {
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
inline bool restrictBind(const char* target, bool writable) {
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

}  // namespace pycell::sandbox
