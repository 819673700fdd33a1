#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: install, build, then start the real server and
# send it an `execute` over newline-delimited JSON-RPC, printing what comes back.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/install-deps.sh"
bash "$root/scripts/build.sh"
pycell=${BUILD_DIR:-$root/build}/pycell
echo "== pycell check"
"$pycell" check || true
echo "== execute through pycell serve (NDJSON)"
code='import platform, os\nprint("hello from", platform.python_version(), "as uid", os.getuid(), "pid", os.getpid())\nsum(range(10))'
printf '%s\n' \
  '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}' \
  "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"execute\",\"params\":{\"code\":\"$code\"}}" \
  '{"jsonrpc":"2.0","id":3,"method":"shutdown"}' \
  '{"jsonrpc":"2.0","method":"exit"}' |
  "$pycell" serve | python3 -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("id") == 1:
        print("isolation:", json.dumps(msg["result"]["isolation"]))
    elif msg.get("id") == 2:
        r = msg["result"]
        print("status:", r["status"], "| value:", r["value"], "| wallMs:", r["usage"]["wallMs"])
        print("stdout:", r["stdout"], end="")
'
