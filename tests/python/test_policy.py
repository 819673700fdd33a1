"""Tests for src/python/policy.py.

Run: python3 tests/python/test_policy.py  (or python3 -m unittest -v tests/python/test_policy.py)

install() adds a process-wide audit hook that cannot be removed, so every test that
installs a policy runs its snippet in a child interpreter (DRIVER below), the way the
bootstrap runs a program: compiled with filename "<pycell>" and executed in a fresh
__main__ module, in a temporary working directory. The snippets are benign: imports,
files in the temporary directory, a socket that connects only to a closed port on
127.0.0.1. PYCELL_TEST_PYTHON may name the interpreter for the children (default: the
one running the tests), e.g. one that has numpy and pandas.
"""
import ast
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.abspath(os.path.join(HERE, "..", "..", "src", "python", "policy.py"))
PYTHON = os.environ.get("PYCELL_TEST_PYTHON") or sys.executable

# Runs one snippet under a policy; argv: policy.py path, repr of the config dict.
# It uses ast.literal_eval and repr instead of json, so that json is not loaded before
# the snippet runs (one test needs json not yet imported).
DRIVER = r'''
import ast, importlib.util, os, sys, types
cfg = ast.literal_eval(sys.argv[2])
spec = importlib.util.spec_from_file_location("pycell_policy", sys.argv[1])
policy = importlib.util.module_from_spec(spec)
spec.loader.exec_module(policy)
for name in cfg.get("preload", ()):
    importlib.import_module(name)
sys.path.insert(0, os.getcwd())
loaded_before = {name: name in sys.modules for name in cfg.get("probe", ())}
events, earlier = [], []
def emit(event):
    if cfg.get("emitRaises"):
        raise RuntimeError("broken channel")
    events.append(event)
if cfg.get("installTwice"):
    policy.install({"imports": {"deny": ["socket"]}}, earlier.append)
guard = policy.install(cfg.get("policy", {}), emit)
main = types.ModuleType("__main__")
main.__dict__.update({"__builtins__": guard.builtins_module, "SEEN": events})
sys.modules["__main__"] = main
error = None
try:
    exec(compile(cfg["code"], cfg.get("filename", "<pycell>"), "exec", dont_inherit=True),
         main.__dict__)
except BaseException as e:
    error = {"type": type(e).__name__, "message": str(e), "what": getattr(e, "what", None),
             "detail": getattr(e, "detail", None), "base": not isinstance(e, Exception)}
    guard.exception(type(e).__name__, str(e))
guard.close()
import builtins
result = main.__dict__.get("result")
out = {"events": events, "earlier": earlier, "error": error, "violated": guard.violated,
       "first": guard.first_violation, "violations": guard.violations, "stats": guard.stats(),
       "result": result, "loadedBefore": loaded_before,
       "realBuiltins": all(type(getattr(builtins, n)).__name__ == "builtin_function_or_method"
                           for n in ("eval", "exec", "compile", "open", "input"))}
sys.stdout.write("\nRESULT " + repr(out) + "\n")
'''


