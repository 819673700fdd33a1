#pragma once
// One thread, one epoll: every fd the server waits on (stdin, child pipes, pidfds,
// signalfd) and every timer goes through here. No locks, no worker threads.
#include <sys/epoll.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>

#include "pycell/error.h"
#include "pycell/process/unique_fd.h"

namespace pycell {

class EventLoop {
 public:
  using Clock = std::chrono::steady_clock;
  using FdHandler = std::function<void(uint32_t events)>;
  using TimerId = uint64_t;

  EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  [[nodiscard]] Status watch(int fd, uint32_t events, FdHandler handler);
  // Safe to call from inside a handler, including the fd's own.
  void unwatch(int fd);

  TimerId addTimer(std::chrono::milliseconds delay, std::function<void()> fn);
  void cancelTimer(TimerId id);

  // Runs until stop() is called.
  void run();
  void stop() { running_ = false; }
  [[nodiscard]] bool running() const { return running_; }

 private:
  int nextTimeoutMs() const;
  void fireDueTimers();

  UniqueFd epoll_;
  std::map<int, std::shared_ptr<FdHandler>> handlers_;
  std::multimap<Clock::time_point, TimerId> deadlines_;
  std::map<TimerId, std::pair<Clock::time_point, std::function<void()>>> timers_;
  TimerId nextTimer_ = 1;
  bool running_ = false;
};

}  // namespace pycell
