"""Tests of examples/celery_worker.py and examples/ray_actor.py against the real binary.

    PYCELL_BINARY=path/to/pycell python3 -m unittest -v test_examples

Both files are byte-compiled. The Celery task runs for real in eager mode (task_always_eager:
no broker, no worker; the task body and the per-process pycell are the real ones) when
Celery is installed (Debian's python3-celery), and is skipped, saying so, when it is not.
Ray is not in Debian: the Ray example is imported with a stand-in `ray` module that runs
every actor call synchronously in this process, so the actor class's own methods, and the
example's main(), run for real against pycell; what Ray itself does (placement, processes,
threads) is not tested here. ctest runs it as `python_client_examples`
(clients/python/tests.cmake).
"""

import importlib.util
import json
import os
import signal
import sys
import time
import types
import unittest
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "examples")
sys.path.insert(0, HERE)  # the examples import pycell_client from here
BINARY = os.environ.get("PYCELL_BINARY", "")


def setUpModule():
    if not BINARY or not os.access(BINARY, os.X_OK):
        raise RuntimeError("set PYCELL_BINARY to the pycell executable (now %r)" % BINARY)


def load(name):
    """The example examples/NAME.py as a fresh module (not cached in sys.modules)."""
    spec = importlib.util.spec_from_file_location("example_" + name, os.path.join(EXAMPLES, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wait_until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def process_gone(pid):
    """True once `pid` is not a live process (a zombie counts as gone: it runs nothing)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


class ByteCompile(unittest.TestCase):
    def test_examples_compile(self):
        for name in ("celery_worker.py", "ray_actor.py"):
            with self.subTest(name), open(os.path.join(EXAMPLES, name), encoding="utf-8") as f:
                compile(f.read(), name, "exec")  # a SyntaxError fails the test; nothing is written


@unittest.skipIf(importlib.util.find_spec("celery") is None,
                 "Celery is not installed (Debian's python3-celery): the Celery example only byte-compiled")
class CeleryExample(unittest.TestCase):
    def setUp(self):
        os.environ["PYCELL_BINARY"] = BINARY
        # Celery 5.2 and kombu use an entry-points interface Python 3.10+ deprecates.
        warnings.filterwarnings("ignore", "SelectableGroups dict interface", DeprecationWarning)
        self.worker = load("celery_worker")
        self.worker.app.conf.task_always_eager = True      # run in this process, no broker
        self.worker.app.conf.task_eager_propagates = True  # a task's exception fails the test
        self.addCleanup(self.worker.close_cell)

    def run_task(self, code, **kwargs):
        result = self.worker.run_code.delay(code, **kwargs).get(timeout=60)
        json.dumps(result)  # what a result backend would store: JSON only
        return result

    def test_task_runs_in_the_process_pycell(self):
        r = self.run_task("sum(inputs)", inputs=[1, 2, 3])
        self.assertEqual((r["status"], r["value"]), ("ok", 6), r)
        first = self.worker.cell()
        r = self.run_task("1 / 0")
        self.assertEqual(r["status"], "error", r)
        self.assertEqual(r["error"]["type"], "ZeroDivisionError")
        r = self.run_task("import time\ntime.sleep(5)", timeout_ms=300)
        self.assertEqual(r["status"], "timeout", r)
        r = self.run_task("console.log('js'); 6 * 7", language="javascript")
        self.assertEqual((r["status"], r["stdout"], r["value"]), ("ok", "js\n", 42), r)
        self.assertIs(self.worker.cell(), first, "every task of a process uses its one pycell")

    def test_started_lazily_and_closed_at_process_shutdown(self):
        self.assertIsNone(self.worker._cell, "no pycell before the first task")
        self.run_task("1")
        cell = self.worker.cell()
        pid = cell.pid
        # What Celery sends in a prefork child as it exits.
        self.worker.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=0)
        self.assertEqual(cell.returncode, 0, "pycell stopped after shutdown then exit")
        self.assertTrue(process_gone(pid))
        self.assertIsNone(self.worker._cell)
        # The next task starts another; the worker's own shutdown (solo, threads) closes it.
        self.assertEqual(self.run_task("2 + 2")["value"], 4)
        second = self.worker.cell()
        self.assertNotEqual(second.pid, pid)
        self.worker.worker_shutdown.send(sender=None)
        self.assertEqual(second.returncode, 0)

    def test_a_dead_pycell_is_replaced(self):
        self.run_task("1")
        cell = self.worker.cell()
        os.kill(cell.pid, signal.SIGKILL)
        self.assertTrue(wait_until(lambda: cell.returncode is not None), "pycell did not die")
        r = self.run_task("6 * 7")
        self.assertEqual((r["status"], r["value"]), ("ok", 42), r)
        self.assertIsNot(self.worker.cell(), cell)


class StubRay(types.ModuleType):
    """Just enough of `ray` for examples/ray_actor.py: ray.remote(**options)(cls) gives an
    actor class whose handles run each method call at once, in this process; ray.get
    returns what it is given. It keeps the options and every actor instance made."""

    def __init__(self):
        super().__init__("ray")
        self.options, self.actor_classes, self.instances, self.calls = None, [], [], []

    def remote(self, **options):
        def decorate(cls):
            self.options = options
            self.actor_classes.append(cls)
            return _StubActorClass(self, cls)
        return decorate

    def init(self, *args, **kwargs):
        self.calls.append("init")

    def shutdown(self):
        self.calls.append("shutdown")

    def get(self, refs):
        return list(refs) if isinstance(refs, list) else refs

    def available_resources(self):
        return {"CPU": 4.0, "memory": 8e9}  # room for two actors of two cores


class _StubActorClass:
    def __init__(self, ray, cls):
        self._ray, self._cls = ray, cls

    def remote(self, *args, **kwargs):
        instance = self._cls(*args, **kwargs)
        self._ray.instances.append(instance)
        return _StubHandle(instance)


class _StubHandle:
    def __init__(self, instance):
        self._instance = instance

    def __getattr__(self, name):
        method = getattr(self._instance, name)
        return types.SimpleNamespace(remote=method)


class RayExample(unittest.TestCase):
    def setUp(self):
        os.environ["PYCELL_BINARY"] = BINARY
        self.ray = StubRay()
        saved = sys.modules.get("ray")
        sys.modules["ray"] = self.ray
        self.addCleanup(lambda: sys.modules.__setitem__("ray", saved) if saved else sys.modules.pop("ray"))
        self.example = load("ray_actor")

    def test_actor_class_is_the_worker(self):
        self.assertEqual(self.ray.actor_classes, [self.example.PycellWorker])
        cpus = self.example.CPUS
        self.assertEqual(self.ray.options, {"num_cpus": cpus, "max_concurrency": cpus})

    def test_main_runs_on_pycell(self):
        results = self.example.main()
        self.assertEqual(self.ray.calls, ["init", "shutdown"])
        self.assertEqual([r["status"] for r in results], ["ok", "ok", "error", "ok", "ok"], results)
        self.assertEqual([r.get("value") for r in results], [9, 120, None, 5, 42], results)
        self.assertEqual(results[2]["error"]["type"], "ZeroDivisionError")
        # Two actors (4 CPUs, 2 each), each with a pycell of its own running 2 executions at
        # once, both stopped cleanly by close().
        self.assertEqual(len(self.ray.instances), 2)
        pids = {w.cell.pid for w in self.ray.instances}
        self.assertEqual(len(pids), 2)
        self.assertEqual([w.cell.returncode for w in self.ray.instances], [0, 0])

    def test_worker_sessions_and_status(self):
        worker = self.example.PycellWorker(BINARY)
        self.addCleanup(worker.close)
        with open("/proc/%d/cmdline" % worker.cell.pid, "rb") as f:
            argv = f.read().decode().split("\0")
        self.assertIn("--max-concurrent\0%d" % self.example.CPUS, "\0".join(argv), argv)
        session = worker.create_session()
        worker.run("import math\nr = 2", session=session)
        self.assertAlmostEqual(worker.run("math.pi * r * r", session=session)["value"], 12.566370614359172)
        self.assertEqual(worker.run("r")["status"], "error", "a fresh sandbox has none of the session's state")
        self.assertIn(session, [s.get("session", s.get("id")) for s in worker.status()["sessions"]])
        self.assertTrue(worker.close_session(session))
        self.assertFalse(worker.close_session(session))


if __name__ == "__main__":
    unittest.main()