def run_snippet(code, policy=None, files=None, **options):
    """Runs `code` in a child under `policy`; returns the driver's result dict.
    `files`: {relative path: text} written into the working directory first."""
    config = dict(options, code=code, policy=policy or {})
    with tempfile.TemporaryDirectory() as workdir:
        for rel, text in (files or {}).items():
            path = os.path.join(workdir, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
        proc = subprocess.run([PYTHON, "-I", "-B", "-c", DRIVER, POLICY, repr(config)],
                              cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=120)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return ast.literal_eval(line[len("RESULT "):])
    raise AssertionError("driver failed (rc %s):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))


def importable(module):
    return subprocess.run([PYTHON, "-I", "-c", "import " + module], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def kinds(result, kind):
    return [e for e in result["events"] if e["kind"] == kind]


def load_policy_module():
    """The module itself, for its pure parts (never install() in this process)."""
    import importlib.util
    sys.dont_write_bytecode = True  # no __pycache__ beside the sources
    spec = importlib.util.spec_from_file_location("pycell_policy_pure", POLICY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DENY_SOCKET = {"imports": {"deny": ["socket"]}}


class ImportRules(unittest.TestCase):
    def assertBlocked(self, result, what, detail):
        self.assertIsNotNone(result["error"], result)
        self.assertEqual(result["error"]["type"], "PolicyViolation")
        self.assertTrue(result["error"]["base"], "PolicyViolation must not be an Exception")
        self.assertEqual((result["error"]["what"], result["error"]["detail"]), (what, detail))
        self.assertTrue(result["violated"])
        self.assertEqual((result["first"]["what"], result["first"]["detail"]), (what, detail))
        blocked = kinds(result, "blocked")
        self.assertTrue(blocked, result["events"])
        self.assertEqual((blocked[0]["what"], blocked[0]["detail"]), (what, detail))

    def test_import_statement(self):
        r = run_snippet("import socket", DENY_SOCKET)
        self.assertBlocked(r, "import", "socket")
        self.assertIn("'socket' is blocked by this profile", r["error"]["message"])

    def test_from_import(self):
        self.assertBlocked(run_snippet("from socket import socket", DENY_SOCKET), "import", "socket")

    def test_dunder_import_call(self):
        self.assertBlocked(run_snippet("s = __import__('socket')", DENY_SOCKET), "import", "socket")

    def test_importlib_import_module(self):
        r = run_snippet("import importlib\nimportlib.import_module('socket')", DENY_SOCKET)
        self.assertBlocked(r, "import", "socket")
        r = run_snippet("from importlib import import_module\nimport_module('socket')", DENY_SOCKET)
        self.assertBlocked(r, "import", "socket")

    def test_importlib_dunder_import(self):
        r = run_snippet("import importlib\nimportlib.__import__('socket')", DENY_SOCKET)
        self.assertBlocked(r, "import", "socket")

    def test_module_already_loaded(self):
        # The audit "import" event would not fire for it: the wrapper must still check.
        r = run_snippet("import socket", DENY_SOCKET, preload=["socket"], probe=["socket"])
        self.assertTrue(r["loadedBefore"]["socket"])
        self.assertBlocked(r, "import", "socket")

    def test_name_covers_submodules(self):
        r = run_snippet("import xml.dom.minidom", {"imports": {"deny": ["xml"]}})
        self.assertBlocked(r, "import", "xml.dom.minidom")
        r = run_snippet("import xml.dom.minidom\nresult = xml.dom.minidom.parseString('<a/>').documentElement.tagName",
                        {"imports": {"allow": ["xml"]}})
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], "a")

    def test_deny_does_not_cover_siblings_or_parents(self):
        r = run_snippet("import xml.etree.ElementTree\nimport os.path\nresult = 1",
                        {"imports": {"deny": ["xml.dom", "os.pathx"]}})
        self.assertIsNone(r["error"], r)

    def test_exec_string_is_the_users(self):
        r = run_snippet("exec('import socket')", DENY_SOCKET)
        self.assertBlocked(r, "import", "socket")

    def test_session_cells_are_the_users(self):
        # a session compiles each run's code as "<pycell-N>"
        r = run_snippet("import socket", DENY_SOCKET, filename="<pycell-7>")
        self.assertBlocked(r, "import", "socket")

    def test_import_inside_user_function(self):
        r = run_snippet("def f():\n    import socket\nf()", DENY_SOCKET)
        self.assertBlocked(r, "import", "socket")

    def test_library_imports_are_not_checked(self):
        # smtplib imports socket itself: only the user's own imports are checked.
        r = run_snippet("import smtplib\nresult = 'socket' in __import__('sys').modules",
                        DENY_SOCKET)
        self.assertIsNone(r["error"], r)
        self.assertTrue(r["result"])
        self.assertFalse(r["violated"])

    def test_allowed_module_imports_its_dependencies(self):
        r = run_snippet("import json\nresult = json.loads('[1, {\"a\": 2}]')",
                        {"imports": {"allow": ["json"]}}, probe=["json", "json.decoder"])
        self.assertFalse(r["loadedBefore"]["json"], "json must be imported by the snippet")
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], [1, {"a": 2}])

    def test_allow_list_blocks_everything_else(self):
        r = run_snippet("import json\nimport os", {"imports": {"allow": ["json"]}})
        self.assertBlocked(r, "import", "os")

    def test_allow_list_from_import_of_allowed_submodule(self):
        policy = {"imports": {"allow": ["xml.etree"]}}
        r = run_snippet("from xml import etree\nfrom xml.etree import ElementTree\nresult = 1", policy)
        self.assertIsNone(r["error"], r)
        self.assertBlocked(run_snippet("from xml import dom", policy), "import", "xml")

    def test_future_import_always_allowed(self):
        r = run_snippet("from __future__ import annotations\nresult = 1",
                        {"imports": {"allow": ["json"], "deny": ["socket"]}})
        self.assertIsNone(r["error"], r)

    def test_deny_wins_over_allow(self):
        r = run_snippet("import xml.dom", {"imports": {"allow": ["xml"], "deny": ["xml.dom"]}})
        self.assertBlocked(r, "import", "xml.dom")

    def test_from_import_of_denied_submodule(self):
        r = run_snippet("from xml import dom", {"imports": {"deny": ["xml.dom"]}})
        self.assertBlocked(r, "import", "xml.dom")

    def test_c_level_lazy_import_under_allow_list(self):
        # datetime.strptime imports _strptime from C, with the user's frame on top.
        r = run_snippet("import datetime\nresult = datetime.datetime.strptime('2021', '%Y').year",
                        {"imports": {"allow": ["datetime"]}})
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], 2021)

    def test_pickle_cannot_smuggle_a_denied_module(self):
        # Protocol 0 GLOBAL opcode naming subprocess.Popen: loading imports the module
        # (the class is only looked up, never called).
        r = run_snippet("import pickle\npickle.loads(b'csubprocess\\nPopen\\n.')",
                        {"imports": {"deny": ["subprocess"]}})
        self.assertBlocked(r, "import", "subprocess")

    def test_user_package_with_relative_imports(self):
        files = {"pkg/__init__.py": "from . import util\nfrom .util import VALUE\n",
                 "pkg/util.py": "import json\nVALUE = json.dumps([1])\n",
                 "pkg/sub/__init__.py": "from .. import util as parent\nX = parent.VALUE\n"}
        r = run_snippet("import pkg, pkg.sub\nresult = [pkg.VALUE, pkg.sub.X]",
                        {"imports": {"allow": ["json"]}}, files=files)
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], ["[1]", "[1]"])
        imports = [e["module"] for e in kinds(r, "import")]
        self.assertIn("pkg.util", imports)

    def test_user_file_imports_are_checked(self):
        r = run_snippet("import helper", DENY_SOCKET, files={"helper.py": "import socket\n"})
        self.assertBlocked(r, "import", "socket")

    def test_install_twice_replaces_the_guard(self):
        r = run_snippet("import socket\nimport json\nresult = 1", {}, installTwice=True)
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["earlier"], [])
        modules = [e["module"] for e in kinds(r, "import")]
        self.assertEqual(modules, ["socket", "json"])  # once each: one hook, one guard


