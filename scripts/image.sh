#!/usr/bin/env bash
# Builds the container image localhost/pycell:VERSION from Debian packages only: mmdebstrap
# makes a minimal Debian 12 from deb.debian.org with pycell's .deb and its runtime packages
# installed, and `podman import` turns that tree into an image whose command is
# `pycell serve`. No base image is pulled from any registry. Run as root on Debian 12.
#
#   bash scripts/image.sh                 # builds the .deb from this tree first (build/)
#   bash scripts/image.sh pycell_*.deb    # or installs the given one
#
# Environment: BUILD_DIR (the build tree, default build/), PYCELL_IMAGE (the name, default
# localhost/pycell:VERSION), PYCELL_IMAGE_PACKAGES (extra Debian packages, comma-separated).
# How to run the image, and why each flag: docs/CONTAINERS.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
mirror=http://deb.debian.org

die() { echo "image.sh: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "run as root: mmdebstrap installs packages into the tree as root, podman imports as root"

# The two tools, from Debian like everything else here.
need=()
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
command -v podman >/dev/null 2>&1 || need+=(podman)
if [[ ${#need[@]} -gt 0 ]]; then
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi

# The .deb: the argument, else cpack's from the build tree (built if it is not there).
deb_from_tree() {
  if [[ ! -x $build/pycell || ! -f $build/pycell.1 || ! -f $build/pycell-completion.bash ]]; then
    bash "$root/scripts/install-deps.sh" >&2
    # Only what the package holds: the binary and its docs, not the test programs.
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" -j"$(nproc)" --target pycell pycell_docs >&2
  fi
  cpack --config "$build/CPackConfig.cmake" -G DEB -B "$build/image-deb" >&2 ||
    die "cpack -G DEB failed in $build"
  local debs=("$build"/image-deb/pycell_*.deb)
  [[ ${#debs[@]} == 1 && -f ${debs[0]} ]] || die "cpack made no single pycell_*.deb in $build/image-deb"
  echo "${debs[0]}"
}
if [[ $# -ge 1 ]]; then
  deb=$(realpath "$1")
  [[ -f $deb ]] || die "no such .deb: $1"
else
  deb=$(deb_from_tree)
fi
version=$(dpkg-deb -f "$deb" Version)
image=${PYCELL_IMAGE:-localhost/pycell:$version}

# What runs beside the binary (the .deb's Recommends, which apt in mmdebstrap leaves out):
# the datascience profile's libraries, Node.js for the javascript profile, slirp4netns for
# runs with network: true. python3-munkres satisfies matplotlib's fonttools dependency
# "python3-scipy | python3-munkres" with its small alternative: scipy would bring pythran,
# g++ and the Boost headers.
packages=python3,python3-numpy,python3-pandas,python3-matplotlib,python3-munkres,nodejs,slirp4netns
[[ -n ${PYCELL_IMAGE_PACKAGES:-} ]] && packages+=",$PYCELL_IMAGE_PACKAGES"

started=$(date +%s)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# The .deb must be readable at the same path inside the tree: mmdebstrap's own hook copies
# it in and removes it afterwards. Docs, man pages and locales are left out (nobody reads
# them in the image; pycell's own stay in the .deb for the host install). Recommends are
# left out as in the .deb's own install.
cp "$deb" "$scratch/"
chmod 0755 "$scratch"
chmod 0644 "$scratch/$(basename "$deb")"
echo "image.sh: mmdebstrap bookworm (minbase) from $mirror with pycell $version" >&2
mmdebstrap --mode=root --variant=minbase --format=tar \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount \
  --include="$packages" --include="$scratch/$(basename "$deb")" \
  bookworm "$scratch/rootfs.tar" \
  "deb $mirror/debian bookworm main" \
  "deb $mirror/debian bookworm-updates main" \
  "deb $mirror/debian-security bookworm-security main" >&2

# The image: pycell serve on stdin/stdout, as a harness spawns it (`podman run -i`).
podman import \
  --change 'CMD ["/usr/bin/pycell", "serve"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'WORKDIR /' \
  --change "LABEL org.opencontainers.image.title=pycell org.opencontainers.image.version=$version" \
  --message "pycell $version on Debian 12 (mmdebstrap, deb.debian.org)" \
  "$scratch/rootfs.tar" "$image" >/dev/null
elapsed=$(( $(date +%s) - started ))
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "image.sh: built $image in ${elapsed}s (rootfs and import), $((size / 1000000)) MB" >&2
echo "$image"
