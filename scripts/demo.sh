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
python3 - "$pycell" <<'PY'
import json, subprocess, sys
code = 'import platform, os\nprint("hello from Python", platform.python_version(), "as uid", os.getuid(), "pid", os.getpid())\nsum(range(10))'
requests = [
    {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
    {"jsonrpc": "2.0", "id": 2, "method": "execute", "params": {"code": code}},
    {"jsonrpc": "2.0", "id": 3, "method": "execute",
     "params": {"code": "import pandas as pd\npd.DataFrame({'a': [1, 2, 1], 'b': [1.0, 2.0, 3.0]}).groupby('a').b.sum().to_dict()",
                "profile": "datascience"}},
    {"jsonrpc": "2.0", "id": 4, "method": "shutdown"},
    {"jsonrpc": "2.0", "method": "exit"},
]
stdin = "".join(json.dumps(r) + "\n" for r in requests)
out = subprocess.run([sys.argv[1], "serve"], input=stdin, capture_output=True, text=True, timeout=120).stdout
for line in out.splitlines():
    msg = json.loads(line)
    if msg.get("id") == 1:
        print("isolation:", json.dumps(msg["result"]["isolation"]))
    elif msg.get("id") in (2, 3):
        r = msg.get("result") or {}
        print("execute %d: status %s | value %s | wallMs %s" % (msg["id"], r.get("status"), r.get("value"), r.get("usage", {}).get("wallMs")))
        if r.get("stdout"):
            print("  stdout:", r["stdout"], end="")
        if "error" in msg:
            print("  error:", msg["error"])
PY