@unittest.skipUnless(importable("numpy"), "numpy is not importable by %s" % PYTHON)
class ScientificStack(unittest.TestCase):
    def test_numpy_under_allow_list(self):
        r = run_snippet("import numpy as np\nresult = float(np.arange(5).sum() + np.linalg.norm(np.ones(4)))",
                        {"imports": {"allow": ["numpy"]}})
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], 12.0)

    def test_numpy_preloaded_under_datascience_list(self):
        allow = ["numpy", "pandas", "matplotlib", "math", "statistics", "json", "re", "datetime"]
        r = run_snippet("import numpy as np\nresult = float(np.mean(np.array([1.0, 2.0, 3.0])))",
                        {"imports": {"allow": allow}, "builtins": {"remove": ["eval", "exec"]}},
                        preload=["numpy"])
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], 2.0)

    @unittest.skipUnless(importable("pandas"), "pandas is not importable")
    def test_pandas_under_allow_list(self):
        code = ("import pandas as pd\n"
                "df = pd.DataFrame({'a': [1, 2, 1], 'b': [1.0, 2.0, 3.0]})\n"
                "df.to_csv('out.csv')\n"
                "back = pd.read_csv('out.csv')\n"
                "result = [float(df.groupby('a').sum()['b'].sum()), float(df.values.sum()),\n"
                "          str(pd.Timestamp('2020-01-02') + pd.Timedelta(days=1)), list(back.shape)]")
        r = run_snippet(code, {"imports": {"allow": ["pandas"]}})
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], [6.0, 10.0, "2020-01-03 00:00:00", [3, 3]])
        files = kinds(r, "file")
        self.assertIn(("out.csv", "w", True), [(f["path"], f["mode"], f["allowed"]) for f in files])


