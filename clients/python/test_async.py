"""Tests of the asyncio client (pycell_client.AsyncPycell) against the real binary.

    PYCELL_BINARY=path/to/pycell python3 -m unittest -v test_async

Standard library only. ctest runs it as `python_client_async` (clients/python/tests.cmake).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import unittest
from typing import Any, Awaitable, Callable, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pycell_client import (REQUEST_CANCELLED, AsyncPycell, Execution, Output, PycellError,  # noqa: E402
                           ServerExited)

BINARY = os.environ.get("PYCELL_BINARY", "")


def setUpModule() -> None:
    if not BINARY or not os.access(BINARY, os.X_OK):
        raise RuntimeError("set PYCELL_BINARY to the pycell executable (now %r)" % BINARY)


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> bool:
    """Poll an async predicate until it holds (True) or the time is up (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.02)
    return False


class AsyncTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self) -> None:
        self.cell = await AsyncPycell(BINARY).start()

    async def asyncTearDown(self) -> None:
        # The exit code after sessions is test_exit_code_after_a_session's business.
        await self.cell.close()
        self.assertIsNotNone(self.cell.returncode)

    async def state(self, execution_id: str) -> Optional[str]:
        try:
            return str((await self.cell.status(execution_id))["state"])
        except PycellError:
            return None

    async def running(self, execution_id: str) -> bool:
        return await self.state(execution_id) == "running"

    async def test_execute_value_and_info(self) -> None:
        self.assertEqual(self.cell.info and self.cell.info["serverInfo"]["name"], "pycell")
        r = await self.cell.execute("x = 6 * 7\nx")
        self.assertEqual((r["status"], r["value"], r["valueRepr"]), ("ok", 42, "42"))
        r = await self.cell.execute("import sys\nresult = (inputs, sys.stdin.read())", inputs=[1, 2], stdin="in")
        self.assertEqual(r["value"], [[1, 2], "in"])
        r = await self.cell.execute("a = 1\nraise ValueError('bad')")
        self.assertEqual((r["status"], r["error"]["type"], r["error"]["line"]), ("error", "ValueError", 2))
        # Integers beyond 64 bits ({"$int": "..."} on the wire) come back as ints, nested too.
        r = await self.cell.execute("[2**100, {'n': -(3**50)}]")
        self.assertEqual(r["value"], [2**100, {"n": -(3**50)}])

    async def test_many_executions_at_once(self) -> None:
        results = await asyncio.gather(*(self.cell.execute("import time\ntime.sleep(0.1)\ninputs * 2", inputs=n)
                                         for n in range(8)))
        self.assertEqual([r["value"] for r in results], [n * 2 for n in range(8)])
        self.assertEqual(len({r["executionId"] for r in results}), 8)

    async def test_stream_iterates_the_output_as_it_comes(self) -> None:
        code = ("import sys, time\n"
                "for i in range(3):\n"
                "    print('line', i, flush=True)\n"
                "print('to stderr', file=sys.stderr, flush=True)\n"
                "time.sleep(0.4)\n"
                "print('last', flush=True)\n"
                "'done'")
        started = time.monotonic()
        run = self.cell.execute_stream(code)
        self.assertIsInstance(run, Execution)
        seen: List[Any] = []
        async for out in run:
            self.assertIsInstance(out, Output)
            seen.append((time.monotonic() - started, out.stream, out.text, run.done))
        result = await run
        ended = time.monotonic() - started
        self.assertEqual(result["status"], "ok", result)
        self.assertEqual(result["value"], "done")
        self.assertIs(run.result, result)
        stdout = "".join(text for _, stream, text, _ in seen if stream == "stdout")
        self.assertEqual(stdout, "line 0\nline 1\nline 2\nlast\n")
        self.assertEqual(stdout, result["stdout"])
        self.assertEqual("".join(text for _, stream, text, _ in seen if stream == "stderr"), "to stderr\n")
        # Every piece came before the result, and the first one while the run still slept.
        self.assertFalse(any(done for _, _, _, done in seen))
        self.assertLess(seen[0][0], ended - 0.3, seen)

    async def test_concurrent_streams_keep_their_own_output(self) -> None:
        async def one(n: int) -> str:
            run = self.cell.execute_stream(
                "import time\nfor i in range(3):\n    print('worker', inputs, i, flush=True)\n    time.sleep(0.05)",
                inputs=n)
            return "".join([out.text async for out in run])

        texts = await asyncio.gather(*(one(n) for n in range(4)))
        for n, text in enumerate(texts):
            self.assertEqual(text, "".join("worker %d %d\n" % (n, i) for i in range(3)))

    async def test_on_output_callback(self) -> None:
        pieces: List[str] = []
        r = await self.cell.execute("print('a', flush=True)\nprint('b')", on_output=lambda s, t: pieces.append(t))
        self.assertEqual("".join(pieces), "a\nb\n")
        self.assertEqual(r["stdout"], "a\nb\n")

    async def test_cancelling_the_task_kills_the_run(self) -> None:
        task = asyncio.ensure_future(self.cell.execute("import time\ntime.sleep(60)", executionId="async-cancel"))
        self.assertTrue(await wait_for(lambda: self.running("async-cancel")), "the run never started")
        started = time.monotonic()
        task.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await task
        # $/cancelRequest reached the server: it killed the sandbox, long before the sleep's end.
        self.assertTrue(await wait_for(lambda: self._finished("async-cancel")))
        status = await self.cell.status("async-cancel")
        self.assertEqual(status.get("status"), "killed", status)
        self.assertLess(time.monotonic() - started, 30)
        self.assertEqual((await self.cell.execute("'still fine'"))["value"], "still fine")

    async def _finished(self, execution_id: str) -> bool:
        return await self.state(execution_id) in ("finished", None)

    async def test_cancelling_an_iteration_kills_the_run(self) -> None:
        seen: List[str] = []

        async def consume() -> None:
            async for out in self.cell.execute_stream(
                    "import time\nprint('started', flush=True)\ntime.sleep(60)", executionId="async-iter-cancel"):
                seen.append(out.text)

        task = asyncio.ensure_future(consume())
        # (The output may come in pieces: print writes the text and the newline apart.)
        self.assertTrue(await wait_for(lambda: self._true("".join(seen) == "started\n")), "no output came")
        task.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await task
        self.assertTrue(await wait_for(lambda: self._finished("async-iter-cancel")))
        self.assertEqual((await self.cell.status("async-iter-cancel")).get("status"), "killed")

    async def _true(self, value: bool) -> bool:
        return value

    async def test_leaving_async_with_early_kills_the_run(self) -> None:
        async with self.cell.execute_stream("import time\nprint('go', flush=True)\ntime.sleep(60)",
                                            executionId="async-with-cancel") as run:
            seen = ""
            async for out in run:
                seen += out.text
                if seen == "go\n":
                    break
        self.assertEqual(seen, "go\n")
        self.assertTrue(run.done)
        self.assertTrue(await wait_for(lambda: self._finished("async-with-cancel")))
        self.assertEqual((await self.cell.status("async-with-cancel")).get("status"), "killed")

    async def test_timeout_cancels(self) -> None:
        with self.assertRaises(TimeoutError):
            await self.cell.execute("import time\ntime.sleep(60)", timeout=0.5, executionId="async-timeout")
        self.assertTrue(await wait_for(lambda: self._finished("async-timeout")))
        self.assertEqual((await self.cell.status("async-timeout")).get("status"), "killed")

    async def test_kill(self) -> None:
        task = asyncio.ensure_future(self.cell.execute("import time\ntime.sleep(60)", executionId="async-kill"))
        self.assertTrue(await wait_for(lambda: self.running("async-kill")), "the run never started")
        self.assertTrue((await self.cell.kill("async-kill"))["killed"])
        r = await asyncio.wait_for(task, 20)
        self.assertEqual(r["status"], "killed")

    async def test_result_again_then_forget(self) -> None:
        task = asyncio.ensure_future(self.cell.execute("import time\ntime.sleep(60)", executionId="async-kept"))
        self.assertTrue(await wait_for(lambda: self.running("async-kept")), "the run never started")
        listed = (await self.cell.status())["executions"]
        self.assertEqual([(e["executionId"], e["state"]) for e in listed], [("async-kept", "running")])
        await self.cell.kill("async-kept")
        r = await asyncio.wait_for(task, 20)
        self.assertEqual(await self.cell.result("async-kept"), r)
        self.assertTrue(await self.cell.forget("async-kept"))
        with self.assertRaises(PycellError):
            await self.cell.result("async-kept")

    async def test_refused_requests_raise(self) -> None:
        with self.assertRaises(PycellError) as cm:
            await self.cell.execute("1", profile="no-such-profile")
        self.assertEqual(cm.exception.code, -32602)
        run = self.cell.execute_stream("1", limits={"timeoutMs": 0})
        with self.assertRaises(PycellError):
            async for _ in run:
                pass
        with self.assertRaises(PycellError):
            await run
        with self.assertRaises(PycellError) as cm:
            await self.cell.request("no/such/method")
        self.assertEqual(cm.exception.code, -32601)
        self.assertEqual((await self.cell.execute("1 + 1"))["value"], 2)

    async def test_session_keeps_state_and_survives_an_interrupt(self) -> None:
        async with self.cell.session() as session:
            self.assertTrue(session.id)
            self.assertEqual((await session.execute("import math\nr = 2"))["status"], "ok")
            task = asyncio.ensure_future(session.execute("import time\nwhile True: time.sleep(0.01)",
                                                         executionId="async-sess-spin"))
            self.assertTrue(await wait_for(lambda: self.running("async-sess-spin")), "the run never started")
            self.assertTrue((await session.kill())["killed"])
            r = await asyncio.wait_for(task, 20)
            self.assertEqual(r["status"], "killed")
            self.assertEqual(r["session"], {"id": session.id, "alive": True})
            self.assertAlmostEqual((await session.execute("math.pi * r * r"))["value"], 12.566370614359172)
            text = "".join([out.text async for out in session.execute_stream("print(r * 21)")])
            self.assertEqual(text, "42\n")
        self.assertFalse(await self.cell.close_session(session.id or ""))  # closed by async with

    async def test_cancelling_a_session_run(self) -> None:
        session = await self.cell.session()
        self.assertEqual((await session.execute("kept = 'yes'"))["status"], "ok")
        task = asyncio.ensure_future(session.execute("import time\ntime.sleep(60)", executionId="async-sess-cancel"))
        self.assertTrue(await wait_for(lambda: self.running("async-sess-cancel")), "the run never started")
        task.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await task
        self.assertTrue(await wait_for(lambda: self._finished("async-sess-cancel")))
        self.assertEqual((await self.cell.status("async-sess-cancel")).get("status"), "killed")
        # The session is usable afterwards: its state, or a clear answer that it is gone.
        try:
            r = await session.execute("kept")
        except PycellError as e:
            self.assertEqual(e.code, -32602, e)
        else:
            self.assertIn(r["status"], ("ok", "error"), r)
        await session.close()

    async def test_tool_call(self) -> None:
        self.assertEqual(await self.cell.tool_call({"code": "print('hello')\n6 * 7"}), ("stdout:\nhello\nvalue: 42", False))
        text, is_error = await self.cell.tool_call('{"code": 5}')
        self.assertTrue(is_error)
        self.assertIn("code", text)

    async def test_cancel_request_code_is_exported(self) -> None:
        self.assertEqual(REQUEST_CANCELLED, -32800)


