#!/usr/bin/env bash
# The image in podman, as docs/CONTAINERS.md documents it. Not a default ctest: it needs
# the image (bash scripts/image.sh: minutes, downloads from deb.debian.org). As root:
#
#   bash scripts/image.sh && bash tests/deploy/container_test.sh [IMAGE]
#
# 1. With the documented flags, `pycell check` exits 0 with level: isolated, and
#    `pycell serve` answers an execute with status ok and the value.
# 2. Without the seccomp profile, pycell must refuse and name it (seccomp, the flag).
# 3. Without the /proc unmask, pycell must refuse and name it (unmask / procMount).
# PYCELL_PODMAN_FLAGS adds flags a host itself needs (docs/CONTAINERS.md, "This machine's
# own quirks"), e.g. "--runtime runc --network none --ulimit nofile=20000:20000".
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
image=${1:-localhost/pycell:$(sed -nE 's/^project\(pycell VERSION ([0-9.]+).*/\1/p' "$root/CMakeLists.txt")}
profile=$root/deploy/seccomp/pycell.json
read -r -a host <<<"${PYCELL_PODMAN_FLAGS:-}"
# podman's own --timeout ends the container (killing the client would leave it running).
base=(podman run --rm -i --timeout 120 "${host[@]}" --cap-drop=ALL --cap-add=SETUID,SETGID
      --security-opt no-new-privileges)
seccomp=(--security-opt "seccomp=$profile")
unmask=(--security-opt 'unmask=/proc/*')
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
podman image exists "$image" || { echo "no image $image: bash scripts/image.sh first" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== documented flags: pycell check"
if "${base[@]}" "${seccomp[@]}" "${unmask[@]}" "$image" pycell check >"$out/check" 2>"$out/check.err"; then
  grep -qx 'level: isolated' "$out/check" || fail "check exited 0 without level: isolated"
else
  cat "$out/check" "$out/check.err" >&2; fail "pycell check did not exit 0 with the documented flags"
fi
grep -E '^(level|ok    execution)' "$out/check" || true

echo "== documented flags: one execute through pycell serve"
printf '%s\n' '{"jsonrpc":"2.0","id":1,"method":"execute","params":{"code":"x = 6*7\nx"}}' \
  '{"jsonrpc":"2.0","id":2,"method":"shutdown"}' |
  "${base[@]}" "${seccomp[@]}" "${unmask[@]}" "$image" >"$out/serve" 2>"$out/serve.err" || true
python3 - "$out/serve" <<'PY' || fail "serve did not answer the execute with status ok, value 42"
import json, sys
answers = {m.get("id"): m for m in map(json.loads, open(sys.argv[1]).read().splitlines())}
r = answers[1]["result"]
assert r["status"] == "ok" and r["value"] == 42, r
print("execute: status", r["status"], "value", r["value"])
PY

# A refusal must end (podman's --timeout would otherwise end it) and name what is missing.
refusal() {  # NAME PATTERN FLAGS...
  local name=$1 pattern=$2; shift 2
  echo "== without $name"
  "${base[@]}" "$@" "$image" pycell check >"$out/r" 2>&1 && fail "check exited 0 without $name"
  grep -qE 'level: (isolated|degraded)' "$out/r" || fail "check without $name did not finish (no level line)"
  grep -qiE "$pattern" "$out/r" || { sort "$out/r" | uniq | head -5 >&2; fail "check without $name does not name it ($pattern)"; }
}
refusal "the seccomp profile" 'seccomp=|seccompProfile' "${unmask[@]}"
refusal "the /proc unmask" 'unmask|systempaths|procMount' "${seccomp[@]}"

[[ $failures == 0 ]] && echo "PASS" || { echo "$failures failure(s)"; exit 1; }
