"""The demo's executions (scripts/demo.sh) for `pycell serve` in a container, and their check.

    python3 demo_requests.py requests        # the NDJSON requests, on stdout
    python3 demo_requests.py check ANSWERS   # exits 1 unless each answer is the expected one
"""
import json
import sys

# id -> (params of execute or session/create, what its result must hold)
EXPECTED = {
    2: ({"code": "import platform\nprint('hello from Python', platform.python_version())\nsum(range(10))"},
        {"status": "ok", "value": 45}),
    3: ({"code": "import pandas as pd\npd.DataFrame({'a': [1, 2, 1], 'b': [1.0, 2.0, 3.0]}).groupby('a').b.sum().to_dict()",
         "profile": "datascience"},
        {"status": "ok", "value": {"1": 4.0, "2": 2.0}}),
    4: ({"code": "import json\nimport socket"}, {"status": "policy_violation"}),
    6: ({"session": "demo", "code": "total = 40"}, {"status": "ok"}),
    7: ({"session": "demo", "code": "total += 2\ntotal"}, {"status": "ok", "value": 42}),
    10: ({"language": "javascript", "code": "console.log('hello from Node.js', process.version);\n[1, 2, 3].map(x => x * 2)"},
         {"status": "ok", "value": [2, 4, 6]}),
}


def requests():
    yield {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    yield {"jsonrpc": "2.0", "id": 5, "method": "session/create", "params": {"session": "demo"}}
    for rid, (params, _) in sorted(EXPECTED.items()):
        yield {"jsonrpc": "2.0", "id": rid, "method": "execute", "params": params}
    yield {"jsonrpc": "2.0", "id": 99, "method": "shutdown"}
    yield {"jsonrpc": "2.0", "method": "exit"}


def check(path):
    answers = {}
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if line.startswith("{"):
            message = json.loads(line)
            if "id" in message:
                answers[message["id"]] = message
    ok = True
    level = ((answers.get(1) or {}).get("result") or {}).get("isolation", {}).get("level")
    print("initialize: isolation level", level)
    if level != "isolated":
        ok = False
    for rid, (_, want) in sorted(EXPECTED.items()):
        result = (answers.get(rid) or {}).get("result") or {}
        got = {key: result.get(key) for key in want}
        good = got == want
        ok = ok and good
        print("execute %d: %s %s%s" % (rid, "ok  " if good else "FAIL", json.dumps(got),
                                       "" if good else " (want %s; answer %s)" % (json.dumps(want), json.dumps(answers.get(rid))[:300])))
    return ok


if __name__ == "__main__":
    if sys.argv[1:] == ["requests"]:
        for request in requests():
            print(json.dumps(request))
    elif len(sys.argv) == 3 and sys.argv[1] == "check":
        sys.exit(0 if check(sys.argv[2]) else 1)
    else:
        sys.exit(__doc__)
