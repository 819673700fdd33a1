"""Tests for src/python/analyze.py.

Run: python3 tests/python/test_analyze.py  (or python3 -m unittest -v tests/python/test_analyze.py)
"""
import ast
import importlib.util
import json
import os
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ANALYZE_PATH = os.path.abspath(os.path.join(HERE, "..", "..", "src", "python", "analyze.py"))

sys.dont_write_bytecode = True  # no __pycache__ beside the sources
_spec = importlib.util.spec_from_file_location("pycell_analyze", ANALYZE_PATH)
analyze_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(analyze_module)
analyze = analyze_module.analyze

DENY = {"imports": {"deny": ["socket", "subprocess", "ctypes"]}}


def brief(diagnostics):
    """(code, start line, start char, end line, end char) of each diagnostic."""
    out = []
    for d in diagnostics:
        s, e = d["range"]["start"], d["range"]["end"]
        out.append((d["code"], s["line"], s["character"], e["line"], e["character"]))
    return out


# Python 3.9's SyntaxError has no end position: the range is then one character wide.
OLD_SYNTAX_ERRORS = sys.version_info < (3, 10)


def utf16(text):
    return len(text.encode("utf-16-le")) // 2


class Shape(unittest.TestCase):
    def test_lsp_shape(self):
        [d] = analyze("import socket\n", DENY)
        self.assertEqual(set(d), {"range", "severity", "code", "source", "message"})
        self.assertEqual(d["source"], "pycell")
        self.assertEqual(d["severity"], 1)
        self.assertEqual(d["code"], "forbidden-import")
        self.assertEqual(d["range"], {"start": {"line": 0, "character": 7},
                                      "end": {"line": 0, "character": 13}})
        self.assertIn("socket", d["message"])
        json.dumps(d)  # plain JSON

    def test_clean_program(self):
        self.assertEqual(analyze("import json\nprint(json.dumps([1]))\n", DENY), [])
        self.assertEqual(analyze("", DENY), [])
        self.assertEqual(analyze("x = 1", None), [])


class SyntaxErrors(unittest.TestCase):
    def test_syntax_error_and_forbidden_import(self):
        # The required case: both are reported, each at its own range.
        diagnostics = analyze("import socket\nx = (\n", {"imports": {"deny": ["socket"]}})
        if OLD_SYNTAX_ERRORS:  # 3.9 reports the end of the file instead of the bracket
            self.assertEqual(brief(diagnostics), [("forbidden-import", 0, 7, 0, 13),
                                                  ("syntax-error", 1, 5, 1, 5)])
            return
        self.assertEqual(brief(diagnostics), [("forbidden-import", 0, 7, 0, 13),
                                              ("syntax-error", 1, 4, 1, 5)])
        self.assertEqual(diagnostics[1]["message"], "'(' was never closed")
        self.assertEqual(diagnostics[1]["severity"], 1)

    def test_findings_after_the_error_line(self):
        code = "def f(:\n    pass\nimport socket\nsocket.socket()\n"
        self.assertEqual(brief(analyze(code, DENY)), [("syntax-error", 0, 6, 0, 7),
                                                      ("forbidden-import", 2, 7, 2, 13),
                                                      ("blocked-call", 3, 0, 3, 13)])

    def test_error_in_the_middle_of_a_block(self):
        code = ("import os\n"
                "def f():\n"
                "    import subprocess\n"
                "    x = = 1\n"
                "import ctypes\n")
        found = brief(analyze(code, DENY))
        self.assertIn(("syntax-error", 3, 8, 3, 9), found)
        self.assertIn(("forbidden-import", 4, 7, 4, 13), found)

    def test_compiler_errors(self):
        end = 1 if OLD_SYNTAX_ERRORS else 8
        self.assertEqual(brief(analyze("x = 1\nreturn x\n", {})), [("syntax-error", 1, 0, 1, end)])
        [d] = analyze("nonlocal q\n", {})
        self.assertIn("nonlocal", d["message"])

    def test_unterminated_string_does_not_scan_its_contents(self):
        code = 'x = """\nimport socket\n'
        self.assertEqual([d["code"] for d in analyze(code, DENY)], ["syntax-error"])

    def test_error_at_end_of_file(self):
        [d] = analyze("if True:\n", {})
        self.assertEqual(d["code"], "syntax-error")
        self.assertLessEqual(d["range"]["start"]["line"], 1)

    def test_null_bytes(self):
        [d] = analyze("a = 1\x00", {})
        self.assertEqual(d["code"], "syntax-error")

    def test_warnings(self):
        found = analyze("x = 1\nif x is 1:\n    pass\n", {})
        self.assertEqual([(d["code"], d["severity"], d["range"]["start"]["line"]) for d in found],
                         [("syntax-warning", 2, 1)])


