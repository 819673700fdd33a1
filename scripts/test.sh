#!/usr/bin/env bash
# Builds pycell and runs every test through ctest, on a fresh Debian 12 machine, as root.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/install-deps.sh"
bash "$root/scripts/build.sh"
cd "${BUILD_DIR:-$root/build}"
ctest --output-on-failure --timeout 900 -j2
