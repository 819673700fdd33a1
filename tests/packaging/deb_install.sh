#!/usr/bin/env bash
# packaging_deb_install: the .deb installs on this machine with `apt-get install ./pycell_*.deb`
# (its dependencies already here: no network), `man pycell` finds the page, the installed
# `pycell check` passes and runs an execution through `pycell serve`, and `apt-get remove`
# leaves none of the package's files. Root only. It never touches a pycell it did not install.
# Arguments: BUILD_DIR SOURCE_DIR VERSION.
set -euo pipefail
source "$(dirname "$0")/common.sh"
export DEBIAN_FRONTEND=noninteractive

[[ $(id -u) == 0 ]] || skip "not root: installing a package needs root (run ctest as root)"
for tool in apt-get dpkg dpkg-query man python3; do
  command -v "$tool" >/dev/null || skip "$tool is not installed"
done

# dpkg takes its locks with fcntl; holding one here for a moment says whether someone else does.
dpkg_busy() {
  python3 - <<'PY'
import fcntl, os, sys
for path in ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock"):
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)  # closing releases it
    except OSError as e:
        print(f"{path}: {e.strerror}")
        sys.exit(0)
sys.exit(1)
PY
}
if busy=$(dpkg_busy); then skip "dpkg is in use by another process ($busy)"; fi

status=$(dpkg-query -W -f='${db:Status-Abbrev}' pycell 2>/dev/null || true)
if [[ -n ${status// /} && $status != un* ]]; then
  skip "refusing to run: a pycell package is already on this machine (dpkg status '$status',
version $(dpkg-query -W -f='${Version}' pycell)). This test installs and removes its own; it will
not replace or remove that one. Remove it first (apt-get purge pycell) to run this test."
fi

deb=$(build_deb)
echo "built $(basename "$deb")"
# dpkg would silently take over files no package owns (a `cmake --install --prefix /usr`),
# and then remove them: refuse instead.
dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print $6}' | sed 's|^\./|/|' >"$scratch/package-files"
while read -r path; do
  [[ ! -e $path && ! -L $path ]] || skip "refusing to run: $path exists and no pycell package owns it (a cmake --install?); remove it first"
done <"$scratch/package-files"

# Recommends are installed with the package unless they are missing here: fetching them would
# need the network, which a test machine may not have.
recommends=()
missing=()
IFS=', ' read -r -a recommends <<<"$(dpkg-deb -f "$deb" Recommends)"
for package in "${recommends[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
install_options=(-y -q)
if ((${#missing[@]})); then
  echo "note: recommended ${missing[*]} not installed here: installing without recommends"
  install_options+=(--no-install-recommends)
fi

# From here on pycell is ours: whatever happens, it goes again.
cleanup_steps=("remove_pycell >/dev/null 2>&1" "${cleanup_steps[@]}")
remove_pycell() {
  dpkg-query -W -f='${db:Status-Abbrev}' pycell 2>/dev/null | grep -q '^[^u]' || return 0
  apt-get purge -y -q pycell
}
if ! apt-get install "${install_options[@]}" "$deb" >"$scratch/install.log" 2>&1; then
  cat "$scratch/install.log" >&2
  grep -q 'Could not get lock' "$scratch/install.log" && skip "dpkg became busy (another process took its lock)"
  fail "apt-get install $(basename "$deb") failed"
fi
tail -n 3 "$scratch/install.log"
[[ $(dpkg-query -W -f='${db:Status-Abbrev}|${Version}' pycell) == "ii |$version" ]] ||
  fail "pycell $version is not installed after apt-get install: $(dpkg-query -W -f='${db:Status-Abbrev} ${Version}' pycell)"
dpkg -L pycell >"$scratch/owned"

# --- the installed tool ------------------------------------------------------------------
[[ $(command -v pycell) == /usr/bin/pycell ]] || fail "pycell on PATH is '$(command -v pycell)', not /usr/bin/pycell"
page=$(man -w pycell) || fail "man -w pycell finds no page"
[[ $page == /usr/share/man/man1/pycell.1.gz ]] || fail "man -w pycell finds $page, not the package's"
MANPAGER=cat MANWIDTH=80 man pycell 2>&1 | tee "$scratch/man.txt" | sed -n '1,6p'
grep -q 'pycell serve' "$scratch/man.txt" || fail "man pycell does not show the page"

set +e
/usr/bin/pycell check >"$scratch/check.txt" 2>&1
check_status=$?
set -e
cat "$scratch/check.txt"
((check_status == 0)) || fail "the installed pycell check exits $check_status"
grep -q 'level: isolated' "$scratch/check.txt" || fail "the installed pycell check does not print 'level: isolated'"

# The demo's first execution, through the installed server.
python3 - <<'PY' || fail "an execution through the installed pycell serve did not return ok"
import json, subprocess
requests = [
    {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
    {"jsonrpc": "2.0", "id": 2, "method": "execute",
     "params": {"code": "import platform\nprint('hello from Python', platform.python_version())\nsum(range(10))"}},
    {"jsonrpc": "2.0", "id": 3, "method": "shutdown"},
    {"jsonrpc": "2.0", "method": "exit"},
]
stdin = "".join(json.dumps(r) + "\n" for r in requests)
done = subprocess.run(["/usr/bin/pycell", "serve"], input=stdin, capture_output=True, text=True, timeout=120)
replies = {m.get("id"): m for m in map(json.loads, done.stdout.splitlines())}
result = replies.get(2, {}).get("result") or {}
print("execute: status %s | value %s | stdout %r" % (result.get("status"), result.get("value"), result.get("stdout")))
assert done.returncode == 0, f"pycell serve exited {done.returncode}: {done.stderr}"
assert result.get("status") == "ok" and result.get("value") == 45, replies.get(2)
PY

# --- removal leaves nothing --------------------------------------------------------------
apt-get remove -y -q pycell >"$scratch/remove.log" 2>&1 || { cat "$scratch/remove.log" >&2; fail "apt-get remove pycell failed"; }
tail -n 2 "$scratch/remove.log"
status=$(dpkg-query -W -f='${db:Status-Abbrev}' pycell 2>/dev/null || true)
[[ $status != ii* ]] || fail "pycell is still installed after apt-get remove"
[[ ! -e /usr/bin/pycell ]] || fail "/usr/bin/pycell is still there after apt-get remove"
# A directory may stay when another package owns it too, or when it holds files not ours.
left=0
while read -r path; do
  [[ -e $path || -L $path ]] || continue
  if [[ -d $path && ! -L $path ]]; then
    dpkg -S "$path" >/dev/null 2>&1 && continue
    [[ -n $(ls -A "$path") ]] && continue
  fi
  echo "left behind: $path" >&2
  left=1
done <"$scratch/owned"
((left == 0)) || fail "apt-get remove left files of the package"
echo "removed: none of the $(wc -l <"$scratch/owned") paths of dpkg -L pycell is left"
echo "PASS"
