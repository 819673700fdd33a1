#pragma once
// A sandbox started for one purpose (a single run, or a session where no pool serves it):
// spawned straight from the server, running the bootstrap, with the server's pipe ends.
#include <sys/types.h>

#include <string>

#include "pycell/error.h"
#include "pycell/sandbox/cgroup.h"
#include "pycell/sandbox/context.h"
#include "pycell/sandbox/enter.h"

namespace pycell::exec {

using sandbox::SandboxProcess;

struct SpawnSettings {
  const Profile* profile = nullptr;
  Limits limits;
  bool network = false;
  std::string cgroupName;     // unique among the server's cgroups
  int64_t sessionCpuMs = 0;   // > 0: the process will serve a session (see RlimitOptions)
};

[[nodiscard]] Result<SandboxProcess> spawnBootstrap(const sandbox::SandboxContext& ctx, const SpawnSettings& settings);

// Removes a degraded-mode working directory (no-op for an empty path).
void removeHostWorkDir(const std::string& path);

}  // namespace pycell::exec
