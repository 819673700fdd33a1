#!/usr/bin/env bash
# The image in podman, as docs/CONTAINERS.md documents it (ctest: container, as root).
#
#   bash tests/deploy/container_test.sh [PYCELL_BINARY]
#
# 0. Builds the image with scripts/image.sh when it is missing (Debian packages from
#    deb.debian.org: minutes, once). PYCELL_BINARY (ctest passes the tree's) is mounted
#    over the image's /usr/bin/pycell, so that the binary under test is this tree's even
#    when the image is older.
# 1. With the documented flags `pycell check` exits 0 with level: isolated and both
#    languages run, and `pycell serve` gives the demo's results (scripts/demo.sh).
# 2. Without the seccomp profile, without the /proc unmask, without CAP_SETUID/SETGID, and
#    under a profile that refuses unshare (as Docker's default does), `pycell check` ends,
#    says level: degraded and names the missing flag and the Kubernetes field
#    (src/sandbox/container.cc), and `pycell serve` refuses to start (exit 3), naming the flag.
# Skips (exit 77, the reason printed) where it cannot run: not root, no podman, podman
# unable to run a container here, or no image and no deb.debian.org to build one.
# The flags a host itself needs before any container starts (docs/CONTAINERS.md, "This
# machine's own quirks") are found by trying; PYCELL_PODMAN_FLAGS sets them instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
binary=${1:-}
version=$(sed -nE 's/^project\(pycell VERSION ([0-9.]+).*/\1/p' "$root/CMakeLists.txt")
image=${PYCELL_IMAGE:-localhost/pycell:$version}
profile=$root/deploy/seccomp/pycell.json
started=$(date +%s)
skip() { echo "SKIP: $*"; exit 77; }  # ctest's SKIP_RETURN_CODE (tests.cmake)
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

