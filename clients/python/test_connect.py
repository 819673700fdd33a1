"""Tests of Pycell.connect and AsyncPycell.connect: the clients of a shared server
(`pycell serve --listen`), against the real binary listening on a unix socket and on
loopback TCP with a token.

    PYCELL_BINARY=path/to/pycell python3 -m unittest -v test_connect

Standard library only. ctest runs it as `python_client_connect` (clients/python/tests.cmake).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from typing import Callable, Dict, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pycell_client import AsyncPycell, Pycell, PycellError, ServerExited  # noqa: E402

BINARY = os.environ.get("PYCELL_BINARY", "")
TOKEN = "a-token-for-the-tests"
UNKNOWN = -32602  # INVALID_PARAMS: another connection's execution or session is unknown here
REFUSED = -32003  # no token, or a wrong one
TOO_MANY = -32001
STOPPED = 128 + signal.SIGTERM  # the server's exit code after SIGTERM


def setUpModule() -> None:
    if not BINARY or not os.access(BINARY, os.X_OK):
        raise RuntimeError("set PYCELL_BINARY to the pycell executable (now %r)" % BINARY)


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Poll until predicate() holds (True) or the time is up (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


class SharedServer:
    """`pycell serve --listen LISTEN` for a test: started with a token file (mode 600) when
    a token is given, its address taken from its "listening on ADDRESS" line (the port the
    kernel picked for port 0), stopped with SIGTERM."""

    def __init__(self, listen: str, token: Optional[str] = None, args: Sequence[str] = ()) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="pycell-connect-")
        listen = listen.replace("DIR", self._dir.name)
        command = [BINARY, "serve", "--listen", listen, *args]
        if token is not None:
            path = os.path.join(self._dir.name, "token")
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
                f.write(token + "\n")
            os.chmod(path, 0o600)
            command += ["--token-file", path]
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.log: List[str] = []
        self.address = self._address()
        # The rest of its log is read on, so that the server never blocks on a full pipe.
        self._drain = threading.Thread(target=self._read_log, daemon=True)
        self._drain.start()

    def _address(self) -> str:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace")
            self.log.append(line)
            match = re.search(r"listening on (\S+)", line)
            if match:
                return match.group(1)
        self.proc.wait()
        self._dir.cleanup()
        raise RuntimeError("the server did not listen (exit code %s):\n%s" % (self.proc.returncode, "".join(self.log)))

    def _read_log(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            self.log.append(raw.decode("utf-8", "replace"))

    def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        self._drain.join(10)
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        self._dir.cleanup()
        return code


def state(cell: Pycell, execution_id: str) -> Optional[str]:
    try:
        return str(cell.status(execution_id)["state"])
    except PycellError:  # not there yet
        return None


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class TwoServers:
    """One shared server on a unix socket and one on loopback TCP with a token, for the class."""

    unix: SharedServer
    tcp: SharedServer

    @classmethod
    def setUpClass(cls) -> None:
        cls.unix = SharedServer("unix:DIR/pycell.sock")
        cls.tcp = SharedServer("tcp:127.0.0.1:0", token=TOKEN)

    @classmethod
    def tearDownClass(cls) -> None:
        for server in (cls.unix, cls.tcp):
            server.stop()


class ConnectTest(TwoServers, unittest.TestCase):

    def connect(self, server: SharedServer, token: Optional[str] = None) -> Pycell:
        cell = Pycell.connect(server.address, token=token)
        self.addCleanup(cell.close)
        return cell

    def test_execute_over_a_unix_socket(self) -> None:
        self.assertTrue(self.unix.address.startswith("unix:"), self.unix.address)
        cell = self.connect(self.unix)
        self.assertEqual(cell.info and cell.info["serverInfo"]["name"], "pycell")
        r = cell.execute("x = 6 * 7\nx")
        self.assertEqual((r["status"], r["value"]), ("ok", 42))
        pieces: List[str] = []
        cell.execute("print('streamed')", on_output=lambda stream, text: pieces.append(text))
        self.assertEqual("".join(pieces), "streamed\n")
        self.assertIsNone(cell.pid)
        self.assertIsNone(cell.returncode)

    def test_execute_over_tcp_with_the_token(self) -> None:
        self.assertRegex(self.tcp.address, r"^tcp:127\.0\.0\.1:[1-9][0-9]*$")
        cell = self.connect(self.tcp, token=TOKEN)
        self.assertEqual(cell.execute("6 * 7")["value"], 42)
        with cell.session() as s:
            s.execute("kept = 'in the session'")
            self.assertEqual(s.execute("kept")["value"], "in the session")

    def test_close_closes_the_connection_not_the_server(self) -> None:
        cell = Pycell.connect(self.unix.address)
        self.assertEqual(cell.execute("1")["value"], 1)
        self.assertEqual(cell.close(), 0)
        self.assertEqual(cell.returncode, 0)
        self.assertEqual(cell.close(), 0)  # twice is fine
        with self.assertRaises(ServerExited):
            cell.execute("1")
        self.assertIsNone(self.unix.proc.poll())
        self.assertEqual(self.connect(self.unix).execute("2")["value"], 2)

    def test_each_client_sees_only_its_own_executions(self) -> None:
        for server, token in ((self.unix, None), (self.tcp, TOKEN)):
            with self.subTest(address=server.address):
                a, b = self.connect(server, token), self.connect(server, token)
                self.assertEqual(a.execute("'from a'", executionId="run-1")["value"], "from a")
                self.assertEqual(a.result("run-1")["value"], "from a")
                others: List[Callable[[str], object]] = [b.status, b.result, b.kill]
                for other in others:
                    with self.assertRaises(PycellError) as cm:
                        other("run-1")
                    self.assertEqual(cm.exception.code, UNKNOWN)
                self.assertFalse(b.forget("run-1"))
                # The same id is b's own to use, and a's run is still a's.
                self.assertEqual(b.execute("'from b'", executionId="run-1")["value"], "from b")
                self.assertEqual(a.result("run-1")["value"], "from a")
                session = a.create_session()
                with self.assertRaises(PycellError) as cm:
                    b.execute("1", session=session)
                self.assertEqual(cm.exception.code, UNKNOWN)
                self.assertFalse(b.close_session(session))
                self.assertTrue(a.close_session(session))

    def test_a_wrong_or_missing_token_is_refused(self) -> None:
        for token in ("not-the-token", None):
            with self.subTest(token=token):
                with self.assertRaises(PycellError) as cm:
                    Pycell.connect(self.tcp.address, token=token)
                self.assertEqual(cm.exception.code, REFUSED)
                self.assertIn("token", cm.exception.message)

    @unittest.skipUnless(ipv6_loopback(), "no IPv6 loopback here")
    def test_ipv6_address(self) -> None:
        server = SharedServer("tcp:[::1]:0")
        try:
            self.assertTrue(server.address.startswith("tcp:[::1]:"), server.address)
            with Pycell.connect(server.address) as cell:
                self.assertEqual(cell.execute("6 * 7")["value"], 42)
        finally:
            self.assertEqual(server.stop(), STOPPED, "".join(server.log))

    def test_addresses_that_are_not(self) -> None:
        for address in ("localhost:7777", "tcp:7777", "tcp:::1:7777", "unix:"):
            with self.subTest(address=address):
                with self.assertRaises(ValueError):
                    Pycell.connect(address)
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaises(ServerExited) as cm:
                Pycell.connect("unix:" + os.path.join(tmp, "nobody-listens.sock"))
            self.assertIn("cannot connect", cm.exception.message)


class LimitsAndDropsTest(unittest.TestCase):
    def test_a_connection_past_max_connections_is_refused(self) -> None:
        server = SharedServer("unix:DIR/pycell.sock", args=("--max-connections", "1"))
        try:
            with Pycell.connect(server.address) as first:
                with self.assertRaises(PycellError) as cm:
                    Pycell.connect(server.address)
                self.assertEqual(cm.exception.code, TOO_MANY)
                self.assertIn("too many connections", cm.exception.message)
                self.assertEqual(first.execute("1")["value"], 1)  # the first one is unharmed
        finally:
            self.assertEqual(server.stop(), STOPPED, "".join(server.log))

    def test_a_dropped_connection_fails_requests_clearly(self) -> None:
        server = SharedServer("unix:DIR/pycell.sock")
        stopped = False
        try:
            cell = Pycell.connect(server.address)
            self.addCleanup(cell.close)
            box: Dict[str, object] = {}

            def run() -> None:
                try:
                    box["result"] = cell.execute("import time\ntime.sleep(60)", executionId="long")
                except PycellError as e:
                    box["error"] = e

            t = threading.Thread(target=run)
            t.start()
            self.assertTrue(wait_until(lambda: state(cell, "long") == "running"))
            server.stop()  # SIGTERM: the run ends, the connection is closed
            stopped = True
            t.join(30)
            self.assertFalse(t.is_alive())
            if "error" in box:  # the answer may be lost with the connection, but not silently
                self.assertIsInstance(box["error"], ServerExited)
            else:
                self.assertEqual(box["result"]["status"], "killed")  # type: ignore[index]
            with self.assertRaises(ServerExited) as cm:
                cell.execute("1")
            self.assertIn("connection to " + server.address, cm.exception.message)
            self.assertTrue(wait_until(lambda: cell.returncode == 0), "closed by the server: returncode 0")
        finally:
            if not stopped:
                server.stop()


class AsyncConnectTest(TwoServers, unittest.IsolatedAsyncioTestCase):

    async def test_execute_over_both(self) -> None:
        for server, token in ((self.unix, None), (self.tcp, TOKEN)):
            with self.subTest(address=server.address):
                async with AsyncPycell.connect(server.address, token=token) as cell:
                    self.assertEqual((await cell.execute("6 * 7"))["value"], 42)
                    pieces = [out.text async for out in cell.execute_stream("print('a'); print('b')")]
                    self.assertEqual("".join(pieces), "a\nb\n")
                    self.assertIsNone(cell.pid)
                self.assertEqual(cell.returncode, 0)
                with self.assertRaises(ServerExited):
                    await cell.execute("1")

    async def test_each_client_sees_only_its_own_executions(self) -> None:
        a = await AsyncPycell.connect(self.tcp.address, token=TOKEN)
        b = await AsyncPycell.connect(self.tcp.address, token=TOKEN)
        try:
            self.assertEqual((await a.execute("'from a'", executionId="run-1"))["value"], "from a")
            with self.assertRaises(PycellError) as cm:
                await b.result("run-1")
            self.assertEqual(cm.exception.code, UNKNOWN)
            with self.assertRaises(PycellError) as cm:
                await b.status("run-1")
            self.assertEqual(cm.exception.code, UNKNOWN)
            async with a.session() as session:
                assert session.id is not None
                with self.assertRaises(PycellError) as cm:
                    await b.execute("1", session=session.id)
                self.assertEqual(cm.exception.code, UNKNOWN)
            self.assertEqual((await a.result("run-1"))["value"], "from a")
        finally:
            self.assertEqual(await a.close(), 0)
            self.assertEqual(await b.close(), 0)

    async def test_a_wrong_token_is_refused(self) -> None:
        with self.assertRaises(PycellError) as cm:
            await AsyncPycell.connect(self.tcp.address, token="not-the-token")
        self.assertEqual(cm.exception.code, REFUSED)

    async def test_cancelling_a_run_over_the_socket(self) -> None:
        async with AsyncPycell.connect(self.unix.address) as cell:
            task = asyncio.ensure_future(cell.execute("import time\ntime.sleep(60)", executionId="cancelled"))

            async def running() -> bool:
                try:
                    return bool((await cell.status("cancelled"))["state"] == "running")
                except PycellError:
                    return False

            deadline = time.monotonic() + 20
            while not await running():
                self.assertLess(time.monotonic(), deadline, "the run did not start")
                await asyncio.sleep(0.02)
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            self.assertEqual((await cell.execute("'still here'"))["value"], "still here")

    async def test_a_connection_past_max_connections_is_refused(self) -> None:
        loop = asyncio.get_running_loop()  # starting and stopping a server blocks: not on the loop
        server = await loop.run_in_executor(None, lambda: SharedServer("unix:DIR/pycell.sock",
                                                                       args=("--max-connections", "1")))
        try:
            async with AsyncPycell.connect(server.address) as first:
                with self.assertRaises(PycellError) as cm:
                    await AsyncPycell.connect(server.address)
                self.assertEqual(cm.exception.code, TOO_MANY)
                self.assertEqual((await first.execute("1"))["value"], 1)
        finally:
            self.assertEqual(await loop.run_in_executor(None, server.stop), STOPPED, "".join(server.log))


if __name__ == "__main__":
    unittest.main()
