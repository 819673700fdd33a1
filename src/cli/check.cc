#include <chrono>
#include <iostream>

#include "pycell/cli/cli.h"
#include "pycell/error.h"
#include "pycell/exec/scheduler.h"
#include "pycell/sandbox/probe.h"
#include "pycell/server/params.h"

namespace pycell::cli {

namespace {

// One real execution through the whole stack: the proof that the pieces fit together.
Result<nlohmann::json> runInSandbox(const sandbox::SandboxContext& ctx, server::RunArgs args) {
  EventLoop loop;
  exec::Scheduler scheduler(loop, ctx);
  auto request = server::runRequest(std::move(args), ctx.config);
  if (!request) return std::unexpected(Error{request.error().message});
  std::optional<Result<nlohmann::json>> outcome;
  auto submitted = scheduler.submit(std::move(*request), [&](Result<nlohmann::json> r) {
    outcome = std::move(r);
    loop.stop();
  });
  if (!submitted) return std::unexpected(Error{submitted.error().message});
  if (!outcome) loop.run();
  return std::move(*outcome);
}

// Which of a profile's preload modules its interpreter imports, inside the sandbox.
std::string preloadReport(const sandbox::SandboxContext& ctx, const Profile& profile, bool& ok) {
  std::string code =
      "import importlib\nresult = {}\nfor name in inputs:\n"
      "    try:\n        importlib.import_module(name)\n        result[name] = 'ok'\n"
      "    except Exception as e:\n        result[name] = type(e).__name__ + ': ' + str(e)\n";
  auto r = runInSandbox(ctx, {.code = code, .profile = profile.name, .inputs = nlohmann::json(profile.preload)});
  if (!r) return r.error().message();
  ok = (*r)["status"] == "ok";
  std::string out;
  for (const auto& [name, verdict] : (*r)["value"].items()) {
    bool imported = verdict == "ok";
    ok = ok && imported;
    out += (out.empty() ? "" : ", ") + name + (imported ? "" : " (" + verdict.get<std::string>() + ")");
  }
  return ok ? "imports " + out : "status " + (*r)["status"].get<std::string>() + ": " + out;
}

std::string endToEnd(const sandbox::SandboxContext& ctx, bool& ok) {
  auto started = std::chrono::steady_clock::now();
  auto r = runInSandbox(ctx, {.code = "import sys\nsys.version.split()[0]"});
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  if (!r) return r.error().message();
  ok = (*r).value("status", "") == "ok";
  return ok ? "ran Python " + (*r)["value"].get<std::string>() + " in a sandbox in " + std::to_string(ms) + " ms"
            : "status " + (*r).value("status", "?") + ": " + (*r)["stderr"].get<std::string>();
}

}  // namespace

int checkMain(const CommonOptions& options) {
  auto config = loadConfigOrReport(options);
  if (!config) return 2;
  ServerOptions server = options.server;
  server.allowDegraded = true;  // report everything, refuse nothing
  auto ctx = sandbox::makeContext(*config, server);
  if (!ctx) {
    std::cout << "FAIL  setup: " << ctx.error().message() << "\n";
    return 1;
  }
  const auto& iso = (*ctx)->isolation;
  for (const auto& item : iso.items) {
    std::cout << (item.ok ? "ok    " : "FAIL  ") << item.name << ": " << item.detail << "\n";
    if (!item.ok && !item.fix.empty()) std::cout << "      fix: " << item.fix << "\n";
  }
  // Not part of the isolation level: without it, runs asking for network are refused.
  std::cout << (iso.netStack.available ? "ok    " : "warn  ") << "network: " << iso.netStack.mode() << " ("
            << iso.netStack.detail << ")\n";
  if (!iso.netStack.available && !iso.netStack.fix.empty()) std::cout << "      fix: " << iso.netStack.fix << "\n";
  // Without a memory cgroup each process has its own RLIMIT_AS: a run of N processes may
  // hold N times memoryMb. A warning, not a failure: the namespaces still isolate.
  if (iso.cgroup.memory) {
    std::cout << "ok    memoryLimit: cgroup (all of a run's processes together, its tmpfs pages included)\n";
  } else {
    std::cout << "warn  memoryLimit: per-process (RLIMIT_AS on each process; a run of N processes may hold N times "
                 "memoryMb; its files in /sandbox, /tmp and /dev/shm hold at most diskMb together)\n"
              << "      fix: " << sandbox::cgroupFix() << "\n";
  }
  std::string pids = iso.pidsLimit();
  if (pids == "cgroup") {
    std::cout << "ok    pidsLimit: cgroup\n";
  } else if (pids == "per-sandbox") {
    std::cout << "ok    pidsLimit: per-sandbox (RLIMIT_NPROC, counted in each sandbox's own user namespace)\n";
  } else {
    std::cout << "warn  pidsLimit: per-user (RLIMIT_NPROC counts every process of the uid: sandboxes share it)\n"
              << "      fix: a kernel >= 5.14 with user namespaces, or " << sandbox::cgroupFix() << "\n";
  }
  for (const auto& [name, interp] : (*ctx)->interpreters) {
    std::cout << "ok    profile " << name << ": python " << interp.path << " (" << interp.realPath << ")\n";
    const Profile& profile = (*ctx)->config.profiles.at(name);
    if (profile.preload.empty()) continue;
    bool imported = false;
    std::string report = preloadReport(**ctx, profile, imported);
    // A missing optional module is worth a line, not a failed check: the zygote reports it too.
    std::cout << (imported ? "ok    " : "warn  ") << "profile " << name << " preload: " << report << "\n";
  }
  bool ran = false;
  std::string detail = endToEnd(**ctx, ran);
  std::cout << (ran ? "ok    " : "FAIL  ") << "execution: " << detail << "\n";
  std::cout << "level: " << (iso.complete() ? "isolated" : "degraded") << "\n";
  return iso.complete() && ran ? 0 : 1;
}

}  // namespace pycell::cli