class BuiltinRules(unittest.TestCase):
    def test_removed_builtin_raises_clear_message(self):
        r = run_snippet("x = eval('1 + 1')", {"builtins": {"remove": ["eval"]}})
        self.assertEqual(r["error"]["type"], "PolicyViolation")
        self.assertEqual(r["error"]["message"], "builtin 'eval' is disabled by this profile")
        self.assertEqual(r["first"]["what"], "builtin")
        blocked = kinds(r, "blocked")
        self.assertEqual([(b["what"], b["detail"]) for b in blocked], [("builtin", "eval")])

    def test_other_builtins_keep_working(self):
        r = run_snippet("result = [len('abc'), sorted({3, 1}), repr(print)]",
                        {"builtins": {"remove": ["eval", "exec", "open"]}})
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"][:2], [3, [1, 3]])

    def test_library_code_keeps_real_builtins(self):
        # namedtuple uses eval, dataclasses exec, pathlib and tempfile open.
        code = ("import collections, dataclasses, pathlib, json\n"
                "P = collections.namedtuple('P', 'x y')\n"
                "@dataclasses.dataclass\n"
                "class D:\n"
                "    a: int = 4\n"
                "pathlib.Path('data.json').write_text(json.dumps([1, 2]))\n"
                "result = [P(1, 2).y, D().a, json.loads(pathlib.Path('data.json').read_text())]")
        r = run_snippet(code, {"builtins": {"remove": ["eval", "exec", "compile", "open"]}})
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], [2, 4, [1, 2]])
        self.assertTrue(r["realBuiltins"], "the builtins module must be left alone")
        self.assertFalse(r["violated"])

    def test_import_builtins_gives_the_users_copy(self):
        r = run_snippet("import builtins\nbuiltins.eval('1')", {"builtins": {"remove": ["eval"]}})
        self.assertEqual((r["error"]["what"], r["error"]["detail"]), ("builtin", "eval"))
        r = run_snippet("from builtins import open as o\no('x', 'w')", {"builtins": {"remove": ["open"]}})
        self.assertEqual((r["error"]["what"], r["error"]["detail"]), ("builtin", "open"))

    def test_back_door_to_real_eval_is_caught(self):
        r = run_snippet("print.__self__.eval('1')", {"builtins": {"remove": ["eval", "exec"]}})
        self.assertEqual(r["error"]["type"], "PolicyViolation")
        self.assertEqual(r["error"]["what"], "builtin")

    def test_back_door_to_real_open_is_caught(self):
        r = run_snippet("import io\nio.open('x.txt', 'w')", {"builtins": {"remove": ["open"]}})
        self.assertEqual((r["error"]["what"], r["error"]["detail"]), ("builtin", "open"))

    def test_dunder_import_removed_keeps_import_statements(self):
        code = "import json\nfrom json import dumps\nimport os.path as p\nresult = dumps([1])"
        r = run_snippet(code, {"builtins": {"remove": ["__import__"]}})
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], "[1]")
        r = run_snippet("import json\nx = __import__('json')", {"builtins": {"remove": ["__import__"]}})
        self.assertEqual(r["error"]["message"], "builtin '__import__' is disabled by this profile")
        # lazy imports by C code the user calls are not direct calls
        r = run_snippet("import time\nresult = time.strptime('2022', '%Y').tm_year",
                        {"builtins": {"remove": ["__import__"]}})
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], 2022)

    def test_user_modules_get_the_users_builtins(self):
        files = {"helper.py": "def run():\n    return eval('1')\n"}
        r = run_snippet("import helper\nhelper.run()", {"builtins": {"remove": ["eval"]}}, files=files)
        self.assertEqual((r["error"]["what"], r["error"]["detail"]), ("builtin", "eval"))

    def test_caught_violation_is_still_recorded(self):
        code = ("try:\n    eval('1')\nexcept BaseException as e:\n    result = type(e).__name__\n"
                "try:\n    import socket\nexcept BaseException:\n    pass\n")
        r = run_snippet(code, {"builtins": {"remove": ["eval"]}, "imports": {"deny": ["socket"]}})
        self.assertIsNone(r["error"])
        self.assertEqual(r["result"], "PolicyViolation")
        self.assertTrue(r["violated"])
        self.assertEqual(r["first"]["detail"], "eval")
        self.assertEqual([v["detail"] for v in r["violations"]], ["eval", "socket"])

    def test_except_exception_does_not_swallow_it(self):
        r = run_snippet("try:\n    import socket\nexcept Exception:\n    result = 'swallowed'", DENY_SOCKET)
        self.assertIsNone(r["result"])
        self.assertEqual(r["error"]["type"], "PolicyViolation")


