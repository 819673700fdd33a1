#!/usr/bin/env python3
"""The floor for pycell's hot path: a bare, unisolated fork server, and CPU accounting.

`python3 floor.py serve MODULE...` imports the modules (the default profile's preloads),
collects and freezes the heap as pycell's zygote does, then serves requests from stdin, one
JSON line each ({"id", "code"}): it forks a child per request, which runs the code with its
stdout on a pipe and exits; the server reaps the child (wait4) and writes {"id", "stdout",
"status"} on stdout. No namespaces, no seccomp, no cgroups, no bootstrap: whatever pycell
does on top costs CPU this does not spend, which is what the ratio measures.

bench.py imports this module for `bench_floor` (the same closed-loop load pycell gets:
requests kept in flight) and for the /proc accounting of CPU per execution (a process
tree's own and reaped CPU, and the kernel threads' CPU in the same window).
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


def serve(modules):
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

def bench_floor(python, modules, clients, duration, code="print(1)", expect="1\n"):
    """Keeps `clients` requests in flight for `duration` s on a floor server; returns
    executions/s (replies inside the window) and CPU per execution (every execution sent,
    the floor server and its reaped children), with the kernel threads' CPU in the window."""
    proc = subprocess.Popen([python, "-I", "-B", "-u", "-X", "utf8", os.path.abspath(__file__), "serve", *modules],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
    try:
        next_id = 0

        def send():
            nonlocal next_id
            next_id += 1
            proc.stdin.write(json.dumps({"id": next_id, "code": code}).encode() + b"\n")
            proc.stdin.flush()
            return next_id

        # One round trip first: the imports are done before the clock starts.
        send()
        first = json.loads(proc.stdout.readline())
        if first.get("stdout") != expect or first.get("status") != 0:
            raise RuntimeError(f"floor server: unexpected reply {first}")
        cpu0, kthreads0 = proc_cpu_ticks(proc.pid), kernel_thread_ticks()
        start = time.perf_counter()
        end = start + duration
        in_flight = {send() for _ in range(clients)}
        completed = executed = 0
        while in_flight:
            reply = json.loads(proc.stdout.readline())
            if reply.get("stdout") != expect or reply.get("status") != 0:
                raise RuntimeError(f"floor server: unexpected reply {reply}")
            in_flight.discard(reply["id"])
            executed += 1
            if time.perf_counter() <= end:
                completed += 1
                in_flight.add(send())
        cpu1, kthreads1 = proc_cpu_ticks(proc.pid), kernel_thread_ticks()
    finally:
        proc.stdin.close()
        proc.wait(10)
    return {
        "clients": clients,
        "durationS": duration,
        "completed": completed,
        "perSecond": round(completed / duration, 1),
        "cpuMsPerExecution": round(ticks_ms(cpu1 - cpu0) / executed, 2),
        "kernelThreadsCpuMsPerExecution": round(ticks_ms(kthreads1 - kthreads0) / executed, 2),
    }


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "serve":
        sys.exit(serve(sys.argv[2:]))
    print("usage: floor.py serve MODULE...", file=sys.stderr)
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
