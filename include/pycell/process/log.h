#pragma once
// Logging: stderr only (stdout is the protocol channel), one line per event, with a level.
#include <string_view>

namespace pycell::log {

enum class Level { Debug, Info, Warn, Error };
void setLevel(Level level);
void write(Level level, std::string_view message);
inline void debug(std::string_view m) { write(Level::Debug, m); }
inline void info(std::string_view m) { write(Level::Info, m); }
inline void warn(std::string_view m) { write(Level::Warn, m); }
inline void error(std::string_view m) { write(Level::Error, m); }

}  // namespace pycell::log
