"""Tests for the zygote's side of libpycell_child.so (pycell_receive_init, pycell_send_ready,
pycell_serve_forks), driven over a real SOCK_SEQPACKET socket the way
the server drives it.

A helper interpreter loads the library, receives its init message, says it is ready and
serves forks on its end of the socket; this test plays the server: it sends Init (a memfd
holding the JSON and the children's isolation spec), then Fork requests with five pipe fds,
gets each child's pidfd, writes the go byte, and reads what the child reports on its result
pipe.

The messages and the spec are encoded here with struct, independently of the C++ codec
(zygote_wire.h): this test is also a cross-check of the wire format. The spec is one this
process can apply without building a root (user and pid namespaces, no mount namespace), so
the test runs as root and as an unprivileged user alike.

Run: PYCELL_CHILD_LIB=build/libpycell_child.so python3 -m unittest -v tests/python/test_fork_loop.py
"""
import errno
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import unittest

LIBRARY = os.environ.get("PYCELL_CHILD_LIB") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "libpycell_child.so")

# ---- the wire format, as zygote_wire.h defines it -------------------------------------------
# Header: magic, op, id, status, textLen, utimeMs, stimeMs, maxrssKb, fdCount, reserved
# (native byte order, natural alignment: no padding anywhere), then textLen bytes of text.
HEADER = struct.Struct("=IIQiIqqqII")
MAGIC = 0x31637970
INIT, FORK, READY, FORKED, EXIT, ERROR = range(1, 7)
FDS_OF = {INIT: 1, FORK: 5, FORKED: 1}
INIT_MAGIC = 0x49637970
SPEC_VERSION = 2
# isolate.h's StepFailureRecord: magic, err, step, detail.
STEP_FAILURE = struct.Struct("=8si48s160s")
STEP_FAILURE_MAGIC = b"\0pycell!"

NS_USER, NS_PID = 1, 2
RLIMIT_CORE = 4
# The sandbox's ids inside its user namespace: neither the outer ones nor each other, so
# a swapped field shows.
INSIDE_UID, INSIDE_GID = 4242, 4343


def message(op, ident=0, text=b"", fd_count=None, magic=MAGIC, status=0):
    fd_count = FDS_OF.get(op, 0) if fd_count is None else fd_count
    return HEADER.pack(magic, op, ident, status, len(text), 0, 0, 0, fd_count, 0) + text


def with_length(data):
    return struct.pack("=I", len(data)) + data


def encode_spec(work_dir, rlimits=((RLIMIT_CORE, 0, 0),), version=SPEC_VERSION):
    """An IsolationSpec as encodeSpec writes it: user and pid namespaces, the child maps its
    own ids (this process's, seen inside as INSIDE_UID/GID), no mounts (the mount step is a
    chdir to `work_dir`), `rlimits`, no seccomp filter, no execve after."""
    spec = struct.pack("=II", version, NS_USER | NS_PID)
    spec += struct.pack("=IIII", INSIDE_UID, INSIDE_GID, os.getuid(), os.getgid())
    spec += struct.pack("=B", 1)  # childWritesMaps
    spec += struct.pack("=I", 0)  # mounts
    spec += struct.pack("=B", 0)  # mountsFromTemplate
    spec += with_length(work_dir.encode())
    spec += struct.pack("=I", len(rlimits))
    for resource, soft, hard in rlimits:
        spec += struct.pack("=iQQ", resource, soft, hard)
    spec += struct.pack("=I", 0)  # seccomp instructions
    spec += struct.pack("=B", 0)  # execFollows
    return spec


def encode_init(init_json, spec):
    return struct.pack("=I", INIT_MAGIC) + with_length(json.dumps(init_json).encode()) + with_length(spec)


