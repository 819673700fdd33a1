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
  // The mount points of the per-sandbox mounts (perSandbox) are made with the rest of the
  // root: a pooled child mounts them on its zygote's read-only template.
  plan.push_back({K::Dir, "/proc", {}, {}});
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
  // /sandbox, /tmp and /dev/shm: one tmpfs of diskMb for all three (mounts.h).
  plan.push_back({K::Scratch, kScratchMountPoint, {},
                  std::to_string(o.diskMb) + ":" + std::to_string(o.insideUid) + ":" + std::to_string(o.insideGid)});
  // After the tmpfs, so a bind under /tmp lands on it rather than under it.
  for (const auto& bind : o.extraBinds)
    plan.push_back({bind.writable ? K::BindWritable : K::BindReadOnly, bind.path, bind.path, {}});
  if (!o.bootstrapSource.empty()) plan.push_back({K::File, kBootstrapPath, o.bootstrapSource, {}});
  for (const auto& [path, contents] : o.extraFiles) plan.push_back({K::File, path, contents, {}});
  return plan;
}

}  // namespace pycell::sandbox
