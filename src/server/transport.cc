#include "pycell/server/transport.h"

#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "pycell/process/log.h"

namespace pycell::server {

using protocol::Framing;

Transport::Transport(EventLoop& loop, MessageHandler& handler, Framing framing, int inFd, int outFd, Limits limits)
    : loop_(loop), handler_(handler), reader_(framing, limits.maxMessageBytes), inFd_(inFd), outFd_(outFd), limits_(limits) {}

Transport::~Transport() {
  unwatchInput();
  unwatchOutput();
  if (resumeScheduled_) loop_.cancelTimer(resumeTimer_);
}

Status Transport::start() {
  (void)setNonBlocking(inFd_);
  struct stat st{};
  inIsFile_ = ::fstat(inFd_, &st) == 0 && S_ISREG(st.st_mode);
  // Only a pipe or socket of our own is made non-blocking: a terminal's file description
  // is shared with the shell.
  if (::fstat(outFd_, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) (void)setNonBlocking(outFd_);
  return watchInput();
}

Status Transport::watchInput() {
  if (inIsFile_) {
    fileTimer_ = loop_.addTimer(std::chrono::milliseconds(0), [this] {
      fileTimer_.reset();
      onReadable();
    });
    inWatched_ = true;
    return {};
  }
  auto st = loop_.watch(inFd_, EPOLLIN, [this](uint32_t) { onReadable(); });
  inWatched_ = st.has_value();
  return st;
}

void Transport::unwatchInput() {
  if (fileTimer_) loop_.cancelTimer(*fileTimer_);
  fileTimer_.reset();
  if (inWatched_ && !inIsFile_) loop_.unwatch(inFd_);
  inWatched_ = false;
}

void Transport::onReadable() {
  char buf[65536];
  while (loop_.running() && !inputPaused_) {
    ssize_t n = ::read(inFd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      unwatchInput();
      inputEnded_ = true;
      handler_.onInputClosed();
      return;
    }
    reader_.feed(std::string_view(buf, static_cast<size_t>(n)));
    if (!handleFrames()) return;
    // A file is read a buffer per turn of the loop, as a pipe would deliver it: the answers
    // and the runs' events go on between.
    if (inIsFile_) {
      if (!inputPaused_ && !fileTimer_) (void)watchInput();
      return;
    }
  }
}

// The frames read so far; false when reading must stop (the loop is stopping, or the outbox
// is full).
bool Transport::handleFrames() {
  while (loop_.running()) {
    if (outbox_.size() > limits_.outboxHighWater) {
      pauseInput();
      return false;
    }
    auto frame = reader_.next();
    if (!frame) return true;
    releaseHeld();  // the framing is known now
    handler_.onFrame(*frame);
  }
  return false;
}

void Transport::releaseHeld() {
  if (held_.empty()) return;
  auto held = std::move(held_);
  held_.clear();
  try {
    for (const auto& body : held) send(body);
  } catch (const std::exception& e) {
    log::error(std::string("could not send a held message: ") + e.what());
  }
}

void Transport::pauseInput() {
  if (inputPaused_ || inputEnded_) return;
  log::debug("the client is not reading its answers (" + std::to_string(outbox_.size() >> 20) +
             " MiB waiting); reading no more requests until it does");
  unwatchInput();
  inputPaused_ = true;
}

void Transport::resumeInput() {
  if (!inputPaused_ || resumeScheduled_) return;
  // From a timer, not from inside flush(): flush runs inside the handler's own calls, which
  // must not be handed the next frame in the middle of their own.
  resumeScheduled_ = true;
  resumeTimer_ = loop_.addTimer(std::chrono::milliseconds(0), [this] {
    resumeScheduled_ = false;
    if (!inputPaused_ || !loop_.running()) return;
    inputPaused_ = false;
    if (auto st = watchInput(); !st) {
      Error e = st.error();
      e.what = "cannot watch stdin again: " + e.what;
      handler_.onTransportFailed(e);
      return;
    }
    handleFrames();  // those read before the pause; the pipe's own wake the watch
  });
}

void Transport::send(std::string_view body) {
  if (reader_.framing() == Framing::Auto) {
    held_.emplace_back(body);
    return;
  }
  if (outputClosed_) return;
  outbox_ += protocol::encodeFrame(reader_.framing(), body);
  flush();
}

void Transport::flush() {
  auto written = writeSome(outFd_, outbox_);
  if (!written) {
    // The client closed its end: nobody is listening.
    outbox_.clear();
    unwatchOutput();
    outputClosed_ = true;
    Error e = written.error();
    e.what = "stdout: " + e.what;
    handler_.onOutputClosed(e);
    return;
  }
  outbox_.erase(0, *written);
  if (inputPaused_ && outbox_.size() <= limits_.outboxLowWater) resumeInput();
  bool pending = !outbox_.empty();
  if (pending && !outWatched_) {
    outWatched_ = loop_.watch(outFd_, EPOLLOUT, [this](uint32_t) { flush(); }).has_value();
  } else if (!pending) {
    unwatchOutput();
  }
}

void Transport::unwatchOutput() {
  if (!outWatched_) return;
  loop_.unwatch(outFd_);
  outWatched_ = false;
}

// The last answers (every execution's "killed" among them) go out, but a client that no
// longer reads cannot keep the server alive: it gets a bounded time to take them.
void Transport::finalFlush() {
  auto deadline = std::chrono::steady_clock::now() + limits_.finalFlush;
  unwatchOutput();
  while (!outputClosed_) {
    flush();
    unwatchOutput();
    if (outbox_.empty()) return;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      log::warn("the client is not reading; " + std::to_string(outbox_.size()) + " bytes of answers dropped at exit");
      return;
    }
    pollfd p{outFd_, POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(left)) < 0 && errno != EINTR) return;
  }
}

}  // namespace pycell::server
