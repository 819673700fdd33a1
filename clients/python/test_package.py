"""Tests of pycell_client as a package: its public API, `python3 -m pycell_client`, an
offline install into a fresh venv, and `mypy --strict`.

    PYCELL_BINARY=path/to/pycell python3 -m unittest -v test_package

Needs Debian's python3-venv, python3-pip, python3-setuptools, python3-wheel and mypy
(scripts/install-deps.sh installs them). ctest runs it as `python_client_package`
(clients/python/tests.cmake).
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pycell_client  # noqa: E402

BINARY = os.environ.get("PYCELL_BINARY", "")
PACKAGE = os.path.join(HERE, "pycell_client")


def setUpModule() -> None:
    if not BINARY or not os.access(BINARY, os.X_OK):
        raise RuntimeError("set PYCELL_BINARY to the pycell executable (now %r)" % BINARY)


def offline_env(**extra: str) -> Dict[str, str]:
    """The environment of a child: no pip configuration of this machine (find-links, an
    index), no pip cache, no bytecode written into the checkout."""
    env = dict(os.environ, PIP_CONFIG_FILE=os.devnull, PIP_NO_CACHE_DIR="1", PIP_NO_INDEX="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONDONTWRITEBYTECODE="1", PYCELL_BINARY=BINARY)
    env.pop("PYTHONPATH", None)
    env.update(extra)
    return env


def run(args: List[str], stdin: Optional[str] = None, cwd: Optional[str] = None,
        env: Optional[Dict[str, str]] = None) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=300, cwd=cwd, env=env)


def copy_project(into: str) -> str:
    """clients/python's package files (what a checkout holds) copied into a directory, so
    that building it leaves nothing (build/, *.egg-info) in the checkout."""
    target = os.path.join(into, "python")
    os.makedirs(target)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(HERE, name), target)
    shutil.copytree(PACKAGE, os.path.join(target, "pycell_client"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


class ApiTest(unittest.TestCase):
    def test_public_api(self) -> None:
        for name in pycell_client.__all__:
            self.assertTrue(hasattr(pycell_client, name), name)
        for name in ("Pycell", "AsyncPycell", "Session", "AsyncSession", "Execution", "Output", "PycellError",
                     "ServerExited", "tool_call", "run_tool", "openai_tool", "anthropic_tool", "__version__"):
            self.assertIn(name, pycell_client.__all__)
        self.assertTrue(os.path.isfile(os.path.join(PACKAGE, "py.typed")))

    def test_version_is_the_servers(self) -> None:
        with pycell_client.Pycell(BINARY) as cell:
            self.assertEqual(pycell_client.__version__, (cell.info or {})["serverInfo"]["version"])

    def test_every_function_has_type_hints(self) -> None:
        # mypy --strict checks this too (test_mypy_strict); this runs where mypy is missing.
        missing = []
        for module_name in ("_common", "_sync", "_async", "_tool", "__main__"):
            module = __import__("pycell_client." + module_name, fromlist=["_"])
            for _, owner in [("", module)] + inspect.getmembers(module, inspect.isclass):
                if getattr(owner, "__module__", module.__name__) != module.__name__:
                    continue
                for name, fn in inspect.getmembers(owner, inspect.isfunction):
                    if fn.__module__ != module.__name__:
                        continue
                    annotations = fn.__annotations__
                    params = [p for p in inspect.signature(fn).parameters if p not in ("self", "cls")]
                    if "return" not in annotations or any(p not in annotations for p in params):
                        missing.append("%s.%s" % (owner.__name__, name))
        self.assertEqual(missing, [])


class RunnerTest(unittest.TestCase):
    """python3 -m pycell_client, as a user runs it (from clients/python)."""

    def runner(self, *args: str, stdin: Optional[str] = None) -> "subprocess.CompletedProcess[str]":
        return run([sys.executable, "-m", "pycell_client", "--binary", BINARY, *args], stdin=stdin, cwd=HERE,
                   env=offline_env())

    def test_code(self) -> None:
        p = self.runner("-c", "print('hello')\n6 * 7")
        self.assertEqual((p.returncode, p.stdout), (0, "hello\n42\n"), p.stderr)

    def test_file_and_exit_codes(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "prog.py")
            with open(path, "w", encoding="utf-8") as f:
                f.write("import sys\nprint('out')\nprint('err', file=sys.stderr)\nraise SystemExit(3)\n")
            p = self.runner(path)
            self.assertEqual((p.returncode, p.stdout), (3, "out\n"), p.stderr)
            self.assertIn("err\n", p.stderr)
        p = self.runner("-c", "x = 1\n1 / 0")
        self.assertEqual(p.returncode, 1)
        self.assertIn("ZeroDivisionError", p.stderr)
        p = self.runner("--timeout-ms", "300", "-c", "while True: pass")
        self.assertEqual(p.returncode, 124, p.stderr)
        self.assertIn("timeout", p.stderr)
        p = self.runner("--profile", "no-such-profile", "-c", "1")
        self.assertEqual(p.returncode, 2)
        self.assertIn("no-such-profile", p.stderr)

    def test_program_from_stdin(self) -> None:
        p = self.runner("-", stdin="print(sum(range(10)))\n")
        self.assertEqual((p.returncode, p.stdout), (0, "45\n"), p.stderr)

    def test_repl_keeps_state_in_a_session(self) -> None:
        p = self.runner(stdin="x = 20\ndef f(y):\n    return x + y\n\nf(22)\nprint('hi')\nundefined_name\nx\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "42\nhi\n20\n")
        self.assertIn("NameError", p.stderr)

    def test_a_javascript_file(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "prog.js")
            with open(path, "w", encoding="utf-8") as f:
                f.write("console.log('from node');\n6 * 7\n")
            p = self.runner(path)
            self.assertEqual((p.returncode, p.stdout), (0, "from node\n42\n"), p.stderr)
        p = self.runner("--language", "javascript", stdin="let x = 20\nfunction f(y) {\n  return x + y\n}\nf(22)\n")
        self.assertEqual((p.returncode, p.stdout), (0, "42\n"), p.stderr)

    def test_no_binary(self) -> None:
        p = run([sys.executable, "-m", "pycell_client", "--binary", os.path.join(HERE, "no-such-pycell"), "-c", "1"],
                cwd=HERE, env=offline_env())
        self.assertEqual(p.returncode, 2)
        self.assertIn("pycell not found", p.stderr)


class InstallTest(unittest.TestCase):
    """The package installs without network, the way the README says."""

    def check_venv(self, python: str, cwd: str) -> None:
        code = ("import pycell_client, os, sys\n"
                "assert os.path.dirname(pycell_client.__file__).startswith(sys.prefix), pycell_client.__file__\n"
                "with pycell_client.Pycell(os.environ['PYCELL_BINARY']) as cell:\n"
                "    print(cell.execute('6 * 7')['value'])\n")
        p = run([python, "-c", code], cwd=cwd, env=offline_env())
        self.assertEqual((p.returncode, p.stdout), (0, "42\n"), p.stderr)
        p = run([python, "-m", "pycell_client", "-c", "print('from the venv')"], cwd=cwd,
                env=offline_env())
        self.assertEqual((p.returncode, p.stdout), (0, "from the venv\n"), p.stderr)

    def test_pip_install_into_a_venv(self) -> None:
        # A venv that sees Debian's setuptools and wheel: `pip install --no-build-isolation`
        # builds with them, nothing is downloaded (PIP_NO_INDEX).
        with tempfile.TemporaryDirectory() as tmp:
            venv = os.path.join(tmp, "venv")
            p = run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv], env=offline_env())
            self.assertEqual(p.returncode, 0, "python3 -m venv failed (python3-venv installed?)\n" + p.stderr)
            project = copy_project(tmp)
            p = run([os.path.join(venv, "bin", "pip"), "install", "--no-build-isolation", project],
                    env=offline_env())
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            python = os.path.join(venv, "bin", "python")
            self.check_venv(python, tmp)
            # py.typed is installed: mypy takes the package's own annotations.
            snippet = os.path.join(tmp, "use.py")
            with open(snippet, "w", encoding="utf-8") as f:
                f.write("from pycell_client import Pycell\n"
                        "def answer(cell: Pycell) -> int:\n"
                        "    return cell.execute('1')\n")  # a dict, not an int: mypy must say so
            if importlib.util.find_spec("mypy") is None:
                self.fail("mypy is not installed (Debian package mypy; scripts/install-deps.sh installs it)")
            p = run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--python-executable", python,
                     snippet], cwd=tmp, env=offline_env())
            self.assertRegex(p.stdout, r'Incompatible return value type \(got "[Dd]ict\[str, Any\]", expected "int"\)',
                             p.stdout + p.stderr)
            self.assertNotIn("py.typed", p.stdout)

    def test_wheel_into_a_plain_venv(self) -> None:
        # A plain venv has no `wheel` to build with: build the wheel with the system's
        # python3 and install that.
        with tempfile.TemporaryDirectory() as tmp:
            project = copy_project(tmp)
            dist = os.path.join(tmp, "dist")
            p = run(["/usr/bin/python3", "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-w", dist,
                     project], env=offline_env())
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            wheels = [n for n in os.listdir(dist) if n.endswith(".whl")]
            self.assertEqual(len(wheels), 1, wheels)
            self.assertTrue(wheels[0].startswith("pycell_client-%s-py3-none-any" % pycell_client.__version__), wheels)
            venv = os.path.join(tmp, "venv")
            p = run(["/usr/bin/python3", "-m", "venv", venv], env=offline_env())
            self.assertEqual(p.returncode, 0, p.stderr)
            p = run([os.path.join(venv, "bin", "pip"), "install", os.path.join(dist, wheels[0])], env=offline_env())
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.check_venv(os.path.join(venv, "bin", "python"), tmp)


class MypyTest(unittest.TestCase):
    def test_mypy_strict(self) -> None:
        if importlib.util.find_spec("mypy") is None:
            self.fail("mypy is not installed (Debian package mypy; scripts/install-deps.sh installs it)")
        with tempfile.TemporaryDirectory() as cache:
            for version in ("3.8", "%d.%d" % sys.version_info[:2]):
                with self.subTest(python=version):
                    p = run([sys.executable, "-m", "mypy", "--strict", "--python-version", version,
                             "--cache-dir", cache, "pycell_client", "test_async.py", "test_connect.py",
                             "test_package.py", "example_agent.py"],
                            cwd=HERE, env=offline_env())
                    self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                    self.assertIn("Success: no issues found", p.stdout)


if __name__ == "__main__":
    unittest.main()
