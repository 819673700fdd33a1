#include "pycell/exec/context.h"

#include <climits>
#include <cstdlib>
#include <memory>

#include "pycell/bootstrap_py.h"

namespace pycell::exec {

SandboxContext::~SandboxContext() { sandbox::removeCgroupBase(isolation.cgroup); }

Result<Interpreter> resolveInterpreter(const std::string& python) {
  if (python.empty() || python[0] != '/')
    return std::unexpected(Error{"python '" + python + "' must be an absolute path"});
  char real[PATH_MAX];
  if (!::realpath(python.c_str(), real)) return std::unexpected(sysError("python " + python));
  auto head = readFile(real, 4);
  if (!head) return std::unexpected(head.error());
  if (*head != "\x7f" "ELF")
    return std::unexpected(Error{"python " + python + " resolves to " + real +
                                 ", which is not an interpreter binary (a version-manager shim?); name the real one"});
  return Interpreter{python, real};
}

Result<std::unique_ptr<SandboxContext>> makeContext(Config config, ServerOptions options) {
  auto ctx = std::make_unique<SandboxContext>();
  ctx->bootstrapSource = std::string(kBootstrapPy);
  for (const auto& [name, profile] : config.profiles) {
    auto interp = resolveInterpreter(profile.python);
    if (!interp) return std::unexpected(Error{"profile '" + name + "': " + interp.error().message()});
    ctx->interpreters[name] = *interp;
  }
  auto cgroups = sandbox::setUpCgroups();
  ctx->isolation = sandbox::probeIsolation(cgroups);
  if (!ctx->isolation.complete() && !options.allowDegraded) {
    // The destructor removes the cgroup directory made above.
    return std::unexpected(Error{"refusing to run untrusted code without full isolation: " +
                                 ctx->isolation.missingSummary() +
                                 "Run `pycell check` for details, or pass --allow-degraded to run with what remains."});
  }
  if (ctx->isolation.seccomp) {
    auto offline = sandbox::compileSeccomp({.allowNetwork = false});
    auto online = sandbox::compileSeccomp({.allowNetwork = true});
    if (!offline) return std::unexpected(offline.error());
    if (!online) return std::unexpected(online.error());
    ctx->seccompOffline = std::move(*offline);
    ctx->seccompOnline = std::move(*online);
  }
  ctx->config = std::move(config);
  ctx->options = options;
  return ctx;
}

}  // namespace pycell::exec
