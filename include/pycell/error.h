#pragma once
// The error vocabulary: Error (what failed, with errno), Result<T> and Status.
#include <cerrno>
#include <cstring>
#include <expected>
#include <string>
#include <utility>

namespace pycell {

// A failed operation: which call failed, on what, and errno (0 when not a syscall).
struct Error {
  std::string what;
  int err = 0;
  // A failed isolation step (sandbox/isolate.h): which, and on what; empty otherwise.
  std::string step = {};
  std::string detail = {};
  // `what`, followed by the errno text when there is one.
  [[nodiscard]] std::string message() const { return err == 0 ? what : what + ": " + std::strerror(err); }
};

// Captures errno at the failure site, so later calls cannot clobber it.
[[nodiscard]] inline Error sysError(std::string what) { return Error{std::move(what), errno}; }

template <class T>
using Result = std::expected<T, Error>;
using Status = std::expected<void, Error>;

}  // namespace pycell
