"""Tests for the zygote's fork loop in libpycell_child.so (pycell_serve_forks and
pycell_learn_pages), driven over a real SOCK_SEQPACKET socket the way the server drives it.

A helper interpreter loads the library and serves forks on its end of the socket; this test
plays the server: it sends fork requests with five pipe fds, gets each child's pidfd, writes
the go byte, and reads what the child reports on its result pipe.

Run: PYCELL_CHILD_LIB=build/libpycell_child.so python3 -m unittest -v tests/python/test_fork_loop.py
"""
import json
import os
import select
import socket
import subprocess
import sys
import unittest

LIBRARY = os.environ.get("PYCELL_CHILD_LIB") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "libpycell_child.so")

# The zygote's side, as zygote.py does it. In a child: learn the pages, report on fd 4
# (the result pipe) what it sees, exit 7.
HELPER = r"""
import ctypes, json, os, sys, threading, time
lib = ctypes.PyDLL(sys.argv[1])
lib.pycell_serve_forks.restype = ctypes.c_long
lib.pycell_last_error.restype = ctypes.c_char_p

class Hooks(ctypes.Structure):
    _fields_ = [("before", ctypes.c_void_p), ("after_parent", ctypes.c_void_p), ("after_child", ctypes.c_void_p)]

hooks = Hooks(*(ctypes.cast(getattr(ctypes.pythonapi, n), ctypes.c_void_p)
                for n in ("PyOS_BeforeFork", "PyOS_AfterFork_Parent", "PyOS_AfterFork_Child")))
if sys.argv[3] == "threaded":
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
fds = (ctypes.c_int * 5)()
ident = lib.pycell_serve_forks(int(sys.argv[2]), 1, ctypes.byref(hooks), fds)
if ident > 0:
    learned = lib.pycell_learn_pages()
    shared = [l.strip() for l in open("/proc/self/maps") if l.split()[1][1:4] == "w-s"]
    report = {"id": ident, "pid": os.getpid(), "learned": learned, "shared": shared,
              "fds": [os.path.exists("/proc/self/fd/%d" % fd) for fd in fds]}
    os.write(fds[4], json.dumps(report).encode())
    os._exit(7)
print("served %d %s" % (ident, lib.pycell_last_error().decode()))
sys.exit(0 if ident == 0 else 1)
"""


class Loop:
    """One helper serving forks; this object is its server."""

    def __init__(self, mode="plain"):
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", HELPER, LIBRARY, str(theirs.fileno()), mode],
            pass_fds=(theirs.fileno(),), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        theirs.close()

    def send(self, text, fds=()):
        socket.send_fds(self.sock, [text.encode()], list(fds))

    def receive(self, timeout=10):
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            raise AssertionError("no message from the fork loop in %s s" % timeout)
        data, fds, _, _ = socket.recv_fds(self.sock, 4096, 4)
        return json.loads(data), fds

    def close(self):
        self.sock.close()
        out, err = self.proc.communicate(timeout=10)
        return self.proc.returncode, out.decode(), err.decode()


class ChildPipes:
    """The five pipes a fork request carries: stdin, stdout, stderr, request, result."""

    def __init__(self):
        self.pairs = [os.pipe() for _ in range(5)]
        # The child's ends: stdin's read, stdout's and stderr's write, request's read, result's write.
        self.theirs = [self.pairs[0][0], self.pairs[1][1], self.pairs[2][1], self.pairs[3][0], self.pairs[4][1]]

    def sent(self):
        for fd in self.theirs:
            os.close(fd)

    def go(self):
        os.write(self.pairs[3][1], b"g")

    def read(self, which, timeout=10):
        fd = self.pairs[which][0]
        chunks = []
        while True:
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                raise AssertionError("pipe %d gave no EOF in %s s" % (which, timeout))
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def close(self):
        for r, w in self.pairs:
            for fd in (r, w):
                try:
                    os.close(fd)
                except OSError:
                    pass