class Unicode(unittest.TestCase):
    def test_utf16_columns_after_emoji_and_accents(self):
        line = 's = "😀é"; import socket'
        [d] = analyze(line + "\n", DENY)
        start = utf16(line[:line.index("socket")])
        self.assertEqual(start, line.index("socket") + 1)  # the emoji is two code units
        self.assertEqual(brief([d]), [("forbidden-import", 0, start, 0, start + 6)])

    def test_utf16_columns_of_a_builtin_call(self):
        line = "café = '😀😀'; r = eval('1')"
        [d] = analyze(line, {"builtins": {"remove": ["eval"]}})
        start = utf16(line[:line.index("eval")])
        self.assertEqual(brief([d]), [("blocked-builtin", 0, start, 0, start + 4)])

    def test_utf16_columns_of_a_syntax_error(self):
        line = 'x = "😀" +* 2'
        [d] = analyze(line, {})
        star = utf16(line[:line.index("*")])
        self.assertEqual(brief([d]), [("syntax-error", 0, star, 0, star + 1)])

    def test_utf16_columns_of_a_compiler_error(self):
        # compiler errors come in UTF-8 bytes, parser errors in characters
        line = "é = '😀'; return é"
        [d] = analyze(line, {})
        start = utf16(line[:line.index("return")])
        end = start + 1 if OLD_SYNTAX_ERRORS else utf16(line)
        self.assertEqual(brief([d]), [("syntax-error", 0, start, 0, end)])

    def test_non_ascii_module_name(self):
        [d] = analyze("import modulé\n", {"imports": {"deny": ["modulé"]}})
        self.assertEqual(brief([d]), [("forbidden-import", 0, 7, 0, 13)])

    def test_line_breaks(self):
        # \r\n and a lone \r end lines, for Python and for LSP alike
        found = brief(analyze("x = 1\r\ny = 2\rimport socket\n", DENY))
        self.assertEqual(found, [("forbidden-import", 2, 7, 2, 13)])


class Imports(unittest.TestCase):
    def test_ranges_point_at_the_module_name(self):
        code = ("import json, socket as s\n"
                "from subprocess import run\n"
                "import  ctypes.util\n"
                "from  socket  import  (\n    AF_INET)\n")
        self.assertEqual(brief(analyze(code, DENY)), [
            ("forbidden-import", 0, 13, 0, 19),
            ("forbidden-import", 1, 5, 1, 15),
            ("forbidden-import", 2, 8, 2, 19),
            ("forbidden-import", 3, 6, 3, 12),
        ])

    def test_dynamic_imports_with_literals(self):
        code = ("m = __import__('socket')\n"
                "import importlib\n"
                "n = importlib.import_module(\"subprocess\")\n"
                "from importlib import import_module as im\n"
                "o = im('ctypes')\n"
                "p = __import__(name)\n")
        self.assertEqual(brief(analyze(code, DENY)), [
            ("forbidden-import", 0, 16, 0, 22),  # inside the quotes
            ("forbidden-import", 2, 29, 2, 39),
            ("forbidden-import", 4, 8, 4, 14),
        ])

    def test_allow_list(self):
        policy = {"imports": {"allow": ["numpy", "xml.etree"]}}
        code = ("from __future__ import annotations\n"
                "import numpy.linalg\n"
                "from xml import etree\n"
                "import os\n")
        self.assertEqual(brief(analyze(code, policy)), [("forbidden-import", 3, 7, 3, 9)])

    def test_user_modules_under_allow_list(self):
        policy = {"imports": {"allow": ["json"]}, "userModules": ["helpers"]}
        self.assertEqual(analyze("import helpers.io\nfrom . import x\n", policy), [])

    def test_submodules_and_deny_over_allow(self):
        policy = {"imports": {"allow": ["xml"], "deny": ["xml.dom"]}}
        found = brief(analyze("import xml.etree\nimport xml.dom.minidom\nfrom xml import dom\n", policy))
        self.assertEqual(found, [("forbidden-import", 1, 7, 1, 22),
                                 ("forbidden-import", 2, 16, 2, 19)])


