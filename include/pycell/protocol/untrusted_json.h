#pragma once
// JSON from someone we do not trust: a client's messages, or what a sandboxed program writes
// back. nlohmann's parser is iterative, but copying, dumping and comparing a value recurse
// once per level of nesting: a document nested 100,000 deep parses fine and then overflows
// the stack the first time it is copied. Everything here is linear and never recurses, so
// an untrusted document is measured before it becomes a value, and a value is written out
// whatever it holds.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace pycell::protocol {

// Nesting allowed in a client's message (PROTOCOL.md section 1, Limits): the JSON-RPC envelope and
// params take 2 levels, so `execute.inputs` may nest 62 deep.
inline constexpr size_t kClientMaxDepth = 64;
// Suggested for what a sandbox writes back: its result wraps the program's value (which may
// be the client's inputs, returned) in a few levels of its own.
inline constexpr size_t kSandboxMaxDepth = 100;

struct JsonLimits {
  size_t maxDepth = kClientMaxDepth;  // arrays and objects inside one another; a scalar is depth 0
  size_t maxBytes = 64u << 20;        // the text's size
  // JSON values (scalars, arrays, objects) in the document: what a parsed value costs is a
  // fixed multiple of this (unlimited by default; a sandbox's lines set it).
  size_t maxValues = static_cast<size_t>(-1);
};

// Why a text was not made a value. `message` is for people and names the limit.
struct JsonRejection {
  enum class Kind { TooLarge, TooDeep, Invalid } kind;
  std::string message;
};

// The deepest nesting of arrays and objects in `text`, stopping early once it exceeds
// `stopAbove` (the result is then stopAbove + 1). One linear pass over the bytes; brackets
// inside strings, escaped quotes included, do not count. Text that is not JSON gets a
// number too (what its brackets say); the parser refuses it afterwards.
[[nodiscard]] size_t jsonNestingDepth(std::string_view text, size_t stopAbove = static_cast<size_t>(-1)) noexcept;

// Parses `text` into `out` if it is no larger than limits.maxBytes and nests no deeper than
// limits.maxDepth; checked in that order, before any value is built; the parse then stops
// at the first value past limits.maxValues (TooLarge). Returns why not, or
// nothing on success. Never throws (running out of memory is reported as Invalid).
[[nodiscard]] std::optional<JsonRejection> parseUntrustedInto(std::string_view text, const JsonLimits& limits,
                                                              nlohmann::json& out) noexcept;

// Compact JSON text of `value`, invalid UTF-8 in strings replaced by U+FFFD. Never throws and
// never recurses deeper than 256 levels: a value nested deeper (one built without
// parseUntrustedInto) is written by an iterative writer, with the same output. Returns an empty
// string only when memory runs out.
[[nodiscard]] std::string dumpSafe(const nlohmann::json& value) noexcept;

// The depth of a value (as jsonNestingDepth counts it), without recursion.
[[nodiscard]] size_t jsonDepth(const nlohmann::json& value) noexcept;

// About how many bytes of memory `value` holds (strings, containers, per-node overhead);
// without recursion. For budgets, not for accounting to the byte.
[[nodiscard]] size_t approxJsonBytes(const nlohmann::json& value) noexcept;

// The length of the longest prefix of `s` of at most `maxBytes` bytes that does not end
// inside a UTF-8 sequence: a character whose bytes would cross the cut is left out whole.
[[nodiscard]] size_t utf8PrefixLength(std::string_view s, size_t maxBytes) noexcept;
// `s` cut to at most `maxBytes` bytes on a character boundary (see utf8PrefixLength).
[[nodiscard]] std::string truncateUtf8(std::string s, size_t maxBytes);

}  // namespace pycell::protocol
