#include "pycell/server/params.h"

#include <algorithm>
#include <set>

namespace pycell::server {

namespace {

std::unexpected<ParamError> refuse(std::string message) { return std::unexpected(ParamError{std::move(message)}); }

bool present(const json& params, const char* key) { return params.contains(key) && !params[key].is_null(); }

// An optional string member: absent and null leave `out` as it is.
Decoded<void> optionalString(const json& params, const char* key, std::string& out) {
  if (!present(params, key)) return {};
  if (!params[key].is_string()) return refuse(std::string("'") + key + "' must be a string");
  out = params[key].get<std::string>();
  return {};
}

Decoded<const Profile*> findProfile(const Config& config, const std::string& name) {
  auto it = config.profiles.find(name);
  if (it == config.profiles.end()) {
    std::string names;
    for (const auto& [known, profile] : config.profiles) names += (names.empty() ? "" : ", ") + known;
    return refuse("unknown profile '" + name + "' (available: " + names + ")");
  }
  return &it->second;
}

Decoded<Limits> limitsFor(const Profile& profile, const json& requested) {
  auto limits = resolveLimits(profile, requested);
  if (!limits) return refuse(limits.error());
  return *limits;
}

// `requested` with each integer above the profile's limit lowered to that limit.
json loweredToProfile(json requested, const Profile& profile) {
  if (!requested.is_object() || profile.allowRaisingLimits) return requested;
  for (const auto& field : limitFields()) {
    if (!requested.contains(field.name) || !requested[field.name].is_number_integer()) continue;
    json& value = requested[field.name];
    int64_t ceiling = profile.limits.*(field.field);
    if (value.get<int64_t>() > ceiling && value.get<int64_t>() <= field.max) value = ceiling;
  }
  return requested;
}

Decoded<void> checkNetwork(const Profile& profile, const std::string& name, bool network) {
  if (network && !profile.networkAllowed) return refuse("profile '" + name + "' does not allow network access");
  return {};
}

// `network`: absent or null is false; anything else must be a boolean the profile allows.
Decoded<bool> decodeNetwork(const json& params, const Profile& profile, const std::string& name) {
  if (!present(params, "network")) return false;
  if (!params["network"].is_boolean()) return refuse("'network' must be a boolean");
  bool network = params["network"].get<bool>();
  if (auto ok = checkNetwork(profile, name, network); !ok) return std::unexpected(ok.error());
  return network;
}

// The profile a request names: its own, else its session's; none: the language decides.
std::optional<std::string> namedProfile(const std::optional<std::string>& own, const std::string& session,
                                        const SessionProfileLookup& lookup) {
  if (own) return *own;
  if (!session.empty() && lookup)
    if (auto profile = lookup(session)) return *profile;
  return std::nullopt;
}

// `language` as a request names it (absent: "").
Decoded<std::string> decodeLanguage(const json& params) {
  if (!present(params, "language")) return std::string();
  if (!params["language"].is_string() || !parseLanguage(params["language"].get<std::string>()))
    return refuse("'language' must be \"python\" or \"javascript\"");
  return params["language"].get<std::string>();
}

// What a path in the working directory is called where a request names one.
struct PathField {
  const char* field;  // the member: "files" (its keys) or "returnFiles" (its globs)
  const char* noun;   // "path" or "pattern"
  const char* kind;   // "path" or "glob"
};
constexpr PathField kFileKeys{"files", "path", "path"};
constexpr PathField kReturnGlobs{"returnFiles", "pattern", "glob"};

// The one check of a path the request names in the working directory, a `files` key or a
// `returnFiles` glob: non-empty, at most 4096 bytes, no NUL, relative, no ".." component.
// The bootstrap checks both again, inside the sandbox.
Decoded<void> checkRelativePath(const std::string& path, const PathField& f) {
  std::string field = f.field, noun = f.noun;
  std::string where = field + ": '" + path + "' ";
  if (path.empty() || path.size() > 4096 || path.find('\0') != std::string::npos)
    return refuse(field + ": each " + noun + " must be a non-empty relative " + f.kind + " of at most 4096 bytes");
  if (path.front() == '/') return refuse(where + "is absolute; " + noun + "s are relative to the working directory");
  for (size_t start = 0; start <= path.size();) {
    size_t end = std::min(path.find('/', start), path.size());
    if (path.compare(start, end - start, "..") == 0)
      return refuse(where + "contains '..'; " + noun + "s must stay inside the working directory");
    start = end + 1;
  }
  return {};
}

Decoded<json> decodeFiles(const json& files) {
  if (!files.is_object()) return refuse("files must be an object of path -> {text} or {base64}");
  for (const auto& [path, spec] : files.items()) {
    if (auto ok = checkRelativePath(path, kFileKeys); !ok) return std::unexpected(ok.error());
    bool text = spec.is_object() && spec.contains("text") && spec["text"].is_string();
    bool b64 = spec.is_object() && spec.contains("base64") && spec["base64"].is_string();
    if (text == b64 || spec.size() != 1) return refuse("files['" + path + "'] must be {text: string} or {base64: string}");
  }
  return files;
}

// The bootstrap checks the patterns again, inside the sandbox.
Decoded<json> decodeReturnFiles(const json& globs) {
  if (!globs.is_array()) return refuse("'returnFiles' must be an array of glob strings");
  if (globs.size() > 100) return refuse("'returnFiles' may hold at most 100 patterns");
  for (const auto& glob : globs) {
    if (!glob.is_string()) return refuse("'returnFiles' must be an array of glob strings");
    if (auto ok = checkRelativePath(glob.get_ref<const std::string&>(), kReturnGlobs); !ok) return std::unexpected(ok.error());
  }
  return globs;
}

// `filename`: what the program's code is called in tracebacks (and its `__file__`): a
// non-empty string of at most 4096 bytes without NUL or line breaks. Nothing else is taken
// from it: no file is read or bound by that name.
Decoded<void> decodeFilename(const json& params, std::string& out) {
  if (!present(params, "filename")) return {};
  const json& name = params["filename"];
  const std::string* text = name.is_string() ? &name.get_ref<const std::string&>() : nullptr;
  if (!text || text->empty() || text->size() > 4096 || text->find_first_of(std::string("\0\n\r", 3)) != std::string::npos)
    return refuse("'filename' must be a non-empty string of at most 4096 bytes, without NUL or line breaks");
  out = *text;
  return {};
}

// What execute adds to a RunArgs request, in the order the fields are checked.
Decoded<void> decodeExecuteRest(const json& params, const Profile& profile, ExecuteParams& out) {
  exec::ExecutionRequest& req = out.request;
  if (present(params, "files")) {
    auto files = decodeFiles(params["files"]);
    if (!files) return std::unexpected(files.error());
    req.files = std::move(*files);
  }
  auto limits = limitsFor(profile, params.contains("limits") ? params["limits"] : json(nullptr));
  if (!limits) return std::unexpected(limits.error());
  req.limits = *limits;
  auto network = decodeNetwork(params, profile, req.profile);
  if (!network) return std::unexpected(network.error());
  req.network = *network;
  if (present(params, "stream") && !params["stream"].is_boolean()) return refuse("'stream' must be a boolean");
  out.stream = params.contains("stream") && params["stream"] == true;
  req.samples = profile.samples || out.stream;
  if (present(params, "returnFiles")) {
    auto globs = decodeReturnFiles(params["returnFiles"]);
    if (!globs) return std::unexpected(globs.error());
    req.returnFiles = std::move(*globs);
  }
  req.env = profile.env;
  if (present(params, "env")) {
    auto env = decodeEnv(params["env"]);
    if (!env) return refuse(env.error().message());
    for (auto& [name, value] : *env) req.env[name] = std::move(value);
  }
  json token = params.contains("workDoneToken") ? params["workDoneToken"] : json(nullptr);
  out.workDoneToken = token.is_string() || token.is_number_integer() ? token : json(nullptr);
  return {};
}

}  // namespace

Decoded<std::string> profileForLanguage(const Config& config, std::optional<std::string> profile,
                                        const std::string& language) {
  std::optional<Language> wanted;
  if (!language.empty()) {
    wanted = parseLanguage(language);
    if (!wanted) return refuse("unknown language '" + language.substr(0, 64) + "' (pycell runs python and javascript)");
  }
  if (!profile) {
    if (!wanted || *wanted == Language::Python) return std::string("default");
    if (config.profiles.contains("javascript") && config.profiles.at("javascript").language == Language::JavaScript)
      return std::string("javascript");
    for (const auto& [name, p] : config.profiles)
      if (p.language == *wanted) return name;
    return refuse("no profile runs javascript here (is Node.js installed? see `pycell check`)");
  }
  auto found = findProfile(config, *profile);
  if (!found) return std::unexpected(found.error());
  if (wanted && (*found)->language != *wanted)
    return refuse("profile '" + *profile + "' runs " + languageName((*found)->language) + ", not " + language);
  return *profile;
}

Decoded<ExecuteParams> decodeExecute(const json& params, const Config& config, const SessionProfileLookup& sessionProfile) {
  if (!params.is_object()) return refuse("params must be an object with a 'code' string");
  ExecuteParams out;
  exec::ExecutionRequest& req = out.request;
  if (!params.contains("code") || !params["code"].is_string()) return refuse("'code' must be a string");
  // A field the server does not know is refused: a limit a client believes in must hold.
  static const std::set<std::string> known = {"code", "profile", "session", "executionId", "inputs", "stdin", "files",
                                              "limits", "network", "stream", "workDoneToken", "returnFiles", "env",
                                              "filename", "language"};
  for (const auto& [key, value] : params.items()) {
    if (!known.contains(key))
      return refuse("unknown field '" + key.substr(0, 100) + "' (execute takes code, profile, session, executionId, inputs, "
                    "stdin, files, limits, network, stream, workDoneToken, returnFiles, env, filename, language)");
  }
  req.code = params["code"].get<std::string>();
  if (auto ok = decodeFilename(params, req.filename); !ok) return std::unexpected(ok.error());
  std::string profile;
  for (auto [key, field] : {std::pair{"profile", &profile}, {"executionId", &req.executionId}, {"stdin", &req.stdinData}}) {
    if (auto ok = optionalString(params, key, *field); !ok) return std::unexpected(ok.error());
  }
  std::optional<std::string> ownProfile;  // "" is a name (unknown), not an absent profile
  if (present(params, "profile")) ownProfile = profile;
  bool namedSession = params.contains("session") && params["session"].is_string();
  auto language = decodeLanguage(params);
  if (!language) return std::unexpected(language.error());
  auto chosen = profileForLanguage(
      config, namedProfile(ownProfile, namedSession ? params["session"].get<std::string>() : "", sessionProfile), *language);
  if (!chosen) return std::unexpected(chosen.error());
  req.profile = *chosen;
  auto found = findProfile(config, req.profile);
  if (!found) return std::unexpected(found.error());
  if (auto ok = optionalString(params, "session", req.session); !ok) return std::unexpected(ok.error());
  if (params.contains("inputs")) {
    req.inputs = params["inputs"];
    req.hasInputs = true;
  }
  if (auto ok = decodeExecuteRest(params, **found, out); !ok) return std::unexpected(ok.error());
  return out;
}

Decoded<exec::ExecutionRequest> runRequest(RunArgs args, const Config& config, const SessionProfileLookup& sessionProfile) {
  exec::ExecutionRequest req;
  req.code = std::move(args.code);
  if (!args.filename.empty()) {
    if (auto ok = decodeFilename(json{{"filename", args.filename}}, req.filename); !ok) return std::unexpected(ok.error());
  }
  auto chosen = profileForLanguage(
      config, namedProfile(args.profile.empty() ? std::nullopt : std::optional(args.profile), args.session, sessionProfile),
      args.language);
  if (!chosen) return std::unexpected(chosen.error());
  req.profile = *chosen;
  auto profile = findProfile(config, req.profile);
  if (!profile) return std::unexpected(profile.error());
  req.session = std::move(args.session);
  if (args.inputs) {
    req.inputs = std::move(*args.inputs);
    req.hasInputs = true;
  }
  auto limits = limitsFor(**profile, args.lowerToProfile ? loweredToProfile(std::move(args.limits), **profile) : args.limits);
  if (!limits) return std::unexpected(limits.error());
  req.limits = *limits;
  if (auto ok = checkNetwork(**profile, req.profile, args.network); !ok) return std::unexpected(ok.error());
  req.network = args.network;
  req.samples = (*profile)->samples;
  req.env = (*profile)->env;
  for (auto& [name, value] : args.env) req.env[name] = std::move(value);
  if (!args.returnFiles.is_null()) {
    auto globs = decodeReturnFiles(args.returnFiles);
    if (!globs) return std::unexpected(globs.error());
    req.returnFiles = std::move(*globs);
  }
  return req;
}

Decoded<exec::SessionSettings> decodeSessionCreate(const json& params, const Config& config) {
  if (!params.is_null() && !params.is_object()) return refuse("params must be an object");
  json p = params.is_object() ? params : json::object();
  for (const auto& [key, value] : p.items()) {
    if (key != "session" && key != "profile" && key != "limits" && key != "network" && key != "language")
      return refuse("unknown field '" + key + "' (session/create takes session, profile, limits, network, language)");
  }
  exec::SessionSettings s;
  for (auto [key, field] : {std::pair{"session", &s.id}, {"profile", &s.profile}}) {
    if (auto ok = optionalString(p, key, *field); !ok) return std::unexpected(ok.error());
  }
  auto language = decodeLanguage(p);
  if (!language) return std::unexpected(language.error());
  auto chosen = profileForLanguage(config, present(p, "profile") ? std::optional(s.profile) : std::nullopt, *language);
  if (!chosen) return std::unexpected(chosen.error());
  s.profile = *chosen;
  if (p.contains("session") && (s.id.empty() || s.id.size() > 200))
    return refuse("'session' must be a non-empty string of at most 200 bytes");
  auto profile = findProfile(config, s.profile);
  if (!profile) return std::unexpected(profile.error());
  auto limits = limitsFor(**profile, p.contains("limits") ? p["limits"] : json(nullptr));
  if (!limits) return std::unexpected(limits.error());
  s.limits = *limits;
  auto network = decodeNetwork(p, **profile, s.profile);
  if (!network) return std::unexpected(network.error());
  s.network = *network;
  return s;
}

Decoded<exec::SessionSettings> sessionSettings(const SessionArgs& args, const Config& config) {
  exec::SessionSettings s;
  s.id = args.id;
  auto chosen = profileForLanguage(config, args.profile.empty() ? std::nullopt : std::optional(args.profile), args.language);
  if (!chosen) return std::unexpected(chosen.error());
  s.profile = *chosen;
  auto profile = findProfile(config, s.profile);
  if (!profile) return std::unexpected(profile.error());
  auto limits = limitsFor(**profile, args.limits);
  if (!limits) return std::unexpected(limits.error());
  s.limits = *limits;
  if (auto ok = checkNetwork(**profile, s.profile, args.network); !ok) return std::unexpected(ok.error());
  s.network = args.network;
  return s;
}

Decoded<SessionCloseParams> decodeSessionClose(const json& params) {
  if (!params.is_object() || !params.contains("session") || !params["session"].is_string())
    return refuse("session/close takes {session: string}");
  return SessionCloseParams{params["session"].get<std::string>()};
}

Decoded<StatusParams> decodeStatus(const json& params) {
  if (!params.is_object() || !params.contains("executionId")) return StatusParams{};
  if (!params["executionId"].is_string()) return refuse("'executionId' must be a string");
  return StatusParams{params["executionId"].get<std::string>()};
}

Decoded<std::string> decodeExecutionId(const json& params, const char* method) {
  if (!params.is_object() || !params.contains("executionId") || !params["executionId"].is_string())
    return refuse(std::string(method) + " takes {executionId: string}");
  for (const auto& [key, value] : params.items())
    if (key != "executionId") return refuse(std::string(method) + ": unknown field '" + key + "'");
  return params["executionId"].get<std::string>();
}

Decoded<KillParams> decodeKill(const json& params) {
  if (!params.is_object()) return refuse("kill takes {executionId} or {session}");
  if (params.contains("session")) {
    if (!params["session"].is_string()) return refuse("'session' must be a string");
    return KillParams{KillParams::Target::Session, params["session"].get<std::string>()};
  }
  if (!params.contains("executionId") || !params["executionId"].is_string()) return refuse("'executionId' must be a string");
  return KillParams{KillParams::Target::Execution, params["executionId"].get<std::string>()};
}

Decoded<AnalyzeParams> decodeAnalyze(const json& params, const Config& config) {
  if (!params.is_object() || !params.contains("code") || !params["code"].is_string())
    return refuse("analyze takes {code: string, profile?: string, language?: string}");
  AnalyzeParams out{.code = params["code"].get<std::string>()};
  if (auto ok = optionalString(params, "profile", out.profile); !ok) return std::unexpected(ok.error());
  auto language = decodeLanguage(params);
  if (!language) return std::unexpected(language.error());
  auto chosen = profileForLanguage(config, present(params, "profile") ? std::optional(out.profile) : std::nullopt, *language);
  if (!chosen) return std::unexpected(chosen.error());
  out.profile = *chosen;
  return out;
}

exec::ExecutionRequest analyzeRequest(AnalyzeParams params, const sandbox::SandboxContext& ctx) {
  if (params.profile.empty()) params.profile = profileForLanguage(ctx.config, std::nullopt, params.language).value_or("default");
  const Profile& profile = ctx.config.profiles.at(params.profile);
  const json& policy = ctx.policy(params.profile, profile.networkAllowed);
  exec::ExecutionRequest request;
  request.profile = params.profile;
  request.code = ctx.analyzeProgramFor(profile.language);
  request.inputs = {{"code", std::move(params.code)}, {"policy", policy.is_null() ? json::object() : policy}};
  request.hasInputs = true;
  request.limits = profile.limits;
  request.limits.timeoutMs = std::min<int64_t>(request.limits.timeoutMs, 20000);
  request.internal = true;
  return request;
}

std::optional<json> analyzeDiagnostics(json& result) {
  if (result.value("status", "") != "ok" || !result.contains("value") || !result["value"].is_array()) return std::nullopt;
  return std::move(result["value"]);
}

InitializeParams decodeInitialize(const json& params) {
  InitializeParams out;
  if (!params.is_object()) return out;
  if (params.contains("processId") && params["processId"].is_number_integer()) out.processId = params["processId"].get<int>();
  if (params.contains("protocolVersion") && params["protocolVersion"].is_string())
    out.protocolVersion = params["protocolVersion"].get<std::string>();
  return out;
}

std::optional<json> decodeCancel(const json& params) {
  if (!params.is_object() || !params.contains("id")) return std::nullopt;
  return params["id"];
}

ParamError unknownExecution() { return {"unknown executionId"}; }
ParamError unknownSession(const std::string& id) { return {"unknown session '" + id + "'"}; }

Decoded<ToolCall> decodeToolCall(const json& params) {
  if (!params.is_object() || !params.contains("name") || !params["name"].is_string()) return refuse("tools/call needs a tool name");
  return ToolCall{params["name"].get<std::string>(), params.contains("arguments") ? params["arguments"] : json::object()};
}

ParamError unknownTool(const std::string& name) { return {"unknown tool: " + name}; }

Decoded<json> decodeToolArguments(const ToolCall& call) {
  if (!call.arguments.is_object()) return refuse(call.name + " takes an object of arguments");
  return call.arguments;
}

Decoded<RunArgs> decodeRunPythonArgs(const json& args) { return decodeRunToolArgs(args, "run_python"); }

Decoded<RunArgs> decodeRunToolArgs(const json& args, const std::string& tool) {
  if (!args.contains("code") || !args["code"].is_string()) return refuse(tool + " needs a `code` string argument");
  RunArgs out{.code = args["code"].get<std::string>(), .lowerToProfile = true};
  if (args.contains("inputs")) out.inputs = args["inputs"];
  if (auto ok = optionalString(args, "session", out.session); !ok) return std::unexpected(ok.error());
  if (args.contains("timeoutMs")) out.limits = {{"timeoutMs", args["timeoutMs"]}};
  return out;
}

Decoded<SessionArgs> decodeCreateSessionArgs(const json& args) {
  SessionArgs out;
  if (auto ok = optionalString(args, "profile", out.profile); !ok) return std::unexpected(ok.error());
  if (auto ok = optionalString(args, "language", out.language); !ok) return std::unexpected(ok.error());
  return out;
}

Decoded<SessionCloseParams> decodeCloseSessionArgs(const json& args) {
  if (!args.contains("session") || !args["session"].is_string()) return refuse("close_session needs a `session` string");
  return SessionCloseParams{args["session"].get<std::string>()};
}

}  // namespace pycell::server