class Calls(unittest.TestCase):
    def test_removed_builtins(self):
        policy = {"builtins": {"remove": ["eval", "exec", "compile", "breakpoint", "input"]}}
        code = ("eval('1')\nexec('x = 1')\ncompile('1', 'f', 'eval')\n"
                "breakpoint()\ninput()\nlen([])\nf = map(eval, [])\n")
        found = analyze(code, policy)
        self.assertEqual([(d["code"], d["severity"], d["range"]["start"]["line"]) for d in found], [
            ("blocked-builtin", 1, 0), ("blocked-builtin", 1, 1), ("blocked-builtin", 1, 2),
            ("blocked-builtin", 1, 3), ("blocked-builtin", 1, 4), ("blocked-builtin", 2, 6)])
        self.assertEqual(found[0]["message"], "builtin 'eval' is disabled by this profile")
        self.assertEqual(brief(found[:1]), [("blocked-builtin", 0, 0, 0, 4)])

    def test_open_when_files_are_off(self):
        self.assertEqual(analyze("open('x')", {}), [])
        self.assertEqual([d["code"] for d in analyze("open('x')", {"files": False})], ["blocked-builtin"])
        self.assertEqual([d["code"] for d in analyze("open('x')", {"builtins": {"remove": ["open"]}})],
                         ["blocked-builtin"])

    def test_shadowed_builtins_are_not_flagged(self):
        code = "def open(p):\n    return p\nopen('x')\neval = len\neval([])\n"
        self.assertEqual(analyze(code, {"builtins": {"remove": ["open", "eval"]}}), [])

    def test_builtins_module_and_dunder_import(self):
        code = "import builtins\nbuiltins.exec('1')\n__import__('json')\n"
        found = brief(analyze(code, {"builtins": {"remove": ["exec", "__import__"]}}))
        self.assertEqual(found, [("blocked-builtin", 1, 9, 1, 13), ("blocked-builtin", 2, 0, 2, 10)])

    def test_process_calls(self):
        code = ("import os\n"
                "os.system('ls')\n"
                "os.popen('ls')\n"
                "os.execv('/bin/ls', ['ls'])\n"
                "os.spawnlp(os.P_WAIT, 'ls')\n"
                "os.path.join('a', 'b')\n"
                "from os import system as sh\n"
                "sh('ls')\n")
        found = analyze(code, {})
        self.assertEqual([(d["code"], d["severity"], d["range"]["start"]["line"]) for d in found],
                         [("blocked-call", 2, 1), ("blocked-call", 2, 2), ("blocked-call", 2, 3),
                          ("blocked-call", 2, 4), ("blocked-call", 2, 7)])
        self.assertEqual(brief(found[:1]), [("blocked-call", 1, 0, 1, 9)])

    def test_severity_follows_the_import_rule(self):
        code = "import subprocess as sp\nsp.run(['ls'])\n"
        warning = analyze(code, {})
        self.assertEqual([(d["code"], d["severity"]) for d in warning], [("blocked-call", 2)])
        error = analyze(code, {"imports": {"deny": ["subprocess"]}})
        self.assertEqual([(d["code"], d["severity"]) for d in error],
                         [("forbidden-import", 1), ("blocked-call", 1)])
        self.assertEqual(brief(error[1:]), [("blocked-call", 1, 0, 1, 6)])

    def test_network_calls_depend_on_the_network_setting(self):
        code = "import socket\ns = socket.socket()\nsocket.create_connection(('h', 1))\n"
        self.assertEqual([d["code"] for d in analyze(code, {})], ["blocked-call", "blocked-call"])
        self.assertEqual(analyze(code, {"network": True}), [])

    def test_native_code(self):
        code = "import ctypes\nctypes.CDLL(None)\nctypes.cdll.LoadLibrary('x')\n"
        self.assertEqual([(d["code"], d["severity"]) for d in analyze(code, {})],
                         [("blocked-call", 2), ("blocked-call", 2)])

    def test_call_on_a_dynamic_import(self):
        found = analyze("__import__('subprocess').run(['ls'])\n", {})
        self.assertEqual([d["code"] for d in found], ["blocked-call"])
        self.assertIn("subprocess.run", found[0]["message"])

    def test_everything_sorted_by_position(self):
        code = ("import os\nos.system('x')\neval('1')\nimport socket\n"
                "socket.socket()\nx = (\n")
        found = analyze(code, {"imports": {"deny": ["socket"]}, "builtins": {"remove": ["eval"]}})
        positions = [(d["range"]["start"]["line"], d["range"]["start"]["character"]) for d in found]
        self.assertEqual(positions, sorted(positions))
        self.assertEqual([d["code"] for d in found], ["blocked-call", "blocked-builtin",
                                                      "forbidden-import", "blocked-call",
                                                      "syntax-error"])


