#pragma once
// pycell inside a container: whether it runs in one, and for each probe step a container
// runtime may refuse, the permission that grants it as a podman/Docker flag and as a
// Kubernetes securityContext field. One table (containerPermissions): `pycell check` prints
// its rows under the steps that failed, a refused `pycell serve` names them, and
// docs/CONTAINERS.md quotes the same text.
#include <map>
#include <span>
#include <string>
#include <string_view>

namespace pycell::sandbox {

struct ContainerGuess {
  bool inside = false;
  std::string evidence;  // what gave it away, e.g. "/run/.containerenv (podman)"; empty outside
};

// Cheap signs only (a few stat calls and one small file): the marker files podman and
// Docker create, the `container` variable podman, systemd-nspawn and LXC set, the variables
// Kubernetes gives every pod, the runtime's name in /proc/1/cgroup. `root` and `env` are
// parameters so that a test can point them at a scratch directory and a map.
[[nodiscard]] ContainerGuess detectContainer(const std::string& root, const std::map<std::string, std::string>& env);
// This process: root "/", its own environment.
[[nodiscard]] ContainerGuess detectContainer();

struct ContainerPermission {
  std::string_view step;        // the probe item it grants (ProbeItem::name)
  int err;                      // the errno that step fails with when this is missing; 0: any
  std::string_view permission;  // what is missing, in words
  std::string_view runtime;     // the podman / Docker flag(s)
  std::string_view kubernetes;  // the securityContext field(s)
};

// The table, first match wins (a row for a specific errno before the step's catch-all).
[[nodiscard]] std::span<const ContainerPermission> containerPermissions();
// The row for a failed step, or nullptr when no container permission grants it.
[[nodiscard]] const ContainerPermission* permissionFor(std::string_view step, int err);
// The hint line for a failed step: "in a container: <permission>: run it with ... (Kubernetes)",
// or "" when the table has no row for it.
[[nodiscard]] std::string containerHint(std::string_view step, int err);

}  // namespace pycell::sandbox
