#!/usr/bin/env python3
"""The floor for pycell's hot path: a bare, unisolated fork server, and CPU accounting.

`python3 floor.py serve MODULE...` imports the modules (the default profile's preloads),
collects and freezes the heap as pycell's zygote does, then serves requests from stdin, one
JSON line each ({"id", "code"}): it forks a child per request, which runs the code with its
stdout on a pipe and exits; the server reaps the child (wait4) and writes {"id", "stdout",
"status"} on stdout. `serve-prefork` keeps one child forked ahead instead, waiting for its
code on a pipe as a pool's child waits, and after each reply writes {"ready": true} once the
next one is forked (one request at a time). No namespaces, no seccomp, no cgroups, no
bootstrap: whatever pycell does on top costs CPU this does not spend, which is what the
ratio measures.

bench.py imports this module for `bench_floor` (the same closed-loop load pycell gets:
requests kept in flight) and for the accounting of CPU per execution (a process tree's, from
a cgroup made for it or from /proc, and the kernel threads' CPU in the same window).
"""
import gc
import importlib
import json
import os
import selectors
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- the server

def _child(code, out_w):
    os.dup2(out_w, 1)
    sys.stdout = open(1, "w", closefd=False)
    try:
        exec(compile(code, "<floor>", "exec"), {"__name__": "__main__"})
        sys.stdout.flush()
        os._exit(0)
    except BaseException:  # noqa: BLE001 - any failure is the child's exit status
        os._exit(1)


def _fork_waiting():
    """A child forked ahead, as a pool keeps one: it waits for its code on a pipe, then runs
    it as _child does. Returns (pid, the code pipe's write end, the output's read end)."""
    code_r, code_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(code_w)
        os.close(out_r)
        chunks = []
        while True:
            data = os.read(code_r, 65536)
            if not data:
                break
            chunks.append(data)
        _child(b"".join(chunks).decode(), out_w)
    os.close(code_r)
    os.close(out_w)
    return pid, code_w, out_r


def serve(modules, prefork=False):
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - as the zygote: a missing preload is not fatal
            pass
    gc.collect()
    gc.freeze()
    sel = selectors.DefaultSelector()
    stdin = sys.stdin.buffer
    os.set_blocking(stdin.fileno(), False)
    sel.register(stdin.fileno(), selectors.EVENT_READ, None)
    pending = b""
    running = {}  # read fd -> [id, pid, chunks]
    out = sys.stdout.buffer
    waiting = [_fork_waiting()] if prefork else []  # with prefork: one child ready ahead
    while True:
        for key, _ in sel.select():
            if key.data is None:
                data = os.read(key.fd, 65536)
                if not data:
                    return 0
                pending += data
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    request = json.loads(line)
                    if prefork:
                        pid, code_w, r = waiting.pop() if waiting else _fork_waiting()
                        os.write(code_w, request["code"].encode())
                        os.close(code_w)
                    else:
                        r, w = os.pipe()
                        pid = os.fork()
                        if pid == 0:
                            os.close(r)
                            _child(request["code"], w)
                        os.close(w)
                    running[r] = [request["id"], pid, []]
                    sel.register(r, selectors.EVENT_READ, "child")
                continue
            entry = running[key.fd]
            data = os.read(key.fd, 65536)
            if data:
                entry[2].append(data)
                continue
            sel.unregister(key.fd)
            os.close(key.fd)
            del running[key.fd]
            _, status, _ = os.wait4(entry[1], 0)
            reply = {"id": entry[0], "stdout": b"".join(entry[2]).decode(), "status": status}
            out.write(json.dumps(reply).encode() + b"\n")
            out.flush()
            if prefork:
                # The next child forked ahead, then said: the client sends its next request only
                # after this line, as the warm-claim figure waits for a full pool.
                if not waiting:
                    waiting.append(_fork_waiting())
                out.write(b'{"ready": true}\n')
                out.flush()


# --------------------------------------------------------------------------- accounting

