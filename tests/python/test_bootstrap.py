"""Tests for src/python/bootstrap.py, run as the sandbox runs it.

Run: python3 -m unittest -v tests/python/test_bootstrap.py
PYCELL_BOOTSTRAP may point at the bootstrap; by default the repository copy.
"""
import base64
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BOOTSTRAP = os.environ.get("PYCELL_BOOTSTRAP") or os.path.join(
    HERE, "..", "..", "src", "python", "bootstrap.py")
BOOTSTRAP = os.path.abspath(BOOTSTRAP)


def _reject_constant(name):
    raise ValueError("non-standard JSON constant %s" % name)


# The way a zygote runs the bootstrap: modules already imported, then _main().
PRELOAD_DRIVER = """
import importlib, importlib.util, sys
for name in sys.argv[2:]:
    importlib.import_module(name)
spec = importlib.util.spec_from_file_location("pycell_bootstrap", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module._main()
"""


def fd_wiring(req_r, res_w):
    """A preexec_fn that puts the request pipe's read end at fd 3 and the result pipe's
    write end at fd 4 (through fds >= 10 first, so neither dup2 clobbers the other)."""
    def wire_fds():
        a = fcntl.fcntl(req_r, fcntl.F_DUPFD, 10)
        b = fcntl.fcntl(res_w, fcntl.F_DUPFD, 10)
        os.dup2(a, 3)
        os.dup2(b, 4)
    return wire_fds


def run_raw(request_bytes, stdin=b"", cwd=None, preload=None):
    """Run the bootstrap on raw request bytes; returns (result bytes, stdout, stderr, rc).
    With `preload` (module names), run it as a zygote's child does, after importing them."""
    req_r, req_w = os.pipe()
    res_r, res_w = os.pipe()
    wire_fds = fd_wiring(req_r, res_w)

    with tempfile.TemporaryDirectory() as tmp:
        # fds 3 and 4 are open here (os.pipe took the lowest free numbers), so
        # they can be kept; wire_fds points them at the pipes before exec.
        argv = [sys.executable, "-I", "-B", "-u", "-X", "utf8"]
        argv += [BOOTSTRAP] if preload is None else ["-c", PRELOAD_DRIVER, BOOTSTRAP] + preload
        # As in the sandbox (src/sandbox/enter.cc): Agg, and a writable config directory.
        env = dict(os.environ, MPLBACKEND="Agg", MPLCONFIGDIR=os.path.join(tmp, ".mpl"))
        proc = subprocess.Popen(
            argv, cwd=cwd or tmp, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, pass_fds=(3, 4), preexec_fn=wire_fds, env=env)
        os.close(req_r)
        os.close(res_w)
        chunks = []
        reader = threading.Thread(target=lambda: chunks.append(_read_all(res_r)))
        reader.start()
        with os.fdopen(req_w, "wb") as f:
            f.write(request_bytes)
        out, err = proc.communicate(stdin, timeout=60)
        reader.join(60)
        os.close(res_r)
    return chunks[0], out.decode(), err.decode(), proc.returncode


def channel_lines(raw, token=""):
    """The result channel's lines, each checked to carry the request's token (t), which is
    removed; empty lines (each line is preceded by a newline) are skipped."""
    docs = []
    for line in raw.split(b"\n"):
        if not line:
            continue
        doc = json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
        assert doc.pop("t") == token, line[:200]
        docs.append(doc)
    return docs


def report_of(raw, token=""):
    """The report: the last line on the result channel (the lines before it are "started",
    "stopped" after a KeyboardInterrupt, and activity events)."""
    docs = channel_lines(raw, token)
    for doc in docs[:-1]:
        assert doc in ({"started": True}, {"stopped": True}) or "event" in doc, doc
    return docs[-1]


def run(code, stdin=b"", cwd=None, preload=None, **request):
    """Run `code` with extra request fields; returns (result, stdout, stderr, rc)."""
    request["code"] = code
    raw, out, err, rc = run_raw(json.dumps(request).encode(), stdin, cwd, preload)
    return report_of(raw, request.get("token", "")), out, err, rc


def _read_all(fd):
    data = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return data
        data += chunk