[[ $(id -u) == 0 ]] || skip "needs root (scripts/image.sh builds the image as root, and the test runs it as root)"
command -v podman >/dev/null 2>&1 || skip "podman is not installed (scripts/install-deps.sh installs it)"
[[ -z $binary || -x $binary ]] || { echo "no executable $binary" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

if ! podman image exists "$image"; then
  getent hosts deb.debian.org >/dev/null 2>&1 ||
    skip "no image $image, and deb.debian.org does not resolve to build it (scripts/image.sh)"
  echo "== no image $image: scripts/image.sh builds it"
  PYCELL_IMAGE=$image bash "$root/scripts/image.sh" >"$out/image.log" 2>&1 ||
    { tail -30 "$out/image.log" >&2; echo "scripts/image.sh failed" >&2; exit 1; }
  echo "image built in $(($(date +%s) - started)) s"
fi

# What this host needs before any container starts: podman's defaults first, then the
# quirks docs/CONTAINERS.md lists (rlimits above the host's hard ones, crun on hybrid cgroups).
# (nproc: at most pid_max, found by trying on a host whose runc refused more.)
nofile=$(ulimit -Hn) nproc=$(ulimit -Hu) pidmax=$(cat /proc/sys/kernel/pid_max)
[[ $nproc =~ ^[0-9]+$ && $nproc -gt $pidmax ]] && nproc=$pidmax
[[ $nproc == unlimited ]] && nproc=$pidmax
limits=()
[[ $nofile =~ ^[0-9]+$ ]] && limits+=(--ulimit "nofile=$nofile:$nofile")
[[ $nproc =~ ^[0-9]+$ ]] && limits+=(--ulimit "nproc=$nproc:$nproc")
if [[ -n ${PYCELL_PODMAN_FLAGS:-} ]]; then
  tries=("${PYCELL_PODMAN_FLAGS}")
else
  tries=("" "${limits[*]}" "--runtime runc ${limits[*]}" "--runtime runc --network none ${limits[*]}")
fi
host=() found=no
for try in "${tries[@]}"; do
  read -r -a host <<<"$try"
  if podman run --rm "${host[@]}" "$image" true >"$out/true" 2>&1; then found=yes; break; fi
  echo "podman run ${try:+$try }$image true: $(tail -1 "$out/true")"
done
[[ $found == yes ]] || skip "podman cannot run a container on this machine (last: $(tail -1 "$out/true"))"
needs="${host[*]:-nothing beyond the defaults}"
echo "== this host needs: $needs"

run=(podman run --rm -i --timeout 120 "${host[@]}" --cap-drop=ALL --security-opt no-new-privileges)
[[ -n $binary ]] && run+=(-v "$(realpath "$binary"):/usr/bin/pycell:ro")
caps=(--cap-add=SETUID,SETGID)
seccomp=(--security-opt "seccomp=$profile")
unmask=(--security-opt 'unmask=/proc/*')
# A profile that refuses unshare(2), as Docker's default does: the tree's own without it.
python3 - "$profile" "$out/no-unshare.json" <<'PY'
import json, sys
profile = json.load(open(sys.argv[1]))
for rule in profile["syscalls"]:
    rule["names"] = [name for name in rule["names"] if name != "unshare"]
json.dump(profile, open(sys.argv[2], "w"))
PY

echo "== documented flags: pycell check"
if "${run[@]}" "${caps[@]}" "${seccomp[@]}" "${unmask[@]}" "$image" pycell check >"$out/check" 2>"$out/check.err"; then
  grep -qx 'level: isolated' "$out/check" || fail "check exited 0 without level: isolated"
else
  cat "$out/check" "$out/check.err" >&2; fail "pycell check did not exit 0 with the documented flags"
fi
grep -qE '^ok +execution: ran Python' "$out/check" || fail "check ran no Python"
grep -qE '^ok +execution javascript: ran Node.js' "$out/check" || fail "check ran no JavaScript"
grep -E '^(level|ok +container|ok +execution)' "$out/check" || true

echo "== documented flags: the demo's executions through pycell serve"
python3 "$root/tests/deploy/demo_requests.py" requests >"$out/requests"
"${run[@]}" "${caps[@]}" "${seccomp[@]}" "${unmask[@]}" "$image" <"$out/requests" >"$out/serve" 2>"$out/serve.err" || true
python3 "$root/tests/deploy/demo_requests.py" check "$out/serve" ||
  { tail -5 "$out/serve.err" >&2; fail "serve did not give the demo's results"; }

# A refusal must end (podman's --timeout would end it otherwise) and name what is missing:
# the flag and the Kubernetes field, as the hint table has them.
refusal() {  # NAME FLAG FIELD FLAGS...
  local name=$1 flag=$2 field=$3; shift 3
  echo "== without $name: pycell check"
  local t0=$SECONDS
  "${run[@]}" "$@" "$image" pycell check >"$out/r" 2>&1 && fail "check exited 0 without $name"
  grep -qx 'level: degraded' "$out/r" || fail "check without $name did not end with level: degraded"
  grep -E '^(FAIL|ok +container)|in a container' "$out/r" || true
  grep -qF -- "$flag" "$out/r" || fail "check without $name does not name $flag"
  grep -qF -- "$field" "$out/r" || fail "check without $name does not name $field"
  echo "   ($((SECONDS - t0)) s)"
  echo "== without $name: pycell serve refuses to start"
  local rc=0
  "${run[@]}" "$@" "$image" </dev/null >"$out/s" 2>&1 || rc=$?
  [[ $rc == 3 ]] || fail "serve without $name exited $rc, not 3 (isolation missing)"
  grep -qF -- "$flag" "$out/s" || { head -c 2000 "$out/s" >&2; fail "serve's refusal without $name does not name $flag"; }
}
refusal "the seccomp profile" "seccomp=pycell.json" "seccompProfile: {type: Localhost, localhostProfile: profiles/pycell.json}" \
  "${caps[@]}" "${unmask[@]}"
refusal "the /proc unmask" "unmask=/proc/*" "procMount: Unmasked" "${caps[@]}" "${seccomp[@]}"
refusal "SETUID and SETGID" "--cap-add=SETUID,SETGID" "capabilities: {add: [SETUID, SETGID]}" "${seccomp[@]}" "${unmask[@]}"
refusal "unshare (a profile like Docker's default)" "seccomp=pycell.json" "seccompProfile: {type: Localhost" \
  "${caps[@]}" --security-opt "seccomp=$out/no-unshare.json" "${unmask[@]}"

echo "container test: $(($(date +%s) - started)) s"
[[ $failures == 0 ]] && echo "PASS" || { echo "$failures failure(s)"; exit 1; }
