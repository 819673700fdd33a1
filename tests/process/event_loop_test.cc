#include <catch2/catch.hpp>

#include <unistd.h>

#include <stdexcept>

#include "pycell/process/event_loop.h"
#include "pycell/process/unique_fd.h"

using namespace pycell;

TEST_CASE("a callback that throws is logged and the loop goes on", "[event_loop]") {
  EventLoop loop;
  int timersRun = 0, reads = 0;
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  UniqueFd r(fds[0]), w(fds[1]);

  loop.addTimer(std::chrono::milliseconds(0), [&] {
    ++timersRun;
    throw std::runtime_error("a timer failed");
  });
  loop.addTimer(std::chrono::milliseconds(0), [&] {
    ++timersRun;
    throw 7;  // not even a std::exception
  });
  REQUIRE(loop.watch(r.get(), EPOLLIN, [&](uint32_t) {
    char c;
    CHECK(::read(r.get(), &c, 1) == 1);
    if (++reads == 1) throw std::logic_error("a handler failed");
    loop.stop();  // the second byte: the loop survived the first
  }));
  REQUIRE(::write(w.get(), "ab", 2) == 2);
  loop.run();
  CHECK(timersRun == 2);
  CHECK(reads == 2);
}