class AsyncLifecycleTest(unittest.IsolatedAsyncioTestCase):
    async def test_close_waits_for_runs_and_twice_is_fine(self) -> None:
        async with AsyncPycell(BINARY) as cell:
            task = asyncio.ensure_future(cell.execute("import time\ntime.sleep(0.5)\n'finished'"))
            self.assertTrue(await wait_for(lambda: self._busy(cell)))
        self.assertEqual(cell.returncode, 0)
        self.assertEqual((await task)["value"], "finished")
        self.assertEqual(await cell.close(), 0)
        with self.assertRaises(ServerExited):
            await cell.execute("1")

    async def _busy(self, cell: AsyncPycell) -> bool:
        s = await cell.status()
        return bool(s["running"] + s["queued"])

    async def test_exit_code_after_a_session(self) -> None:
        # close() after a session: shutdown answered, exit 0 like any other clean shutdown.
        cell = await AsyncPycell(BINARY).start()
        async with cell.session() as session:
            self.assertEqual((await session.execute("1"))["value"], 1)
        self.assertEqual(await cell.close(), 0, cell.stderr_tail())

    async def test_an_unclosed_client_does_not_hang_the_loop(self) -> None:
        # asyncio.run() ending with the client open (an exception skipped close()) cancels
        # the reader: it must end at once and the server see EOF, not wait for the server.
        code = ("import asyncio, os, sys\n"
                "sys.path.insert(0, %r)\n"
                "from pycell_client import AsyncPycell\n"
                "async def main():\n"
                "    cell = await AsyncPycell(os.environ['PYCELL_BINARY']).start()\n"
                "    print(cell.pid, flush=True)\n"
                "    raise SystemExit(7)\n"
                "asyncio.run(main())\n" % HERE)
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        self.assertEqual(proc.returncode, 7, err)
        server = int(out.decode())
        # The server saw EOF and exits (it was the child of that process: gone with it or
        # reaped by init); wait until its pid is no longer a live pycell.
        self.assertTrue(await wait_for(lambda: self._gone(server)), "the server still runs")

    async def _gone(self, pid: int) -> bool:
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().split(") ")[1].startswith("Z")
        except (OSError, IndexError):
            return True

    async def test_server_that_cannot_start(self) -> None:
        with self.assertRaises(ServerExited) as cm:
            await AsyncPycell(BINARY, args=("--no-such-option",)).start()
        self.assertIn("no-such-option", cm.exception.message)

    async def test_profile(self) -> None:
        async with AsyncPycell(BINARY, profile="datascience") as cell:
            self.assertEqual((await cell.execute("1"))["status"], "ok")
            async with cell.session() as session:
                self.assertEqual((await session.execute("2"))["value"], 2)