# The zygote's side, as zygote.py does it: init, preload, ready, serve. In a child: report on
# fd 4 (the result pipe) what it sees, exit 7.
HELPER = r"""
import ctypes, importlib, json, os, resource, sys, threading
lib = ctypes.PyDLL(sys.argv[1])
lib.pycell_last_error.restype = ctypes.c_char_p
lib.pycell_receive_init.restype = ctypes.c_long
lib.pycell_init_json.restype = ctypes.c_void_p
lib.pycell_send_ready.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
lib.pycell_serve_forks.restype = ctypes.c_long
ctl = int(sys.argv[2])

length = lib.pycell_receive_init(ctl)
if length < 0:
    print("init: %s" % lib.pycell_last_error().decode())
    sys.exit(1)
init = json.loads(ctypes.string_at(lib.pycell_init_json(), length))
imported, failed = [], {}
for name in init["preload"]:
    try:
        importlib.import_module(name)
        imported.append(name)
    except ImportError as e:
        failed[name] = type(e).__name__
ready = json.dumps({"imported": imported, "failed": failed}).encode()
if lib.pycell_send_ready(ctl, ready, len(ready)) != 0:
    print("ready: %s" % lib.pycell_last_error().decode())
    sys.exit(1)

class Hooks(ctypes.Structure):
    _fields_ = [("before", ctypes.c_void_p), ("after_parent", ctypes.c_void_p), ("after_child", ctypes.c_void_p)]

hooks = Hooks(*(ctypes.cast(getattr(ctypes.pythonapi, n), ctypes.c_void_p)
                for n in ("PyOS_BeforeFork", "PyOS_AfterFork_Parent", "PyOS_AfterFork_Child")))
if init.get("threaded"):
    threading.Thread(target=threading.Event().wait, daemon=True).start()
ident = lib.pycell_serve_forks(ctl, ctypes.byref(hooks))
if ident > 0:
    # Every fd open here; listdir's own is the lowest free one, and closed when it returns.
    fds = sorted(int(name) for name in os.listdir("/proc/self/fd"))
    links = []
    for fd in fds:
        try:
            links.append(os.readlink("/proc/self/fd/%d" % fd))
        except OSError:
            links.append(None)
    shared = [l.strip() for l in open("/proc/self/maps") if l.split()[1][1:4] == "w-s"]
    status = dict(l.split(":", 1) for l in open("/proc/self/status"))
    report = {"id": ident, "pid": os.getpid(), "sid": os.getsid(0), "shared": shared,
              "fds": fds, "links": links, "uid": os.getuid(), "gid": os.getgid(), "cwd": os.getcwd(),
              "uid_map": open("/proc/self/uid_map").read().split(),
              "gid_map": open("/proc/self/gid_map").read().split(),
              "core": list(resource.getrlimit(resource.RLIMIT_CORE)),
              "no_new_privs": status["NoNewPrivs"].strip(), "cap_eff": status["CapEff"].strip()}
    os.write(4, json.dumps(report).encode())
    os._exit(7)
print("served %d %s" % (ident, lib.pycell_last_error().decode()))
sys.exit(0 if ident == 0 else 1)
"""


class Message:
    def __init__(self, data, fds, flags):
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            raise AssertionError("a message from the fork loop did not fit")
        if len(data) < HEADER.size:
            raise AssertionError("a message shorter than its header: %r" % data)
        (magic, self.op, self.id, self.status, text_len, self.utime_ms, self.stime_ms, self.maxrss_kb,
         self.fd_count, reserved) = HEADER.unpack_from(data)
        if magic != MAGIC or reserved != 0 or text_len != len(data) - HEADER.size or self.fd_count != len(fds):
            raise AssertionError("a malformed message: %r with %d fds" % (data, len(fds)))
        self.text = data[HEADER.size:].decode()
        self.fds = fds


