# Shared by the packaging tests: arguments, a scratch directory, failing, and building the
# .deb. Sourced; the caller has set -euo pipefail.
build=$1 source=$2 version=$3
scratch=$(mktemp -d)
cleanup_steps=("rm -rf '$scratch'")
run_cleanup() { local step; for step in "${cleanup_steps[@]}"; do eval "$step" || true; done; }
trap run_cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }  # ctest's SKIP_RETURN_CODE (tests.cmake)

# Builds the .deb from the build tree into $scratch/deb and prints its path.
build_deb() {
  [[ -x $build/pycell && -f $build/pycell.1 && -f $build/pycell-completion.bash ]] ||
    fail "$build has no pycell, pycell.1 or pycell-completion.bash: build it first (scripts/build.sh)"
  if ! cpack --config "$build/CPackConfig.cmake" -G DEB -B "$scratch/deb" >"$scratch/cpack.log" 2>&1; then
    cat "$scratch/cpack.log" >&2
    fail "cpack -G DEB failed"
  fi
  local debs=("$scratch"/deb/pycell_*.deb)
  [[ ${#debs[@]} == 1 && -f ${debs[0]} ]] || fail "cpack made no single pycell_*.deb: ${debs[*]}"
  echo "${debs[0]}"
}

# The flags `pycell help COMMAND` lists, one a line, read as tests/cli/help_test.cc reads them.
help_flags() {
  "$1" help "$2" | sed -nE 's/^  (-h, )?(--[a-z][a-z-]*)( .*)?$/\1\2/p' |
    sed -E 's/^-h, /-h\n/' | sort
}
