#include "pycell/exec/result_channel.h"

#include <sys/random.h>

#include <algorithm>
#include <cstring>

#include "pycell/protocol/untrusted_json.h"

namespace pycell::exec {

using nlohmann::json;

namespace {
// A one-word line of the bootstrap's ("started", "stopped", "ready"), by what follows the
// token; like an event, it gets an event's room, not a report's.
bool isMark(std::string_view afterToken) {
  return afterToken.starts_with("\"started\"") || afterToken.starts_with("\"stopped\"") ||
         afterToken.starts_with("\"ready\"");
}

// Every line the bootstrap writes for a request starts with these bytes and the token.
std::string prefixFor(const std::string& token) { return "{\"t\":\"" + token + "\","; }

std::string mib(size_t bytes) {
  return bytes >= (1u << 20) ? std::to_string(bytes >> 20) + " MiB" : std::to_string(bytes >> 10) + " KiB";
}

}  // namespace

// Untrusted text to a value, within the channel's depth and value-count limits.
static std::optional<json> parseLine(std::string_view text, const ChannelLimits& limits, std::string& why) {
  json value;
  auto rejected = protocol::parseUntrustedInto(
      text, {.maxDepth = limits.maxDepth, .maxBytes = text.size(), .maxValues = limits.maxValues}, value);
  if (!rejected) return value;
  why = rejected->message;
  return std::nullopt;
}

std::string ResultChannel::newToken() {
  unsigned char raw[16];
  size_t got = 0;
  while (got < sizeof raw) {
    ssize_t n = ::getrandom(raw + got, sizeof raw - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  static const char* hex = "0123456789abcdef";
  std::string token;
  for (unsigned char c : raw) {
    token += hex[c >> 4];
    token += hex[c & 15];
  }
  return token;
}

void ResultChannel::expect(std::string token) {
  token_ = std::move(token);
  prefix_ = prefixFor(token_);
  expecting_ = true;
  reportTaken_ = started_ = false;
  runBytes_ = events_ = eventBytes_ = 0;
  problem_.clear();
  // Whatever was half-written before belongs to no run: skip to its end.
  skipping_ = skipping_ || !line_.empty();
  line_.clear();
}

void ResultChannel::idle() {
  expecting_ = false;
  token_.clear();
  prefix_.clear();
  if (!line_.empty()) skipping_ = true;
  line_.clear();
}

void ResultChannel::drop(bool overLimit) {
  if (overLimit && expecting_ && problem_.empty() && line_.size() >= prefix_.size())
    problem_ = "the sandbox wrote a line longer than " + mib(limits_.maxLineBytes) + " on its result channel";
  ++droppedLines_;
  line_.clear();
  skipping_ = true;
}

void ResultChannel::feed(std::string_view bytes, ChannelSink& sink) {
  if (!expecting_) {
    // Nobody asked: dropped unread. Only where a line ends matters, for the next run.
    if (!bytes.empty()) skipping_ = bytes.back() != '\n';
    ++droppedLines_;
    return;
  }
  while (!bytes.empty()) {
    size_t nl = bytes.find('\n');
    std::string_view part = bytes.substr(0, nl);
    bytes = nl == std::string_view::npos ? std::string_view() : bytes.substr(nl + 1);
    feedPart(part, nl != std::string_view::npos, sink);
  }
}

// One piece of a line (`complete`: it ended with a newline): through the run's budget, the
// skipping of a line that is not wanted, the token check, and the line's own limit.
void ResultChannel::feedPart(std::string_view part, bool complete, ChannelSink& sink) {
  if (expecting_ && overRunBudget(part.size() + (complete ? 1 : 0))) {
    skipping_ = !complete;
    return;
  }
  if (!expecting_ || skipping_) {
    skipPart(part, complete);
    return;
  }
  // Kept only while it can still be the current run's: the token first, then the size.
  size_t have = line_.size();
  size_t check = std::min(prefix_.size(), have + part.size());
  if (check > have && std::string_view(prefix_).substr(have, check - have) != part.substr(0, check - have)) {
    drop(false);
    skipping_ = !complete;
    return;
  }
  if (have + part.size() > lineLimit(part)) {
    line_.append(part.substr(0, std::min(part.size(), prefix_.size())));  // so drop() knows it was ours
    drop(true);
    skipping_ = !complete;
    return;
  }
  if (!complete) {
    line_.append(part);
  } else if (have == 0) {
    takeLine(part, sink);  // the whole line in this read: no copy
  } else {
    line_.append(part);
    std::string line = std::move(line_);
    line_.clear();
    takeLine(line, sink);
  }
}

// Counts `bytes` against the run's budget; past it, the run has a problem and the rest of
// its channel is drained unread.
bool ResultChannel::overRunBudget(size_t bytes) {
  runBytes_ += bytes;
  if (runBytes_ <= limits_.maxRunBytes) return false;
  if (problem_.empty()) problem_ = "the sandbox wrote more than " + mib(limits_.maxRunBytes) + " on its result channel";
  idle();
  return true;
}

// A part of a line that is dropped: a whole line not skipped already counts as dropped.
void ResultChannel::skipPart(std::string_view part, bool complete) {
  if (complete) {
    if (!skipping_ && !part.empty()) ++droppedLines_;
    skipping_ = false;
  } else {
    skipping_ = true;
  }
}

// How long the current line may grow, judged by what follows the token (in `line_` so far,
// then `part`): an event or a started line is small; it may not use a report's room.
size_t ResultChannel::lineLimit(std::string_view part) const {
  size_t have = line_.size();
  std::string head;
  for (size_t i = prefix_.size(); i < prefix_.size() + 9 && i < have + part.size(); ++i)
    head += i < have ? line_[i] : part[i - have];
  if (head.starts_with("\"event\"") || isMark(head)) return limits_.maxEventBytes;
  return limits_.maxLineBytes;
}

void ResultChannel::close(ChannelSink& sink) {
  if (expecting_ && !skipping_ && !line_.empty()) {
    std::string line = std::move(line_);
    line_.clear();
    takeLine(line, sink);
  }
  line_.clear();
  skipping_ = false;
}

void ResultChannel::takeLine(std::string_view line, ChannelSink& sink) {
  if (line.empty()) return;
  if (!line.starts_with(prefix_)) {
    ++droppedLines_;
    return;
  }
  std::string_view after = line.substr(prefix_.size());
  bool isEvent = after.starts_with("\"event\"");
  if (isEvent && (events_ >= limits_.maxEvents || eventBytes_ + line.size() > limits_.maxEventTotalBytes)) {
    ++droppedEvents_;  // counted, not parsed
    return;
  }
  if (!isEvent && !isMark(after)) {
    if (reportTaken_) ++droppedLines_;  // one report per token
    else takeReport(line, sink);
    return;
  }
  std::string why = "not an object";
  auto parsed = parseLine(line, limits_, why);
  if (!parsed || !parsed->is_object()) {
    if (!isEvent && problem_.empty()) problem_ = "the sandbox's report was unreadable (" + why + ")";
    ++droppedLines_;
    return;
  }
  json& doc = *parsed;
  doc.erase("t");
  if (doc.size() == 1 && doc.contains("event")) {
    ++events_;
    eventBytes_ += line.size();
    sink.channelEvent(std::move(doc["event"]));
  } else if (doc.size() == 1 && doc.contains("started")) {
    started_ = true;
    sink.channelStarted();
  } else if (doc.size() == 1 && doc.contains("stopped")) {
    sink.channelStopped();
  } else if (doc.size() == 1 && doc.contains("ready")) {
    sink.channelReady();
  } else {
    ++droppedLines_;
  }
}

// A report: members over their caps are replaced unparsed; the others are parsed one by
// one, so no part costs more than its cap.
void ResultChannel::takeReport(std::string_view line, ChannelSink& sink) {
  reportTaken_ = true;
  auto members = topLevelMembers(line);
  if (!members) {
    problem_ = "the sandbox's report was unreadable (not a JSON object)";
    return;
  }
  auto base64Size = [](size_t bytes) { return (bytes + 2) / 3 * 4; };
  json report = json::object();
  for (const auto& [key, text] : *members) {
    if (key == "t") continue;
    size_t cap = key == "value"      ? caps_.maxValueBytes
                 : key == "displays" ? caps_.maxDisplayBytes + (64u << 10)
                 : key == "files"    ? base64Size(caps_.maxTotalFileBytes) + caps_.maxFiles * 4352
                 : key == "error"    ? caps_.maxTextBytes * (caps_.maxTracebackLines + 4)
                 : key == "valueWarnings"  // each string may be \u-escaped: 6 bytes a character
                     ? caps_.maxValueWarnings * (6 * (caps_.maxWarningPathBytes + caps_.maxWarningReasonBytes) + 64)
                     : 64u << 10;
    std::string name(key);
    if (text.size() > cap) {
      if (key == "value") report["valueTruncated"] = true;
      report[name] = key == "displays" || key == "files" ? json::array() : json(nullptr);
      continue;
    }
    std::string why;
    auto value = parseLine(text, limits_, why);
    if (!value) {
      problem_ = "the sandbox's report was unreadable (" + name + ": " + why + ")";
      return;
    }
    report[name] = std::move(*value);
  }
  sanitizeReport(report, caps_);
  sink.channelReport(std::move(report));
}

namespace {

// A cursor over an object's text for topLevelMembers: it skips whitespace, strings and
// nested values without parsing them.
struct MemberScanner {
  std::string_view text;
  size_t i = 0;

  [[nodiscard]] bool at(char c) const { return i < text.size() && text[i] == c; }
  void ws() {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) ++i;
  }
  // Past a string whose opening quote is at i; false if it never closes.
  bool string() {
    for (size_t from = i + 1; from < text.size();) {
      size_t quote = text.find('"', from);  // memchr: a long string costs little
      if (quote == std::string_view::npos) return false;
      size_t slashes = 0;
      while (quote - slashes > from && text[quote - slashes - 1] == '\\') ++slashes;
      from = quote + 1;
      if (slashes % 2 == 0) {
        i = from;
        return true;
      }
    }
    return false;
  }
  // Past an object or array opening at i, to its matching close; false if it never closes.
  bool nested() {
    size_t depth = 0;
    for (; i < text.size(); ++i) {
      char c = text[i];
      if (c == '"') {
        if (!string()) return false;
        --i;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if ((c == '}' || c == ']') && --depth == 0) {
        ++i;
        break;
      }
    }
    return depth == 0;
  }
  // Past the value starting at i (a scalar ends at a delimiter); false if it is malformed.
  bool value() {
    size_t start = i;
    if (at('"')) {
      if (!string()) return false;
    } else if (at('{') || at('[')) {
      if (!nested()) return false;
    } else {
      while (i < text.size() && text[i] != ',' && text[i] != '}' && text[i] != ' ' && text[i] != '\n') ++i;
    }
    return i != start;
  }
  // Past the object's closing brace at i: true if only whitespace follows.
  bool end() {
    ++i;
    ws();
    return i == text.size();
  }
};

}  // namespace

std::optional<std::vector<JsonMember>> topLevelMembers(std::string_view text) {
  MemberScanner scan{text};
  std::vector<JsonMember> members;
  scan.ws();
  if (!scan.at('{')) return std::nullopt;
  ++scan.i;
  scan.ws();
  if (scan.at('}')) return scan.end() ? std::optional(members) : std::nullopt;
  while (true) {
    scan.ws();
    if (!scan.at('"')) return std::nullopt;
    size_t keyStart = scan.i + 1;
    if (!scan.string()) return std::nullopt;
    std::string_view key = text.substr(keyStart, scan.i - 1 - keyStart);
    scan.ws();
    if (!scan.at(':')) return std::nullopt;
    ++scan.i;
    scan.ws();
    size_t valueStart = scan.i;
    if (!scan.value()) return std::nullopt;
    members.push_back({key, text.substr(valueStart, scan.i - valueStart)});
    scan.ws();
    if (scan.at(',')) {
      ++scan.i;
      continue;
    }
    if (scan.at('}')) return scan.end() ? std::optional(members) : std::nullopt;
    return std::nullopt;
  }
}

size_t jsonSizeUpTo(const json& j, size_t cap) {
  // Depth is bounded by the parse (parseLimited), so this recursion is too.
  size_t size = 0;
  switch (j.type()) {
    case json::value_t::string: return j.get_ref<const std::string&>().size() + 2;
    case json::value_t::array:
      size = 2;
      for (const auto& item : j) {
        size += jsonSizeUpTo(item, cap - std::min(cap, size)) + 1;
        if (size > cap) return size;
      }
      return size;
    case json::value_t::object:
      size = 2;
      for (const auto& [key, item] : j.items()) {
        size += key.size() + 4 + jsonSizeUpTo(item, cap - std::min(cap, size));
        if (size > cap) return size;
      }
      return size;
    case json::value_t::null: return 4;
    case json::value_t::boolean: return 5;
    default: return 24;  // numbers: at most this many characters
  }
}

namespace {

void cutString(json& j, size_t maxBytes) {
  if (!j.is_string()) return;
  auto& s = j.get_ref<std::string&>();
  if (s.size() > maxBytes) s.resize(protocol::utf8PrefixLength(s, maxBytes));
}

// Characters, not bytes: a character is a byte that is not a UTF-8 continuation byte.
void cutChars(json& j, size_t maxChars) {
  if (!j.is_string()) return;
  auto& s = j.get_ref<std::string&>();
  size_t chars = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 && ++chars > maxChars) {
      s.resize(i);
      return;
    }
  }
}

void sanitizeError(json& error, const ReportCaps& caps) {
  if (error.is_null()) return;
  if (!error.is_object() || !error.contains("type") || !error["type"].is_string()) {
    error = nullptr;
    return;
  }
  json clean = {{"type", error["type"]}, {"message", ""}, {"traceback", json::array()}, {"line", nullptr}};
  cutString(clean["type"], 256);
  if (error.contains("message") && error["message"].is_string()) clean["message"] = std::move(error["message"]);
  cutString(clean["message"], caps.maxTextBytes);
  if (error.contains("traceback") && error["traceback"].is_array()) {
    for (auto& line : error["traceback"]) {
      if (clean["traceback"].size() >= caps.maxTracebackLines) break;
      if (!line.is_string()) continue;
      cutString(line, caps.maxTextBytes);
      clean["traceback"].push_back(std::move(line));
    }
  }
  if (error.contains("line") && error["line"].is_number_integer()) clean["line"] = error["line"];
  error = std::move(clean);
}

// The value's warnings (none once the value was cut for its size): at most maxValueWarnings well-formed {path, reason} entries, each
// string cut to its cap; anything else the sandbox wrote there is dropped.
void sanitizeValueWarnings(json& report, const ReportCaps& caps, bool valueCut) {
  json& warnings = report["valueWarnings"];
  if (!warnings.is_array() || valueCut) {
    report.erase("valueWarnings");
    return;
  }
  json kept = json::array();
  for (auto& warning : warnings) {
    if (kept.size() >= caps.maxValueWarnings) break;
    if (!warning.is_object() || !warning.contains("path") || !warning["path"].is_string() ||
        !warning.contains("reason") || !warning["reason"].is_string())
      continue;
    json clean = {{"path", std::move(warning["path"])}, {"reason", std::move(warning["reason"])}};
    cutString(clean["path"], caps.maxWarningPathBytes);
    cutString(clean["reason"], caps.maxWarningReasonBytes);
    kept.push_back(std::move(clean));
  }
  if (kept.empty()) report.erase("valueWarnings");
  else warnings = std::move(kept);
}

}  // namespace

SanitizeNotes sanitizeReport(json& report, const ReportCaps& caps) {
  SanitizeNotes notes;
  if (!report.is_object()) return notes;
  if (report.contains("value") && !report["value"].is_null() &&
      jsonSizeUpTo(report["value"], caps.maxValueBytes + 1) > caps.maxValueBytes) {
    report["value"] = nullptr;
    report["valueTruncated"] = true;
    notes.valueCut = true;
  }
  if (report.contains("valueRepr")) cutChars(report["valueRepr"], caps.maxReprChars);
  if (report.contains("valueWarnings")) sanitizeValueWarnings(report, caps, notes.valueCut);
  if (report.contains("error")) sanitizeError(report["error"], caps);
  if (report.contains("displays") && report["displays"].is_array()) {
    json kept = json::array();
    size_t used = 0;
    for (auto& bundle : report["displays"]) {
      size_t size = jsonSizeUpTo(bundle, caps.maxDisplayBytes - used + 1);
      if (used + size > caps.maxDisplayBytes) {
        ++notes.displaysDropped;
        continue;
      }
      used += size;
      kept.push_back(std::move(bundle));
    }
    report["displays"] = std::move(kept);
  }
  if (report.contains("files") && report["files"].is_array()) {
    json kept = json::array();
    size_t total = 0;
    auto base64Size = [](size_t bytes) { return (bytes + 2) / 3 * 4; };
    for (auto& file : report["files"]) {
      bool ok = file.is_object() && file.contains("base64") && file["base64"].is_string();
      size_t size = ok ? file["base64"].get_ref<const std::string&>().size() : 0;
      if (!ok || size > base64Size(caps.maxFileBytes) || total + size > base64Size(caps.maxTotalFileBytes) ||
          kept.size() >= caps.maxFiles) {
        ++notes.filesDropped;
        continue;
      }
      total += size;
      kept.push_back(std::move(file));
    }
    report["files"] = std::move(kept);
  }
  if (report.contains("skippedFiles") && report["skippedFiles"].is_array() && report["skippedFiles"].size() > caps.maxFiles)
    report["skippedFiles"].erase(report["skippedFiles"].begin() + static_cast<std::ptrdiff_t>(caps.maxFiles),
                                 report["skippedFiles"].end());
  return notes;
}

}  // namespace pycell::exec