class BootstrapTest(unittest.TestCase):
    def assertShape(self, result):
        self.assertEqual(set(result) - {"valueTruncated", "valueWarnings", "skippedFiles"},
                         {"status", "exitCode", "value", "valueRepr", "error", "usage", "displays", "files"})
        self.assertEqual((result["displays"], result["files"]), ([], []))
        self.assertEqual(set(result["usage"]), {"cpuUserMs", "cpuSysMs", "maxRssKb"})
        self.assertTrue(all(isinstance(v, int) and v >= 0 for v in result["usage"].values()))

    def test_hello_world(self):
        result, out, err, rc = run('print("hello, world")')
        self.assertShape(result)
        self.assertEqual(out, "hello, world\n")
        self.assertEqual(err, "")
        self.assertEqual((result["status"], result["exitCode"], rc), ("ok", 0, 0))
        # print() is the last expression, so its value (None) is the value.
        self.assertIsNone(result["value"])
        self.assertEqual(result["valueRepr"], "None")
        self.assertIsNone(result["error"])

    def test_last_expression_value(self):
        result, _, _, _ = run("x = 1\nx + 1")
        self.assertEqual(result["value"], 2)
        self.assertEqual(result["valueRepr"], "2")

    def test_result_global(self):
        result, _, _, _ = run('result = {"a": [1, 2.5, None], "b": "\u00e9"}\nx = 3')
        self.assertEqual(result["value"], {"a": [1, 2.5, None], "b": "\u00e9"})

    def test_no_value(self):
        result, _, _, _ = run("x = 1")
        self.assertEqual(result["status"], "ok")
        self.assertIsNone(result["value"])
        self.assertIsNone(result["valueRepr"])

    def test_value_not_json(self):
        result, _, _, _ = run("class A:\n    def __repr__(self):\n        return 'an A'\n[1, A()]")
        self.assertEqual(result["status"], "ok")
        self.assertEqual(result["value"], [1, "an A"])  # the item as its repr, in place
        self.assertEqual(result["valueRepr"], "[1, an A]")
        self.assertEqual(result["valueWarnings"], [{"path": "$[1]", "reason": "A: no JSON form, replaced by its repr"}])
        self.assertNotIn("valueTruncated", result)
        # With no JSON form at all, the value is null and the warning says why.
        result, _, _, _ = run("class A:\n    pass\nA()")
        self.assertIsNone(result["value"])
        self.assertEqual(result["valueWarnings"], [{"path": "$", "reason": "A: no JSON form, so value is null"}])

    def test_nan_value_is_strict_json(self):
        result, _, _, _ = run("float('nan')")  # run() parses with strict constants
        self.assertEqual(result["status"], "ok")
        self.assertIsNone(result["value"])
        self.assertEqual(result["valueRepr"], "nan")

    def test_limits(self):
        result, _, _, _ = run("'x' * 100", maxReprBytes=10, maxValueBytes=50)
        self.assertIsNone(result["value"])
        self.assertIs(result["valueTruncated"], True)
        self.assertEqual(len(result["valueRepr"]), 10)
        self.assertTrue(result["valueRepr"].endswith("\u2026"))

    def test_repr_failure(self):
        code = "class A:\n    def __repr__(self):\n        raise KeyError(1)\nA()"
        result, _, _, _ = run(code)
        self.assertEqual(result["status"], "ok")
        self.assertEqual(result["valueRepr"], "<repr failed: KeyError>")

    def test_exception_line_and_clean_traceback(self):
        result, _, err, rc = run("a = 1\nb = 2\n1/0")
        self.assertEqual((result["status"], result["exitCode"], rc), ("error", 1, 1))
        error = result["error"]
        self.assertEqual(error["type"], "ZeroDivisionError")
        self.assertEqual(error["message"], "division by zero")
        self.assertEqual(error["line"], 3)
        self.assertTrue(err.startswith("Traceback (most recent call last):\n"), err)
        self.assertIn('File "<pycell>", line 3, in <module>', err)
        self.assertNotIn(BOOTSTRAP, err)
        self.assertNotIn("bootstrap", err)
        self.assertEqual(err.count("  File "), 1, err)
        self.assertTrue(err.endswith("ZeroDivisionError: division by zero\n"))
        self.assertEqual("\n".join(error["traceback"]) + "\n", err)

    def test_exception_in_function(self):
        code = "def f(x):\n    return g(x)\n\ndef g(x):\n    return x[5]\n\nf([])"
        result, _, err, _ = run(code)
        self.assertEqual(result["error"]["type"], "IndexError")
        self.assertEqual(result["error"]["line"], 5)
        self.assertNotIn("bootstrap", err)

    def test_exception_in_library_code(self):
        result, _, err, _ = run("import json\n\njson.loads('{')")
        self.assertEqual(result["error"]["type"], "JSONDecodeError")
        self.assertEqual(result["error"]["line"], 3)
        self.assertIn("json", err)  # library frames stay
        self.assertNotIn("bootstrap", err)

    def test_syntax_error(self):
        result, _, err, _ = run("a = 1\nb = 1 +\nc = 3")
        self.assertEqual(result["status"], "error")
        self.assertEqual(result["error"]["type"], "SyntaxError")
        self.assertEqual(result["error"]["line"], 2)
        self.assertIn("SyntaxError", err)
        self.assertNotIn("bootstrap", err)

    def test_syntax_error_found_by_compiler(self):
        result, _, _, _ = run("x = 1\nreturn x")
        self.assertEqual(result["error"]["type"], "SyntaxError")
        self.assertEqual(result["error"]["line"], 2)

    def test_sys_exit_nonzero(self):
        result, _, _, rc = run("import sys\nsys.exit(3)")
        self.assertEqual((result["status"], result["exitCode"], rc), ("error", 3, 3))
        self.assertEqual(result["error"]["type"], "SystemExit")
        self.assertEqual(result["error"]["message"], "3")
        self.assertEqual(result["error"]["line"], 2)

    def test_sys_exit_zero(self):
        result, _, _, rc = run("import sys\nsys.exit(0)")
        self.assertEqual((result["status"], result["exitCode"], rc), ("ok", 0, 0))
        self.assertIsNone(result["error"])

    def test_sys_exit_message(self):
        result, _, err, rc = run("import sys\nsys.exit('bye')")
        self.assertEqual((result["status"], result["exitCode"], rc), ("error", 1, 1))
        self.assertEqual(err, "bye\n")

    def test_memory_error(self):
        result, _, err, rc = run("x = 1\nbytearray(1 << 62)")
        self.assertEqual((result["status"], result["exitCode"], rc), ("memory_limit", 1, 1))
        self.assertEqual(result["error"]["type"], "MemoryError")
        self.assertEqual(result["error"]["line"], 2)
        self.assertIn("MemoryError", err)

    def test_keyboard_interrupt(self):
        result, _, _, _ = run("raise KeyboardInterrupt")
        self.assertEqual(result["status"], "error")
        self.assertEqual(result["error"]["type"], "KeyboardInterrupt")

    def test_inputs(self):
        result, _, _, _ = run("inputs['a'] * 2", inputs={"a": 21})
        self.assertEqual(result["value"], 42)
        result, _, _, _ = run("inputs")
        self.assertIsNone(result["value"])
        self.assertEqual(result["valueRepr"], "None")

    def test_files_written(self):
        files = {"data/in.txt": {"text": "h\u00e9llo"},
                 "bin.dat": {"base64": base64.b64encode(b"\x00\xff").decode()},
                 "helper.py": {"text": "VALUE = 7\n"}}
        code = ("import helper\n"
                "[open('data/in.txt', encoding='utf-8').read(),"
                " list(open('bin.dat', 'rb').read()), helper.VALUE]")
        result, _, err, _ = run(code, files=files)
        self.assertEqual(result["status"], "ok", err)
        self.assertEqual(result["value"], ["h\u00e9llo", [0, 255], 7])

    def test_file_path_escape_rejected(self):
        with tempfile.TemporaryDirectory() as parent:
            cwd = os.path.join(parent, "work")
            os.mkdir(cwd)
            result, out, _, rc = run("print('ran')", cwd=cwd,
                                     files={"ok.txt": {"text": "x"},
                                            "../evil.txt": {"text": "x"}})
            self.assertFalse(os.path.exists(os.path.join(parent, "evil.txt")))
            self.assertFalse(os.path.exists(os.path.join(cwd, "ok.txt")))
        self.assertEqual((result["status"], result["exitCode"], rc), ("error", 1, 1))
        self.assertEqual(result["error"]["type"], "FileError")
        self.assertEqual(out, "")

    def test_absolute_and_symlink_paths_rejected(self):
        result, _, _, _ = run("1", files={"/etc/x": {"text": "x"}})
        self.assertEqual(result["error"]["type"], "FileError")
        with tempfile.TemporaryDirectory() as cwd, tempfile.TemporaryDirectory() as other:
            os.symlink(other, os.path.join(cwd, "link"))
            result, _, _, _ = run("1", cwd=cwd, files={"link/x.txt": {"text": "x"}})
            self.assertEqual(result["error"]["type"], "FileError")
            self.assertEqual(os.listdir(other), [])

    def test_stdin(self):
        result, out, _, _ = run("name = input()\nprint('hi', name)\nname", stdin=b"bob\n")
        self.assertEqual(out, "hi bob\n")
        self.assertEqual(result["value"], "bob")

    def test_monkeypatching_does_not_break_result(self):
        code = ("import json, os, builtins\n"
                "json.dumps = lambda *a, **k: 'garbage'\n"
                "os.write = lambda *a, **k: 0\n"
                "os._exit = lambda *a: None\n"
                "builtins.repr = lambda o: 'patched'\n"
                "result = {'ok': True}")
        result, _, err, rc = run(code)
        self.assertEqual(result["status"], "ok", err)
        self.assertEqual(result["value"], {"ok": True})
        self.assertEqual(result["valueRepr"], "{'ok': True}")
        self.assertEqual(rc, 0)

    def test_bootstrap_modules_not_reachable_by_name(self):
        # The bootstrap and the modules it loads from beside itself are in no sys.modules
        # entry and no sys.path directory: an import by name never finds them. (With a
        # policy, so that policy.py and its parts are loaded too.)
        code = ("import importlib.util, os, sys\n"
                "names = ('bootstrap', 'policy', 'values', 'errors', 'displays', 'files', 'session',\n"
                "         'policy_events', 'policy_attribution', 'policy_imports', 'policy_audit',\n"
                "         'policy_builtins')\n"
                "specs = [importlib.util.find_spec(n) for n in names]\n"
                "ours = [s.name for s in specs if s and os.path.dirname(s.origin or '') == inputs]\n"
                "[ours, sorted(n for n in sys.modules if n.startswith('pycell'))]")
        result, _, err, _ = run(code, inputs=os.path.dirname(BOOTSTRAP), policy={})
        self.assertEqual(result["status"], "ok", err)
        self.assertEqual(result["value"], [[], []])

    def test_result_fd_hidden(self):
        code = ("import os\n"
                "try:\n"
                "    os.write(4, b'x')\n"
                "    result = 'wrote'\n"
                "except OSError:\n"
                "    result = 'blocked'\n")
        result, _, _, _ = run(code)
        self.assertEqual(result["value"], "blocked")

    def test_main_module_is_user_code(self):
        code = ("import pickle, sys, __main__\n"
                "class P:\n    pass\n"
                "[__name__, hasattr(__main__, 'P'), type(pickle.loads(pickle.dumps(P()))).__name__]")
        result, _, err, _ = run(code)
        self.assertEqual(result["value"], ["__main__", True, "P"], err)

    def test_bad_request(self):
        raw, _, err, rc = run_raw(b"{not json")
        result = report_of(raw)
        self.assertEqual((result["status"], result["exitCode"], rc), ("error", 70, 70))
        self.assertEqual(result["error"]["type"], "BootstrapError")
        self.assertIn("cannot read the request", err)


