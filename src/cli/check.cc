#include <chrono>
#include <iostream>

#include "pycell/cli/cli.h"
#include "pycell/exec/scheduler.h"
#include "pycell/sandbox/probe.h"

namespace pycell::cli {

namespace {

// One real execution through the whole stack: the proof that the pieces fit together.
std::string endToEnd(const exec::SandboxContext& ctx, bool& ok) {
  EventLoop loop;
  exec::Scheduler scheduler(loop, ctx);
  auto request = exec::parseExecuteParams({{"code", "import sys\nsys.version.split()[0]"}}, ctx.config);
  if (!request) return request.error();
  std::optional<Result<nlohmann::json>> outcome;
  auto started = std::chrono::steady_clock::now();
  auto submitted = scheduler.submit(std::move(*request), [&](Result<nlohmann::json> r) {
    outcome = std::move(r);
    loop.stop();
  });
  if (!submitted) return submitted.error().message;
  if (!outcome) loop.run();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  if (!*outcome) return (*outcome).error().message();
  const auto& r = **outcome;
  ok = r.value("status", "") == "ok";
  return ok ? "ran Python " + r["value"].get<std::string>() + " in a sandbox in " + std::to_string(ms) + " ms"
            : "status " + r.value("status", "?") + ": " + r["stderr"].get<std::string>();
}

}  // namespace

int checkMain(const CommonOptions& options) {
  auto config = loadConfigOrReport(options);
  if (!config) return 2;
  ServerOptions server = options.server;
  server.allowDegraded = true;  // report everything, refuse nothing
  auto ctx = exec::makeContext(*config, server);
  if (!ctx) {
    std::cout << "FAIL  setup: " << ctx.error().message() << "\n";
    return 1;
  }
  const auto& iso = (*ctx)->isolation;
  for (const auto& item : iso.items) {
    std::cout << (item.ok ? "ok    " : "FAIL  ") << item.name << ": " << item.detail << "\n";
    if (!item.ok && !item.fix.empty()) std::cout << "      fix: " << item.fix << "\n";
  }
  std::cout << "ok    memoryLimit: by " << iso.memoryLimit() << "\n";
  std::cout << "ok    pidsLimit: by " << iso.pidsLimit() << "\n";
  for (const auto& [name, interp] : (*ctx)->interpreters)
    std::cout << "ok    profile " << name << ": python " << interp.path << " (" << interp.realPath << ")\n";
  bool ran = false;
  std::string detail = endToEnd(**ctx, ran);
  std::cout << (ran ? "ok    " : "FAIL  ") << "execution: " << detail << "\n";
  std::cout << "level: " << (iso.complete() ? "isolated" : "degraded") << "\n";
  return iso.complete() && ran ? 0 : 1;
}

}  // namespace pycell::cli
