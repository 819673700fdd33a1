#pragma once
// The resource usage of one run drawn as a standalone SVG chart (`pycell run --usage-chart`):
// CPU utilisation and resident memory in two stacked panels that share the time axis.
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace pycell::cli {

// samples: array of {"tMs", "cpuMs" (cumulative), "rssBytes"}; entries that are not objects
// with three finite numbers, or whose tMs is negative, are skipped; the rest are ordered by
// time. usage: {"wallMs", "cpuUserMs", "cpuSysMs", "peakMemoryBytes"}, each optional (missing
// figures are taken from the samples). title: any bytes; escaped, and made valid UTF-8.
// Returns a complete SVG 1.1 document, the same bytes for the same input.
[[nodiscard]] std::string renderUsageChart(const nlohmann::json& samples, const nlohmann::json& usage,
                                           std::string_view title);

}  // namespace pycell::cli