def png_size(data):
    """(width, height) of a PNG, from its signature and IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def has_modules(*names):
    try:
        for name in names:
            __import__(name)
        return True
    except ImportError:
        return False


SCIENCE = has_modules("numpy", "pandas", "matplotlib")


class ValueTest(unittest.TestCase):
    """`value` is plain, strict JSON (run() refuses NaN literals) for the usual types."""

    def value_of(self, code, **request):
        result, _, err, _ = run(code, **request)
        self.assertEqual(result["status"], "ok", err)
        return result

    def test_unconvertible_items_keep_the_rest(self):
        code = ("class Bad:\n    def __repr__(self):\n        return 'bad'\n"
                "class Raises:\n    def __iter__(self):\n        raise RuntimeError('no')\n"
                "    def __repr__(self):\n        return 'raises'\n"
                "{'a': [1, 2, object], 'b': 3, 'c': {'d e': (Bad(), 1j)}, 'f': {1: Bad()}}")
        result = self.value_of(code)
        self.assertEqual(result["value"], {"a": [1, 2, "<class 'object'>"], "b": 3,
                                           "c": {"d e": ["bad", "1j"]}, "f": {"1": "bad"}})
        self.assertEqual([w["path"] for w in result["valueWarnings"]], ["$.a[2]", '$.c["d e"][0]', '$.c["d e"][1]', '$.f["1"]'])
        self.assertTrue(all(w["reason"].endswith("replaced by its repr") for w in result["valueWarnings"]))
        self.assertTrue(result["valueWarnings"][2]["reason"].startswith("complex"))

    def test_value_warnings_are_capped(self):
        result = self.value_of("[object] * 500")
        self.assertEqual(result["value"], ["<class 'object'>"] * 500)
        self.assertEqual(len(result["valueWarnings"]), 100)
        self.assertEqual(result["valueWarnings"][99]["path"], "$[99]")

    def test_big_integers_are_exact(self):
        result = self.value_of("[2 ** 100, -2 ** 100, 2 ** 64 - 1, -2 ** 63, 2 ** 64, -2 ** 63 - 1, {'n': 10 ** 30}]")
        self.assertEqual(result["value"], [{"$int": str(2 ** 100)}, {"$int": str(-2 ** 100)}, 2 ** 64 - 1, -2 ** 63,
                                           {"$int": str(2 ** 64)}, {"$int": str(-2 ** 63 - 1)},
                                           {"n": {"$int": "1" + "0" * 30}}])
        self.assertNotIn("valueWarnings", result)
        self.assertEqual(self.value_of("2 ** 100")["value"], {"$int": "1267650600228229401496703205376"})

    def test_containers_and_scalars(self):
        result = self.value_of("[1, 2.5, 'x', None, True, (1, (2,)), {'a': [1]}, float('inf'), -float('inf')]")
        self.assertEqual(result["value"], [1, 2.5, "x", None, True, [1, [2]], {"a": [1]}, None, None])

    def test_nan_inside_containers_is_null(self):
        result = self.value_of("{'a': [float('nan'), 1.0], 'b': (float('nan'),)}")
        self.assertEqual(result["value"], {"a": [None, 1.0], "b": [None]})

    def test_dict_keys_become_strings(self):
        result = self.value_of("import datetime\n"
                               "{1: 'a', 2.5: 'b', None: 'c', False: 'd', (1, 2): 'e',"
                               " datetime.date(2024, 5, 6): 'f', 's': 'g'}")
        self.assertEqual(result["value"], {"1": "a", "2.5": "b", "null": "c", "false": "d",
                                           "(1, 2)": "e", "2024-05-06": "f", "s": "g"})

    def test_sets_are_sorted_lists(self):
        self.assertEqual(self.value_of("{3, 1, 2}")["value"], [1, 2, 3])
        self.assertEqual(sorted(self.value_of("frozenset({'b', 1})")["value"], key=str), [1, "b"])

    def test_bytes_are_base64(self):
        result = self.value_of("[b'\\x00\\xffhi', bytearray(b'ab'), memoryview(b'cd')]")
        self.assertEqual([base64.b64decode(v) for v in result["value"]], [b"\x00\xffhi", b"ab", b"cd"])
        self.assertEqual(result["valueRepr"], "[b'\\x00\\xffhi', bytearray(b'ab'), <memory at "
                         + result["valueRepr"].split("<memory at ")[1])

    def test_datetimes_are_iso_strings(self):
        code = ("import datetime as d\n"
                "[d.datetime(2024, 1, 2, 3, 4, 5, 6), d.date(2024, 1, 2), d.time(3, 4, 5),"
                " d.datetime(2024, 1, 2, tzinfo=d.timezone(d.timedelta(hours=2))),"
                " d.timedelta(days=1, seconds=1.5)]")
        self.assertEqual(self.value_of(code)["value"],
                         ["2024-01-02T03:04:05.000006", "2024-01-02", "03:04:05",
                          "2024-01-02T00:00:00+02:00", 86401.5])

    def test_decimal_and_fraction_are_numbers(self):
        code = ("from decimal import Decimal as D\nfrom fractions import Fraction as F\n"
                "[D('1.25'), D('NaN'), D('-Infinity'), D('1e400'), F(1, 4), F(10 ** 400, 1)]")
        self.assertEqual(self.value_of(code)["value"],
                         [1.25, None, None, "1E+400", 0.25, "1" + "0" * 400])

    def test_subclasses_and_enums(self):
        code = ("import enum, collections\n"
                "class E(enum.IntEnum):\n    A = 3\n"
                "class S(str):\n    def __str__(self):\n        return 'patched'\n"
                "P = collections.namedtuple('P', 'x y')\n"
                "class L(list):\n    def __iter__(self):\n        return iter([99])\n"
                "[E.A, S('s'), P(1, 2), L([1, 2]), collections.OrderedDict(a=1)]")
        self.assertEqual(self.value_of(code)["value"], [3, "s", [1, 2], [1, 2], {"a": 1}])

    def test_lone_surrogates_are_replaced(self):
        result = self.value_of("{'\\udc80': 'a\\ud800b'}")
        self.assertEqual(result["value"], {"\ufffd": "a\ufffdb"})

    def test_cycles_and_depth_are_replaced_in_place(self):
        result = self.value_of("a = [1]\na.append(a)\na")
        self.assertEqual(result["value"], [1, "[1, [...]]"])
        self.assertEqual(result["valueRepr"], "[1, [...]]")
        self.assertEqual(result["valueWarnings"][0]["path"], "$[1]")
        self.assertIn("circular reference", result["valueWarnings"][0]["reason"])
        result = self.value_of("a = []\nfor _ in range(5000):\n    a = [a]\na")
        self.assertNotIn("valueTruncated", result)
        depth, inner = 0, result["value"]
        while isinstance(inner, list):
            depth, inner = depth + 1, inner[0]
        self.assertLessEqual(depth, 101)  # within the server's nesting limit for the value
        self.assertEqual(inner, "<repr failed: RecursionError>")
        self.assertIn("nested too deeply", result["valueWarnings"][0]["reason"])
        self.assertEqual(result["valueWarnings"][0]["path"], "$" + "[0]" * 101)

    def test_unsupported_values(self):
        for code, text in (("1j", "1j"), ("object", "<class 'object'>"), ("len", "<built-in function len>")):
            result = self.value_of(code)
            self.assertIsNone(result["value"], code)
            self.assertEqual(result["valueRepr"], text)

    def test_size_cap_marks_truncation_early(self):
        # A big list is abandoned once a lower bound of its JSON passes the cap.
        result, _, err, _ = run("list(range(10 ** 7))")
        self.assertEqual(result["status"], "ok", err)
        self.assertIsNone(result["value"])
        self.assertIs(result["valueTruncated"], True)
        self.assertLess(result["usage"]["cpuUserMs"], 5000)
        result = self.value_of("'y' * 40", maxValueBytes=42)
        self.assertEqual(result["value"], "y" * 40)
        self.assertNotIn("valueTruncated", result)

    def test_failing_conversion_methods_are_warned(self):
        code = ("class Weird(dict):\n    pass\n"
                "class K:\n    def __hash__(self):\n        return 1\n"
                "    def __str__(self):\n        raise RuntimeError('no')\n"
                "{K(): 1}")
        result = self.value_of(code)
        self.assertEqual(result["value"], {"<str failed: RuntimeError>": 1})
        self.assertEqual(result["valueWarnings"][0]["path"], '$["<str failed: RuntimeError>"]')

    @unittest.skipUnless(SCIENCE, "numpy, pandas and matplotlib not installed")
    def test_numpy_arrays_and_scalars(self):
        code = ("import numpy as np\n"
                "{'f': np.array([[1.5, np.nan], [np.inf, -2.0]]), 'i': np.arange(3, dtype=np.int32),"
                " 'b': np.array([True, False]), 's': np.float32(0.5), 'n': np.int64(7), 'nan': np.float64('nan'),"
                " 'dt': np.array(['2024-01-01T00:00:00.123456789', 'NaT'], dtype='datetime64[ns]'),"
                " 'day': np.datetime64('2024-03-04'), 'td': np.timedelta64(1500, 'ms'), 'str': np.str_('x'),"
                " 'empty': np.zeros((2, 0)), 'zero_d': np.array(4)}")
        self.assertEqual(self.value_of(code)["value"], {
            "f": [[1.5, None], [None, -2.0]], "i": [0, 1, 2], "b": [True, False], "s": 0.5, "n": 7,
            "nan": None, "dt": ["2024-01-01T00:00:00.123456", None], "day": "2024-03-04",
            "td": 1.5, "str": "x", "empty": [[], []], "zero_d": 4})

    @unittest.skipUnless(SCIENCE, "numpy, pandas and matplotlib not installed")
    def test_pandas_frames_and_series(self):
        code = ("import pandas as pd, numpy as np\n"
                "df = pd.DataFrame({'a': [1.0, np.nan], 'when': pd.to_datetime(['2024-01-02', None]),"
                " 'name': ['x', None]}, index=['r1', 'r2'])\n"
                "[df, pd.Series([1, None], name='s'), pd.Index([3, 4]), pd.NaT, pd.NA,"
                " pd.Timestamp('2024-01-02 03:04', tz='UTC'), pd.Timedelta(seconds=2)]")
        value = self.value_of(code)["value"]
        self.assertEqual(value[0], {"columns": ["a", "when", "name"], "index": ["r1", "r2"],
                                    "data": [[1.0, "2024-01-02T00:00:00", "x"], [None, None, None]]})
        self.assertEqual(value[1], {"name": "s", "index": [0, 1], "data": [1.0, None]})
        self.assertEqual(value[2:], [[3, 4], None, None, "2024-01-02T03:04:00+00:00", 2.0])

    @unittest.skipUnless(SCIENCE, "numpy, pandas and matplotlib not installed")
    def test_large_array_and_frame_truncated_without_converting(self):
        for code in ("import numpy as np\nnp.zeros(10 ** 7)",
                     "import pandas as pd, numpy as np\npd.DataFrame(np.zeros((10 ** 6, 10)))"):
            result = self.value_of(code)
            self.assertIsNone(result["value"])
            self.assertIs(result["valueTruncated"], True)
            self.assertLess(result["usage"]["cpuUserMs"], 5000)

    @unittest.skipUnless(SCIENCE, "numpy, pandas and matplotlib not installed")
    def test_rebound_module_attributes_do_not_matter(self):
        # (Rebinding np.ndarray breaks pandas itself, hence two runs.)
        code = ("import numpy as np, json\n"
                "a = np.array([1.0, np.nan])\n"
                "np.ndarray = np.generic = None\n"
                "np.isnan = np.isfinite = json.dumps = lambda *a, **k: 'x'\n"
                "[a, a[0]]")
        self.assertEqual(self.value_of(code)["value"], [[1.0, None], 1.0])
        code = "import pandas as pd\nf = pd.DataFrame({'x': [1]})\npd.DataFrame = None\nf"
        self.assertEqual(self.value_of(code)["value"], {"columns": ["x"], "index": [0], "data": [[1]]})

    @unittest.skipUnless(SCIENCE, "numpy, pandas and matplotlib not installed")
    def test_bootstrap_imports_no_library_itself(self):
        # A finder the program installs sees every import that happens after it.
        code = ("import sys\n"
                "class Spy:\n"
                "    @staticmethod\n"
                "    def find_spec(name, path=None, target=None):\n"
                "        if name.split('.')[0] in ('numpy', 'pandas', 'matplotlib'):\n"
                "            open('imported.txt', 'a').write(name + '\\n')\n"
                "        return None\n"
                "sys.meta_path.insert(0, Spy)\n"
                "import datetime, decimal\n"
                "[datetime.date(2024, 1, 1), decimal.Decimal('1'), {1, 2}, b'x']")
        with tempfile.TemporaryDirectory() as cwd:
            result, _, err, _ = run(code, cwd=cwd, returnFiles=["*.txt"])
            self.assertEqual(result["status"], "ok", err)
            self.assertEqual(result["value"], ["2024-01-01", 1.0, [1, 2], "eA=="])
            self.assertFalse(os.path.exists(os.path.join(cwd, "imported.txt")))


@unittest.skipUnless(SCIENCE, "numpy, pandas and matplotlib not installed")
class FigureTest(unittest.TestCase):
    """matplotlib figures left open or shown come back in `displays` as PNG."""

    def figures(self, result):
        return [d for d in result["displays"] if "image/png" in d]

    def check_figures(self, preload):
        code = ("import matplotlib.pyplot as plt\n"
                "plt.plot([1, 2, 3])\n"
                "plt.show()\n"              # shown: rendered now, then closed
                "closed = plt.figure()\n"
                "plt.close(closed)\n"        # closed by the program: not returned
                "fig = plt.figure(figsize=(3, 2), dpi=50)\n"
                "fig.gca().bar([1, 2], [3, 4])\n"  # left open
                "len(plt.get_fignums())")
        result, _, err, _ = run(code, preload=preload)
        self.assertEqual(result["status"], "ok", err)
        self.assertEqual(err, "")  # no "non-interactive" warning from show()
        self.assertEqual(result["value"], 1)
        figures = self.figures(result)
        self.assertEqual([png_size(base64.b64decode(d["image/png"])) for d in figures],
                         [(640, 480), (150, 100)])
        self.assertEqual([d["text/plain"] for d in figures],
                         ["<Figure size 640x480 with 1 Axes>", "<Figure size 150x100 with 1 Axes>"])
        self.assertEqual(len(result["displays"]), 2)

    def test_figures_when_pyplot_is_imported_by_the_program(self):
        self.check_figures(None)

    def test_figures_when_pyplot_is_preloaded(self):
        self.check_figures(["numpy", "pandas", "matplotlib", "matplotlib.pyplot"])

    def test_show_renders_the_figure_as_it_was(self):
        code = ("import matplotlib.pyplot as plt\n"
                "fig = plt.figure(figsize=(2, 2), dpi=10)\n"
                "plt.show(block=True)\n"
                "fig.set_size_inches(4, 4)\n"  # after show: not what was shown
                "fig.savefig('after.png')\n"  # still usable, as after a blocking show()
                "plt.get_fignums()")
        result, _, err, _ = run(code)
        self.assertEqual(result["value"], [], err)
        self.assertEqual([png_size(base64.b64decode(d["image/png"])) for d in self.figures(result)],
                         [(20, 20)])

    def test_figure_value_not_open(self):
        code = ("from matplotlib.figure import Figure\n"
                "fig = Figure(figsize=(1, 1), dpi=30)\nfig.add_subplot().plot([1, 2])\nfig")
        result, _, err, _ = run(code)
        self.assertEqual(result["status"], "ok", err)
        self.assertIsNone(result["value"])
        self.assertEqual([png_size(base64.b64decode(d["image/png"])) for d in self.figures(result)],
                         [(30, 30)])

    def test_open_figure_value_comes_back_once(self):
        result, _, err, _ = run("import matplotlib.pyplot as plt\nplt.figure(figsize=(1, 1), dpi=20)")
        self.assertEqual(len(result["displays"]), 1, err)

    def test_figure_after_an_error_still_comes_back(self):
        result, _, _, _ = run("import matplotlib.pyplot as plt\nplt.plot([1])\n1/0")
        self.assertEqual(result["status"], "error")
        self.assertEqual(len(self.figures(result)), 1)

    def test_huge_figure_not_rendered(self):
        code = "import matplotlib.pyplot as plt\nplt.figure(figsize=(100, 100), dpi=100)\nplt.figure(figsize=(1, 1))\n2"
        result, _, err, _ = run(code)
        self.assertEqual(result["status"], "ok", err)
        self.assertEqual(len(result["displays"]), 1)
        self.assertIn("figure 1 not rendered: too large (10000x10000 pixels", err)

    def test_display_cap(self):
        code = ("import matplotlib.pyplot as plt\n"
                "for _ in range(3):\n    plt.figure(figsize=(2, 2)).gca().plot([1, 2])\n")
        result, _, err, _ = run(code)
        one = len(json.dumps(result["displays"][0], separators=(",", ":")))
        result, _, err, _ = run(code, maxDisplayBytes=2 * one + 10)
        self.assertEqual(len(result["displays"]), 2)
        self.assertIn("open figure 3 dropped from displays", err)
        self.assertIn("1 display(s) dropped", err)


class RichDisplayTest(unittest.TestCase):
    """A last expression with IPython-style _repr_*_ methods comes back as a mime bundle."""

    def test_rich_reprs(self):
        code = ("class R:\n"
                "    def _repr_html_(self):\n        return '<b>hi</b>'\n"
                "    def _repr_png_(self):\n        return b'\\x89PNG'\n"
                "    def _repr_json_(self):\n        return ({'a': float('nan')}, {'meta': 1})\n"
                "    def _repr_svg_(self):\n        return '<svg/>'\n"
                "    def _repr_latex_(self):\n        raise ValueError('broken')\n"
                "    def _repr_markdown_(self):\n        return None\n"
                "    def __repr__(self):\n        return 'R()'\n"
                "R()")
        result, _, err, _ = run(code)
        self.assertEqual(result["status"], "ok", err)
        self.assertIsNone(result["value"])
        self.assertEqual(result["displays"], [{
            "text/html": "<b>hi</b>", "image/png": base64.b64encode(b"\x89PNG").decode(),
            "application/json": {"a": None}, "image/svg+xml": "<svg/>", "text/plain": "R()"}])

    def test_mimebundle(self):
        code = ("class M:\n"
                "    def _repr_mimebundle_(self, include=None, exclude=None):\n"
                "        return {'text/html': '<i>m</i>', 'application/vnd.x+json': {'k': [1]}, 'text/plain': 'x'}\n"
                "    def _repr_html_(self):\n        return 'not used'\n"
                "M()")
        result, _, err, _ = run(code)
        bundle = result["displays"][0]
        self.assertEqual(bundle["text/html"], "<i>m</i>", err)
        self.assertEqual(bundle["application/vnd.x+json"], {"k": [1]})
        self.assertTrue(bundle["text/plain"].startswith("<__main__.M object"))

    def test_no_display_for_classes_plain_values_or_result_global(self):
        code = "class R:\n    def _repr_html_(self):\n        return '<b/>'\n"
        for tail in ("R", "[R()]", "result = R()"):
            result, _, err, _ = run(code + tail)
            self.assertEqual(result["displays"], [], tail)

    def test_getattr_tricks(self):
        code = ("class G:\n"
                "    def __getattr__(self, name):\n        return lambda *a, **k: G()\n"
                "class H:\n"
                "    def __getattr__(self, name):\n        raise SystemExit(3)\n"
                "[G(), H()]\n")
        result, _, err, rc = run(code + "G()")
        self.assertEqual((result["status"], rc, result["displays"]), ("ok", 0, []), err)
        result, _, err, rc = run(code + "H()")
        self.assertEqual((result["status"], rc, result["displays"]), ("ok", 0, []), err)

    def test_hostile_type_loses_the_display_not_the_report(self):
        code = ("class Meta(type):\n"
                "    def __eq__(cls, other):\n        raise RuntimeError('eq')\n"
                "    __hash__ = type.__hash__\n"
                "class X(metaclass=Meta):\n"
                "    def __repr__(self):\n        return 'X()'\n"
                "X()")
        result, _, err, rc = run(code)
        self.assertEqual((result["status"], rc, result["value"], result["valueRepr"]), ("ok", 0, None, "X()"))
        self.assertEqual(result["displays"], [])
        self.assertIn("pycell: display of the value not made: RuntimeError", err)

    @unittest.skipUnless(SCIENCE, "numpy, pandas and matplotlib not installed")
    def test_dataframe_html(self):
        result, _, err, _ = run("import pandas as pd\npd.DataFrame({'a': [1]})")
        self.assertEqual(len(result["displays"]), 1, err)
        self.assertIn("<table", result["displays"][0]["text/html"])
        self.assertEqual(result["value"], {"columns": ["a"], "index": [0], "data": [[1]]})


class ReturnFilesTest(unittest.TestCase):
    """returnFiles: regular files of the working directory only, within caps."""

    def collect(self, code, patterns, cwd=None, **request):
        result, _, err, _ = run(code, cwd=cwd, returnFiles=patterns, **request)
        files = {f["path"]: base64.b64decode(f["base64"]) for f in result["files"]}
        for f in result["files"]:
            self.assertEqual(f["size"], len(files[f["path"]]))
        skipped = {s["path"]: s["reason"] for s in result.get("skippedFiles", [])}
        return result, files, skipped, err

    def test_globs(self):
        code = ("import os\n"
                "os.makedirs('out/deep/er')\nos.makedirs('.hidden')\n"
                "for p in ('a.csv', 'b.txt', '.h.csv', 'out/c.csv', 'out/deep/er/d.csv', '.hidden/e.csv', 'x[1].csv'):\n"
                "    open(p, 'w').write(p)\n")
        _, files, _, err = self.collect(code, ["*.csv"])
        self.assertEqual(sorted(files), ["a.csv", "x[1].csv"], err)
        self.assertEqual(files["a.csv"], b"a.csv")
        _, files, _, _ = self.collect(code, ["**/*.csv"])
        self.assertEqual(sorted(files), ["a.csv", "out/c.csv", "out/deep/er/d.csv", "x[1].csv"])
        _, files, _, _ = self.collect(code, ["out/**", "./b.txt", ".*.csv", ".hidden/*"])
        self.assertEqual(sorted(files), [".h.csv", ".hidden/e.csv", "b.txt", "out/c.csv",
                                         "out/deep/er/d.csv"])
        _, files, _, _ = self.collect(code, ["out", "nothing*", "out/?.csv", "x[[]1].csv"])
        self.assertEqual(sorted(files), ["out/c.csv", "x[1].csv"])

    def test_content_round_trips(self):
        data = bytes(range(256)) * 100
        code = "open('data.bin', 'wb').write(bytes(range(256)) * 100)\nopen('empty', 'w').close()"
        result, files, skipped, err = self.collect(code, ["data.bin", "empty"])
        self.assertEqual(files, {"data.bin": data, "empty": b""}, err)
        self.assertEqual(result["skippedFiles"], [])

    def test_symlinks_are_never_followed(self):
        with tempfile.TemporaryDirectory() as outside:
            with open(os.path.join(outside, "secret.txt"), "w") as f:
                f.write("secret")
            code = ("import os\n"
                    "os.symlink('/etc/passwd', 'passwd.txt')\n"
                    "os.symlink(%r, 'dir')\n"
                    "os.symlink('real.txt', 'link.txt')\n"
                    "open('real.txt', 'w').write('real')\n" % outside)
            _, files, skipped, err = self.collect(code, ["*.txt", "dir/*", "**/secret.txt"])
        self.assertEqual(files, {"real.txt": b"real"}, err)
        self.assertEqual(skipped, {"passwd.txt": "symbolic link", "link.txt": "symbolic link"})

    def test_hard_links_fifos_and_directories_skipped(self):
        code = ("import os\n"
                "open('a.txt', 'w').write('a')\nos.link('a.txt', 'b.txt')\n"
                "os.mkfifo('pipe.txt')\nos.mkdir('d.txt')\n"
                "open('ok.txt', 'w').write('ok')\n")
        _, files, skipped, err = self.collect(code, ["*.txt"])
        self.assertEqual(files, {"ok.txt": b"ok"}, err)
        self.assertEqual(skipped, {"a.txt": "hard link (2 names)", "b.txt": "hard link (2 names)",
                                   "pipe.txt": "not a regular file"})

    def test_caps(self):
        code = "for i in range(5):\n    open('f%d' % i, 'w').write('x' * (10 * i))\n"
        _, files, skipped, err = self.collect(code, ["f*"], maxFileBytes=30)
        self.assertEqual(sorted(files), ["f0", "f1", "f2", "f3"], err)
        self.assertEqual(skipped, {"f4": "larger than 30 bytes"})
        _, files, skipped, _ = self.collect(code, ["f*"], maxTotalFileBytes=35)
        self.assertEqual(sorted(files), ["f0", "f1", "f2"])
        self.assertEqual(skipped, {"f3": "returned files would exceed 35 bytes in total",
                                   "f4": "returned files would exceed 35 bytes in total"})
        _, files, skipped, _ = self.collect(code, ["f*"], maxFiles=2, maxSkippedListed=1)
        self.assertEqual((sorted(files), list(skipped)), (["f0", "f1"], ["f2"]))
        _, _, _, err = self.collect(code, ["f*"], maxFiles=2, maxSkippedListed=1)
        self.assertIn("returnFiles skipped 2 more file(s)", err)

    def test_files_come_back_after_an_error_and_a_chdir(self):
        code = "import os\nopen('out.txt', 'w').write('kept')\nos.mkdir('sub')\nos.chdir('sub')\n1/0"
        result, files, _, _ = self.collect(code, ["*.txt"])
        self.assertEqual(result["status"], "error")
        self.assertEqual(files, {"out.txt": b"kept"})

    def test_undecodable_name_skipped(self):
        code = "open(b'bad\\xff.txt', 'w').write('x')\nopen('good.txt', 'w').write('y')"
        result, files, skipped, err = self.collect(code, ["*.txt"])
        self.assertEqual(files, {"good.txt": b"y"}, err)
        self.assertEqual(skipped, {"bad\ufffd.txt": "name is not valid UTF-8"})

    def test_bad_patterns_refused_before_running(self):
        for patterns in (["/etc/*"], ["../x"], ["a/../../b"], [""], "*.txt", [1], ["x"] * 101):
            result, out, _, _ = run("print('ran')", returnFiles=patterns)
            self.assertEqual(result["error"]["type"], "FileError", patterns)
            self.assertEqual(out, "")

    def test_files_written_then_returned(self):
        files = {"in.txt": {"text": "in"}}
        result, _, err, _ = run("open('out.txt', 'w').write('out')", files=files, returnFiles=["*.txt"])
        self.assertEqual(result["status"], "ok", err)
        self.assertEqual(sorted(f["path"] for f in result["files"]), ["in.txt", "out.txt"])

    def test_no_return_files_no_skipped_list(self):
        result, _, _, _ = run("open('a', 'w').close()")
        self.assertNotIn("skippedFiles", result)
        self.assertEqual(result["files"], [])

    def test_monkeypatching_does_not_change_the_report(self):
        code = ("import os, base64, binascii, io, stat, json, sys\n"
                "open('f.txt', 'w').write('data')\n"
                "os.open = os.scandir = os.fstat = os.readlink = os.read = lambda *a, **k: 1 / 0\n"
                "os.O_NOFOLLOW = 0\n"
                "base64.b64encode = binascii.b2a_base64 = lambda *a, **k: b'garbage'\n"
                "stat.S_ISREG = lambda m: True\n"
                "io.BytesIO = json.JSONEncoder = None\n"
                "sys.modules = {}\n"
                "b'xy'")
        result, files, _, err = self.collect(code, ["*.txt"])
        self.assertEqual(result["status"], "ok", err)
        self.assertEqual(files, {"f.txt": b"data"})
        self.assertEqual(result["value"], "eHk=")


class WarmUpTest(unittest.TestCase):
    """A pooled child's warm-up (bootstrap._warm_up): its stand-in run prints through the
    same code a program does, onto stand-in streams, so nothing it writes reaches the fds the
    server reads as the coming run's output, and the real streams are back afterwards."""

    DRIVER = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("pycell_bootstrap", sys.argv[1])
