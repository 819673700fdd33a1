#include "pycell/process/unique_fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace pycell {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Result<Pipe> makePipe(int extraFlags) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | extraFlags) != 0) return std::unexpected(sysError("pipe2"));
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

Status setNonBlocking(int fd, bool on) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return std::unexpected(sysError("fcntl(F_GETFL)"));
  flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (::fcntl(fd, F_SETFL, flags) != 0) return std::unexpected(sysError("fcntl(F_SETFL)"));
  return {};
}

Result<size_t> writeSome(int fd, std::string_view data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n < 0) return std::unexpected(sysError("write"));
    done += static_cast<size_t>(n);
  }
  return done;
}

Status writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(sysError("write"));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

Result<std::string> readAll(int fd, size_t limit) {
  std::string out;
  char buf[65536];
  while (out.size() < limit) {
    ssize_t n = ::read(fd, buf, std::min(sizeof buf, limit - out.size()));
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(sysError("read"));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Result<std::string> readFile(const std::string& path, size_t limit) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::unexpected(sysError("open " + path));
  return readAll(fd.get(), limit);
}

Status writeFile(const std::string& path, std::string_view data) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return std::unexpected(sysError("open " + path));
  auto st = writeAll(fd.get(), data);
  if (!st) return std::unexpected(Error{"write " + path, st.error().err});
  return {};
}

}  // namespace pycell
