#include "pycell/sandbox/container.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <array>
#include <fstream>
#include <sstream>

namespace pycell::sandbox {

namespace {

// The texts docs/CONTAINERS.md documents (found by running pycell check in podman without
// each permission); shared by several rows.
constexpr std::string_view kSeccompRuntime =
    "--security-opt seccomp=pycell.json (podman/Docker; the file is deploy/seccomp/pycell.json of pycell's source)";
constexpr std::string_view kSeccompKubernetes =
    "securityContext.seccompProfile: {type: Localhost, localhostProfile: profiles/pycell.json}";
constexpr std::string_view kNamespacesPermission =
    "the container's seccomp profile refuses namespaces (Docker's default does; the host must also allow "
    "unprivileged user namespaces, see fix)";

constexpr std::array kTable{
    ContainerPermission{"hostname", EPERM, "the container's seccomp profile refuses sethostname", kSeccompRuntime,
                        kSeccompKubernetes},
    // The kernel refuses a new /proc in a user namespace while the container's /proc has
    // paths masked (mounted over): EPERM. An LSM's refusal of mount(2) shows as EACCES.
    ContainerPermission{"procMount", EPERM, "the container's /proc is masked",
                        "--security-opt unmask=/proc/* (podman) or --security-opt systempaths=unconfined (Docker)",
                        "securityContext.procMount: Unmasked (with hostUsers: false)"},
    ContainerPermission{"procMount", EACCES, "AppArmor (or SELinux) refuses mount",
                        "--security-opt apparmor=unconfined (podman/Docker; under SELinux --security-opt label=disable)",
                        "securityContext.appArmorProfile: {type: Unconfined}"},
    // Both are in podman's and Docker's default capabilities: lost with --cap-drop=ALL.
    ContainerPermission{"idMap", EPERM, "pycell's root lacks CAP_SETUID and CAP_SETGID (it maps each sandbox to nobody)",
                        "--cap-add=SETUID,SETGID (podman/Docker: in their defaults; add them back after --cap-drop=ALL)",
                        "securityContext.capabilities: {add: [SETUID, SETGID]}"},
    // Any error: a profile refuses with EPERM (Docker's default) or ENOSYS (podman's default
    // action); without a user namespace the others are tried directly and refused for want of
    // CAP_SYS_ADMIN (EPERM).
    ContainerPermission{"userNamespace", 0, kNamespacesPermission, kSeccompRuntime, kSeccompKubernetes},
    ContainerPermission{"pidNamespace", 0, kNamespacesPermission, kSeccompRuntime, kSeccompKubernetes},
    ContainerPermission{"mountNamespace", 0, kNamespacesPermission, kSeccompRuntime, kSeccompKubernetes},
    ContainerPermission{"networkNamespace", 0, kNamespacesPermission, kSeccompRuntime, kSeccompKubernetes},
    ContainerPermission{"ipcNamespace", 0, kNamespacesPermission, kSeccompRuntime, kSeccompKubernetes},
    ContainerPermission{"utsNamespace", 0, kNamespacesPermission, kSeccompRuntime, kSeccompKubernetes},
    ContainerPermission{"cgroupNamespace", 0, kNamespacesPermission, kSeccompRuntime, kSeccompKubernetes},
    ContainerPermission{"seccomp", 0, "the container's seccomp profile refuses seccomp(2)", kSeccompRuntime,
                        kSeccompKubernetes},
    // Optional: without it pycell limits each process by rlimits (check warns, level stays).
    ContainerPermission{"cgroup", 0, "no writable cgroup (optional: rlimits per process instead)",
                        "--cgroupns=private --systemd=always (podman on a cgroup v2 host)",
                        "nothing short of privileged: true; the pod's resources.limits bound pycell as a whole"},
};

bool exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

std::string joinPath(const std::string& root, std::string_view path) {
  std::string out = root;
  while (!out.empty() && out.back() == '/') out.pop_back();
  return out + std::string(path);
}

// The runtime /proc/1/cgroup names (cgroup v1 paths, or v2 without a cgroup namespace).
std::string runtimeInCgroupFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::stringstream text;
  text << in.rdbuf();
  const std::string s = text.str().substr(0, 64 * 1024);
  for (const char* name : {"kubepods", "docker", "libpod", "containerd", "crio", "lxc"})
    if (s.find(name) != std::string::npos) return name;
  return "";
}

}  // namespace

ContainerGuess detectContainer(const std::string& root, const std::map<std::string, std::string>& env) {
  if (exists(joinPath(root, "/run/.containerenv"))) return {true, "/run/.containerenv (podman)"};
  if (exists(joinPath(root, "/.dockerenv"))) return {true, "/.dockerenv (Docker)"};
  if (auto it = env.find("container"); it != env.end() && !it->second.empty())
    return {true, "container=" + it->second + " in the environment"};
  if (auto it = env.find("KUBERNETES_SERVICE_HOST"); it != env.end() && !it->second.empty())
    return {true, "KUBERNETES_SERVICE_HOST in the environment (Kubernetes)"};
  if (std::string name = runtimeInCgroupFile(joinPath(root, "/proc/1/cgroup")); !name.empty())
    return {true, "/proc/1/cgroup names " + name};
  return {};
}

ContainerGuess detectContainer() {
  std::map<std::string, std::string> env;
  for (const char* name : {"container", "KUBERNETES_SERVICE_HOST"})
    if (const char* value = ::getenv(name)) env[name] = value;
  return detectContainer("/", env);
}

std::span<const ContainerPermission> containerPermissions() { return kTable; }

const ContainerPermission* permissionFor(std::string_view step, int err) {
  for (const auto& row : kTable)
    if (row.step == step && (row.err == 0 || row.err == err)) return &row;
  return nullptr;
}

std::string containerHint(std::string_view step, int err) {
  const ContainerPermission* row = permissionFor(step, err);
  if (row == nullptr) return "";
  return "in a container: " + std::string(row->permission) + ": run it with " + std::string(row->runtime) + " or " +
         std::string(row->kubernetes) + " (Kubernetes)";
}

}  // namespace pycell::sandbox