b = importlib.util.module_from_spec(spec)
spec.loader.exec_module(b)
real = sys.stdout, sys.stderr
errors = [b._warm_up(None, None),
          b._warm_up(None, "print('leak-out')\\nimport sys\\nprint('leak-err', file=sys.stderr)\\n1"),
          b._warm_up(None, "raise ValueError('warm-up failed')")]
print(json.dumps({"restored": (sys.stdout, sys.stderr) == real,
                  "errors": [e and e["type"] for e in errors]}))
"""

    def test_warm_up_output_goes_nowhere_and_the_streams_come_back(self):
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run([sys.executable, "-I", "-B", "-u", "-X", "utf8", "-c", self.DRIVER, BOOTSTRAP],
                                  cwd=tmp, capture_output=True, timeout=60)
        out, err = proc.stdout.decode(), proc.stderr.decode()
        self.assertEqual(proc.returncode, 0, err)
        self.assertNotIn("leak", out + err)
        self.assertNotIn("warm-up failed", out)  # a failed warm-up's traceback is not the run's
        report = json.loads(out.strip().splitlines()[-1])
        self.assertTrue(report["restored"])
        self.assertEqual(report["errors"], [None, None, "ValueError"])
        self.assertEqual(out.strip().splitlines(), [out.strip().splitlines()[-1]])  # nothing else on stdout


class SessionModeTest(unittest.TestCase):
    """The bootstrap as a session: a header line, then request lines on fd 3 and result
    lines on fd 4, with one interpreter and one __main__ throughout."""

    def test_state_persists_and_each_run_reports(self):
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        wire_fds = fd_wiring(req_r, res_w)

        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.Popen([sys.executable, "-I", "-B", "-u", "-X", "utf8", BOOTSTRAP], cwd=tmp,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    pass_fds=(3, 4), preexec_fn=wire_fds)
            os.close(req_r)
            os.close(res_w)
            results = os.fdopen(res_r, "rb")
            requests = os.fdopen(req_w, "wb", buffering=0)
            lines = []

            serial = [0]

            def send(doc):
                if "session" not in doc:
                    serial[0] += 1
                    doc["token"] = "run%d" % serial[0]
                requests.write(json.dumps(doc).encode() + b"\n")

            def next_line():
                while True:
                    line = results.readline()
                    if line.strip():
                        return json.loads(line)

            def next_result():
                while True:
                    line = next_line()
                    self.assertEqual(line.pop("t"), "run%d" % serial[0])
                    lines.append(line)
                    if "started" not in line:
                        return line

            send({"session": {"id": "t", "token": "hello"}})
            self.assertEqual(next_line(), {"t": "hello", "ready": True})
            send({"code": "x = 40\nimport json", "files": {}})
            self.assertEqual(next_result()["status"], "ok")
            send({"code": "x += 2\nprint(json.dumps(x))\nx", "files": {}, "stdin": ""})
            second = next_result()
            self.assertEqual((second["status"], second["value"]), ("ok", 42))
            send({"code": "input()", "files": {}, "stdin": "typed\n"})
            self.assertEqual(next_result()["value"], "typed")
            send({"code": "def f():\n    return 1 / 0\n", "files": {}})
            next_result()
            send({"code": "f()", "files": {}})
            failed = next_result()
            self.assertEqual(failed["error"]["type"], "ZeroDivisionError")
            self.assertIn('File "<pycell-4>", line 2', "\n".join(failed["error"]["traceback"]))
            self.assertEqual(failed["error"]["line"], 1)
            send({"code": "raise SystemExit(4)", "files": {}})
            self.assertEqual(next_result()["exitCode"], 4)
            send({"code": "x", "files": {}})
            self.assertEqual(next_result()["value"], 42)  # SystemExit did not end the session
            # What the bootstrap's modules call is their own: rebinding it in one run does
            # not change how the next request is read, run and reported.
            send({"code": "import base64, builtins, fnmatch, json, resource, signal\n"
                          "builtins.sorted = builtins.repr = builtins.getattr = lambda *a, **k: 1 / 0\n"
                          "base64.b64decode = fnmatch.translate = json.loads = None\n"
                          "resource.setrlimit = resource.getrlimit = signal.signal = None", "files": {}})
            patching = next_result()
            self.assertEqual(patching["status"], "ok", patching["error"])
            send({"code": "open('b/c.txt').read()", "files": {"b/c.txt": {"base64": "aGk="}},
                  "returnFiles": ["**/*.txt"], "cpuMs": 5000})
            patched = next_result()
            self.assertEqual((patched["status"], patched["value"], patched["valueRepr"]), ("ok", "hi", "'hi'"))
            self.assertEqual([(f["path"], f["base64"]) for f in patched["files"]], [("b/c.txt", "aGk=")])
            # Each run that started said so before its result.
            self.assertEqual(sum(1 for line in lines if line == {"started": True}), 9)
            requests.close()  # EOF: the session ends
            out, err = proc.communicate(timeout=30)
            results.close()
        self.assertEqual(proc.returncode, 0, err)
        self.assertEqual(out.decode(), "42\n")


if __name__ == "__main__":
    unittest.main()
