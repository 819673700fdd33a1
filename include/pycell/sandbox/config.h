#pragma once
// Fixed configuration: profiles and their limits. Loaded and validated once, then passed
// by const reference; nothing here changes while the server runs.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "pycell/error.h"

namespace pycell {

struct Limits {
  int64_t timeoutMs = 10'000;
  int64_t cpuMs = 10'000;
  int64_t memoryMb = 512;
  int64_t maxOutputBytes = 1 << 20;
  int64_t maxProcesses = 64;
  int64_t diskMb = 64;
};

// One row per limit: its JSON name, where it lives, and the range a value may take.
struct LimitField {
  const char* name;
  int64_t Limits::*field;
  int64_t min;
  int64_t max;
};
[[nodiscard]] const std::vector<LimitField>& limitFields();

struct BindMount {
  std::string path;  // host path, mounted at the same path inside
  bool writable = false;
};

// The pre-forked children of a profile (the zygote pool).
struct PoolSettings {
  int size = 2;              // ready children kept waiting; 0: no zygote, fork per execution
  int maxStarting = 4;       // children being forked and set up at once
  int recycleAfter = 1000;   // a zygote is replaced after this many forks (fresh ASLR, hash seed)
  int refillDelayMs = 50;    // with half the pool or more still ready, a claim's refill waits this long
                             // at most (or until a claimed child ends); 0: refill at once
};

// The language a profile runs. A profile serves one; a request names the language it wants
// (execute.language) and is refused by a profile that serves another.
enum class Language { Python, JavaScript };
[[nodiscard]] const char* languageName(Language language);  // "python", "javascript"
[[nodiscard]] std::optional<Language> parseLanguage(std::string_view name);
inline constexpr const char* kDefaultNode = "/usr/bin/node";
inline constexpr const char* kDefaultPython = "/usr/bin/python3";

struct Profile {
  std::string name;
  std::string description;
  Language language = Language::Python;
  // The interpreter: the config's `python` for a Python profile, `node` for a JavaScript one.
  std::string python = kDefaultPython;
  Limits limits;
  bool allowRaisingLimits = false;  // may `execute.limits` exceed the profile's own?
  bool networkAllowed = false;      // may `execute.network` be true?
  std::vector<BindMount> binds;
  std::vector<std::string> preload;  // modules the zygote imports once
  std::string childWarmup;           // code each pooled child runs before it is ready
  PoolSettings pool;
  // Sessions: closed after this long without a request; the CPU time a session may use in
  // all (each run is held to its own cpuMs as well).
  int64_t sessionIdleMs = 10 * 60 * 1000;
  int64_t sessionCpuMs = 10 * 60 * 1000;
  // Policy layer (the kernel is the boundary; this is what an auditor reads and what stops
  // a program politely). `imports`: null, {"deny": [names]} or {"allow": [names]}.
  nlohmann::json imports;
  std::vector<std::string> removeBuiltins;  // builtins the program's code does not get
  bool activity = true;                     // report `activity` (imports, files, network, ...)
  bool samples = false;                     // always sample CPU and memory (not only when streaming)
  int64_t samplePeriodMs = 50;
  std::map<std::string, std::string> env;  // environment variables for every run (execute.env adds)
};

// Environment variables a run asks for (`execute.env`, a profile's `env`): an object of
// strings whose names are [A-Za-z_][A-Za-z0-9_]* (at most 128 of them, names up to 256
// bytes, values up to 32 KiB, no NUL), none of those the sandbox sets for itself (PATH,
// HOME, TMPDIR, LANG, MPLCONFIGDIR).
[[nodiscard]] Result<std::map<std::string, std::string>> decodeEnv(const nlohmann::json& value);

// The policy document the bootstrap applies for one run (null when the profile has none).
[[nodiscard]] nlohmann::json policyDocument(const Profile& profile, bool network);

struct ServerOptions {
  int maxConcurrent = 4;
  int maxQueue = 64;
  int maxSessions = 16;
  size_t maxMessageBytes = 64u << 20;
  // What the requests the scheduler holds (queued or running: code, stdin, files, inputs) may
  // take in all; past it a new one is refused with -32001 (PROTOCOL.md section 1, Limits).
  size_t maxQueuedBytes = 256u << 20;
  bool allowDegraded = false;
};

struct Config {
  std::map<std::string, Profile> profiles;
};

[[nodiscard]] Config builtinConfig();
[[nodiscard]] const std::vector<std::string>& defaultDenyList();
[[nodiscard]] const std::vector<std::string>& datascienceAllowList();
// The javascript profile's deny list: Node's built-in modules that start processes, talk to
// the network, load native code or reach the engine's internals.
[[nodiscard]] const std::vector<std::string>& javascriptDenyList();
// Reads a config file (schemas/config.schema.json) over the built-in profiles.
[[nodiscard]] Result<Config> loadConfig(const std::string& path);
// Whether a host path may be bound at the same path inside (allowRead, allowWrite, and
// `pycell run --allow-read/--allow-write`): absolute, below / (/ itself would cover the
// sandbox's whole root), no NUL, no . or .. component.
[[nodiscard]] bool bindablePath(const std::string& path);
[[nodiscard]] Result<Config> parseConfig(const nlohmann::json& doc);

// The limits for one execution: the profile's, tightened (or, where the profile allows,
// raised) by the request's. An error message names the offending field.
[[nodiscard]] std::expected<Limits, std::string> resolveLimits(const Profile& profile, const nlohmann::json& requested);
[[nodiscard]] nlohmann::json limitsToJson(const Limits& limits);

}  // namespace pycell
