"""pycell zygote: a warm interpreter that forks sandboxed children on request.

Started by the server inside a profile's outer sandbox (its own user, mount, pid, net, ipc
and uts namespaces, a read-only root) as `python3 -I -B -u -X utf8 /.pycell/zygote.py`,
with fd 3 a SOCK_SEQPACKET socket to the server. It imports the profile's modules once;
each child it forks starts in its own namespaces and isolates itself through
libpycell_child.so, then runs the bootstrap's _main(), which waits for the request on fd 3. Standard library only. Messages
are one JSON object per datagram; file descriptors travel as SCM_RIGHTS.
"""
import array, base64, ctypes, fcntl, gc, importlib.util, json, os, selectors, signal, socket, sys

LIBRARY = "/.pycell/libpycell_child.so"
BOOTSTRAP = "/.pycell/bootstrap.py"
MAX_MESSAGE = 1 << 20


class ChildSpec(ctypes.Structure):
    _fields_ = [("uid", ctypes.c_uint32), ("gid", ctypes.c_uint32), ("disk_mb", ctypes.c_int64),
                ("rlimits", ctypes.POINTER(ctypes.c_uint64)), ("n_rlimits", ctypes.c_int32),
                ("bpf", ctypes.c_void_p), ("bpf_len", ctypes.c_int32)]


def send(ctl, message, fds=()):
    data = json.dumps(message).encode()
    if fds:
        ctl.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        ctl.send(data)


def preload(modules):
    """Imports the profile's modules; a missing one is reported, not fatal."""
    imported, failed = [], {}
    for name in modules:
        try:
            importlib.import_module(name)
            imported.append(name)
        except Exception as e:  # noqa: BLE001 - any import failure is reported to the server
            failed[name] = "%s: %s" % (type(e).__name__, e)
    return imported, failed


def warm_up():
    """Touches the lazy paths once, so children do not each pay for them (and so the
    one-time caches land in memory shared by every child)."""
    if "matplotlib.pyplot" in sys.modules:
        plt = sys.modules["matplotlib.pyplot"]
        fig = plt.figure()
        fig.gca().plot([0, 1], [0, 1])
        fig.canvas.draw()
        plt.close(fig)
    if "pandas" in sys.modules:
        pd = sys.modules["pandas"]
        pd.DataFrame({"a": [1, 2, 1], "b": [1.0, 2.0, 3.0]}).groupby("a").sum()