class Loop:
    """One helper serving forks; this object is its server."""

    def __init__(self, test, init=None, spec=None, payload=None, init_message=None):
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", HELPER, LIBRARY, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        theirs.close()
        test.addCleanup(self.end)
        self.init = {"preload": ["json", "pycell_no_such_module"]} if init is None else init
        if init_message is not None:  # (data, fds) instead of a well-formed Init
            self.send(*init_message)
            return
        if payload is None:
            payload = encode_init(self.init, encode_spec(test.work_dir) if spec is None else spec)
        self.send_init(payload)

    def send_init(self, payload):
        memfd = os.memfd_create("pycell-init", os.MFD_CLOEXEC)
        try:
            os.write(memfd, payload)
            self.send(message(INIT), [memfd])
        finally:
            os.close(memfd)

    def send(self, data, fds=()):
        socket.send_fds(self.sock, [data], list(fds))

    def receive(self, timeout=10):
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            raise AssertionError("no message from the fork loop in %s s" % timeout)
        data, fds, flags, _ = socket.recv_fds(self.sock, 65536, 4)
        return Message(data, fds, flags)

    def close(self):
        self.sock.close()
        out, err = self.proc.communicate(timeout=10)
        return self.proc.returncode, out.decode(), err.decode()

    def end(self):  # cleanup: the helper ends when its socket closes; its children with it
        if self.sock.fileno() >= 0:
            self.sock.close()
        try:
            self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


class ChildPipes:
    """The five pipes a fork request carries: stdin, stdout, stderr, request, result."""

    def __init__(self):
        self.pairs = [os.pipe() for _ in range(5)]
        # The child's ends: stdin's read, stdout's and stderr's write, request's read, result's write.
        self.theirs = [self.pairs[0][0], self.pairs[1][1], self.pairs[2][1], self.pairs[3][0], self.pairs[4][1]]
        self.links = ["pipe:[%d]" % os.fstat(fd).st_ino for fd in self.theirs]

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


def step_failure(data):
    """A StepFailureRecord: (step, errno, detail)."""
    if len(data) != STEP_FAILURE.size:
        raise AssertionError("not one step failure record (%d bytes): %r" % (len(data), data))
    magic, err, step, detail = STEP_FAILURE.unpack(data)
    if magic != STEP_FAILURE_MAGIC:
        raise AssertionError("a step failure record with a bad magic: %r" % data)
    return step.split(b"\0", 1)[0].decode(), err, detail.split(b"\0", 1)[0].decode()