class Activity(unittest.TestCase):
    def closed_port(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        return port

    def test_file_import_and_network_events(self):
        port = self.closed_port()
        code = ("with open('notes.txt', 'w') as f:\n    f.write('hi')\n"
                "import json\n"
                "import socket\n"
                "s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
                "try:\n    s.connect(('127.0.0.1', %d))\nexcept OSError:\n    pass\n"
                "s.close()\nresult = 1" % port)
        r = run_snippet(code, {})
        self.assertIsNone(r["error"], r)
        self.assertEqual([(e["path"], e["mode"], e["allowed"]) for e in kinds(r, "file")],
                         [("notes.txt", "w", True)])
        self.assertEqual([e["module"] for e in kinds(r, "import")], ["json", "socket"])
        network = [(e["operation"], e["address"], e["allowed"]) for e in kinds(r, "network")]
        self.assertEqual(network, [("socket", "AF_INET", False),
                                   ("connect", "127.0.0.1:%d" % port, False)])
        for event in r["events"]:
            self.assertIsInstance(event["t"], float)
        times = [e["t"] for e in r["events"]]
        self.assertEqual(times, sorted(times))
        # What the server's summary is made of: each event once, with the fields it reads.
        self.assertEqual(sorted(e["kind"] for e in r["events"]), ["file", "import", "import", "network", "network"])
        self.assertEqual(sorted(kinds(r, "file")[0]), ["allowed", "kind", "mode", "path", "t"])
        self.assertEqual(sorted(kinds(r, "network")[0]), ["address", "allowed", "kind", "operation", "t"])

    def test_network_allowed_flag(self):
        r = run_snippet("import socket\nsocket.socket().close()\nresult = 1", {"network": True})
        self.assertEqual([e["allowed"] for e in kinds(r, "network")], [True])

    def test_emit_is_called_as_events_happen(self):
        code = ("import json\n"
                "result = [e.get('module') for e in SEEN if e['kind'] == 'import']\n"
                "open('a.txt', 'w').close()\n"
                "result.append(SEEN[-1]['kind'])")
        r = run_snippet(code, {})
        self.assertEqual(r["result"], ["json", "file"])

    def outside_dir(self):
        """A scratch directory outside the working directory, /tmp and the interpreter's
        trees (beside this file, or in the home directory); removed after the test."""
        excluded = [os.path.realpath(p) for p in ("/tmp", tempfile.gettempdir(), sys.prefix,
                                                  sys.base_prefix)]
        for base in (HERE, os.path.expanduser("~")):
            real = os.path.realpath(base)
            if not any(real == e or real.startswith(e.rstrip("/") + "/") for e in excluded):
                break
        else:
            self.skipTest("no writable directory outside /tmp and the interpreter")
        path = tempfile.mkdtemp(prefix=".policy-test-", dir=base)
        self.addCleanup(shutil.rmtree, path, True)
        with open(os.path.join(path, "in.txt"), "w") as f:
            f.write("x")
        return path

    def tmp_file(self):
        """A fresh file name directly in /tmp, removed after the test."""
        fd, path = tempfile.mkstemp(prefix="policy-test-", dir="/tmp")
        os.close(fd)
        self.addCleanup(os.remove, path)
        return os.path.basename(path)

    def test_file_modes_and_roots(self):
        outside = os.path.join(self.outside_dir(), "in.txt")
        in_tmp = self.tmp_file()
        code = ("import os\n"
                "open('a.bin', 'wb').close()\n"
                "open('a.bin', 'r+b').close()\n"
                "open('a.bin', 'ab').close()\n"
                "os.close(os.open('a.bin', os.O_WRONLY | os.O_APPEND))\n"
                "os.close(os.open('b.bin', os.O_RDWR | os.O_CREAT | os.O_TRUNC))\n"
                "open('/tmp/../tmp/%s', 'w').close()\n"
                "open(%r).read()\n"
                "open('/tmp/..' + %r).read()\n"
                "result = 1" % (in_tmp, outside, outside))
        r = run_snippet(code, {})
        self.assertIsNone(r["error"], r)
        seen = [(e["path"], e["mode"], e["allowed"]) for e in kinds(r, "file")]
        self.assertEqual(seen, [
            ("a.bin", "w", True), ("a.bin", "r+", True), ("a.bin", "a", True),
            # os.open of a.bin for appending again: recorded once per path and mode
            ("b.bin", "w+", True),
            ("/tmp/../tmp/" + in_tmp, "w", True),
            (outside, "r", False),
            ("/tmp/.." + outside, "r", False),  # resolved before the check
        ])
        r = run_snippet("open(%r).read()\nopen(%r, 'a').close()" % (outside, outside),
                        {"files": {"allowRead": [os.path.dirname(outside)]}})
        self.assertEqual([(e["mode"], e["allowed"]) for e in kinds(r, "file")],
                         [("r", True), ("a", False)])
        r = run_snippet("open(%r, 'a').close()" % outside,
                        {"files": {"allowWrite": [os.path.dirname(outside)]}})
        self.assertEqual([(e["mode"], e["allowed"]) for e in kinds(r, "file")], [("a", True)])

    def test_enforce_files(self):
        outside = os.path.join(self.outside_dir(), "in.txt")
        r = run_snippet("open(%r).read()" % outside, {"enforceFiles": True})
        self.assertEqual((r["error"]["what"], r["error"]["detail"]), ("file", outside))
        self.assertIn("not allowed by this profile", r["error"]["message"])
        self.assertEqual(kinds(r, "blocked")[0]["detail"], outside)
        # the working directory, /tmp and the interpreter's files stay readable
        code = ("open('ok.txt', 'w').close()\nimport json, os\n"
                "open(os.path.join(os.path.dirname(json.__file__), '__init__.py')).close()\n"
                "result = 1")
        r = run_snippet(code, {"enforceFiles": True})
        self.assertIsNone(r["error"], r)

    def test_process_events(self):
        r = run_snippet("import os\nos.kill(os.getpid(), 0)\nresult = 1", {})
        process = kinds(r, "process")
        self.assertEqual(len(process), 1)
        self.assertEqual(process[0]["operation"], "os.kill")
        self.assertIn("signal=0", process[0]["detail"])

    def test_exception_helper(self):
        r = run_snippet("raise ValueError('bad value')", {})
        self.assertEqual([(e["type"], e["message"]) for e in kinds(r, "exception")],
                         [("ValueError", "bad value")])

    def test_event_cap(self):
        code = "for i in range(10):\n    open('f%d.txt' % i, 'w').close()\nresult = 1"
        r = run_snippet(code, {"maxEvents": 3})
        self.assertEqual([e["kind"] for e in r["events"]], ["file", "file", "file", "truncated"])
        self.assertEqual(r["stats"]["dropped"], 7)
        # violations are still reported after the cap
        r = run_snippet(code + "\nimport socket", {"maxEvents": 3, "imports": {"deny": ["socket"]}})
        self.assertEqual(r["events"][-1]["kind"], "blocked")
        self.assertTrue(r["violated"])

    def test_broken_emit_does_not_break_the_program(self):
        r = run_snippet("import json\nopen('x', 'w').close()\nresult = 5", {}, emitRaises=True)
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["result"], 5)
        self.assertGreaterEqual(r["stats"]["emitErrors"], 2)

    def test_events_from_threads(self):
        code = ("import threading\n"
                "t = threading.Thread(target=lambda: open('thread.txt', 'w').close())\n"
                "t.start(); t.join()\nresult = 1")
        r = run_snippet(code, {})
        self.assertIn("thread.txt", [e["path"] for e in kinds(r, "file")])

    def test_import_overhead_is_small(self):
        code = ("import time\nt = time.perf_counter()\n"
                "for i in range(20000):\n    import json\n"
                "result = time.perf_counter() - t")
        r = run_snippet(code, {"imports": {"deny": ["socket"]}})
        self.assertLess(r["result"], 1.0)  # about 2 microseconds each here


class PureParts(unittest.TestCase):
    """The constants need no install()."""

    def test_violation_is_not_an_exception(self):
        policy = load_policy_module()
        self.assertTrue(issubclass(policy.PolicyViolation, BaseException))
        self.assertFalse(issubclass(policy.PolicyViolation, Exception))


if __name__ == "__main__":
    unittest.main()
