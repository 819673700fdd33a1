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


def run_raw(request_bytes, stdin=b"", cwd=None):
    """Run the bootstrap on raw request bytes; returns (result bytes, stdout, stderr, rc)."""
    req_r, req_w = os.pipe()
    res_r, res_w = os.pipe()

    def wire_fds():
        # In the child: request read end at fd 3, result write end at fd 4.
        # Go through fds >= 10 first so neither dup2 clobbers the other source.
        a = fcntl.fcntl(req_r, fcntl.F_DUPFD, 10)
        b = fcntl.fcntl(res_w, fcntl.F_DUPFD, 10)
        os.dup2(a, 3)
        os.dup2(b, 4)

    with tempfile.TemporaryDirectory() as tmp:
        # fds 3 and 4 are open here (os.pipe took the lowest free numbers), so
        # they can be kept; wire_fds points them at the pipes before exec.
        proc = subprocess.Popen(
            [sys.executable, "-I", "-B", "-u", "-X", "utf8", BOOTSTRAP],
            cwd=cwd or tmp, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, pass_fds=(3, 4), preexec_fn=wire_fds)
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


def run(code, stdin=b"", cwd=None, **request):
    """Run `code` with extra request fields; returns (result, stdout, stderr, rc)."""
    request["code"] = code
    raw, out, err, rc = run_raw(json.dumps(request).encode(), stdin, cwd)
    return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant), out, err, rc


def _read_all(fd):
    data = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return data
        data += chunk


class BootstrapTest(unittest.TestCase):
    def assertShape(self, result):
        self.assertEqual(set(result), {"status", "exitCode", "value", "valueRepr", "error", "usage"})
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
        result, _, _, _ = run("{1, 2}")
        self.assertIsNone(result["value"])
        self.assertEqual(result["valueRepr"], "{1, 2}")

    def test_nan_value_is_strict_json(self):
        result, _, _, _ = run("float('nan')")  # run() parses with strict constants
        self.assertEqual(result["status"], "ok")
        self.assertIsNone(result["value"])
        self.assertEqual(result["valueRepr"], "nan")

    def test_limits(self):
        result, _, _, _ = run("'x' * 100", maxReprBytes=10, maxValueBytes=50)
        self.assertIsNone(result["value"])
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
        result = json.loads(raw)
        self.assertEqual((result["status"], result["exitCode"], rc), ("error", 70, 70))
        self.assertEqual(result["error"]["type"], "BootstrapError")
        self.assertIn("cannot read the request", err)


if __name__ == "__main__":
    unittest.main()
