#pragma once
// The trust boundary between a sandbox and the server. Everything a sandbox writes on its
// result descriptor (the bootstrap's `started`, activity `event` and report lines, a
// session's `ready` line) is untrusted input: a program can write there too. This unit is
// the only place that reads it:
//   - bytes are split into lines, each bounded (a longer line is skipped, never buffered
//     whole), and all lines of one run are bounded together;
//   - a line counts only when it carries the token the server gave the current request
//     (checked on the raw bytes, before any parsing): a run can lie about itself, never
//     about another run, and lines written when no run is current are dropped unparsed;
//   - a line is parsed with a depth and a value-count limit, so its parsed size is a fixed
//     multiple of its text at most, and nothing after it recurses deeper than the limit;
//   - exactly one report is taken per token, judged member by member: a member over its
//     cap (a forged 60 MB value, say) is never parsed, and the rest is cut to the caps the
//     server sets (sanitizeReport), not the bootstrap's.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace pycell::exec {

struct ChannelLimits {
  size_t maxLineBytes = 64u << 20;   // the report line (returned files included, as base64)
  size_t maxEventBytes = 64u << 10;  // one activity event, or a started/ready line
  size_t maxRunBytes = 80u << 20;    // everything one run writes on the channel
  size_t maxDepth = 128;             // nesting of any line
  size_t maxValues = 1u << 20;       // JSON values (scalars, arrays, objects) in one line
  size_t maxEvents = 5000;           // events kept per run; the rest are counted, not parsed
  size_t maxEventTotalBytes = 4u << 20;  // all the events of one run, as text
};

// The caps on a report, enforced by the server (the bootstrap applies the same ones, and a
// request tells it; a forged or tampered report is cut here).
struct ReportCaps {
  size_t maxValueBytes = 1u << 20;       // the value, as JSON text
  size_t maxReprChars = 4096;            // valueRepr
  size_t maxTextBytes = 64u << 10;       // error message, each traceback line
  size_t maxTracebackLines = 200;
  size_t maxDisplayBytes = 8u << 20;     // all displays together
  size_t maxFileBytes = 16u << 20;       // one returned file, before base64
  size_t maxTotalFileBytes = 32u << 20;  // all returned files, before base64
  size_t maxFiles = 1000;
  size_t maxValueWarnings = 100;         // valueWarnings entries kept
  size_t maxWarningPathBytes = 512;      // a warning's path
  size_t maxWarningReasonBytes = 256;    // a warning's reason
};

// What the channel hands on. A sink is told nothing that lacks the current token.
class ChannelSink {
 public:
  virtual ~ChannelSink() = default;
  virtual void channelReady() {}
  virtual void channelStarted() {}
  virtual void channelStopped() {}  // the program's code ended on KeyboardInterrupt
  virtual void channelEvent(nlohmann::json event) = 0;
  virtual void channelReport(nlohmann::json report) = 0;
};

class ResultChannel {
 public:
  explicit ResultChannel(ChannelLimits limits = {}, ReportCaps caps = {}) : limits_(limits), caps_(caps) {}

  // A fresh random token (128 bits, hex), for one request.
  [[nodiscard]] static std::string newToken();

  // From now on, lines carrying `token` belong to the current run; a new run starts with
  // fresh byte and event budgets and no report taken yet.
  void expect(std::string token);
  // No run is current: everything is drained and dropped without parsing.
  void idle();
  // Takes bytes as read from the descriptor; complete lines go to `sink`.
  void feed(std::string_view bytes, ChannelSink& sink);
  // End of file: an unterminated last line still counts.
  void close(ChannelSink& sink);

  [[nodiscard]] bool reportTaken() const { return reportTaken_; }
  [[nodiscard]] bool started() const { return started_; }
  // Why the current run has no report, when the channel knows (a line over its limit, a
  // malformed report, too many bytes); empty otherwise.
  [[nodiscard]] const std::string& problem() const { return problem_; }
  [[nodiscard]] uint64_t droppedLines() const { return droppedLines_; }
  [[nodiscard]] uint64_t droppedEvents() const { return droppedEvents_; }
  [[nodiscard]] size_t buffered() const { return line_.size(); }

 private:
  void feedPart(std::string_view part, bool complete, ChannelSink& sink);
  bool overRunBudget(size_t bytes);
  void skipPart(std::string_view part, bool complete);
  [[nodiscard]] size_t lineLimit(std::string_view part) const;
  void takeLine(std::string_view line, ChannelSink& sink);
  void takeReport(std::string_view line, ChannelSink& sink);
  void drop(bool overLimit);

  ChannelLimits limits_;
  ReportCaps caps_;
  std::string token_;
  std::string prefix_;     // {"t":"<token>",  as the bootstrap writes it
  std::string line_;       // the current line so far (only while it is worth keeping)
  bool skipping_ = false;  // the current line is dropped up to its newline
  bool expecting_ = false;
  bool reportTaken_ = false;
  bool started_ = false;
  size_t runBytes_ = 0;
  size_t events_ = 0;
  size_t eventBytes_ = 0;
  uint64_t droppedLines_ = 0;
  uint64_t droppedEvents_ = 0;
  std::string problem_;
};

// Cuts a report to `caps` in place: an over-cap value becomes null with valueTruncated,
// strings are cut at a character boundary, displays and files past their budgets are
// dropped (counted in the returned note's fields). Depth is bounded by the parse.
struct SanitizeNotes {
  bool valueCut = false;
  size_t displaysDropped = 0;
  size_t filesDropped = 0;
};
SanitizeNotes sanitizeReport(nlohmann::json& report, const ReportCaps& caps);

// The members of a JSON object's text, found in one linear pass that tracks strings and
// nesting without parsing the values (so a member can be judged by its size first).
// nullopt when the text is not one well-delimited object.
struct JsonMember {
  std::string_view key;    // raw, between the quotes
  std::string_view value;  // the value's text
};
[[nodiscard]] std::optional<std::vector<JsonMember>> topLevelMembers(std::string_view text);

// The size of `j` as compact JSON text, counted up to `cap` (stops early past it).
[[nodiscard]] size_t jsonSizeUpTo(const nlohmann::json& j, size_t cap);

}  // namespace pycell::exec
