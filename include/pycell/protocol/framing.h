#pragma once
// Framing: turns a byte stream into message bodies and back. Knows nothing of JSON.
// Two framings (PROTOCOL.md section 1): LSP headers with a Content-Length counted in bytes,
// and newline-delimited JSON. `Auto` decides on the first non-whitespace byte.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace pycell::protocol {

enum class Framing { Auto, Lsp, Ndjson };

[[nodiscard]] std::optional<Framing> parseFraming(std::string_view name);
[[nodiscard]] std::string_view framingName(Framing framing);

struct Frame {
  enum class Kind {
    Message,    // `body` holds one complete message
    Oversize,   // larger than the cap: `body` holds its first bytes (to recover an id), skipped
    BadHeader,  // an LSP header block that cannot be used; `error` says why
  };
  Kind kind = Kind::Message;
  std::string body;
  size_t size = 0;  // declared or measured size of the message
  std::string error;
};

class FrameReader {
 public:
  static constexpr size_t kOversizePrefix = 4096;
  static constexpr size_t kMaxHeaderBytes = 8192;

  FrameReader(Framing framing, size_t maxMessageBytes) : framing_(framing), max_(maxMessageBytes) {}

  void feed(std::string_view bytes);
  // The next complete frame, or nothing until more bytes are fed.
  [[nodiscard]] std::optional<Frame> next();
  // The framing in use: `Auto` until the first non-whitespace byte has been seen.
  [[nodiscard]] Framing framing() const { return framing_; }
  // From the next message on (a connection that has proved who it is may send more).
  void setMaxMessageBytes(size_t max) { max_ = max; }

 private:
  std::optional<Frame> nextLsp();
  std::optional<Frame> lspBody();
  std::optional<Frame> nextNdjson();
  std::optional<Frame> skipping();

  Framing framing_;
  size_t max_;
  std::string buffer_;
  std::optional<size_t> bodyLength_;  // headers read, body still arriving
  size_t skipRemaining_ = 0;  // bytes of an oversize message still to drop
  bool skipToNewline_ = false;
  Frame pending_;  // the oversize frame being skipped, reported once skipped
  bool pendingReported_ = true;
};

// The bytes that carry `body` in the given framing (Auto is treated as NDJSON).
[[nodiscard]] std::string encodeFrame(Framing framing, std::string_view body);

}  // namespace pycell::protocol
