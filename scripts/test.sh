#!/usr/bin/env bash
# Builds pycell and runs every test through ctest, on a fresh Debian 12 machine, as root:
# first the regular build, then the same suite against an ASan+UBSan build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/install-deps.sh"

build=${BUILD_DIR:-$root/build}
BUILD_DIR=$build bash "$root/scripts/build.sh"
(cd "$build" && ctest --output-on-failure --timeout 900 -j2)

if [ "${PYCELL_SKIP_SANITIZERS:-0}" != 1 ]; then
  echo "== the same suite under AddressSanitizer and UndefinedBehaviorSanitizer"
  BUILD_DIR=$build-asan bash "$root/scripts/build.sh" -DPYCELL_SANITIZE=ON
  # libFuzzer runs in the first pass (sanitized already); the corpus replays run here too.
  (cd "$build-asan" && ctest --output-on-failure --timeout 900 -j2 -E '^fuzz_protocol$')
fi
