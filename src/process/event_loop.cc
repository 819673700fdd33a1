#include "pycell/process/event_loop.h"

#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "pycell/error.h"
#include "pycell/process/log.h"

namespace pycell {

namespace {
// Runs one callback. An exception it lets out is logged and goes no further: one failed
// callback (one execution, one request) must not stop the loop every client depends on.
template <class Fn>
void guarded(const char* what, Fn&& fn) noexcept {
  try {
    fn();
  } catch (const std::exception& e) {
    try {
      log::error(std::string("an event-loop ") + what + " failed: " + e.what() + "; the server goes on");
    } catch (...) {
    }
  } catch (...) {
    try {
      log::error(std::string("an event-loop ") + what + " failed with an unknown exception; the server goes on");
    } catch (...) {
    }
  }
}
}  // namespace

EventLoop::EventLoop() : epoll_(::epoll_create1(EPOLL_CLOEXEC)) {
  if (!epoll_) throw std::runtime_error(sysError("epoll_create1").message());
}

Status EventLoop::watch(int fd, uint32_t events, FdHandler handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return std::unexpected(sysError("epoll_ctl(ADD)"));
  handlers_[fd] = std::make_shared<FdHandler>(std::move(handler));
  return {};
}

void EventLoop::unwatch(int fd) {
  if (handlers_.erase(fd) > 0) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

EventLoop::TimerId EventLoop::addTimer(std::chrono::milliseconds delay, std::function<void()> fn) {
  TimerId id = nextTimer_++;
  auto when = Clock::now() + delay;
  timers_[id] = {when, std::move(fn)};
  deadlines_.emplace(when, id);
  return id;
}

void EventLoop::cancelTimer(TimerId id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  auto [lo, hi] = deadlines_.equal_range(it->second.first);
  for (auto d = lo; d != hi; ++d) {
    if (d->second == id) {
      deadlines_.erase(d);
      break;
    }
  }
  timers_.erase(it);
}

int EventLoop::nextTimeoutMs() const {
  if (deadlines_.empty()) return -1;
  auto wait = std::chrono::ceil<std::chrono::milliseconds>(deadlines_.begin()->first - Clock::now());
  return static_cast<int>(std::clamp<long long>(wait.count(), 0, 60'000));
}

void EventLoop::fireDueTimers() {
  auto now = Clock::now();
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    TimerId id = deadlines_.begin()->second;
    deadlines_.erase(deadlines_.begin());
    auto it = timers_.find(id);
    if (it == timers_.end()) continue;
    auto fn = std::move(it->second.second);
    timers_.erase(it);
    guarded("timer", fn);
  }
}

void EventLoop::run() {
  running_ = true;
  std::vector<epoll_event> events(64);
  while (running_) {
    int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), nextTimeoutMs());
    if (n < 0 && errno != EINTR) throw std::runtime_error(sysError("epoll_wait").message());
    for (int i = 0; i < n && running_; ++i) {
      auto it = handlers_.find(events[i].data.fd);
      if (it == handlers_.end()) continue;  // unwatched by an earlier handler in this batch
      auto handler = it->second;            // keeps it alive if the handler unwatches itself
      uint32_t ev = events[i].events;
      guarded("fd handler", [&] { (*handler)(ev); });
    }
    if (running_) fireDueTimers();
  }
}

}  // namespace pycell
