#include "pycell/protocol/untrusted_json.h"

#include <algorithm>
#include <string_view>
#include <vector>

namespace pycell::protocol {

using nlohmann::json;

namespace {

// Values at most this deep are dumped by nlohmann itself (one stack frame per level, a few
// hundred bytes each: far from any stack limit).
constexpr size_t kRecursiveDumpDepth = 256;
// How much of the parser's complaint a rejection quotes.
constexpr size_t kMaxDetail = 240;

std::string dumpScalar(const json& v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }

// Walks a value depth-first with an explicit stack of iterators (its size is the depth, not
// the width). `visit(node, depth)` sees every node once, containers before their elements.
template <class Visit>
void walk(const json& root, Visit&& visit) {
  struct Frame {
    const json* container;
    json::const_iterator it;
  };
  std::vector<Frame> stack;
  auto enter = [&](const json& v) {
    visit(v, stack.size());
    if ((v.is_object() || v.is_array()) && !v.empty()) stack.push_back({&v, v.cbegin()});
  };
  enter(root);
  while (!stack.empty()) {
    Frame& top = stack.back();
    if (top.it == top.container->cend()) {
      stack.pop_back();
      continue;
    }
    const json& child = *top.it;
    ++top.it;  // before enter(): pushing may move `top`
    enter(child);
  }
}

std::string describeBytes(size_t n) {
  if (n >= (1u << 20) && n % (1u << 20) == 0) return std::to_string(n >> 20) + " MiB";
  return std::to_string(n) + " bytes";
}

}  // namespace

size_t jsonNestingDepth(std::string_view text, size_t stopAbove) noexcept {
  size_t depth = 0, deepest = 0;
  bool inString = false, escaped = false;
  for (char c : text) {
    if (inString) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') inString = false;
      continue;
    }
    switch (c) {
      case '"':
        inString = true;
        break;
      case '[':
      case '{':
        if (++depth > deepest) {
          deepest = depth;
          if (deepest > stopAbove) return deepest;
        }
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return deepest;
}

std::optional<JsonRejection> parseUntrustedInto(std::string_view text, const JsonLimits& limits, json& out) noexcept {
  try {
    if (text.size() > limits.maxBytes)
      return JsonRejection{JsonRejection::Kind::TooLarge, "message of " + std::to_string(text.size()) +
                                                              " bytes exceeds the limit of " + describeBytes(limits.maxBytes)};
    if (jsonNestingDepth(text, limits.maxDepth) > limits.maxDepth)
      return JsonRejection{JsonRejection::Kind::TooDeep, "nesting deeper than " + std::to_string(limits.maxDepth) + " levels"};
    try {
      if (limits.maxValues == static_cast<size_t>(-1)) {
        out = json::parse(text);
        return std::nullopt;
      }
      // Counted as the parser builds them (its callback; the parser keeps its own stack).
      struct TooManyValues {};
      size_t values = 0;
      auto count = [&](int, json::parse_event_t event, json&) {
        if ((event == json::parse_event_t::value || event == json::parse_event_t::object_start ||
             event == json::parse_event_t::array_start) &&
            ++values > limits.maxValues)
          throw TooManyValues{};
        return true;
      };
      try {
        out = json::parse(text.begin(), text.end(), count);
      } catch (const TooManyValues&) {
        out = nullptr;
        return JsonRejection{JsonRejection::Kind::TooLarge,
                             "more than " + std::to_string(limits.maxValues) + " JSON values"};
      }
      return std::nullopt;
    } catch (const json::parse_error& e) {
      // Its "last read" quotes the client's bytes (a whole string up to the error): cut short.
      std::string_view what = e.what();
      if (auto close = what.find("] "); what.starts_with("[json.exception") && close != std::string_view::npos)
        what.remove_prefix(close + 2);
      if (what.starts_with("parse error at ")) what.remove_prefix(12);
      std::string detail = truncateUtf8(std::string(what.substr(0, kMaxDetail + 4)), kMaxDetail);
      if (detail.size() < what.size()) detail += "...";
      return JsonRejection{JsonRejection::Kind::Invalid,
                           "not valid JSON" + std::string(detail.starts_with("at ") ? " " : ": ") + detail};
    }
  } catch (const std::exception& e) {
    try {
      return JsonRejection{JsonRejection::Kind::Invalid, std::string("could not parse: ") + e.what()};
    } catch (...) {
    }
  } catch (...) {
  }
  return JsonRejection{JsonRejection::Kind::Invalid, {}};
}

size_t jsonDepth(const json& value) noexcept {
  size_t deepest = 0;
  try {
    walk(value, [&](const json& v, size_t depth) {
      if (v.is_object() || v.is_array()) deepest = std::max(deepest, depth + 1);
    });
  } catch (...) {
    // Only the walk's own stack can fail to grow; the depth so far is a lower bound.
  }
  return deepest;
}

size_t approxJsonBytes(const json& value) noexcept {
  // Per node: the json itself; strings their buffer past the small-string size; objects a
  // tree node and a key per member; arrays a slot per element (counted with the element).
  constexpr size_t kNode = sizeof(json), kSso = 15, kMapNode = 32 + sizeof(std::string);
  size_t total = 0;
  auto stringBytes = [&](const std::string& s) { return s.size() > kSso ? s.capacity() + 1 : 0; };
  try {
    walk(value, [&](const json& v, size_t) {
      total += kNode;
      if (v.is_string()) total += sizeof(std::string) + stringBytes(v.get_ref<const std::string&>());
      else if (v.is_array()) total += sizeof(json::array_t);
      else if (v.is_binary()) total += sizeof(json::binary_t) + v.get_binary().size();
      else if (v.is_object()) {
        total += sizeof(json::object_t);
        for (auto it = v.cbegin(); it != v.cend(); ++it) total += kMapNode + stringBytes(it.key());
      }
    });
  } catch (...) {
  }
  return total;
}

std::string dumpSafe(const json& value) noexcept {
  try {
    if (jsonDepth(value) <= kRecursiveDumpDepth) return dumpScalar(value);  // nlohmann's own, recursive
    // Deeper: the same text, written with an explicit stack.
    struct Frame {
      const json* container;
      json::const_iterator it;
    };
    std::string out;
    std::vector<Frame> stack;
    auto open = [&](const json& v) {
      if (!v.is_object() && !v.is_array()) {
        out += dumpScalar(v);
      } else if (v.empty()) {
        out += v.is_object() ? "{}" : "[]";
      } else {
        out += v.is_object() ? '{' : '[';
        stack.push_back({&v, v.cbegin()});
      }
    };
    open(value);
    while (!stack.empty()) {
      Frame& top = stack.back();
      if (top.it == top.container->cend()) {
        out += top.container->is_object() ? '}' : ']';
        stack.pop_back();
        continue;
      }
      if (top.it != top.container->cbegin()) out += ',';
      if (top.container->is_object()) {
        out += dumpScalar(json(top.it.key()));
        out += ':';
      }
      const json& child = *top.it;
      ++top.it;  // before open(): pushing may move `top`
      open(child);
    }
    return out;
  } catch (...) {
    return {};
  }
}

size_t utf8PrefixLength(std::string_view s, size_t maxBytes) noexcept {
  size_t n = std::min(maxBytes, s.size());
  // Is byte n (the first one cut off, or the end) inside a sequence that starts at most 3
  // bytes before it? Then cut before that sequence's lead byte.
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return need > back ? n - back : n;
  }
  return n;
}

std::string truncateUtf8(std::string s, size_t maxBytes) {
  if (s.size() > maxBytes) s.resize(utf8PrefixLength(s, maxBytes));
  return s;
}

}  // namespace pycell::protocol