def load_bootstrap():
    spec = importlib.util.spec_from_file_location("pycell_bootstrap", BOOTSTRAP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_spec(init):
    rows = [v for row in init["rlimits"] for v in row]
    limits = (ctypes.c_uint64 * len(rows))(*rows)
    bpf = base64.b64decode(init.get("seccomp", ""))
    bpf_buffer = ctypes.create_string_buffer(bpf, len(bpf)) if bpf else None
    spec = ChildSpec(init["uid"], init["gid"], init["diskMb"], limits, len(init["rlimits"]),
                     ctypes.cast(bpf_buffer, ctypes.c_void_p) if bpf_buffer else None, len(bpf) // 8)
    return spec, (limits, bpf_buffer)  # the buffers must outlive every fork


def place_fds(fds):
    """The child's five fds become 0..4 (they may already sit on those numbers)."""
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in fds]
    for fd in fds:
        os.close(fd)
    for target, fd in enumerate(high):
        os.dup2(fd, target)
        os.close(fd)
    os.closerange(5, os.sysconf("SC_OPEN_MAX"))


def fork_isolated(lib, share_network):
    """os.fork(), but the child starts in its own namespaces (pycell_clone), PID 1 of its
    own pid namespace and still our direct child. The interpreter's fork bookkeeping runs
    around it exactly as os.fork does it."""
    api = ctypes.pythonapi
    api.PyOS_BeforeFork()
    pid = lib.pycell_clone(int(share_network))
    if pid == 0:
        api.PyOS_AfterFork_Child()
        return 0
    api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(lib.pycell_last_error().decode())
    return pid


def child(fds, lib, spec, bootstrap, child_warmup, policy):
    """In the new child: isolate, warm up, say ready, run the bootstrap (never returns)."""
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        place_fds(fds)
        if lib.pycell_enter(ctypes.byref(spec)) != 0:
            raise OSError(lib.pycell_last_error().decode())
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            numpy.random.seed()  # siblings must not draw the zygote's numbers
        # The zygote's guard, rearmed, for the profile's own warm-up (which runs as a program).
        guard = bootstrap._warm_up(policy if child_warmup else None)
        if child_warmup:
            # The profile's own warm-up, paid here rather than by the first request: the
            # pages it writes are copied from the zygote now (more memory per ready child,
            # less latency per execution). It runs as a program would, under the policy.
            exec(child_warmup, {"__name__": "__main__",
                                "__builtins__": guard.builtins_module if guard is not None else __builtins__})
        if guard is not None:
            guard.close()
        os.write(4, b"R")  # ready: isolated, warm, waiting for the request on fd 3
    except BaseException as e:  # noqa: BLE001 - reported on the child's stderr, then exit
        os.write(2, ("pycell zygote child: sandbox setup failed: %s\n" % e).encode())
        os._exit(127)
    bootstrap._main()
    os._exit(70)


def single_threaded():
    return len(os.listdir("/proc/self/task")) == 1


def main():
    ctl = socket.socket(fileno=3)
    init = json.loads(ctl.recv(MAX_MESSAGE))
    imported, failed = preload(init.get("preload", []))
    warm_up()
    bootstrap = load_bootstrap()
    try:
        if init.get("policy") is not None:
            # The policy layer's process-wide hooks go in here, once, and are inherited:
            # children only make their guard (no active guard: the hooks do nothing).
            bootstrap._prepare_policy(init["policy"])
    except Exception as e:  # noqa: BLE001 - a child that needs it reports the failure
        sys.stderr.write("pycell zygote: policy module not loaded: %s\n" % e)
    lib = ctypes.PyDLL(LIBRARY)  # PyDLL: calls keep the GIL (there is one thread anyway)
    lib.pycell_last_error.restype = ctypes.c_char_p
    spec, _buffers = make_spec(init)  # _buffers: what spec points into, kept alive
    share_network = bool(init.get("shareNetwork"))
    # Compiled under the program's own file name, so the policy layer treats it as a program.
    child_warmup = compile(init["childWarmup"], "<pycell>", "exec") if init.get("childWarmup") else None
    children = {}  # pid -> id given by the server

    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # the wakeup fd does the work
    signal.set_wakeup_fd(wake_w)
    sys.stdout.flush()
    sys.stderr.flush()
    gc.collect()
    gc.freeze()  # children then do not copy the zygote's objects on their first collection
    send(ctl, {"event": "ready", "imported": imported, "failed": failed, "threads": single_threaded()})

    sel = selectors.DefaultSelector()
    sel.register(ctl, selectors.EVENT_READ, "ctl")
    sel.register(wake_r, selectors.EVENT_READ, "wake")
    while True:
        for key, _ in sel.select():
            if key.data == "wake":
                while True:
                    try:
                        if not os.read(wake_r, 4096):
                            break
                    except BlockingIOError:
                        break
                continue
            msg, fds, _flags, _addr = socket.recv_fds(ctl, MAX_MESSAGE, 8)
            if not msg:
                return  # the server is gone
            request = json.loads(msg)
            if request.get("op") != "fork" or len(fds) != 5:
                for fd in fds:
                    os.close(fd)
                send(ctl, {"event": "error", "id": request.get("id"), "message": "bad request"})
                continue
            if not single_threaded():
                # A forked copy of a threaded process can hang on a lock another thread held.
                for fd in fds:
                    os.close(fd)
                send(ctl, {"event": "error", "id": request["id"], "message": "zygote is not single-threaded"})
                continue
            try:
                pid = fork_isolated(lib, share_network)
            except OSError as e:
                for fd in fds:
                    os.close(fd)
                send(ctl, {"event": "error", "id": request["id"], "message": str(e)})
                continue
            if pid == 0:
                sel.close()
                ctl.close()
                os.close(wake_r)
                os.close(wake_w)
                child(fds, lib, spec, bootstrap, child_warmup, init.get("policy"))
            for fd in fds:
                os.close(fd)
            children[pid] = request["id"]
            pidfd = os.pidfd_open(pid)
            send(ctl, {"event": "forked", "id": request["id"]}, [pidfd])
            os.close(pidfd)
        reap(ctl, children)


def reap(ctl, children):
    """Reports each child that ended, with how and what it used (the server cannot wait
    for them: they are ours)."""
    while True:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        ident = children.pop(pid, None)
        if ident is not None:
            send(ctl, {"event": "exit", "id": ident, "status": status,
                       "utimeMs": int(usage.ru_utime * 1000), "stimeMs": int(usage.ru_stime * 1000),
                       "maxrssKb": usage.ru_maxrss})


if __name__ == "__main__":
    main()