def thousand_lines():
    """A 1000-line program with one removed builtin per 10 lines (also the benchmark's)."""
    block = ("import json, os\n"
             "def f{n}(values, scale=2):\n"
             "    total = sum(v * scale for v in values if v % 3)  # comment \u00e9\n"
             "    data = {{'k': [total, str(total), os.path.join('a', 'b')]}}\n"
             "    return json.dumps(data)\n"
             "class C{n}:\n"
             "    def m(self, x):\n"
             "        return [f{n}(range(x)) for _ in range(3)]\n"
             "result{n} = C{n}().m(10)\n"
             "print(result{n}, eval('1'))\n")
    return "".join(block.format(n=n) for n in range(100))


class Size(unittest.TestCase):
    # How long this takes is a benchmark figure (tests/bench/bench.py, "static analysis"),
    # not a unit test's: a timed test fails on a loaded machine.
    def test_thousand_lines(self):
        code = thousand_lines()
        self.assertEqual(len(code.splitlines()), 1000)
        policy = {"imports": {"deny": ["socket"]}, "builtins": {"remove": ["eval"]}}
        self.assertEqual(len(analyze(code, policy)), 100)
        # A syntax error at the end: reported, and the findings before it still are.
        broken = analyze(code + "x = (\n", policy)
        self.assertTrue(any(d["severity"] == 1 and d["range"]["start"]["line"] >= 1000 for d in broken), broken[-3:])


class EntryPoints(unittest.TestCase):
    """The module's text as the code of an execution, with `inputs` bound."""

    def source(self):
        # As the server sends it (src/sandbox/context.cc): the parts' text, then this file's.
        texts = []
        for name in analyze_module.ANALYZE_PARTS + ("analyze",):
            with open(os.path.join(os.path.dirname(ANALYZE_PATH), name + ".py"), encoding="utf-8") as f:
                texts.append(f.read())
        return "\n".join(texts)

    def test_as_execution_code(self):
        # As the bootstrap runs a program: "<pycell>", a fresh __main__, value of the last
        # expression statement.
        code = self.source() + analyze_module.ANALYZE_ENTRY
        tree = ast.parse(code, "<pycell>")
        last = tree.body.pop()
        self.assertIsInstance(last, ast.Expr)
        namespace = {"__name__": "__main__", "inputs": {
            "code": "import socket\nx = (\n", "policy": {"imports": {"deny": ["socket"]}}}}
        exec(compile(tree, "<pycell>", "exec"), namespace)
        value = eval(compile(ast.Expression(last.value), "<pycell>", "eval"), namespace)
        self.assertEqual([d["code"] for d in value], ["forbidden-import", "syntax-error"])
        self.assertEqual(json.loads(json.dumps(value)), value)

    def test_exec_with_entry(self):
        namespace = {"inputs": {"code": "eval('1')", "policy": {"builtins": {"remove": ["eval"]}}}}
        exec(self.source() + "\nRESULT = _analyze_main(inputs)", namespace)
        self.assertEqual([d["code"] for d in namespace["RESULT"]], ["blocked-builtin"])

    def test_command_line(self):
        request = json.dumps({"code": "import socket\n", "policy": DENY})
        proc = subprocess.run([sys.executable, "-I", ANALYZE_PATH], input=request,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual([d["code"] for d in json.loads(proc.stdout)], ["forbidden-import"])

    def test_through_the_bootstrap(self):
        try:
            sys.path.insert(0, HERE)
            import test_bootstrap
        except ImportError as e:
            self.skipTest("test_bootstrap is not importable: %s" % e)
        finally:
            sys.path.remove(HERE)
        result, _, err, rc = test_bootstrap.run(
            self.source() + analyze_module.ANALYZE_ENTRY,
            inputs={"code": "import socket\nx = (\n", "policy": {"imports": {"deny": ["socket"]}}})
        self.assertEqual(result["status"], "ok", err)
        self.assertEqual([d["code"] for d in result["value"]], ["forbidden-import", "syntax-error"])


if __name__ == "__main__":
    unittest.main()