def proc_cpu_ticks(pid, reaped=True):
    """utime+stime of a process (with its reaped children's, `reaped`), in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # fields[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks


class TreeCpu:
    """The CPU of a whole process tree, from a cgroup made for it: the server, its zygotes,
    every child, reaped or not, recycled zygotes included (what /proc's cutime misses until
    a process is reaped). cgroup v1's cpuacct, or v2 where this process sits in the root (a
    v2 cgroup below a process's own cannot take controllers while that process is in it).
    `TreeCpu.make(name)` returns None where neither is possible: the callers then fall back
    to /proc accounting and say so."""

    def __init__(self, path, usage_file, scale_ns):
        self.path, self.usage_file, self.scale_ns = path, usage_file, scale_ns

    @staticmethod
    def make(name):
        try:
            with open("/proc/self/cgroup") as f:
                own = [line.rstrip("\n").split(":", 2) for line in f]
            with open("/proc/self/mounts") as f:
                mounts = [line.split() for line in f]
        except OSError:
            return None
        for _, controllers, path in own:
            if "cpuacct" in controllers.split(","):
                for m in mounts:
                    if m[2] == "cgroup" and "cpuacct" in m[3].split(","):
                        return TreeCpu._create(os.path.join(m[1] + path, name), "cpuacct.usage", 1)
        for hid, _, path in own:
            if hid == "0" and path == "/":
                for m in mounts:
                    if m[2] == "cgroup2":
                        return TreeCpu._create(os.path.join(m[1], name), "cpu.stat", 1000)
        return None

    @staticmethod
    def _create(path, usage_file, scale_ns):
        try:
            os.mkdir(path)
        except FileExistsError:
            pass
        except OSError:
            return None
        tree = TreeCpu(path, usage_file, scale_ns)
        if tree.usage_ns() is None:
            tree.remove()
            return None
        return tree

    def enter(self):
        """For subprocess's preexec_fn: the new process (before its exec) joins the cgroup."""
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    def usage_ns(self):
        try:
            with open(os.path.join(self.path, self.usage_file)) as f:
                text = f.read()
        except OSError:
            return None
        if self.usage_file == "cpu.stat":
            text = next((line.split()[1] for line in text.splitlines() if line.startswith("usage_usec ")), "")
        return int(text) * self.scale_ns if text.strip().isdigit() else None

    def remove(self):
        """After the tree has exited: its processes are gone, and the cgroups it made below
        this one with them (pycell removes its own)."""
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)  # the last exits are still being accounted


class CpuWindow:
    """CPU spent between its creation and `per_execution`: the tree's (from `tree_cpu`, a
    TreeCpu, or else the /proc figures of `pids` with their reaped children), the server's
    own (`server_pid`, without children) and the kernel threads'."""

    def __init__(self, tree_cpu, pids, server_pid):
        self.tree_cpu, self.pids, self.server_pid = tree_cpu, pids, server_pid
        self.t0 = self._tree()
        self.s0 = proc_cpu_ticks(server_pid, reaped=False)
        self.k0 = kernel_thread_ticks()

    def _tree(self):
        if self.tree_cpu is not None:
            return self.tree_cpu.usage_ns() / 1e6
        return ticks_ms(sum(proc_cpu_ticks(pid) for pid in self.pids))

    def per_execution(self, executed):
        tree_ms, server_ms = self._tree() - self.t0, ticks_ms(proc_cpu_ticks(self.server_pid, reaped=False) - self.s0)
        # A kernel thread that exits in the window takes its ticks along: never below 0.
        kthreads_ms = max(0.0, ticks_ms(kernel_thread_ticks() - self.k0))
        n = max(executed, 1)
        return {"cpuMsPerExecution": round(tree_ms / n, 2),
                "serverCpuMsPerExecution": round(server_ms / n, 2),
                "kernelThreadsCpuMsPerExecution": round(kthreads_ms / n, 2),
                "cpuAccounting": "cgroup" if self.tree_cpu is not None else "proc"}


def kernel_thread_ticks():
    """CPU of every kernel thread (a child of kthreadd, pid 2), in clock ticks."""
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == "2" or name == "2":
            total += int(fields[11]) + int(fields[12])
    return total


def ticks_ms(ticks):
    return ticks * 1000.0 / CLK_TCK


# --------------------------------------------------------------------------- the driver

