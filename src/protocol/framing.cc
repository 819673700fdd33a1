#include "pycell/protocol/framing.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace pycell::protocol {

std::optional<Framing> parseFraming(std::string_view name) {
  if (name == "auto") return Framing::Auto;
  if (name == "lsp") return Framing::Lsp;
  if (name == "ndjson") return Framing::Ndjson;
  return std::nullopt;
}

std::string_view framingName(Framing framing) {
  switch (framing) {
    case Framing::Lsp: return "lsp";
    case Framing::Ndjson: return "ndjson";
    case Framing::Auto: break;
  }
  return "auto";
}

void FrameReader::feed(std::string_view bytes) { buffer_.append(bytes); }

std::optional<Frame> FrameReader::next() {
  if (skipRemaining_ > 0 || skipToNewline_) {
    if (auto done = skipping(); !done) return std::nullopt;
  }
  if (!pendingReported_) {
    pendingReported_ = true;
    return std::move(pending_);
  }
  if (framing_ == Framing::Auto) {
    auto first = std::find_if(buffer_.begin(), buffer_.end(), [](unsigned char c) { return !std::isspace(c); });
    if (first == buffer_.end()) return std::nullopt;
    framing_ = (*first == '{' || *first == '[') ? Framing::Ndjson : Framing::Lsp;
  }
  return framing_ == Framing::Lsp ? nextLsp() : nextNdjson();
}

// Drops the rest of an oversize message; returns a frame (the pending report) once done.
std::optional<Frame> FrameReader::skipping() {
  if (skipRemaining_ > 0) {
    size_t n = std::min(skipRemaining_, buffer_.size());
    buffer_.erase(0, n);
    skipRemaining_ -= n;
    if (skipRemaining_ > 0) return std::nullopt;
  } else {
    auto nl = buffer_.find('\n');
    pending_.size += (nl == std::string::npos ? buffer_.size() : nl);
    if (nl == std::string::npos) {
      buffer_.clear();
      return std::nullopt;
    }
    buffer_.erase(0, nl + 1);
    skipToNewline_ = false;
  }
  return Frame{};
}

static std::string lowercase(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

static std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::optional<Frame> FrameReader::nextLsp() {
  if (bodyLength_) return lspBody();
  // Tolerate stray blank lines between messages.
  size_t start = buffer_.find_first_not_of("\r\n");
  if (start == std::string::npos) {
    buffer_.clear();
    return std::nullopt;
  }
  buffer_.erase(0, start);
  size_t end = buffer_.find("\r\n\r\n");
  size_t sepLen = 4;
  if (size_t lf = buffer_.find("\n\n"); lf != std::string::npos && (end == std::string::npos || lf < end)) {
    end = lf;
    sepLen = 2;
  }
  if (end == std::string::npos) {
    if (buffer_.size() <= kMaxHeaderBytes) return std::nullopt;
    buffer_.clear();
    return Frame{Frame::Kind::BadHeader, {}, 0, "header block longer than 8192 bytes"};
  }
  std::string_view headers(buffer_.data(), end);
  std::optional<size_t> length;
  std::string problem;
  while (!headers.empty()) {
    size_t eol = headers.find('\n');
    std::string_view line = trim(headers.substr(0, eol));
    headers = eol == std::string_view::npos ? std::string_view{} : headers.substr(eol + 1);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      problem = "header line without ':'";
      continue;
    }
    if (lowercase(trim(line.substr(0, colon))) != "content-length") continue;
    std::string_view value = trim(line.substr(colon + 1));
    size_t n = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc{} || ptr != value.data() + value.size()) {
      problem = "Content-Length is not a number";
      continue;
    }
    length = n;
  }
  buffer_.erase(0, end + sepLen);
  if (!length) {
    return Frame{Frame::Kind::BadHeader, {}, 0, problem.empty() ? "missing Content-Length header" : problem};
  }
  if (*length > max_) {
    pending_ = Frame{Frame::Kind::Oversize, buffer_.substr(0, std::min({*length, buffer_.size(), kOversizePrefix})),
                     *length, {}};
    pendingReported_ = false;
    skipRemaining_ = *length;
    return next();
  }
  bodyLength_ = *length;
  return lspBody();
}

// The body of a message whose headers have been read: complete, or not yet.
std::optional<Frame> FrameReader::lspBody() {
  size_t length = *bodyLength_;
  if (buffer_.size() < length) return std::nullopt;
  bodyLength_.reset();
  Frame frame{Frame::Kind::Message, buffer_.substr(0, length), length, {}};
  buffer_.erase(0, length);
  return frame;
}

std::optional<Frame> FrameReader::nextNdjson() {
  while (true) {
    size_t nl = buffer_.find('\n');
    if (nl == std::string::npos) {
      if (buffer_.size() > max_) {
        pending_ = Frame{Frame::Kind::Oversize, buffer_.substr(0, kOversizePrefix), buffer_.size(), {}};
        pendingReported_ = false;
        buffer_.clear();
        skipToNewline_ = true;
        return next();
      }
      return std::nullopt;
    }
    std::string line = buffer_.substr(0, nl);
    buffer_.erase(0, nl + 1);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (trim(line).empty()) continue;
    if (line.size() > max_) return Frame{Frame::Kind::Oversize, line.substr(0, kOversizePrefix), line.size(), {}};
    return Frame{Frame::Kind::Message, std::move(line), nl, {}};
  }
}

std::string encodeFrame(Framing framing, std::string_view body) {
  if (framing == Framing::Lsp) {
    std::string out = "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    out.append(body);
    return out;
  }
  std::string out(body);
  out.push_back('\n');
  return out;
}

}  // namespace pycell::protocol
