#pragma once
// The transport: the client's byte streams (stdin, stdout) on one side, whole message bodies
// on the other. It reads stdin through the event loop, frames what it reads (LSP headers or
// NDJSON, protocol/framing.h), bounds each message's size, and queues what it is given to
// send on an outbox written to stdout without blocking. A client that does not read its
// answers is pushed back on: past a high-water mark no more requests are read until it has
// taken most of them. At the end, the last answers get a bounded time to go out.
//
// It knows nothing of JSON-RPC or of the server: what it reads goes to a MessageHandler, and
// the handler decides everything else (what to answer, when to stop).
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pycell/error.h"
#include "pycell/process/event_loop.h"
#include "pycell/process/unique_fd.h"
#include "pycell/protocol/framing.h"

namespace pycell::server {

// What the transport tells its owner, always from inside the event loop. A handler may call
// the transport's send() from any of these; it must not destroy the transport from them.
class MessageHandler {
 public:
  virtual ~MessageHandler() = default;
  // One frame read from the client: a complete message body, or a report of one that could
  // not be taken (larger than the limit, or an unusable LSP header block) for the handler to
  // answer. The transport goes on reading after either.
  virtual void onFrame(const protocol::Frame& frame) = 0;
  // The client closed its end of stdin (EOF, or a read error): nothing more will be read.
  // Frames read before the end have all been handed over; sending still works.
  virtual void onInputClosed() = 0;
  // The client closed its end of stdout (a write failed, e.g. EPIPE): nobody reads any more;
  // the queued output was dropped.
  virtual void onOutputClosed(const Error& error) = 0;
  // The transport cannot go on reading for a reason of its own (e.g. stdin could not be
  // watched again after a pause).
  virtual void onTransportFailed(const Error& error) = 0;
};

class Transport {
 public:
  struct Limits {
    size_t maxMessageBytes;
    // Past `outboxHighWater` bytes waiting for the client, no more requests are read until
    // the client has taken all but `outboxLowWater`. What is already in flight still adds
    // its answer and its streamed output.
    size_t outboxHighWater = 16u << 20;
    size_t outboxLowWater = 4u << 20;
    // How long finalFlush() waits for a client that does not read.
    std::chrono::milliseconds finalFlush = std::chrono::seconds(5);
  };

  // `framing` may be Auto: it is decided on the client's first non-whitespace byte. The fds
  // are borrowed (not closed); the handler must outlive the transport.
  Transport(EventLoop& loop, MessageHandler& handler, protocol::Framing framing, int inFd, int outFd, Limits limits);
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;
  ~Transport();

  // Starts reading: makes stdin (and stdout, when it is a pipe or socket) non-blocking and
  // watches stdin on the loop.
  [[nodiscard]] Status start();
  // Queues one message body, framed in the client's framing, and writes what stdout takes
  // now. While the framing is not known yet (Auto, nothing read), the body is held and goes
  // out, framed, just before the first frame is handed to the handler; held bodies are
  // dropped if the framing never becomes known.
  void send(std::string_view body);
  // After the loop has stopped: writes what is queued, waiting at most `Limits::finalFlush`
  // for a client that does not read (what is left then is dropped, with a warning).
  void finalFlush();

  // The largest message taken from now on.
  void setMaxMessageBytes(size_t max) {
    limits_.maxMessageBytes = max;
    reader_.setMaxMessageBytes(max);
  }
  // The framing in use: Auto until the client's first non-whitespace byte.
  [[nodiscard]] protocol::Framing framing() const { return reader_.framing(); }
  // Bytes framed and waiting for the client to read them.
  [[nodiscard]] size_t pendingBytes() const { return outbox_.size(); }
  // Reading is paused because the client does not read its answers.
  [[nodiscard]] bool readingPaused() const { return inputPaused_; }
  // stdin reached its end.
  [[nodiscard]] bool inputEnded() const { return inputEnded_; }

 private:
  Status watchInput();
  void onReadable();
  bool handleFrames();
  void releaseHeld();
  void pauseInput();
  void resumeInput();
  void flush();
  void unwatchOutput();

  EventLoop& loop_;
  MessageHandler& handler_;
  protocol::FrameReader reader_;
  int inFd_;
  int outFd_;
  Limits limits_;
  std::string outbox_;
  std::vector<std::string> held_;  // bodies sent before the framing was known
  bool inWatched_ = false;
  bool outWatched_ = false;
  bool inputPaused_ = false;  // stdin unwatched until the client reads its answers
  bool inputEnded_ = false;   // stdin reached EOF
  bool outputClosed_ = false; // a write failed: nobody reads stdout any more
  bool resumeScheduled_ = false;
  EventLoop::TimerId resumeTimer_ = 0;
  // stdin is a regular file (`pycell serve < requests.ndjson`): epoll refuses those, and
  // they are always readable, so it is read from a timer on the loop's next turn instead.
  bool inIsFile_ = false;
  std::optional<EventLoop::TimerId> fileTimer_;
  void unwatchInput();
};

}  // namespace pycell::server