class ForkLoopTest(unittest.TestCase):
    def setUp(self):
        self.assertTrue(os.path.exists(LIBRARY), "no %s: set PYCELL_CHILD_LIB to the built library" % LIBRARY)
        self.work_dir = tempfile.mkdtemp(prefix="pycell-fork-loop-")
        self.addCleanup(shutil.rmtree, self.work_dir, ignore_errors=True)

    def test_layouts(self):
        # The sizes the C++ structs have (zygote_wire.h's Header, isolate.h's record).
        self.assertEqual(HEADER.size, 56)
        self.assertEqual(STEP_FAILURE.size, 220)

    def ready(self, loop):
        m = loop.receive()
        self.assertEqual((m.op, m.id, m.status, m.fds), (READY, 0, 0, []))
        return json.loads(m.text)

    def fork(self, loop, ident):
        pipes = ChildPipes()
        self.addCleanup(pipes.close)
        loop.send(message(FORK, ident), pipes.theirs)
        pipes.sent()
        m = loop.receive()
        self.assertEqual((m.op, m.id, m.text), (FORKED, ident, ""), m.text)
        self.assertEqual(len(m.fds), 1, "the child's pidfd comes with the answer")
        self.addCleanup(os.close, m.fds[0])
        self.assertEqual(os.readlink("/proc/self/fd/%d" % m.fds[0]), "anon_inode:[pidfd]")
        pipes.pidfd = m.fds[0]
        return pipes

    def exited(self, loop, ident, status):
        m = loop.receive()
        self.assertEqual((m.op, m.id, m.status, m.text, m.fds), (EXIT, ident, status, "", []))
        self.assertGreater(m.maxrss_kb, 0, "the child's peak memory, from wait4")
        self.assertGreaterEqual(m.utime_ms, 0)
        self.assertGreaterEqual(m.stime_ms, 0)
        return m

    def refused(self, loop, ident, reason):
        m = loop.receive()
        self.assertEqual((m.op, m.id, m.text, m.fds), (ERROR, ident, reason, []))

    def test_init_ready_forks_and_reports_exits(self):
        loop = Loop(self)
        self.assertEqual(self.ready(loop),
                         {"imported": ["json"], "failed": {"pycell_no_such_module": "ModuleNotFoundError"}})
        reports = []
        for ident in (3, 4):
            pipes = self.fork(loop, ident)
            pipes.go()
            report = json.loads(pipes.read(4))
            reports.append(report)
            self.exited(loop, ident, 7 << 8)
            # The pidfd says so too: the process it refers to has ended.
            self.assertEqual(select.select([pipes.pidfd], [], [], 10)[0], [pipes.pidfd])
            # Exactly the five passed fds at 0..4, and nothing else: the one more listed is
            # the listing's own, closed by the time it was looked up.
            self.assertEqual(report["fds"], [0, 1, 2, 3, 4, 5], report)
            self.assertEqual(report["links"], pipes.links + [None], report)
        first, second = reports
        self.assertEqual([r["id"] for r in reports], [3, 4])
        for report in reports:
            self.assertEqual(report["pid"], 1, "each child is PID 1 of its own pid namespace")
            self.assertEqual(report["sid"], 1, "and leads its own session")
            self.assertEqual((report["uid"], report["gid"]), (INSIDE_UID, INSIDE_GID))
            self.assertEqual(report["uid_map"], [str(INSIDE_UID), str(os.getuid()), "1"])
            self.assertEqual(report["gid_map"], [str(INSIDE_GID), str(os.getgid()), "1"])
            self.assertEqual(os.path.realpath(report["cwd"]), os.path.realpath(self.work_dir))
            self.assertEqual(report["core"], [0, 0])
            self.assertEqual(report["no_new_privs"], "1")
            self.assertEqual(int(report["cap_eff"], 16), 0, "no capabilities left")
        # No memory is shared writable between the zygote and a child, or between children.
        self.assertEqual(first["shared"], [])
        self.assertEqual(second["shared"], [])
        self.assertEqual(loop.close()[:2], (0, "served 0 \n"))

    def test_bad_requests_are_answered_and_the_loop_goes_on(self):
        loop = Loop(self)
        self.ready(loop)
        fork = message(FORK, 5)
        bad = [
            ("wrong magic", message(FORK, 5, magic=0x12345678), 5, 0, "bad magic"),
            ("three fds", fork, 3, 0, "wrong number of file descriptors"),
            ("three fds, said so", message(FORK, 5, fd_count=3), 3, 0, "wrong number of file descriptors"),
            ("nine fds", fork, 9, 0, "message or its fds truncated"),
            ("truncated header", fork[:20], 5, 0, "message shorter than its header"),
            ("unknown op", message(9, 5), 0, 0, "unknown message"),
            ("op 0", message(0, 5), 0, 0, "unknown message"),
            ("text longer than said", fork + b"x", 5, 0, "text length does not match the message"),
            ("too long", message(FORK, 5, b"x" * 4096), 5, 0, "message or its fds truncated"),
            ("no id", message(FORK, 0), 5, 0, "missing id"),
            ("not a fork", message(READY, 6), 0, 6, "not a fork request"),
        ]
        for name, data, nfds, ident, reason in bad:
            with self.subTest(name):
                pipes = ChildPipes()
                self.addCleanup(pipes.close)
                extra = [os.dup(pipes.theirs[1]) for _ in range(max(0, nfds - 5))]
                loop.send(data, (pipes.theirs + extra)[:nfds])
                pipes.sent()
                for fd in extra:
                    os.close(fd)
                self.refused(loop, ident, reason)
                if nfds >= 2:
                    # The fds that came with it were closed, not kept: stdout reads EOF.
                    self.assertEqual(pipes.read(1), b"")
        # Still serving: a well-formed request after the bad ones forks.
        child = self.fork(loop, 7)
        child.go()
        self.assertEqual(json.loads(child.read(4))["id"], 7)
        self.exited(loop, 7, 7 << 8)
        self.assertEqual(loop.close()[:2], (0, "served 0 \n"))

    def test_a_child_without_its_go_byte_ends_and_says_why(self):
        loop = Loop(self)
        self.ready(loop)
        pipes = self.fork(loop, 8)
        os.close(pipes.pairs[3][1])  # the request pipe closes before any go byte
        self.exited(loop, 8, 127 << 8)
        self.assertEqual(step_failure(pipes.read(4)), ("wait for the server", errno.EPIPE, ""))
        self.assertEqual(pipes.read(1), b"")
        self.assertEqual(loop.close()[0], 0)

    def test_a_child_whose_isolation_fails_ends_and_says_which_step(self):
        missing = os.path.join(self.work_dir, "missing")
        loop = Loop(self, spec=encode_spec(missing))
        self.ready(loop)
        pipes = self.fork(loop, 10)
        pipes.go()
        self.exited(loop, 10, 127 << 8)
        self.assertEqual(step_failure(pipes.read(4)), ("chdir", errno.ENOENT, missing))
        self.assertEqual(pipes.read(1), b"")
        self.assertEqual(loop.close()[:2], (0, "served 0 \n"))

    def test_a_threaded_zygote_refuses_to_fork(self):
        loop = Loop(self, init={"preload": [], "threaded": True})
        self.assertEqual(self.ready(loop), {"imported": [], "failed": {}})
        pipes = ChildPipes()
        self.addCleanup(pipes.close)
        loop.send(message(FORK, 9), pipes.theirs)
        pipes.sent()
        self.refused(loop, 9, "zygote is not single-threaded")
        # Its fds were closed, not leaked into a child: the stdout pipe reads EOF.
        self.assertEqual(pipes.read(1), b"")
        self.assertEqual(loop.close()[:2], (0, "served 0 \n"))

    def test_a_bad_init_is_refused(self):
        spec = encode_spec(self.work_dir)
        cases = [
            ("spec version", encode_init({"preload": []}, encode_spec(self.work_dir, version=SPEC_VERSION + 1)),
             "init: init payload refused: isolation spec: unknown version\n"),
            ("spec trailing bytes", encode_init({"preload": []}, spec + b"\0"),
             "init: init payload refused: isolation spec: trailing bytes\n"),
            ("bad rlimit", encode_init({"preload": []}, encode_spec(self.work_dir, rlimits=((99, 0, 0),))),
             "init: init payload refused: isolation spec: bad rlimit resource\n"),
            ("payload magic", b"\0" + encode_init({"preload": []}, spec)[1:],
             "init: init payload refused: init payload: bad magic\n"),
            ("payload truncated", encode_init({"preload": []}, spec)[:-1],
             "init: init payload refused: init payload truncated\n"),
        ]
        for name, payload, said in cases:
            with self.subTest(name):
                loop = Loop(self, payload=payload)
                self.assertEqual(loop.close()[:2], (1, said))
        pipes = ChildPipes()
        self.addCleanup(pipes.close)
        messages = [
            ("no memfd", message(INIT), [], "init: init message refused: wrong number of file descriptors\n"),
            ("not Init", message(FORK, 1), pipes.theirs, "init: init message refused: not Init\n"),
        ]
        for name, data, fds, said in messages:
            with self.subTest(name):
                loop = Loop(self, init_message=(data, fds))
                self.assertEqual(loop.close()[:2], (1, said))

if __name__ == "__main__":
    unittest.main()