def bench_floor(python, modules, clients, duration, code="print(1)", expect="1\n", prefork=False):
    """Keeps `clients` requests in flight for `duration` s on a floor server; returns
    executions/s (replies inside the window), each counted request's round trip, and CPU
    per execution (every execution sent, the floor server and its reaped children), with
    the kernel threads' CPU in the window."""
    if prefork and clients != 1:
        raise ValueError("a floor with a child forked ahead serves one request at a time")
    tree_cpu = TreeCpu.make(f"pycell-bench-floor-{os.getpid()}")
    mode = ["serve-prefork"] if prefork else ["serve"]
    proc = subprocess.Popen([python, "-I", "-B", "-u", "-X", "utf8", os.path.abspath(__file__), *mode, *modules],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True,
                            preexec_fn=tree_cpu.enter if tree_cpu else None)
    try:
        next_id = 0

        sent_at = {}

        def send():
            nonlocal next_id
            next_id += 1
            sent_at[next_id] = time.perf_counter()
            proc.stdin.write(json.dumps({"id": next_id, "code": code}).encode() + b"\n")
            proc.stdin.flush()
            return next_id

        def reply():
            """The next reply, checked, and when it arrived (before a prefork server's ready
            line, which is not part of the round trip)."""
            message = json.loads(proc.stdout.readline())
            arrived = time.perf_counter()
            if message.get("stdout") != expect or message.get("status") != 0:
                raise RuntimeError(f"floor server: unexpected reply {message}")
            if prefork and json.loads(proc.stdout.readline()) != {"ready": True}:
                raise RuntimeError("floor server: no ready line after a reply")
            return message, arrived

        # One round trip first: the imports are done before the clock starts.
        send()
        reply()
        cpu = CpuWindow(tree_cpu, [proc.pid], proc.pid)
        start = time.perf_counter()
        end = start + duration
        in_flight = {send() for _ in range(clients)}
        completed = executed = 0
        latencies = []
        while in_flight:
            answer, now = reply()
            in_flight.discard(answer["id"])
            executed += 1
            if now <= end:
                completed += 1
                latencies.append((now - sent_at[answer["id"]]) * 1000.0)
                in_flight.add(send())
        usage = cpu.per_execution(executed)
    finally:
        proc.stdin.close()
        proc.wait(10)
        if tree_cpu:
            tree_cpu.remove()
    return {
        "clients": clients,
        "durationS": duration,
        "completed": completed,
        "perSecond": round(completed / duration, 1),
        "latenciesMs": latencies,  # each counted request's round trip, its child's exit and reap included
        **usage,
    }


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] in ("serve", "serve-prefork"):
        sys.exit(serve(sys.argv[2:], prefork=sys.argv[1] == "serve-prefork"))
    print("usage: floor.py serve|serve-prefork MODULE...", file=sys.stderr)
    sys.exit(2)


# --------------------------------------------------------------------------- JavaScript's floor

def js_floor_once(node, bootstrap, code, expect):
    """One warm JavaScript run with no sandbox: node already started on pycell's own bootstrap
    (src/js/bootstrap.js), waiting on its request pipe, as a started pool's sandbox waits;
    the request is written and the time runs until node has exited and been reaped (pycell
    answers only then: the exit status is the kernel's). Returns ms."""
    r3, w3 = os.pipe()
    r4, w4 = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            fds = [os.dup(r3), os.dup(w4), os.dup(out_w)]
            os.dup2(fds[0], 3)
            os.dup2(fds[1], 4)
            os.dup2(fds[2], 1)
            os.closerange(5, 65536)
            os.execv(node, [node, "--experimental-vm-modules", "--disable-proto=throw", "--no-lazy", bootstrap])
        finally:
            os._exit(127)
    for fd in (r3, w4, out_w):
        os.close(fd)
    said = b""
    while len(said) < 2:
        chunk = os.read(r4, 2 - len(said))
        if not chunk:
            raise RuntimeError("node exited before it was ready")
        said += chunk
    t0 = time.perf_counter_ns()
    os.write(w3, json.dumps({"token": "floor", "code": code, "files": {}}).encode() + b"\n")
    os.close(w3)
    out = b""
    while True:
        chunk = os.read(out_r, 65536)
        if not chunk:
            break
        out += chunk
    os.waitpid(pid, 0)
    ms = (time.perf_counter_ns() - t0) / 1e6
    os.close(out_r)
    os.close(r4)
    if out.decode() != expect:
        raise RuntimeError(f"node floor printed {out[:100]!r}")
    return ms