class ForkLoopTest(unittest.TestCase):
    def setUp(self):
        self.assertTrue(os.path.exists(LIBRARY), "no %s: set PYCELL_CHILD_LIB to the built library" % LIBRARY)

    def fork(self, loop, ident):
        pipes = ChildPipes()
        self.addCleanup(pipes.close)
        loop.send(json.dumps({"id": ident, "op": "fork"}), pipes.theirs)
        pipes.sent()
        event, fds = loop.receive()
        self.assertEqual(event, {"event": "forked", "id": ident})
        self.assertEqual(len(fds), 1, "the child's pidfd comes with the answer")
        self.addCleanup(os.close, fds[0])
        return pipes

    def test_forks_reports_exits_and_learns_pages_once(self):
        loop = Loop()
        reports = []
        for ident in (3, 4):
            pipes = self.fork(loop, ident)
            pipes.go()
            reports.append(json.loads(pipes.read(4)))
            event, _ = loop.receive()
            self.assertEqual(event["event"], "exit")
            self.assertEqual(event["id"], ident)
            self.assertEqual(event["status"], 7 << 8)
        first, second = reports
        self.assertEqual([r["id"] for r in reports], [3, 4])
        self.assertEqual(first["pid"], 1, "each child is PID 1 of its own pid namespace")
        self.assertEqual(first["fds"], [True] * 5)
        self.assertGreater(first["learned"], 0, "the first child records the pages it wrote")
        self.assertEqual(second["learned"], 0, "later children use the record, and make none")
        # The shared region is gone before anything else could run in either child.
        self.assertEqual(first["shared"], [])
        self.assertEqual(second["shared"], [])
        self.assertEqual(loop.close()[:2], (0, "served 0 \n"))

    def test_bad_requests_are_answered_and_the_loop_goes_on(self):
        loop = Loop()
        pipes = ChildPipes()
        self.addCleanup(pipes.close)
        loop.send('{"id": 5, "op": "spawn"}', pipes.theirs)
        self.assertEqual(loop.receive()[0], {"event": "error", "id": 5, "message": "bad request"})
        loop.send('{"op":"fork","id":6}', pipes.theirs[:3])
        self.assertEqual(loop.receive()[0], {"event": "error", "id": 6, "message": "bad request"})
        loop.send('not json at all')
        self.assertEqual(loop.receive()[0], {"event": "error", "id": 0, "message": "bad request"})
        pipes.sent()
        # Still serving: a well-formed request after the bad ones forks.
        child = self.fork(loop, 7)
        child.go()
        self.assertEqual(json.loads(child.read(4))["id"], 7)
        self.assertEqual(loop.receive()[0]["event"], "exit")
        self.assertEqual(loop.close()[0], 0)

    def test_a_child_without_its_go_byte_ends_and_says_why(self):
        loop = Loop()
        pipes = self.fork(loop, 8)
        os.close(pipes.pairs[3][1])  # the request pipe closes before any go byte
        event, _ = loop.receive()
        self.assertEqual((event["event"], event["id"], event["status"]), ("exit", 8, 127 << 8))
        self.assertIn("wait for the server's go", pipes.read(2).decode())
        self.assertEqual(loop.close()[0], 0)

    def test_a_threaded_zygote_refuses_to_fork(self):
        loop = Loop("threaded")
        pipes = ChildPipes()
        self.addCleanup(pipes.close)
        loop.send('{"id":9,"op":"fork"}', pipes.theirs)
        pipes.sent()
        self.assertEqual(loop.receive()[0], {"event": "error", "id": 9, "message": "zygote is not single-threaded"})
        # Its fds were closed, not leaked into a child: the stdout pipe reads EOF.
        self.assertEqual(pipes.read(1), b"")
        self.assertEqual(loop.close()[0], 0)


if __name__ == "__main__":
    unittest.main()
