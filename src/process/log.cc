#include "pycell/process/log.h"

#include <unistd.h>

#include <string>

namespace pycell::log {

namespace {
Level threshold = Level::Info;
}

void setLevel(Level level) { threshold = level; }

void write(Level level, std::string_view message) {
  if (level < threshold) return;
  static const char* names[] = {"debug", "info", "warn", "error"};
  std::string line = std::string("pycell[") + std::to_string(::getpid()) + "] " + names[static_cast<int>(level)] + ": ";
  line.append(message);
  line.push_back('\n');
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace pycell::log
