#!/usr/bin/env python3
"""pycell benchmark: warm zygote pool vs cold python3 and bwrap + python3.

Drives the real `pycell serve` over JSON-RPC (NDJSON on stdio) and, from one run, prints a
table side by side with baselines measured in the same run, then the target ratios with
PASS/MISS. Standard library only. See tests/bench/README.md for what each figure means.

Exit status: 0 when the run completed (a MISS is reported, not failed); 1 when the server
failed, did not become ready, or an execution did not come back `status: ok` with the
expected output; 2 on bad arguments.
"""

import argparse
import json
import os
import platform
import select
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import floor  # noqa: E402 - the floor baseline and the /proc CPU accounting, beside this file
DEFAULT_BINARY = os.path.normpath(os.path.join(HERE, "..", "..", "build", "pycell"))
SYSTEM_PYTHON = "/usr/bin/python3"

TRIVIAL_CODE = "print(1)"
PANDAS_CODE = (
    "import pandas as pd\n"
    "df = pd.DataFrame({'a': [1, 2, 1], 'b': [1.0, 2.0, 3.0]})\n"
    "df.groupby('a').b.sum().to_dict()"
)
# As a `python3 -c` program the last expression is not printed by itself: print it.
PANDAS_CLI_CODE = (
    "import pandas as pd\n"
    "df = pd.DataFrame({'a': [1, 2, 1], 'b': [1.0, 2.0, 3.0]})\n"
    "print(df.groupby('a').b.sum().to_dict())"
)
JS_CODE = "console.log(1)"
PANDAS_EXPECTED_VALUE = {"1": 4.0, "2": 2.0}   # JSON object keys are strings
PANDAS_EXPECTED_STDOUT = "{1: 4.0, 2: 2.0}\n"
BWRAP_ARGS = ["--unshare-all", "--die-with-parent", "--ro-bind", "/", "/",
              "--dev", "/dev", "--proc", "/proc"]

# The project's first baselines, measured on a 2-core CI-class machine when it began (for
# context only; every ratio below uses figures measured in this run).
DESIGN_REF_MS = {
    "python3_trivial": 13.6,       # python3 -c pass
    "bwrap_trivial": 18.6,         # bwrap --ro-bind / / --unshare-all python3 -c pass
    "python3_pandas": 296.0,       # python3 -c 'import numpy, pandas'
}

TARGETS = {
    "bwrap_over_trivial": 15.0,     # bwrap+python3 p50 / pycell trivial p50 >= 15x
    "cold_pandas_over_pandas": 100.0,
    "throughput_8": 300.0,          # executions/s with 8 clients
    "floor_throughput": 0.6,        # pycell executions/s with 8 in flight / the floor's >= 0.6x
    "floor_cpu": 1.7,               # pycell CPU per execution / the floor's <= 1.7x
    "child_uss_mib": 2.0,           # ready child USS <= 2 MiB
    "cold_node_over_js_warm": 20.0,  # cold node -e p50 / pycell JavaScript warm claim p50 >= 20x
    "js_floor": 1.5,                # pycell JavaScript warm claim p50 / the same run on a started, unsandboxed node
    # The hot path at its floor: per figure, stricter where a ready child is found.
    "hot_backtoback_over_bwrap": 12.0,   # bwrap+python3 p50 / pycell back-to-back print(1) p50
    "hot_warm_over_bwrap": 40.0,         # bwrap+python3 p50 / pycell warm-claim print(1) p50
    "hot_pandas_warm_over_cold": 120.0,  # cold python3+pandas p50 / pycell warm-claim pandas p50
    "hot_session_ms": 0.45,              # warm session print(1) p50, not slower than before
    "aim_trivial_p50_ms": 1.0,      # aims (informational, same PASS/MISS wording)
    "aim_pandas_p50_ms": 3.0,
    "aim_analyze_1000_ms": 50.0,    # the static analyzer on 1000 lines, in-process
}


class BenchError(Exception):
    """The server failed or a result was wrong: the run is invalid (exit 1)."""


# --------------------------------------------------------------------------- statistics

def percentile(values, q):
    """Linear interpolation between closest ranks (numpy's default); q in [0, 100]."""
    if not values:
        return None
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summarize(values):
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50), 3),
        "p99_ms": round(percentile(values, 99), 3),
        "mean_ms": round(sum(values) / len(values), 3),
        "min_ms": round(min(values), 3),
        "max_ms": round(max(values), 3),
    }


# --------------------------------------------------------------------------- the server

class Server:
    """One `pycell serve` process, NDJSON framing, requests matched to replies by id."""

    def __init__(self, binary, max_concurrent, stderr_path, cpu_tree=None):
        self.stderr_path = stderr_path
        self.stderr_file = open(stderr_path, "wb")
        # cpu_tree (floor.TreeCpu): the server and all it starts are accounted in a cgroup.
        self.cpu_tree = cpu_tree
        self.proc = subprocess.Popen(
            [binary, "serve", "--framing", "ndjson", "--max-concurrent", str(max_concurrent)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr_file,
            close_fds=True, preexec_fn=cpu_tree.enter if cpu_tree else None)
        self.fd = self.proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.buf = b""
        self.next_id = 0
        self.stash = {}          # id -> (arrival ns, message) read while waiting for another id
        self.log_messages = []   # window/logMessage and other notifications

    @property
    def pid(self):
        return self.proc.pid

    def send(self, method, params=None):
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            msg["params"] = params
        self._write((json.dumps(msg, separators=(",", ":")) + "\n").encode())
        return self.next_id

    def notify(self, method, params=None):
        msg = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        self._write((json.dumps(msg) + "\n").encode())

    def _write(self, data):
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise BenchError(f"server stdin closed ({e}); {self.exit_note()}")

    def exit_note(self):
        rc = self.proc.poll()
        return "server still running" if rc is None else f"server exited with {rc}"

    def read_line(self, deadline):
        """Next complete line as (arrival perf_counter_ns, bytes); BenchError on EOF/timeout."""
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl], self.buf[nl + 1:]
                if line.strip():
                    return time.perf_counter_ns(), line
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(f"no reply from the server in time; {self.exit_note()}")
            r, _, _ = select.select([self.fd], [], [], min(remaining, 1.0))
            if not r:
                continue
            try:
                chunk = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                continue
            if not chunk:
                self.proc.wait(timeout=5)
                raise BenchError(f"server closed stdout; {self.exit_note()}")
            self.buf += chunk

    def read_reply(self, deadline):
        """Next response (a message with an id) as (arrival ns, message)."""
        while True:
            t, line = self.read_line(deadline)
            try:
                msg = json.loads(line)
            except ValueError:
                raise BenchError(f"server wrote a non-JSON line: {line[:200]!r}")
            if "id" in msg and ("result" in msg or "error" in msg):
                return t, msg
            self.log_messages.append(msg)

    def wait_for(self, req_id, deadline):
        if req_id in self.stash:
            return self.stash.pop(req_id)
        while True:
            t, msg = self.read_reply(deadline)
            if msg.get("id") == req_id:
                return t, msg
            self.stash[msg.get("id")] = (t, msg)

    def call(self, method, params=None, timeout=60.0):
        """Returns (round trip ms, result). A JSON-RPC error is a BenchError."""
        t0 = time.perf_counter_ns()
        req_id = self.send(method, params)
        t1, msg = self.wait_for(req_id, time.monotonic() + timeout)
        if "error" in msg:
            raise BenchError(f"{method} returned error {json.dumps(msg['error'])[:300]}")
        return (t1 - t0) / 1e6, msg["result"]

    def status(self):
        return self.call("status")[1]

    def wait_pools_ready(self, timeout):
        """Until every pool is zygoteReady with ready == target and nothing runs."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            pools = st.get("pools") or []
            if pools and st.get("running", 0) == 0 and st.get("queued", 0) == 0 and all(
                    (p.get("zygoteReady") or p.get("kind") == "started") and p.get("ready") == p.get("target")
                    and p.get("starting", 0) == 0 for p in pools):
                return st
            if time.monotonic() > deadline:
                raise BenchError("pools not ready within %.0f s: %s"
                                 % (timeout, json.dumps(pools)[:800]))
            time.sleep(0.05)

    def close(self):
        """shutdown + exit, then EOF; kill our own server only if it does not go."""
        if self.proc.poll() is None:
            try:
                self.call("shutdown", timeout=10)
                self.notify("exit")
            except BenchError:
                pass
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()   # only the pid we started
                self.proc.wait()
        self.stderr_file.close()
        return self.proc.returncode

    def stderr_tail(self, n=30):
        try:
            with open(self.stderr_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return ""


class SocketServer(Server):
    """`pycell serve --listen unix:PATH` with one client connection: the same requests over a
    socket instead of stdio (a shared server's path), stopped with SIGTERM."""

    def __init__(self, binary, max_concurrent, stderr_path, config_path):
        import socket
        self.stderr_path = stderr_path
        self.stderr_file = open(stderr_path, "wb")
        self.dir = tempfile.mkdtemp(prefix="pycell-bench-")
        path = os.path.join(self.dir, "pycell.sock")
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", "unix:" + path, "--max-concurrent", str(max_concurrent),
             "--config", config_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr_file, close_fds=True)
        deadline = time.monotonic() + 30
        while not os.path.exists(path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the listening server did not start; {self.exit_note()}")
            time.sleep(0.01)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.fd = self.sock.fileno()
        os.set_blocking(self.fd, False)
        self.buf = b""
        self.next_id = 0
        self.stash = {}
        self.log_messages = []

    def _write(self, data):
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view):]
            except BlockingIOError:
                select.select([], [self.fd], [], 1.0)
            except OSError as e:
                raise BenchError(f"connection closed ({e}); {self.exit_note()}")

    def close(self):
        self.sock.close()
        if self.proc.poll() is None:
            self.proc.terminate()   # our own server, by pid
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr_file.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode


