#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <vector>

#include "pycell/cli/cli.h"
#include "pycell/cli/usage_chart.h"
#include "pycell/error.h"
#include "pycell/exec/scheduler.h"
#include "pycell/process/log.h"
#include "pycell/process/unique_fd.h"
#include "pycell/sandbox/mounts.h"
#include "pycell/server/params.h"

namespace pycell::cli {

namespace {

// The shell's conventions: 124 for a timeout (as timeout(1)), 128+N for death by signal N.
int exitCodeFor(const nlohmann::json& result) {
  std::string status = result.value("status", "error");
  if (status == "timeout") return 124;
  if (status == "killed") return 137;
  if (result["exitCode"].is_number_integer()) return result["exitCode"].get<int>();
  if (result["signal"].is_number_integer()) return 128 + result["signal"].get<int>();
  return 1;
}

std::optional<std::string> readSource(const std::string& file) {
  auto text = file == "-" ? readAll(STDIN_FILENO, 64u << 20) : readFile(file, 64u << 20);
  if (!text) {
    std::cerr << "pycell run: " << text.error().message() << "\n";
    return std::nullopt;
  }
  return *text;
}

std::optional<std::string> absolutePath(const std::string& path) {
  char real[PATH_MAX];
  if (!::realpath(path.c_str(), real)) {
    std::cerr << "pycell run: " << sysError(path).message() << "\n";
    return std::nullopt;
  }
  return std::string(real);
}

// What `pycell run FILE` shows of the host besides the flags' paths, as `python3 FILE` sees it:
// FILE's directory, read-only at the same path (sibling modules, data files). A directory the
// sandbox keeps for itself (/tmp, its working directory, /dev, ...) is not covered by the
// host's: then only FILE itself is shown. Nothing when a flag's path already shows it.
std::optional<std::string> scriptBind(const std::string& script, const std::vector<std::string>& flagPaths) {
  std::string dir = script.substr(0, std::max<size_t>(script.rfind('/'), 1));
  for (const char* own : {"/", "/tmp", "/dev", "/dev/shm", "/proc", "/etc", sandbox::kWorkDir, "/.pycell"})
    if (dir == own) return script;
  for (const auto& p : flagPaths)
    if (dir == p || dir.starts_with(p + "/")) return std::nullopt;
  return dir;
}

// The person at the shell is the administrator: their flags widen the profile itself.
// `script` (the program's real path, empty for stdin) adds scriptBind's path.
bool widenProfile(const RunOptions& options, const std::string& script, Config& config) {
  auto profileIt = config.profiles.find(options.profile);
  if (profileIt == config.profiles.end()) {
    std::string names;
    for (const auto& [known, profile] : config.profiles) names += (names.empty() ? "" : ", ") + known;
    std::cerr << "pycell run: unknown profile '" << options.profile << "' (available: " << names << ")\n";
    return false;
  }
  Profile& profile = profileIt->second;
  profile.allowRaisingLimits = true;
  if (options.allowNetwork) profile.networkAllowed = true;
  std::vector<BindMount> binds;
  for (const auto& [paths, writable] : {std::pair{&options.allowRead, false}, {&options.allowWrite, true}}) {
    for (const auto& p : *paths) {
      auto abs = absolutePath(p);
      if (!abs) return false;
      if (!bindablePath(*abs)) {
        // realpath leaves only / itself to refuse here.
        std::cerr << "pycell run: " << (writable ? "--allow-write " : "--allow-read ") << p << " is " << *abs
                  << ": the host's root would cover the sandbox's own; name a directory below it\n";
        return false;
      }
      binds.push_back({*abs, writable});
    }
  }
  std::vector<std::string> flagPaths;
  for (const auto& bind : binds) flagPaths.push_back(bind.path);
  // The script's first: a flag's bind of the same place, mounted after it, is the one seen.
  if (auto path = script.empty() ? std::nullopt : scriptBind(script, flagPaths)) profile.binds.push_back({*path, false});
  profile.binds.insert(profile.binds.end(), binds.begin(), binds.end());
  return true;
}

// The flags as a request, checked as execute params are (params.h).
std::optional<exec::ExecutionRequest> requestFor(const RunOptions& options, Config& config) {
  // The program's real path: its name in tracebacks and its __file__ (execute.filename).
  std::optional<std::string> script = options.file == "-" ? std::string() : absolutePath(options.file);
  if (!script || !widenProfile(options, *script, config)) return std::nullopt;
  auto code = readSource(options.file);
  if (!code) return std::nullopt;
  server::RunArgs args{.code = std::move(*code), .profile = options.profile, .network = options.allowNetwork};
  args.filename = *script;
  auto ms = [](double seconds) { return static_cast<int64_t>(std::ceil(seconds * 1000)); };
  if (options.timeoutSeconds) args.limits["timeoutMs"] = ms(*options.timeoutSeconds);
  if (auto cpu = options.cpuSeconds ? options.cpuSeconds : options.timeoutSeconds) args.limits["cpuMs"] = ms(*cpu);
  if (options.memoryMb) args.limits["memoryMb"] = *options.memoryMb;
  nlohmann::json env = nlohmann::json::object();
  for (const auto& [name, value] : options.env) env[name] = value;
  auto checkedEnv = decodeEnv(env);
  if (!checkedEnv) {
    std::cerr << "pycell run: --" << checkedEnv.error().message() << "\n";
    return std::nullopt;
  }
  args.env = std::move(*checkedEnv);
  if (!options.returnGlobs.empty()) args.returnFiles = options.returnGlobs;
  auto request = server::runRequest(std::move(args), config);
  if (!request) {
    std::cerr << "pycell run: " << request.error().message << "\n";
    return std::nullopt;
  }
  if (!options.usageChartFile.empty() || !options.reportFile.empty()) request->samples = true;
  // The program's standard input is ours, as for `python3 script.py`, when it is not a
  // terminal (read whole before the run; a terminal would wait for an end of file nobody types).
  if (options.file != "-" && !::isatty(STDIN_FILENO)) {
    auto input = readAll(STDIN_FILENO, 64u << 20);
    if (!input) {
      std::cerr << "pycell run: standard input: " << input.error().message() << "\n";
      return std::nullopt;
    }
    request->stdinData = std::move(*input);
  }
  return std::move(*request);
}

// The files --report and --usage-chart name, opened before the run: a path that cannot be
// written is refused before anything runs.
struct ReportFiles {
  UniqueFd report;
  UniqueFd chart;
  UniqueFd figuresDir;  // --figures
  UniqueFd outDir;      // --out
};

std::optional<ReportFiles> openReports(const RunOptions& options) {
  ReportFiles files;
  auto open = [](const std::string& path, UniqueFd& fd, int flags) {
    if (path.empty()) return true;
    fd = UniqueFd(::open(path.c_str(), flags | O_CLOEXEC, 0644));
    if (!fd) std::cerr << "pycell run: " << sysError(path).message() << "\n";
    return fd.get() >= 0;
  };
  if (!open(options.reportFile, files.report, O_WRONLY | O_CREAT | O_TRUNC) ||
      !open(options.usageChartFile, files.chart, O_WRONLY | O_CREAT | O_TRUNC) ||
      !open(options.figuresDir, files.figuresDir, O_RDONLY | O_DIRECTORY) ||
      !open(options.outDir, files.outDir, O_RDONLY | O_DIRECTORY))
    return std::nullopt;
  return files;
}

// Standard base64 (RFC 4648, padding optional); nullopt on anything else.
std::optional<std::string> decodeBase64(const std::string& text) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  size_t padding = 0;
  for (char c : text) {
    int v = c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26 : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '+' ? 62 : c == '/' ? 63 : -1;
    if (c == '=' && ++padding <= 2) continue;
    if (v < 0 || padding) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

// Writes `bytes` at the relative path `rel` below the directory `dir`, creating the
// directories between. The path comes from the sandbox: no absolute path, no "." or ".."
// component, and no symbolic link is followed on the way.
Status writeBelow(int dir, const std::string& rel, const std::string& bytes) {
  std::vector<std::string> parts;
  for (size_t start = 0; start <= rel.size();) {
    size_t slash = std::min(rel.find('/', start), rel.size());
    parts.push_back(rel.substr(start, slash - start));
    start = slash + 1;
  }
  for (const auto& part : parts) {
    if (part.empty() || part == "." || part == ".." || part.find('\0') != std::string::npos)
      return std::unexpected(Error{"refused path '" + rel.substr(0, 200) + "'"});
  }
  UniqueFd at(::fcntl(dir, F_DUPFD_CLOEXEC, 0));
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (::mkdirat(at.get(), parts[i].c_str(), 0755) != 0 && errno != EEXIST) return std::unexpected(sysError(rel));
    at = UniqueFd(::openat(at.get(), parts[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!at) return std::unexpected(sysError(rel));
  }
  UniqueFd fd(::openat(at.get(), parts.back().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!fd || !writeAll(fd.get(), bytes)) return std::unexpected(sysError(rel));
  return {};
}

// --figures: each display with a PNG as figure-N.png; --out: each returned file. Returns
// how many of each were written, or nullopt after printing why one was not.
std::optional<std::pair<int, int>> writeOutputs(ReportFiles& files, const nlohmann::json& result) {
  int figures = 0, written = 0;
  auto write = [](int dir, const std::string& name, const nlohmann::json& b64) {
    auto bytes = b64.is_string() ? decodeBase64(b64.get<std::string>()) : std::nullopt;
    Status st = bytes ? writeBelow(dir, name, *bytes) : Status(std::unexpected(Error{"not base64"}));
    if (!st) std::cerr << "pycell run: " << name.substr(0, 200) << ": " << st.error().message() << "\n";
    return st.has_value();
  };
  if (files.figuresDir && result.contains("displays") && result["displays"].is_array()) {
    for (const auto& bundle : result["displays"]) {
      if (!bundle.is_object() || !bundle.contains("image/png")) continue;
      if (!write(files.figuresDir.get(), "figure-" + std::to_string(figures + 1) + ".png", bundle["image/png"])) return std::nullopt;
      ++figures;
    }
  }
  if (files.outDir && result.contains("files") && result["files"].is_array()) {
    for (const auto& file : result["files"]) {
      if (!file.is_object() || !file.contains("path") || !file["path"].is_string() || !file.contains("base64")) continue;
      if (!write(files.outDir.get(), file["path"].get<std::string>(), file["base64"])) return std::nullopt;
      ++written;
    }
  }
  return std::pair{figures, written};
}

// --report and --usage-chart; false when one could not be written.
bool writeReports(const RunOptions& options, ReportFiles& files, const nlohmann::json& result) {
  bool written = true;
  auto writeOut = [&](const UniqueFd& fd, const std::string& path, const std::string& text) {
    if (fd && !writeAll(fd.get(), text)) {
      std::cerr << "pycell run: " << sysError(path).message() << "\n";
      written = false;
    }
  };
  if (files.report)
    writeOut(files.report, options.reportFile, result.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  if (files.chart) {
    std::string title = (options.file == "-" ? std::string("<stdin>") : options.file) + " (" + result.value("status", "?") + ")";
    writeOut(files.chart, options.usageChartFile,
             renderUsageChart(result.contains("samples") ? result["samples"] : nlohmann::json::array(), result["usage"], title));
  }
  return written;
}

// --verbose: one line of what the kernel measured, and what the policy blocked, if anything.
std::string verboseSummary(const nlohmann::json& result, bool isolated) {
  const auto& usage = result.contains("usage") && result["usage"].is_object() ? result["usage"] : nlohmann::json::object();
  auto number = [&](const char* key) { return usage.contains(key) && usage[key].is_number() ? usage[key].get<double>() : 0.0; };
  char line[256];
  std::snprintf(line, sizeof line, "pycell: %s; wall %.3f s, CPU %.3f s, peak memory %.1f MiB; isolation %s\n",
                result.value("status", "error").c_str(), number("wallMs") / 1000,
                (number("cpuUserMs") + number("cpuSysMs")) / 1000, number("peakMemoryBytes") / (1 << 20),
                isolated ? "isolated" : "degraded");
  std::string text = line;
  if (result.contains("activity") && result["activity"].is_object() && result["activity"].contains("blocked")) {
    for (const auto& b : result["activity"]["blocked"]) {
      if (!b.is_object()) continue;
      text += "pycell: blocked " + b.value("what", std::string("?")) + ": " + b.value("detail", std::string()).substr(0, 200) + "\n";
    }
  }
  return text;
}

// --analyze: the static analysis of `code` (the `analyze` method's), its diagnostics on
// stderr as a compiler prints them: FILE:LINE:COL: code: message, LINE and COL from 1 (COL in
// characters, as the diagnostics count them). False when the analysis did not complete.
bool printAnalysis(const RunOptions& options, const std::string& code, EventLoop& loop, exec::Scheduler& scheduler,
                   const sandbox::SandboxContext& ctx) {
  std::optional<Result<nlohmann::json>> outcome;
  auto submitted = scheduler.submit(server::analyzeRequest({.code = code, .profile = options.profile, .language = options.language}, ctx),
                                    [&](Result<nlohmann::json> r) {
                                      outcome = std::move(r);
                                      loop.stop();
                                    });
  if (!submitted) {
    std::cerr << "pycell run: --analyze: " << submitted.error().message << "\n";
    return false;
  }
  if (!outcome) loop.run();
  auto diagnostics = outcome && *outcome ? server::analyzeDiagnostics(**outcome) : std::nullopt;
  if (!diagnostics) {
    std::cerr << "pycell run: --analyze: the analysis did not complete"
              << (outcome && !*outcome ? ": " + outcome->error().message() : std::string()) << "\n";
    return false;
  }
  // The diagnostics come out of a sandbox: each member is checked before it is printed.
  auto member = [](const nlohmann::json& object, const char* key) {
    return object.is_object() && object.contains(key) ? object[key] : nlohmann::json();
  };
  auto count = [](const nlohmann::json& n) { return n.is_number_unsigned() ? n.get<uint64_t>() + 1 : 1; };
  auto text = [](const nlohmann::json& s) { return s.is_string() ? s.get<std::string>().substr(0, 2000) : std::string("?"); };
  std::string name = options.file == "-" ? "<stdin>" : options.file, out;
  for (const auto& d : *diagnostics) {
    auto start = member(member(d, "range"), "start");
    out += name + ":" + std::to_string(count(member(start, "line"))) + ":" + std::to_string(count(member(start, "character"))) +
           ": " + text(member(d, "code")) + ": " + text(member(d, "message")) + "\n";
  }
  (void)writeAll(STDERR_FILENO, out);
  return true;
}

}  // namespace

namespace {
// The language of `file`: --language, else its extension (.js, .mjs, .cjs), else Python.
std::string languageOf(const RunOptions& options) {
  if (!options.language.empty()) return options.language;
  for (const char* ext : {".js", ".mjs", ".cjs"})
    if (options.file.ends_with(ext)) return "javascript";
  return "python";
}
}  // namespace

int runMain(const RunOptions& given) {
  auto config = loadConfigOrReport(given.common);
  if (!config) return 2;
  RunOptions options = given;
  options.language = languageOf(given);
  auto profile = server::profileForLanguage(*config, given.profile.empty() ? std::nullopt : std::optional(given.profile),
                                            options.language);
  if (!profile) {
    std::cerr << "pycell run: " << profile.error().message << "\n";
    return 2;
  }
  options.profile = *profile;
  auto request = requestFor(options, *config);
  if (!request) return 2;
  auto reports = openReports(options);
  if (!reports) return 2;
  auto ctx = sandbox::makeContext(std::move(*config), options.common.server);
  if (!ctx) {
    log::error(ctx.error().message());
    return 3;
  }
  if (auto missing = (*ctx)->unavailableProfiles.find(options.profile); missing != (*ctx)->unavailableProfiles.end()) {
    std::cerr << "pycell run: profile '" << options.profile << "' cannot run here: " << missing->second << "\n";
    return 3;
  }
  EventLoop loop;
  exec::Scheduler scheduler(loop, **ctx);
  if (options.analyze) (void)printAnalysis(options, request->code, loop, scheduler, **ctx);  // the run goes on
  std::optional<Result<nlohmann::json>> outcome;
  exec::Execution::OutputSink sink;
  if (!options.json) {
    sink = [](const std::string& stream, std::string_view text) {
      (void)writeAll(stream == "stderr" ? STDERR_FILENO : STDOUT_FILENO, text);
    };
  }
  auto submitted = scheduler.submit(std::move(*request), [&](Result<nlohmann::json> r) {
    outcome = std::move(r);
    loop.stop();
  }, sink);
  if (!submitted) {
    std::cerr << "pycell run: " << submitted.error().message << "\n";
    return 2;
  }
  // Ctrl-C or a TERM stops the sandbox, then us.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  UniqueFd sigfd(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (sigfd) (void)loop.watch(sigfd.get(), EPOLLIN, [&](uint32_t) { scheduler.stop(0, *submitted, exec::StopReason::Killed); });
  if (!outcome) loop.run();
  if (!outcome || !*outcome) {
    std::cerr << "pycell run: the sandbox could not be created: "
              << (outcome ? outcome->error().message() : std::string("no result")) << "\n";
    return 3;
  }
  const auto& result = **outcome;
  if (!writeReports(options, *reports, result)) return 2;
  auto outputs = writeOutputs(*reports, result);
  if (!outputs) return 2;
  if (options.json) {
    std::cout << result.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    std::string status = result.value("status", "error");
    if (status != "ok" && status != "error") std::cerr << "pycell: " << status << ": " << result["error"].value("message", "") << "\n";
  }
  if (options.verbose) {
    std::cerr << verboseSummary(result, (*ctx)->isolation.complete());
    if (reports->figuresDir) std::cerr << "pycell: " << outputs->first << " figure(s) written to " << options.figuresDir << "\n";
    if (reports->outDir) std::cerr << "pycell: " << outputs->second << " file(s) written to " << options.outDir << "\n";
  }
  return exitCodeFor(result);
}

}  // namespace pycell::cli
