#pragma once
// Owning file descriptor, pipes, and whole-buffer reads and writes on descriptors.
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include "pycell/error.h"

namespace pycell {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  [[nodiscard]] int get() const { return fd_; }
  [[nodiscard]] bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

// pipe2(O_CLOEXEC | extraFlags).
[[nodiscard]] Result<Pipe> makePipe(int extraFlags = 0);
[[nodiscard]] Status setNonBlocking(int fd, bool on = true);
// write() the whole buffer to a blocking fd, retrying on EINTR and short writes.
[[nodiscard]] Status writeAll(int fd, std::string_view data);
// For a non-blocking fd: writes as much of `data` as the fd takes now; the count written
// (short when it would block), or the error (EPIPE: the reader is gone).
[[nodiscard]] Result<size_t> writeSome(int fd, std::string_view data);
// read() until EOF into a string (blocking fd), at most `limit` bytes.
[[nodiscard]] Result<std::string> readAll(int fd, size_t limit);
[[nodiscard]] Result<std::string> readFile(const std::string& path, size_t limit = 1 << 20);
[[nodiscard]] Status writeFile(const std::string& path, std::string_view data);

}  // namespace pycell