def bench_over_socket(binary, max_concurrent, n, log_path):
    """print(1) warm claims over a unix socket to `serve --listen` (default's pool only)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as cfg:
        json.dump({"profiles": {"datascience": {"pool": {"size": 0}}, "javascript": {"pool": {"size": 0}}}}, cfg)
    server = SocketServer(binary, max_concurrent, log_path + ".listen", cfg.name)
    try:
        server.wait_pools_ready(60)
        rtt, wall, _ = bench_warm(server, {"code": TRIVIAL_CODE}, "default", n, "execute print(1) over a socket",
                                  expect_stdout="1\n")
        return rtt, wall
    finally:
        server.close()
        os.unlink(cfg.name)


def check_result(result, what, expect_stdout=None, expect_value=None):
    if result.get("status") != "ok":
        err = result.get("error") or {}
        raise BenchError(f"{what}: status {result.get('status')!r} "
                         f"({err.get('type')}: {err.get('message')}) stderr={result.get('stderr', '')[-300:]!r}")
    if expect_stdout is not None and result.get("stdout") != expect_stdout:
        raise BenchError(f"{what}: stdout {result.get('stdout')!r}, expected {expect_stdout!r}")
    if expect_value is not None and result.get("value") != expect_value:
        raise BenchError(f"{what}: value {result.get('value')!r}, expected {expect_value!r}")


def execute_checked(server, params, what, expect_stdout=None, expect_value=None):
    ms, result = server.call("execute", params)
    check_result(result, what, expect_stdout, expect_value)
    wall = (result.get("usage") or {}).get("wallMs")
    return ms, wall


def bench_sequential(server, params, n, warmup, what, expect_stdout=None, expect_value=None):
    for _ in range(warmup):
        execute_checked(server, params, what + " (warm-up)", expect_stdout, expect_value)
    server.wait_pools_ready(60)
    rtt, wall = [], []
    for _ in range(n):
        ms, w = execute_checked(server, params, what, expect_stdout, expect_value)
        rtt.append(ms)
        if isinstance(w, (int, float)):
            wall.append(float(w))
    return rtt, wall


def wait_pool_full(server, profile, timeout=30.0, poll_s=0.002):
    """Poll `status` until `profile`'s pool has ready == target with nothing starting and
    nothing running or queued anywhere. Returns the ms spent waiting (one `status` round
    trip when it already was full)."""
    t0 = time.perf_counter_ns()
    deadline = time.monotonic() + timeout
    while True:
        st = server.status()
        pool = next((p for p in st.get("pools") or [] if p.get("profile") == profile), None)
        if pool is None:
            raise BenchError(f"status has no '{profile}' pool")
        if ((pool.get("zygoteReady") or pool.get("kind") == "started") and pool.get("ready") == pool.get("target")
                and pool.get("starting", 0) == 0 and st.get("running", 0) == 0
                and st.get("queued", 0) == 0):
            return (time.perf_counter_ns() - t0) / 1e6
        if time.monotonic() > deadline:
            raise BenchError(f"'{profile}' pool not full again within {timeout:.0f} s: "
                             f"{json.dumps(pool)[:500]}")
        time.sleep(poll_s)


def bench_warm(server, params, profile, n, what, expect_stdout=None, expect_value=None):
    """Warm claim: each request is sent only once `status` shows the pool full (see
    wait_pool_full), so it finds a ready child. Returns (round trips, server wall, waits)."""
    rtt, wall, waits = [], [], []
    for _ in range(n):
        waits.append(wait_pool_full(server, profile))
        ms, w = execute_checked(server, params, what + " (warm claim)", expect_stdout, expect_value)
        rtt.append(ms)
        if isinstance(w, (int, float)):
            wall.append(float(w))
    return rtt, wall, waits


def bench_throughput(server, clients, duration):
    """Keep `clients` execute requests in flight on the one connection for `duration` s.

    Counts replies that arrive inside the window; the requests still in flight at the end
    are drained (and checked) but not counted."""
    status = server.wait_pools_ready(60)
    params = {"code": TRIVIAL_CODE}
    sent_at = {}
    latencies = []
    # CPU per execution: the whole tree's from its cgroup (at a steady state, the children
    # warmed during the window stand for those it consumed); without one, the server and
    # each zygote with the children it reaped (a zygote recycled in the window is missed).
    tree = [server.pid] + [p["zygotePid"] for p in status.get("pools", []) if p.get("zygotePid")]
    cpu = floor.CpuWindow(server.cpu_tree, tree, server.pid)
    executed = 0
    start = time.perf_counter_ns()
    end_ns = start + int(duration * 1e9)
    for _ in range(clients):
        sent_at[server.send("execute", params)] = time.perf_counter_ns()
    completed = 0
    while True:
        t, msg = server.read_reply(time.monotonic() + 60)
        rid = msg.get("id")
        if rid not in sent_at:
            raise BenchError(f"unexpected reply id {rid!r} during throughput run")
        t_sent = sent_at.pop(rid)
        if "error" in msg:
            raise BenchError(f"execute ({clients} clients) returned error "
                             f"{json.dumps(msg['error'])[:300]}")
        check_result(msg["result"], f"execute ({clients} clients)", "1\n")
        executed += 1
        if t <= end_ns:
            completed += 1
            latencies.append((t - t_sent) / 1e6)
            sent_at[server.send("execute", params)] = time.perf_counter_ns()
        if not sent_at:
            break
    return {
        "clients": clients,
        "mode": "requests kept in flight on one NDJSON connection (one server process)",
        "durationS": duration,
        "completed": completed,
        "perSecond": round(completed / duration, 1),
        "latency": summarize(latencies),
        **cpu.per_execution(executed),
    }


# --------------------------------------------------------------------------- baselines

def bench_analyzer(n):
    """The static analyzer alone (src/python/analyze.py, what `analyze` runs in a sandbox) on
    the 1000-line program of tests/python/test_analyze.py, timed in this process."""
    sys.path.insert(0, os.path.join(HERE, "..", "python"))
    try:
        import test_analyze  # noqa: E402 - the program and the module loader live there
    finally:
        sys.path.pop(0)
    code = test_analyze.thousand_lines()
    policy = {"imports": {"deny": ["socket"]}, "builtins": {"remove": ["eval"]}}
    times = []
    for i in range(n + 2):
        start = time.perf_counter()
        found = test_analyze.analyze(code, policy)
        if i >= 2:  # two warm-ups
            times.append((time.perf_counter() - start) * 1000.0)
        if len(found) != 100:
            raise BenchError(f"the analyzer found {len(found)} things in the 1000-line program, not 100")
    return times


def time_command(argv, n, warmup, expect_stdout):
    """Wall time of whole process runs (fork+exec+exit), ms each."""
    times = []
    for i in range(warmup + n):
        t0 = time.perf_counter_ns()
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        dt = (time.perf_counter_ns() - t0) / 1e6
        if p.returncode != 0 or p.stdout.decode() != expect_stdout:
            return None, (f"exit {p.returncode}, stdout {p.stdout[:100]!r}, "
                          f"stderr {p.stderr.decode('utf-8', 'replace').strip()[-300:]!r}")
        if i >= warmup:
            times.append(dt)
    return times, None


def bwrap_usable():
    """(argv prefix or None, reason)."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return None, "bwrap is not installed (apt-get install bubblewrap)"
    argv = [bwrap] + BWRAP_ARGS + [SYSTEM_PYTHON, "-c", "print(1)"]
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"bwrap did not run: {e}"
    if p.returncode != 0 or p.stdout != b"1\n":
        who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()} (not root)"
        return None, (f"bwrap fails here as {who}: exit {p.returncode}: "
                      f"{p.stderr.decode('utf-8', 'replace').strip()[-300:]}")
    return [bwrap] + BWRAP_ARGS, "ok"