class AsyncJavaScriptTest(unittest.IsolatedAsyncioTestCase):
    """language="javascript" through AsyncPycell: execute, a stream, a session, analyze."""

    async def asyncSetUp(self) -> None:
        self.cell = await AsyncPycell(BINARY).start()

    async def asyncTearDown(self) -> None:
        await self.cell.close()

    async def test_execute_stream_session_analyze(self) -> None:
        r = await self.cell.execute("console.log(1+1); 6*7", language="javascript")
        self.assertEqual((r["status"], r["stdout"], r["value"]), ("ok", "2\n", 42), r)
        outputs = []
        execution = self.cell.execute_stream("await new Promise(r => setTimeout(r, 10)); console.log('late')",
                                             language="javascript")
        async for out in execution:
            outputs.append(out)
        self.assertEqual((await execution)["status"], "ok")
        self.assertEqual("".join(o.text for o in outputs if o.stream == "stdout"), "late\n")
        async with self.cell.session(language="javascript") as session:
            await session.execute("let n = 20")
            self.assertEqual((await session.execute("n + 22"))["value"], 42)
        found = (await self.cell.analyze("let = = 2;", language="javascript"))["diagnostics"]
        self.assertTrue(any(d["severity"] == 1 for d in found), found)
        self.assertEqual(await self.cell.tool_call({"code": "console.log('hi'); 6 * 7"}, language="javascript"),
                         ("stdout:\nhi\nvalue: 42", False))

    async def test_a_python_profile_refuses_javascript(self) -> None:
        with self.assertRaises(PycellError) as cm:
            await self.cell.execute("1", profile="default", language="javascript")
        self.assertEqual(cm.exception.code, -32602)


if __name__ == "__main__":
    unittest.main()
