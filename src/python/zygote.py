"""pycell zygote: a warm interpreter that forks sandboxed children on request.

Started by the server inside a profile's outer sandbox (its own user, mount, pid, net, ipc
and uts namespaces, a read-only root) as `python3 -I -B -u -X utf8 /.pycell/zygote.py`,
with fd 3 a SOCK_SEQPACKET socket to the server. It imports the profile's modules once;
each child it forks starts in its own namespaces and isolates itself through
libpycell_child.so, then runs the bootstrap's _main(), which waits for the request on fd 3. Standard library only. Messages
are one JSON object per datagram; file descriptors travel as SCM_RIGHTS.
"""
import array, base64, ctypes, gc, importlib.util, json, os, signal, socket, sys

LIBRARY = "/.pycell/libpycell_child.so"
BOOTSTRAP = "/.pycell/bootstrap.py"
MAX_MESSAGE = 1 << 20


class ForkHooks(ctypes.Structure):
    _fields_ = [("before", ctypes.c_void_p), ("after_parent", ctypes.c_void_p), ("after_child", ctypes.c_void_p)]


class ChildSpec(ctypes.Structure):
    _fields_ = [("uid", ctypes.c_uint32), ("gid", ctypes.c_uint32), ("disk_mb", ctypes.c_int64),
                ("rlimits", ctypes.POINTER(ctypes.c_uint64)), ("n_rlimits", ctypes.c_int32),
                ("bpf", ctypes.c_void_p), ("bpf_len", ctypes.c_int32),
                ("binds", ctypes.POINTER(ctypes.c_char_p)), ("bind_writable", ctypes.POINTER(ctypes.c_uint8)),
                ("n_binds", ctypes.c_int32)]


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
    # Binds the child's own tmpfs covers (under /sandbox, /tmp, /dev/shm): bound again on top.
    binds = init.get("binds", [])
    paths = (ctypes.c_char_p * (len(binds) + 1))(*[b["path"].encode() for b in binds])
    writable = (ctypes.c_uint8 * (len(binds) + 1))(*[1 if b["writable"] else 0 for b in binds])
    spec = ChildSpec(init["uid"], init["gid"], init["diskMb"], limits, len(init["rlimits"]),
                     ctypes.cast(bpf_buffer, ctypes.c_void_p) if bpf_buffer else None, len(bpf) // 8,
                     paths, writable, len(binds))
    return spec, (limits, bpf_buffer, paths, writable)  # the buffers must outlive every fork


def child(lib, spec, bootstrap, child_warmup, policy):
    """In the new child: isolate, warm up, say ready, run the bootstrap (never returns)."""
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        if lib.pycell_enter(ctypes.byref(spec)) != 0:
            raise OSError(lib.pycell_last_error().decode())
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            numpy.random.seed()  # siblings must not draw the zygote's numbers
        # One stand-in run (the profile's own warm-up code, under its policy) pays now, not
        # on the request path, for the pages a run writes: more memory per ready child,
        # less latency per execution.
        error = bootstrap._warm_up(policy, child_warmup)
        if error is not None:
            raise RuntimeError("the profile's childWarmup failed: %s: %s" % (error["type"], error["message"]))
        lib.pycell_learn_pages()  # also unmaps what the zygote shares with its children
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
    child_warmup = init.get("childWarmup") or None
    if child_warmup:
        compile(child_warmup, "<pycell>", "exec")  # a syntax error stops the zygote, not each child
    lib.pycell_serve_forks.restype = ctypes.c_long
    hooks = ForkHooks(*(ctypes.cast(getattr(ctypes.pythonapi, name), ctypes.c_void_p)
                        for name in ("PyOS_BeforeFork", "PyOS_AfterFork_Parent", "PyOS_AfterFork_Child")))
    fds = (ctypes.c_int * 5)()

    sys.stdout.flush()
    sys.stderr.flush()
    gc.collect()
    gc.freeze()  # children then do not copy the zygote's objects on their first collection
    send(ctl, {"event": "ready", "imported": imported, "failed": failed, "threads": single_threaded()})
    # From here on the zygote runs no Python until a fork returns in a child: the loop is
    # C (see child_abi.h), so the zygote writes almost none of the pages its children share.
    ident = lib.pycell_serve_forks(ctl.fileno(), int(share_network), ctypes.byref(hooks), fds)
    if ident < 0:
        raise OSError(lib.pycell_last_error().decode())
    if ident == 0:
        return  # the server is gone
    ctl.detach()  # its fd number is the request pipe's now (the loop moved the child's fds to 0..4)
    child(lib, spec, bootstrap, child_warmup, init.get("policy"))


if __name__ == "__main__":
    main()