# --------------------------------------------------------------------------- memory

def read_ppids():
    ppids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rfind(b")") + 2:].split()
        ppids[int(name)] = int(rest[1])
    return ppids


def children_of(ppids, pid):
    return sorted(c for c, pp in ppids.items() if pp == pid)


def descendants(ppids, pid):
    out, todo = [], children_of(ppids, pid)
    while todo:
        c = todo.pop(0)
        out.append(c)
        todo.extend(children_of(ppids, c))
    return out


def vm_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def uss_kib(pid):
    """Private_Clean + Private_Dirty from smaps_rollup (kB). Raises PermissionError."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1])
    return fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0), fields


def checked_memory_snapshot(server, status):
    """memory_snapshot, read twice 100 ms apart. `status` counts a child as ready only once
    it has isolated itself, warmed up and said so, so every counted child must already be
    there as one process (the sandbox's PID 1, a direct child of the zygote) with its final
    memory: the second read only confirms that nothing moved."""
    first = memory_snapshot(server, status)
    time.sleep(0.1)
    cur = memory_snapshot(server, status)
    cur["stable"] = all(
        {c["pid"]: c.get("ussKiB") for c in p["children"]}
        == {c["pid"]: c.get("ussKiB") for c in q["children"]}
        for p, q in zip(cur["pools"], first["pools"]))
    return cur


def memory_snapshot(server, status):
    snap = {"serverPid": server.pid, "serverRssKiB": vm_rss_kib(server.pid), "pools": []}
    ppids = read_ppids()
    uss_skip = None
    for pool in status.get("pools", []):
        if pool.get("kind") == "started":
            continue  # no zygote: a JavaScript profile's sandboxes are started, not forked
        zpid = pool.get("zygotePid")
        entry = {"profile": pool.get("profile"), "zygotePid": zpid,
                 "zygoteRssKiB": vm_rss_kib(zpid) if zpid else None,
                 "ready": pool.get("ready"), "children": []}
        try:
            entry["zygoteUssKiB"] = uss_kib(zpid)[0]
        except OSError as e:
            uss_skip = uss_skip or e
            entry["zygoteUssKiB"] = None
        # Each ready child is one process: the sandbox's PID 1, a direct child of the zygote.
        for child in children_of(ppids, zpid) if zpid else []:
            c = {"pid": child, "rssKiB": vm_rss_kib(child),
                 "descendantPids": descendants(ppids, child)}   # expected empty
            try:
                c["ussKiB"] = uss_kib(child)[0]
            except OSError as e:
                uss_skip = uss_skip or e
            entry["children"].append(c)
        snap["pools"].append(entry)
    if uss_skip is not None:
        who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}, not root"
        snap["ussSkipped"] = (f"cannot read another process's smaps_rollup ({who}): {uss_skip}; "
                              "run the benchmark as root for USS")
    return snap


# --------------------------------------------------------------------------- machine

def machine_info(binary):
    info = {
        "nproc": os.cpu_count(),
        "cpusAllowed": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "kernel": platform.release(),
        "kernelVersion": platform.version(),
        "arch": platform.machine(),
        "benchPython": platform.python_version(),
        "euid": os.geteuid(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    info["os"] = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    try:
        p = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print(sys.version.split()[0])"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=30)
        info["systemPython"] = f"{SYSTEM_PYTHON} {p.stdout.decode().strip()}"
    except (OSError, subprocess.TimeoutExpired) as e:
        info["systemPython"] = f"{SYSTEM_PYTHON} unavailable: {e}"
    try:
        p = subprocess.run([binary, "--version"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10)
        info["pycellVersion"] = p.stdout.decode().strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        info["pycellVersion"] = f"unavailable: {e}"
    try:
        info["binaryBuilt"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.stat(binary).st_mtime))
    except OSError:
        pass
    try:  # read-only: which source the checkout holds (the binary may be older or newer)
        head = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10)
        dirty = subprocess.run(["git", "-C", HERE, "status", "--porcelain", "--untracked-files=no"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10)
        if head.returncode == 0:
            info["sourceCommit"] = head.stdout.decode().strip() + (
                " + uncommitted changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        pass
    info["loadavgStart"] = os.getloadavg()
    return info


def cpu_ticks():
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    total = sum(v[:8])
    return total - idle, total


# Processes that mean someone else is loading the machine (builds, test runs, another
# pycell server). Looked for by name, not by CPU use: the sandboxes the benchmark makes are
# re-parented and left by their own sessions, so "not ours" cannot be told by ancestry.
FOREIGN_COMMS = {"cc1plus", "cc1", "c++", "g++", "gcc", "clang", "clang++", "ld", "ld.gold",
                 "ld.lld", "make", "ninja", "cmake", "ctest", "pycell", "pytest"}


def foreign_sample(seen, own_pids=()):
    """Adds to `seen` (comm -> samples it was seen in) the other work running right now."""
    found = set()
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me or int(name) in own_pids:
            continue
        try:
            with open(f"/proc/{name}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm in FOREIGN_COMMS:
            found.add(comm)
    for comm in found:
        seen[comm] = seen.get(comm, 0) + 1
    seen["_samples"] = seen.get("_samples", 0) + 1


# --------------------------------------------------------------------------- report

def fmt_ms(v):
    if v is None:
        return "-"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def verdict(ok):
    return "PASS" if ok else "MISS"


def print_report(rep):
    m = rep["machine"]
    out = []
    w = out.append
    w("pycell benchmark")
    w(f"  machine : {m.get('nproc')} CPUs ({m.get('cpusAllowed')} allowed), {m.get('cpu', '?')}")
    w(f"  kernel  : {m.get('kernel')} {m.get('arch')}; {m.get('os', '?')}")
    w(f"  python  : baselines {m.get('systemPython')}; benchmark driver {m.get('benchPython')}")
    w(f"  pycell  : {m.get('pycellVersion')} ({rep['server']['binary']}), "
      f"--max-concurrent {rep['config']['maxConcurrent']}, isolation {rep['server'].get('isolationLevel')}, "
      f"cgroup {rep['server'].get('cgroup')}")
    w(f"  build   : binary built {m.get('binaryBuilt', '?')}; checkout at {m.get('sourceCommit', '?')}")
    la0, la1 = m.get("loadavgStart"), m.get("loadavgEnd")
    w(f"  load    : loadavg (1/5/15 min) {' '.join('%.2f' % x for x in la0)} at start, "
      f"{' '.join('%.2f' % x for x in la1) if la1 else '-'} at end")
    w(f"  cpu     : {m.get('cpuBusyPercentBefore', '-')}% busy just before the run (other work skews "
      f"every figure), {m.get('cpuBusyPercent', '-')}% during the pycell phase (driver's own CPU "
      f"{m.get('driverCpuS', '-')} s)")
    ow = m.get("otherWorkSeen") or {}
    seen_s = ", ".join(f"{c} at {n}" for c, n in sorted((ow.get("seen") or {}).items())) or "none"
    w(f"  others  : other work (compilers, make/cmake/ctest, another pycell) seen at the "
      f"{ow.get('samples', '-')} phase boundaries: {seen_s}")
    w(f"  server  : pools ready {rep['server']['poolsReadyMs']:.0f} ms after spawn; pool targets "
      + ", ".join(f"{p['profile']}={p['target']}" for p in rep["server"]["poolsInitial"]))
    w("")
    w("Latency (ms; pycell: client round trip over stdio, one request in flight; baselines: whole")
    w("         process run)")
    w(f"  {'what':<50} {'n':>4} {'p50':>8} {'p99':>8} {'mean':>8} {'min':>8} {'max':>8}  {'early ref':>13}")
    lat = rep["latency"]
    rows = [
        ("pycell_trivial", "pycell print(1) [default], back-to-back"),
        ("pycell_trivial_server_wall", "  server-reported usage.wallMs"),
        ("pycell_trivial_warm", "pycell print(1) [default], warm claim"),
        ("pycell_trivial_warm_server_wall", "  server-reported usage.wallMs"),
        ("pycell_trivial_session", "pycell print(1) [default], warm session"),
        ("pycell_trivial_session_server_wall", "  server-reported usage.wallMs"),
        ("pycell_trivial_socket_warm", "pycell print(1) [default], warm claim, unix socket"),
        ("floor_trivial", "  floor: a child forked ahead, no isolation"),
        ("python3_trivial", "cold python3 -c 'print(1)'"),
        ("bwrap_trivial", "bwrap --unshare-all python3 -c 'print(1)'"),
        ("pycell_pandas", "pycell pandas groupby [datascience], back-to-back"),
        ("pycell_pandas_server_wall", "  server-reported usage.wallMs"),
        ("pycell_pandas_warm", "pycell pandas groupby [datascience], warm claim"),
        ("pycell_pandas_warm_server_wall", "  server-reported usage.wallMs"),
        ("pycell_pandas_session", "pycell pandas groupby [datascience], warm session"),
        ("python3_pandas", "cold python3 -c '<pandas groupby>'"),
        ("bwrap_pandas", "bwrap --unshare-all python3 -c '<pandas groupby>'"),
        ("pycell_js", "pycell console.log(1) [javascript], back-to-back"),
        ("pycell_js_server_wall", "  server-reported usage.wallMs"),
        ("pycell_js_warm", "pycell console.log(1) [javascript], warm claim"),
        ("pycell_js_warm_server_wall", "  server-reported usage.wallMs"),
        ("node_floor", "  floor: started node + bootstrap, no sandbox"),
        ("node_trivial", "cold node -e 'console.log(1)'"),
        ("bwrap_node", "bwrap --unshare-all node -e 'console.log(1)'"),
        ("analyze_1000_lines", "static analysis of 1000 lines (analyze.py, in-process)"),
    ]
    for key, label in rows:
        s = lat.get(key)
        ref = DESIGN_REF_MS.get(key)
        ref_s = f"{ref:.1f}" if ref else ""
        if s is None or s.get("n", 0) == 0:
            why = rep["bwrap"]["reason"] if key.startswith("bwrap") else (
                rep.get("jsSkipped") or "not measured") if "js" in key or "node" in key else "not measured"
            w(f"  {label:<50} skipped: {why}")
            continue
        w(f"  {label:<50} {s['n']:>4} {fmt_ms(s['p50_ms']):>8} {fmt_ms(s['p99_ms']):>8} "
          f"{fmt_ms(s['mean_ms']):>8} {fmt_ms(s['min_ms']):>8} {fmt_ms(s['max_ms']):>8}  {ref_s:>13}")
    w("  floor: floor.py with the default profile's interpreter and preloads and one child forked")
    w("    ahead (as a pool keeps one), handed the code, run, exited and reaped before the reply;")
    w("    no isolation and no bootstrap: the least a warm claim can take here")
    w("  back-to-back: each request sent as soon as the previous reply arrived; it may find the")
    w("    pool still refilling (the sustained rate at which children are made, on these CPUs)")
    wm = rep.get("warmClaim", {})
    waits = "; ".join(
        f"[{prof}] p50 {fmt_ms(wt.get('p50_ms'))} ms, max {fmt_ms(wt.get('max_ms'))} ms"
        for prof, wt in (wm.get("waitBeforeEach") or {}).items() if wt.get("n"))
    w("  warm claim: each request sent only once `status` showed that profile's pool full")
    w(f"    ({wm.get('condition', '?')}), polled every {wm.get('pollMs', '?')} ms;")
    w(f"    it finds a ready child. Wait before each: {waits or '-'}")
    w("  (early refs: python3 -c pass; bwrap ... python3 -c pass; python3 -c 'import numpy, pandas')")
    w("")
    w("Throughput (trivial execute, default profile; clients = requests kept in flight on one")
    w("            NDJSON connection to the one server process)")
    w(f"  {'clients':>7} {'duration s':>10} {'completed':>9} {'exec/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
      f" {'CPU ms/exec':>11} {'server':>7} {'kthreads':>8}")
    for t in rep["throughput"]:
        w(f"  {t['clients']:>7} {t['durationS']:>10.1f} {t['completed']:>9} {t['perSecond']:>8.1f} "
          f"{fmt_ms(t['latency'].get('p50_ms')):>8} {fmt_ms(t['latency'].get('p99_ms')):>8}"
          f" {t.get('cpuMsPerExecution', '-'):>11} {t.get('serverCpuMsPerExecution', '-'):>7}"
          f" {t.get('kernelThreadsCpuMsPerExecution', '-'):>8}")
    fl = rep.get("floor")
    if fl:
        w(f"  {'floor 8':>7} {fl['durationS']:>10.1f} {fl['completed']:>9} {fl['perSecond']:>8.1f} "
          f"{'':>8} {'':>8} {fl['cpuMsPerExecution']:>11} {fl.get('serverCpuMsPerExecution', '-'):>7}"
          f" {fl['kernelThreadsCpuMsPerExecution']:>8}")
        w("  floor: a bare fork server (floor.py): the same python3 and the default profile's preloads")
        w("    imported and frozen, one fork per request that runs the code and exits; no isolation.")
    accounting = {t.get("cpuAccounting") for t in rep["throughput"] + ([fl] if fl else [])}
    if accounting == {"cgroup"}:
        w("  CPU ms/exec: the whole process tree's CPU over the window (server, zygotes, every child,")
        w("    from a cgroup made for the server, or for the floor server); server: the server")
        w("    process's own share of it;")
    else:
        w("  CPU ms/exec: the server's and each zygote's with the children it reaped (/proc")
        w("    utime+stime+cutime+cstime over the window; no cgroup could be made for the tree, so a")
        w("    zygote recycled in the window is missed); server: the server process's own;")
    w("    kthreads: kernel threads' CPU in the same window, per execution (namespace teardown,")
    w("    page reclaim; and others' work)")
    w("")
    mem = rep["memory"]
    w("Memory (KiB; USS = Private_Clean + Private_Dirty from /proc/PID/smaps_rollup; a ready child")
    w("        is one process, the sandbox's PID 1, a direct child of its pool's zygote)")
    for label, snap in (("after start", mem["start"]), ("after the load", mem["end"])):
        w(f"  {label}: server VmRSS {snap['serverRssKiB']} KiB")
        for p in snap["pools"]:
            zu = p.get("zygoteUssKiB")
            w(f"    [{p['profile']}] zygote pid {p['zygotePid']}: VmRSS {p['zygoteRssKiB']}"
              + (f", USS {zu}" if zu is not None else "")
              + f"; status ready {p['ready']}, {len(p['children'])} child process(es) found")
            for c in p["children"]:
                extra = f" (+ descendants {c['descendantPids']}!)" if c["descendantPids"] else ""
                uss = f"USS {c['ussKiB']}" if "ussKiB" in c else "USS not readable"
                w(f"      ready child pid {c['pid']}: {uss}; VmRSS {c['rssKiB']}{extra}")
        if snap.get("ussSkipped"):
            w(f"    USS skipped: {snap['ussSkipped']}")
    w("")
    w("Targets (ratios from this run)")
    for t in rep["targets"]:
        if t.get("skipped"):
            w(f"  {t['name']:<66} {'n/a':>10}   target {t['targetText']:<10} SKIPPED ({t['skipped']})")
        else:
            w(f"  {t['name']:<66} {t['valueText']:>10}   target {t['targetText']:<10} {verdict(t['pass'])}")
    if rep.get("notes"):
        w("")
        w("Notes")
        for n in rep["notes"]:
            w(f"  - {n}")
    print("\n".join(out), flush=True)


def compute_targets(rep):
    lat, tg = rep["latency"], []

    def p50(key):
        s = lat.get(key)
        return s.get("p50_ms") if s and s.get("n") else None

    def ratio(name, num, den, target, skip_reason, figure):
        a, b = p50(num), p50(den)
        if a is None or b is None or b <= 0:
            tg.append({"name": name, "figure": figure, "target": target,
                       "targetText": f">= {target:g}x", "skipped": skip_reason})
            return
        r = a / b
        tg.append({"name": name, "figure": figure, "value": round(r, 2), "valueText": f"{r:.1f}x",
                   "target": target, "targetText": f">= {target:g}x", "pass": r >= target})

    # Every latency target is judged on both pycell figures, labelled.
    figures = (("backToBack", "back-to-back", ""), ("warmClaim", "warm claim", "_warm"),
               ("session", "warm session", "_session"))
    for fig, label, sfx in figures:
        ratio(f"bwrap+python3 print(1) p50 / pycell trivial p50 [{label}]", "bwrap_trivial",
              "pycell_trivial" + sfx, TARGETS["bwrap_over_trivial"], rep["bwrap"]["reason"], fig)
    for fig, label, sfx in figures:
        ratio(f"cold python3+pandas p50 / pycell pandas p50 [{label}]", "python3_pandas",
              "pycell_pandas" + sfx, TARGETS["cold_pandas_over_pandas"], "not measured", fig)
    for fig, label, sfx in (("backToBack", "back-to-back", ""), ("warmClaim", "warm claim", "_warm")):
        ratio(f"cold node -e p50 / pycell JavaScript p50 [{label}]", "node_trivial", "pycell_js" + sfx,
              TARGETS["cold_node_over_js_warm"], rep.get("jsSkipped") or "not measured", fig)
        ratio(f"bwrap+node p50 / pycell JavaScript p50 [{label}]", "bwrap_node", "pycell_js" + sfx,
              1.0, rep.get("jsSkipped") or rep["bwrap"]["reason"], fig)
    ratio("hot path: bwrap+python3 print(1) p50 / pycell trivial p50 [back-to-back]", "bwrap_trivial",
          "pycell_trivial", TARGETS["hot_backtoback_over_bwrap"], rep["bwrap"]["reason"], "backToBack")
    ratio("hot path: bwrap+python3 print(1) p50 / pycell trivial p50 [warm claim]", "bwrap_trivial",
          "pycell_trivial_warm", TARGETS["hot_warm_over_bwrap"], rep["bwrap"]["reason"], "warmClaim")
    ratio("hot path: cold python3+pandas p50 / pycell pandas p50 [warm claim]", "python3_pandas",
          "pycell_pandas_warm", TARGETS["hot_pandas_warm_over_cold"], "not measured", "warmClaim")
    v = p50("pycell_trivial_session")
    if v is not None:
        tg.append({"name": "hot path: pycell trivial p50 [warm session]", "figure": "session", "value": v,
                   "valueText": f"{v:.2f} ms", "target": TARGETS["hot_session_ms"],
                   "targetText": f"<= {TARGETS['hot_session_ms']:g} ms", "pass": v <= TARGETS["hot_session_ms"]})
    a, b = p50("pycell_js_warm"), p50("node_floor")
    if a is not None and b:
        r = a / b
        tg.append({"name": "pycell JavaScript warm claim p50 / its floor's (node started, no sandbox)",
                   "figure": "warmClaim", "value": round(r, 2), "valueText": f"{r:.2f}x",
                   "target": TARGETS["js_floor"], "targetText": f"<= {TARGETS['js_floor']:g}x",
                   "pass": r <= TARGETS["js_floor"]})
    t8 = next((t for t in rep["throughput"] if t["clients"] == 8), None)
    if t8:
        tg.append({"name": "trivial executes/s with 8 clients", "value": t8["perSecond"],
                   "valueText": f"{t8['perSecond']:.0f}/s", "target": TARGETS["throughput_8"],
                   "targetText": f">= {TARGETS['throughput_8']:g}/s",
                   "pass": t8["perSecond"] >= TARGETS["throughput_8"]})
    fl = rep.get("floor")
    if t8 and fl and fl["perSecond"] > 0 and t8.get("cpuMsPerExecution"):
        r = t8["perSecond"] / fl["perSecond"]
        tg.append({"name": "trivial executes/s with 8 in flight / the floor's", "value": round(r, 2),
                   "valueText": f"{r:.2f}x", "target": TARGETS["floor_throughput"],
                   "targetText": f">= {TARGETS['floor_throughput']:g}x", "pass": r >= TARGETS["floor_throughput"]})
        r = t8["cpuMsPerExecution"] / fl["cpuMsPerExecution"] if fl["cpuMsPerExecution"] > 0 else float("inf")
        tg.append({"name": "CPU per execution, 8 in flight / the floor's", "value": round(r, 2),
                   "valueText": f"{r:.2f}x", "target": TARGETS["floor_cpu"],
                   "targetText": f"<= {TARGETS['floor_cpu']:g}x", "pass": r <= TARGETS["floor_cpu"]})
    snap = rep["memory"]["end"]
    for p in snap["pools"]:
        totals = [c["ussKiB"] for c in p["children"] if "ussKiB" in c]
        name = f"ready child USS, max over children [{p['profile']}]"
        if not totals:
            tg.append({"name": name, "target": TARGETS["child_uss_mib"],
                       "targetText": f"<= {TARGETS['child_uss_mib']:g} MiB",
                       "skipped": snap.get("ussSkipped") and "not root" or "no ready children found"})
            continue
        mib = max(totals) / 1024.0
        tg.append({"name": name, "value": round(mib, 3), "valueText": f"{mib:.2f} MiB",
                   "target": TARGETS["child_uss_mib"],
                   "targetText": f"<= {TARGETS['child_uss_mib']:g} MiB",
                   "pass": mib <= TARGETS["child_uss_mib"]})
    v = p50("analyze_1000_lines")
    if v is not None:
        tg.append({"name": "aim: static analysis of 1000 lines p50", "value": v, "valueText": f"{v:.2f} ms",
                   "target": TARGETS["aim_analyze_1000_ms"],
                   "targetText": f"< {TARGETS['aim_analyze_1000_ms']:g} ms",
                   "pass": v < TARGETS["aim_analyze_1000_ms"]})
    for key, what, aim in (("pycell_trivial", "aim: pycell trivial p50", "aim_trivial_p50_ms"),
                           ("pycell_pandas", "aim: pycell pandas p50", "aim_pandas_p50_ms")):
        for fig, label, sfx in figures:
            v = p50(key + sfx)
            if v is not None:
                tg.append({"name": f"{what} [{label}]", "figure": fig, "value": v,
                           "valueText": f"{v:.2f} ms", "target": TARGETS[aim],
                           "targetText": f"< {TARGETS[aim]:g} ms", "pass": v < TARGETS[aim]})
    return tg


# --------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default=DEFAULT_BINARY, help="pycell binary (default %(default)s)")
    ap.add_argument("--quick", action="store_true", help="small counts (~15 s), for CI")
    ap.add_argument("--json", metavar="FILE", help="write the machine-readable report here")
    ap.add_argument("--trivial-n", type=int, help="sequential print(1) executes (default 200; quick 40)")
    ap.add_argument("--pandas-n", type=int, help="sequential pandas executes (default 100; quick 20)")
    ap.add_argument("--warm-trivial-n", type=int,
                    help="warm-claim print(1) executes (default 100; quick 20)")
    ap.add_argument("--warm-pandas-n", type=int,
                    help="warm-claim pandas executes (default 50; quick 10)")
    ap.add_argument("--baseline-n", type=int, help="runs of each cold baseline (default 20; quick 5)")
    ap.add_argument("--duration", type=float, help="seconds per throughput level (default 5; quick 1.5)")
    ap.add_argument("--max-concurrent", type=int, default=8, help="server --max-concurrent (default 8)")
    ap.add_argument("--server-log", metavar="FILE",
                    help="keep the server's stderr here (default: a temporary file, removed after a clean run)")
    args = ap.parse_args()

    quick = args.quick
    cfg = {
        "trivialN": args.trivial_n or (40 if quick else 200),
        "pandasN": args.pandas_n or (20 if quick else 100),
        "warmTrivialN": args.warm_trivial_n or (20 if quick else 100),
        "warmPandasN": args.warm_pandas_n or (10 if quick else 50),
        "baselineN": args.baseline_n or (5 if quick else 20),
        "durationS": args.duration or (1.5 if quick else 5.0),
        "warmupTrivial": 5 if quick else 20,
        "warmupPandas": 3 if quick else 10,
        "warmupBaseline": 1 if quick else 2,
        "maxConcurrent": args.max_concurrent,
        "quick": quick,
    }
    for k in ("trivialN", "pandasN", "warmTrivialN", "warmPandasN", "baselineN"):
        if cfg[k] < 1:
            ap.error(f"{k} must be >= 1")
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        print(f"bench: pycell binary not found or not executable: {binary}", file=sys.stderr)
        return 1
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        print(f"bench: {SYSTEM_PYTHON} not found (baselines and pycell's default profile need it)",
              file=sys.stderr)
        return 1

    rep = {"schema": "pycell-bench/2", "config": cfg, "machine": machine_info(binary),
           "latency": {}, "throughput": [], "notes": [],
           "warmClaim": {"condition": "ready == target, starting == 0, nothing running or queued",
                         "pollMs": 2, "waitBeforeEach": {}}}
    # Is something else using the CPUs right now? (loadavg lags by minutes; sample instead)
    a = cpu_ticks()
    time.sleep(0.5)
    b = cpu_ticks()
    if a and b and b[1] > a[1]:
        busy = 100.0 * (b[0] - a[0]) / (b[1] - a[1])
        rep["machine"]["cpuBusyPercentBefore"] = round(busy, 1)
        if busy > 20.0:
            rep["notes"].append(
                f"the machine was busy before the run ({busy:.0f}% of {rep['machine']['nproc']} CPUs "
                "used by other processes over 0.5 s): latencies and throughput are pessimistic; "
                "rerun on an idle machine for release figures")
    if args.server_log:
        log_path, keep_log = args.server_log, True
    else:
        fd, log_path = tempfile.mkstemp(prefix="pycell-bench-", suffix=".stderr.log")
        os.close(fd)
        keep_log = False

    # Baselines first, before any server exists, so they do not share the CPUs with it.
    print("bench: static analysis ...", file=sys.stderr, flush=True)
    rep["latency"]["analyze_1000_lines"] = summarize(bench_analyzer(5 if quick else 20))
    print("bench: baselines ...", file=sys.stderr, flush=True)
    seen = {}
    foreign_sample(seen)
    bn, bw = cfg["baselineN"], cfg["warmupBaseline"]
    for key, argv, expect in (
            ("python3_trivial", [SYSTEM_PYTHON, "-c", TRIVIAL_CODE], "1\n"),
            ("python3_pandas", [SYSTEM_PYTHON, "-c", PANDAS_CLI_CODE], PANDAS_EXPECTED_STDOUT)):
        times, err = time_command(argv, bn, bw, expect)
        if times is None:
            rep["notes"].append(f"{key} baseline failed: {err}")
            rep["latency"][key] = {"n": 0, "error": err}
        else:
            rep["latency"][key] = summarize(times)
        foreign_sample(seen)
    node = shutil.which("node")
    if node:
        js_bootstrap = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "js", "bootstrap.js")
        try:
            times = [floor.js_floor_once(node, js_bootstrap, JS_CODE, "1\n") for _ in range(max(bn, 10) + bw)][bw:]
            rep["latency"]["node_floor"] = summarize(times)
        except (OSError, RuntimeError) as e:
            rep["notes"].append(f"the JavaScript floor failed: {e}")
        times, err = time_command([node, "-e", JS_CODE], bn, bw, "1\n")
        if times is None:
            rep["notes"].append(f"node_trivial baseline failed: {err}")
            rep["latency"]["node_trivial"] = {"n": 0, "error": err}
        else:
            rep["latency"]["node_trivial"] = summarize(times)
    else:
        rep["jsSkipped"] = "node is not installed (apt-get install nodejs)"
    prefix, reason = bwrap_usable()
    rep["bwrap"] = {"available": prefix is not None, "reason": reason,
                    "argv": BWRAP_ARGS if prefix else None}
    if prefix:
        for key, code, expect in (("bwrap_trivial", TRIVIAL_CODE, "1\n"),
                                  ("bwrap_pandas", PANDAS_CLI_CODE, PANDAS_EXPECTED_STDOUT)):
            times, err = time_command(prefix + [SYSTEM_PYTHON, "-c", code], bn, bw, expect)
            if times is None:
                rep["notes"].append(f"{key} baseline failed: {err}")
                rep["latency"][key] = {"n": 0, "error": err}
            else:
                rep["latency"][key] = summarize(times)
            foreign_sample(seen)
        if node:
            times, err = time_command(prefix + [node, "-e", JS_CODE], bn, bw, "1\n")
            rep["latency"]["bwrap_node"] = summarize(times) if times else {"n": 0, "error": err}

    foreign_sample(seen)
    server = None
    failed = None
    try:
        print("bench: starting pycell serve ...", file=sys.stderr, flush=True)
        t_spawn = time.monotonic()
        ticks0, times0 = cpu_ticks(), os.times()
        cpu_tree = floor.TreeCpu.make(f"pycell-bench-{os.getpid()}")
        server = Server(binary, cfg["maxConcurrent"], log_path, cpu_tree)
        _, init = server.call("initialize", {"processId": os.getpid(), "capabilities": {}})
        iso = init.get("isolation") or {}
        st0 = server.wait_pools_ready(120)
        rep["server"] = {
            "binary": binary, "pid": server.pid,
            "isolationLevel": iso.get("level"), "cgroup": iso.get("cgroup"),
            "isolation": iso, "profiles": init.get("profiles"),
            "poolsReadyMs": round((time.monotonic() - t_spawn) * 1000, 1),
            "poolsInitial": st0.get("pools"),
        }
        profiles = {p.get("profile") for p in st0.get("pools", [])}
        for needed in ("default", "datascience"):
            if needed not in profiles:
                raise BenchError(f"server has no '{needed}' pool (pools: {sorted(profiles)})")
        ds = next(p for p in st0["pools"] if p["profile"] == "datascience")
        if ds.get("preloadFailed"):
            rep["notes"].append(f"datascience preload failures: {ds['preloadFailed']}")
        mem_start = checked_memory_snapshot(server, st0)

        print("bench: sequential latency (print(1)) ...", file=sys.stderr, flush=True)
        rtt, wall = bench_sequential(server, {"code": TRIVIAL_CODE}, cfg["trivialN"],
                                     cfg["warmupTrivial"], "execute print(1)", expect_stdout="1\n")
        rep["latency"]["pycell_trivial"] = summarize(rtt)
        rep["latency"]["pycell_trivial_server_wall"] = summarize(wall)
        foreign_sample(seen, {server.pid})
        print("bench: warm-claim latency (print(1)) ...", file=sys.stderr, flush=True)
        rtt, wall, waits = bench_warm(server, {"code": TRIVIAL_CODE}, "default", cfg["warmTrivialN"],
                                      "execute print(1)", expect_stdout="1\n")
        rep["latency"]["pycell_trivial_warm"] = summarize(rtt)
        rep["latency"]["pycell_trivial_warm_server_wall"] = summarize(wall)
        rep["warmClaim"]["waitBeforeEach"]["default"] = summarize(waits)
        foreign_sample(seen, {server.pid})
        print("bench: sequential latency (pandas) ...", file=sys.stderr, flush=True)
        rtt, wall = bench_sequential(server, {"code": PANDAS_CODE, "profile": "datascience"},
                                     cfg["pandasN"], cfg["warmupPandas"], "execute pandas",
                                     expect_value=PANDAS_EXPECTED_VALUE)
        rep["latency"]["pycell_pandas"] = summarize(rtt)
        rep["latency"]["pycell_pandas_server_wall"] = summarize(wall)
        foreign_sample(seen, {server.pid})
        print("bench: warm-claim latency (pandas) ...", file=sys.stderr, flush=True)
        rtt, wall, waits = bench_warm(server, {"code": PANDAS_CODE, "profile": "datascience"},
                                      "datascience", cfg["warmPandasN"], "execute pandas",
                                      expect_value=PANDAS_EXPECTED_VALUE)
        rep["latency"]["pycell_pandas_warm"] = summarize(rtt)
        rep["latency"]["pycell_pandas_warm_server_wall"] = summarize(wall)
        rep["warmClaim"]["waitBeforeEach"]["datascience"] = summarize(waits)

        foreign_sample(seen, {server.pid})
        if "javascript" in profiles:
            js_params = {"code": JS_CODE, "language": "javascript"}
            print("bench: JavaScript latency (console.log(1)) ...", file=sys.stderr, flush=True)
            rtt, wall = bench_sequential(server, js_params, cfg["warmTrivialN"], cfg["warmupPandas"],
                                         "execute console.log(1)", expect_stdout="1\n")
            rep["latency"]["pycell_js"] = summarize(rtt)
            rep["latency"]["pycell_js_server_wall"] = summarize(wall)
            rtt, wall, waits = bench_warm(server, js_params, "javascript", cfg["warmTrivialN"],
                                          "execute console.log(1)", expect_stdout="1\n")
            rep["latency"]["pycell_js_warm"] = summarize(rtt)
            rep["latency"]["pycell_js_warm_server_wall"] = summarize(wall)
            rep["warmClaim"]["waitBeforeEach"]["javascript"] = summarize(waits)
            foreign_sample(seen, {server.pid})
        else:
            rep["jsSkipped"] = rep.get("jsSkipped") or "the server has no javascript pool"
        print("bench: session latency (print(1) in a warm session) ...", file=sys.stderr, flush=True)
        for sid, profile in (("bench", "default"), ("bench-ds", "datascience")):
            server.call("session/create", {"session": sid, "profile": profile})  # an error raises
        rtt, wall = bench_sequential(server, {"code": TRIVIAL_CODE, "session": "bench"}, cfg["trivialN"],
                                     cfg["warmupTrivial"], "execute print(1) in a session", expect_stdout="1\n")
        rep["latency"]["pycell_trivial_session"] = summarize(rtt)
        rep["latency"]["pycell_trivial_session_server_wall"] = summarize(wall)
        rtt, wall = bench_sequential(server, {"code": PANDAS_CODE, "session": "bench-ds"}, cfg["pandasN"],
                                     cfg["warmupPandas"], "execute pandas in a session",
                                     expect_value=PANDAS_EXPECTED_VALUE)
        rep["latency"]["pycell_pandas_session"] = summarize(rtt)
        for sid in ("bench", "bench-ds"):
            server.call("session/close", {"session": sid})
        foreign_sample(seen, {server.pid})
        print("bench: throughput ...", file=sys.stderr, flush=True)
        for clients in (1, 2, 8):
            rep["throughput"].append(bench_throughput(server, clients, cfg["durationS"]))
            foreign_sample(seen, {server.pid})
        # The same warm claims through a shared server's socket (serve --listen), this server idle.
        print("bench: warm-claim latency over a unix socket (serve --listen) ...", file=sys.stderr, flush=True)
        try:
            rtt, _ = bench_over_socket(binary, cfg["maxConcurrent"], cfg["warmTrivialN"], log_path)
            rep["latency"]["pycell_trivial_socket_warm"] = summarize(rtt)
        except (OSError, BenchError) as e:
            rep["notes"].append(f"the socket measurement failed: {e}")
        # The floor: the same interpreter and the default profile's preloads, forked per
        # request with no isolation at all (the pycell server idles meanwhile).
        print("bench: floor (bare fork server, 8 in flight) ...", file=sys.stderr, flush=True)
        preloads = next((p.get("preloaded") or [] for p in st0["pools"] if p["profile"] == "default"), [])
        try:
            rep["floor"] = floor.bench_floor(SYSTEM_PYTHON, preloads, 8, cfg["durationS"])
            rep["floor"]["preloads"] = preloads
            del rep["floor"]["latenciesMs"]
            # One request at a time to a child forked ahead: the round trip of a bare run,
            # exit and reap, what a warm claim is compared with.
            one = floor.bench_floor(SYSTEM_PYTHON, preloads, 1, min(cfg["durationS"], 2.0), prefork=True)
            rep["latency"]["floor_trivial"] = summarize(one["latenciesMs"])
        except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
            rep["notes"].append(f"floor baseline failed: {e}")
        foreign_sample(seen, {server.pid})

        st1 = server.wait_pools_ready(60)
        ticks1, times1 = cpu_ticks(), os.times()
        if ticks0 and ticks1 and ticks1[1] > ticks0[1]:
            rep["machine"]["cpuBusyPercent"] = round(
                100.0 * (ticks1[0] - ticks0[0]) / (ticks1[1] - ticks0[1]), 1)
        rep["machine"]["driverCpuS"] = round(
            (times1.user - times0.user) + (times1.system - times0.system), 2)
        rep["server"]["poolsFinal"] = st1.get("pools")
        rep["server"]["executionsTotal"] = st1.get("executionsTotal")
        rep["memory"] = {"start": mem_start, "end": checked_memory_snapshot(server, st1)}
        for label, snap in (("first ready", mem_start), ("after the load", rep["memory"]["end"])):
            for p in snap["pools"]:
                found = len(p["children"])
                if found < (p["ready"] or 0):
                    rep["notes"].append(
                        f"{label} [{p['profile']}]: status counted {p['ready']} ready child(ren) but "
                        f"only {found} process(es) run under zygote {p['zygotePid']}")
                elif found > (p["ready"] or 0):
                    rep["notes"].append(
                        f"{label} [{p['profile']}]: {found} processes under zygote {p['zygotePid']} "
                        f"while status counted {p['ready']} ready, nothing starting or running "
                        "(children still exiting?); the USS target covers all of them")
                deep = [c["pid"] for c in p["children"] if c["descendantPids"]]
                if deep:
                    rep["notes"].append(
                        f"{label} [{p['profile']}]: ready child(ren) {deep} have processes below "
                        "them; a ready child should be one process (the sandbox's PID 1)")
            if not snap["stable"]:
                rep["notes"].append(f"{label}: a ready child's USS changed between two reads "
                                    "100 ms apart; figures are the second read")
        if server.log_messages:
            rep["server"]["notifications"] = server.log_messages[:20]
            rep["notes"].append(f"server sent {len(server.log_messages)} notification(s), e.g. "
                                f"{json.dumps(server.log_messages[0])[:300]}")
        for p0 in st0.get("pools", []):
            p1 = next((p for p in st1.get("pools", []) if p["profile"] == p0["profile"]), {})
            if p1.get("zygoteStarts", 0) != p0.get("zygoteStarts", 0) or p1.get("zygotePid") != p0.get("zygotePid"):
                rep["notes"].append(
                    f"[{p0['profile']}] zygote restarted/recycled during the run "
                    f"(pid {p0.get('zygotePid')} -> {p1.get('zygotePid')}, starts "
                    f"{p0.get('zygoteStarts')} -> {p1.get('zygoteStarts')})")
    except BenchError as e:
        failed = str(e)
    except KeyboardInterrupt:
        failed = "interrupted"
    finally:
        rc = server.close() if server else None
        if server and server.cpu_tree:
            server.cpu_tree.remove()
        if server and rc not in (0, None) and failed is None:
            failed = f"server exited with status {rc} after shutdown/exit"
    foreign_sample(seen)
    rep["machine"]["loadavgEnd"] = os.getloadavg()
    samples = seen.pop("_samples", 0)
    rep["machine"]["otherWorkSeen"] = {"samples": samples, "seen": seen}
    if seen:
        rep["notes"].append(
            "other work was running during the run (seen at phase boundaries, out of "
            f"{samples} looks: {', '.join(f'{c} {n}x' for c, n in sorted(seen.items()))}): "
            "the figures are pessimistic; rerun on an idle machine for release figures")

    if failed:
        print(f"bench: FAILED: {failed}", file=sys.stderr)
        if server:
            tail = server.stderr_tail()
            if tail:
                print(f"bench: server stderr (last lines; full log {log_path}):\n{tail}", file=sys.stderr)
        rep["failed"] = failed
        rep["ok"] = False
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rep, f, indent=2)
        return 1

    rep["targets"] = compute_targets(rep)
    rep["ok"] = True
    if not keep_log:
        try:
            os.unlink(log_path)
        except OSError:
            pass
    else:
        rep["server"]["log"] = log_path
    print_report(rep)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rep, f, indent=2)
        print(f"\nJSON report: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
