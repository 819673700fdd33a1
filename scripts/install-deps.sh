#!/usr/bin/env bash
# Installs everything pycell needs to build and test on Debian 12, as root. Idempotent.
set -euo pipefail
packages=(
  cmake g++ make pkg-config            # build
  libseccomp-dev nlohmann-json3-dev    # libraries
  catch2                               # C++ tests (v2)
  python3 python3-numpy python3-pandas python3-matplotlib   # the sandboxed interpreter
  util-linux                           # setpriv, for the unprivileged test run
  slirp4netns                          # the network stack of runs with network: true
  strace                               # the seccomp test traces typical programs' system calls
  python3-jsonschema                   # schema validation of real traffic
  python3-yaml                         # the Kubernetes manifests' check (tests/deploy)
  python3-venv python3-pip python3-setuptools python3-wheel mypy   # the Python client's install and type checks
  python3-celery                       # the Python client's Celery example, run in its test (~8 MB with its dependencies)
  bubblewrap                           # the baseline the benchmark compares against
  neovim                               # the Neovim plugin's headless test
  clang libclang-rt-14-dev             # libFuzzer for the protocol fuzz targets
  dpkg-dev man-db                      # the .deb: dpkg-shlibdeps finds its Depends; its man page test
  podman runc mmdebstrap               # the container test: scripts/image.sh builds the image, podman runs it
)                                      # (runc beside podman's crun: crun refuses hosts with hybrid cgroups)
# node and npm run the MCP SDK and VS Code tests (their packages come from the npm registry).
# npm itself comes from the npm registry too (install-npm.py, pinned and checked): Debian's
# `npm` package would install some 350 node-* packages.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(ca-certificates)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
command -v npm >/dev/null 2>&1 || python3 "$(dirname "$0")/install-npm.py"
