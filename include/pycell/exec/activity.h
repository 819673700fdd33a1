#pragma once
// The execute result's `activity`, summed up from the events a run's policy layer wrote
// through as they happened (src/exec/activity.cc).
#include <nlohmann/json.hpp>

namespace pycell::exec {

[[nodiscard]] nlohmann::json summarizeActivity(const nlohmann::json& events);

}  // namespace pycell::exec
