#!/usr/bin/env bash
# Builds pycell and runs every test through ctest, on a fresh Debian 12 machine, as root:
# first the regular build, then the same suite against an ASan+UBSan build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/install-deps.sh"

build=${BUILD_DIR:-$root/build}
BUILD_DIR=$build bash "$root/scripts/build.sh"

sanitize=1
[ "${PYCELL_SKIP_SANITIZERS:-0}" = 1 ] && sanitize=0
asan_pid=
if [ "$sanitize" = 1 ]; then
  # The sanitizer build compiles at the lowest CPU priority while the regular suite runs, so
  # it only takes the CPU time the tests leave idle.
  # Its own process group (setsid), so a failure of the regular suite stops all of it.
  mkdir -p "$build-asan"
  BUILD_DIR=$build-asan setsid nice -n 19 bash "$root/scripts/build.sh" -DPYCELL_SANITIZE=ON \
    >"$build-asan/build.log" 2>&1 &
  asan_pid=$!
fi
status=0
(cd "$build" && ctest --output-on-failure --timeout 900 -j2) || status=$?
# ctest names a skipped test without its reason: the reasons the tests printed (SKIP: ...).
awk '/^[0-9]+\/[0-9]+ Testing: /{test=$3} /^SKIP: /{print "skipped " test ": " substr($0, 7)}' \
  "$build/Testing/Temporary/LastTest.log" 2>/dev/null || true
if [ "$status" -ne 0 ]; then
  if [ -n "$asan_pid" ]; then kill -- "-$asan_pid" 2>/dev/null || true; wait "$asan_pid" 2>/dev/null || true; fi
  exit "$status"
fi

if [ "$sanitize" = 1 ]; then
  echo "== the same suite under AddressSanitizer and UndefinedBehaviorSanitizer"
  if ! wait "$asan_pid"; then
    cat "$build-asan/build.log"
    echo "the sanitizer build failed"
    exit 1
  fi
  # This pass is for the C++ code under the sanitizers; what runs none of it is not repeated:
  # libFuzzer (sanitized already in the first pass; the corpus replays run here), the
  # Python-only tests (bootstrap, policy, analyzer) and the JavaScript bootstrap's (node only), the fork loop's library (built without
  # sanitizers: it runs inside the interpreter), packaging, the container (its image holds no
  # sanitizer runtime) and type checks, and the schemas'
  # own compile. The integration suite runs once here, its server as root: the unprivileged
  # variant runs the same server code under another uid, and it has run in the first pass.
  skip='fuzz_protocol|integration_unprivileged_[0-9]+|bootstrap|js_bootstrap|policy_module|analyze_module|fork_loop'
  skip+='|python_client_package|vscode_package|schemas_ajv_install|schemas_strict'
  skip+='|packaging_deb_contents|packaging_deb_install|container'
  (cd "$build-asan" && ctest --output-on-failure --timeout 900 -j2 -E "^($skip)\$")
fi
