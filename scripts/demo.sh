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
    {"jsonrpc": "2.0", "id": 4, "method": "execute", "params": {"code": "import json\nimport socket"}},
    {"jsonrpc": "2.0", "id": 5, "method": "session/create", "params": {"session": "demo"}},
    {"jsonrpc": "2.0", "id": 6, "method": "execute", "params": {"session": "demo", "code": "total = 40"}},
    {"jsonrpc": "2.0", "id": 7, "method": "execute", "params": {"session": "demo", "code": "total += 2\ntotal"}},
    {"jsonrpc": "2.0", "id": 8, "method": "analyze", "params": {"code": "import subprocess\nx = (\n"}},
    {"jsonrpc": "2.0", "id": 10, "method": "execute",
     "params": {"language": "javascript",
                "code": "console.log('hello from Node.js', process.version, 'as uid', process.getuid());\n[1, 2, 3].map(x => x * 2)"}},
    {"jsonrpc": "2.0", "id": 9, "method": "shutdown"},
    {"jsonrpc": "2.0", "method": "exit"},
]
stdin = "".join(json.dumps(r) + "\n" for r in requests)
out = subprocess.run([sys.argv[1], "serve"], input=stdin, capture_output=True, text=True, timeout=120).stdout
for line in out.splitlines():
    msg = json.loads(line)
    if msg.get("id") == 1:
        print("isolation:", json.dumps(msg["result"]["isolation"]))
    elif msg.get("id") in (2, 3, 4, 6, 7, 10):
        r = msg.get("result") or {}
        where = " (session %s)" % r["session"]["id"] if r.get("session") else ""
        print("execute %d%s: status %s | value %s | wallMs %s" % (msg["id"], where, r.get("status"), r.get("value"), r.get("usage", {}).get("wallMs")))
        if r.get("stdout"):
            print("  stdout:", r["stdout"], end="")
        if r.get("status") == "policy_violation":
            print("  error:", r["error"]["message"], "| activity:", json.dumps({k: r["activity"][k] for k in ("imports", "blocked")}))
        if "error" in msg:
            print("  error:", msg["error"])
    elif msg.get("id") == 5:
        print("session/create:", json.dumps(msg.get("result") or msg.get("error")))
    elif msg.get("id") == 8:
        for d in (msg.get("result") or {}).get("diagnostics", []):
            print("analyze: line %d:%d %s: %s" % (d["range"]["start"]["line"] + 1, d["range"]["start"]["character"], d["code"], d["message"]))
PY
