"""What typical sandboxed programs do, run OUTSIDE the sandbox under strace by
seccomp_test.cc: every system call it makes must be in the seccomp allow table (or in the
test's short list of calls the sandbox refuses on purpose).

The standard library, and numpy, pandas and matplotlib (the datascience profile; the
test fails where they are missing, as scripts/install-deps.sh installs them). Each part
checks its own result, so a part that quietly did nothing fails here rather than leaving
its system calls out of the trace. Runs in the directory it is given (its "working
directory"), and writes there and in /tmp. `--online` adds TCP and UDP on loopback.
"""
import array, asyncio, concurrent.futures, contextlib, ctypes, gzip, hashlib, io, json
import mmap, multiprocessing, os, pathlib, queue, random, resource, secrets, select, selectors
import shutil, signal, socket, sqlite3, sys, tempfile, threading, time, zipfile


def printing():
    print("hello", 1 + 1, [1, 2, 3])
    sys.stdout.flush()
    sys.stderr.write("to stderr\n")
    sys.stderr.flush()


def files(where):
    root = pathlib.Path(where) / "files"
    root.mkdir()
    (root / "a.txt").write_text("alpha\n")
    with open(root / "b.bin", "wb") as f:
        f.write(os.urandom(1 << 16))
        f.flush()
        os.fsync(f.fileno())
    with open(root / "b.bin", "r+b") as f:
        f.seek(100)
        f.write(b"x")
        f.truncate(1 << 15)
        assert f.seek(0, os.SEEK_END) == 1 << 15
    shutil.copyfile(root / "a.txt", root / "c.txt")
    shutil.copy2(root / "a.txt", root / "d.txt")  # copies times, mode and xattrs
    os.rename(root / "d.txt", root / "e.txt")
    os.replace(root / "e.txt", root / "f.txt")
    os.chmod(root / "f.txt", 0o600)
    os.utime(root / "f.txt", (1, 2))
    os.symlink("a.txt", root / "link")
    assert os.readlink(root / "link") == "a.txt"
    os.link(root / "a.txt", root / "hard")
    assert os.access(root / "a.txt", os.R_OK)
    assert os.access(root / "a.txt", os.R_OK, effective_ids=True)  # faccessat with flags
    assert os.stat(root / "link").st_size == os.lstat(root / "a.txt").st_size
    os.mkfifo(root / "fifo")
    (root / "sub" / "deeper").mkdir(parents=True)
    names = sorted(p.name for p in root.iterdir())
    assert "fifo" in names and "sub" in names, names
    assert [p.name for p in root.glob("*.txt")]
    walked = list(os.walk(root))
    assert len(walked) == 3, walked
    fd = os.open(root / "a.txt", os.O_RDONLY)
    assert os.pread(fd, 5, 0) == b"alpha"
    assert os.fstat(fd).st_size == 6
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    os.close(fd)
    fd = os.open(root / "g.bin", os.O_RDWR | os.O_CREAT)
    os.posix_fallocate(fd, 0, 4096)
    os.pwrite(fd, b"abc", 10)
    os.writev(fd, [b"one", b"two"])
    os.fdatasync(fd)
    os.close(fd)
    os.statvfs(where)
    with gzip.open(root / "h.gz", "wt") as f:
        f.write("compressed\n" * 100)
    with zipfile.ZipFile(root / "i.zip", "w") as z:
        z.write(root / "a.txt", "a.txt")
    with zipfile.ZipFile(root / "i.zip") as z:
        assert z.read("a.txt") == b"alpha\n"
    db = sqlite3.connect(root / "j.db")
    db.execute("create table t (x)")
    db.executemany("insert into t values (?)", [(i,) for i in range(100)])
    db.commit()
    assert db.execute("select sum(x) from t").fetchone()[0] == 4950
    db.close()
    with tempfile.TemporaryDirectory() as tmp:  # in /tmp
        path = os.path.join(tmp, "t.json")
        with open(path, "w") as f:
            json.dump({"a": 1}, f)
        with open(path) as f:
            assert json.load(f) == {"a": 1}
    with tempfile.NamedTemporaryFile() as f:
        f.write(b"x" * 10000)
        f.flush()
    os.chdir(root)
    os.chdir(where)
    os.umask(0o022)
    shutil.rmtree(root / "sub")
    os.unlink(root / "hard")


def threads():
    results = queue.Queue()
    lock, cond, event = threading.Lock(), threading.Condition(), threading.Event()
    counter = [0]

    def work(i):
        with lock:
            counter[0] += i
        with cond:
            cond.notify_all()
        event.wait(5)
        results.put(hashlib.sha256(str(i).encode()).hexdigest())

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    event.set()
    for t in ts:
        t.join()
    assert results.qsize() == 4 and counter[0] == 6
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert sum(pool.map(lambda x: x * x, range(10))) == 285
    local = threading.local()
    local.x = 1
    timer = threading.Timer(0.01, lambda: results.put("timer"))
    timer.start()
    timer.join()
    assert results.qsize() == 5


def square(x):
    return x * x


def forks():
    pid = os.fork()
    if pid == 0:
        os._exit(3)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 3
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, b"child")
        os._exit(0)
    os.close(w)
    assert os.read(r, 10) == b"child"
    os.close(r)
    os.waitpid(pid, 0)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        assert pool.map(square, range(5)) == [0, 1, 4, 9, 16]
    q = ctx.Queue()
    p = ctx.Process(target=q.put, args=("from child",))
    p.start()
    assert q.get(timeout=10) == "from child"
    p.join()
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as pool:
        assert list(pool.map(square, [3])) == [9]
    value = ctx.Value("i", 0)
    with value.get_lock():
        value.value += 1
    from multiprocessing import shared_memory
    shm = shared_memory.SharedMemory(create=True, size=4096)
    shm.buf[0] = 7
    shm.close()
    shm.unlink()
    pidfd = os.pidfd_open(os.getpid())
    os.close(pidfd)


def waiting():
    r, w = os.pipe()
    os.write(w, b"x")
    assert select.select([r], [], [], 1)[0] == [r]
    p = select.poll()
    p.register(r, select.POLLIN)
    assert p.poll(1000)
    e = select.epoll()
    e.register(r, select.EPOLLIN)
    assert e.poll(1)
    e.close()
    sel = selectors.DefaultSelector()
    sel.register(r, selectors.EVENT_READ)
    assert sel.select(1)
    sel.close()
    os.close(r)
    os.close(w)

    async def main():
        await asyncio.sleep(0.001)
        a, b = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=a)
        b.sendall(b"line\n")
        assert await reader.readline() == b"line\n"
        writer.close()
        b.close()
        return await asyncio.gather(*(asyncio.sleep(0, result=i) for i in range(3)))

    assert asyncio.run(main()) == [0, 1, 2]


def signals():
    got = []
    signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
    os.kill(os.getpid(), signal.SIGUSR1)
    signal.raise_signal(signal.SIGUSR1)
    signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
    signal.signal(signal.SIGALRM, lambda s, f: got.append(s))
    signal.setitimer(signal.ITIMER_REAL, 0.01)
    signal.sigtimedwait([], 0)  # nothing pending
    while signal.SIGALRM not in got:
        signal.pause()
    signal.alarm(0)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2])
    os.kill(os.getpid(), signal.SIGUSR2)
    assert signal.SIGUSR2 in signal.sigpending()
    assert signal.sigwait([signal.SIGUSR2]) == signal.SIGUSR2
    signal.pthread_sigmask(signal.SIG_SETMASK, old)
    assert got.count(signal.SIGUSR1) == 3


def memory():
    m = mmap.mmap(-1, 1 << 20)
    m[:5] = b"hello"
    m.madvise(mmap.MADV_DONTNEED, 0, 4096)
    m.resize(2 << 20)
    m.close()
    with open("mapped.bin", "wb") as f:
        f.write(b"\0" * 8192)
    with open("mapped.bin", "r+b") as f:
        m = mmap.mmap(f.fileno(), 0)
        m[0:3] = b"abc"
        m.flush()
        m.close()
    blob = bytearray(50 << 20)  # large enough for mmap rather than brk
    blob[-1] = 1
    del blob
    big = [array.array("d", range(1000)) for _ in range(100)]
    assert len(big) == 100


def clocks_and_randomness():
    time.time(), time.monotonic(), time.perf_counter(), time.process_time(), time.thread_time()
    time.clock_getres(time.CLOCK_MONOTONIC)
    time.sleep(0.001)
    time.localtime(), time.strftime("%c")
    assert len(os.urandom(32)) == 32 and len(secrets.token_hex(8)) == 16
    random.SystemRandom().random()
    random.seed()


def process_state():
    os.getpid(), os.getppid(), os.getuid(), os.geteuid(), os.getgid(), os.getegid()
    os.getgroups(), os.getresuid(), os.getresgid(), os.getpgrp(), os.getsid(0)
    os.uname(), os.cpu_count(), os.sched_getaffinity(0), os.getloadavg()
    os.sched_setaffinity(0, os.sched_getaffinity(0))
    os.getpriority(os.PRIO_PROCESS, 0)
    os.nice(0)
    os.sched_yield()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    resource.prlimit(0, resource.RLIMIT_CORE)
    resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    os.times()
    os.environ.get("HOME")
    with contextlib.suppress(OSError):
        os.getlogin()
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.getpid() == os.getpid()


def sockets(where):
    a, b = socket.socketpair()
    a.sendall(b"ping")
    assert b.recv(4) == b"ping"
    r, w = os.pipe()
    socket.send_fds(a, [b"fd"], [r])
    msg, fds, _, _ = socket.recv_fds(b, 10, 1)
    assert msg == b"fd" and len(fds) == 1
    for fd in (r, w, *fds):
        os.close(fd)
    a.close()
    b.close()
    path = os.path.join(where, "server.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    conn, _ = server.accept()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
    client.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    client.sendall(b"hi")
    assert conn.recv(2) == b"hi"
    conn.getpeername(), conn.getsockname()
    conn.shutdown(socket.SHUT_RDWR)
    for s in (conn, client, server):
        s.close()
    d1, d2 = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    d1.sendto(b"dgram", d2.getsockname()) if d2.getsockname() else d1.send(b"dgram")
    assert d2.recvfrom(10)[0] == b"dgram"
    d1.close()
    d2.close()


def loopback():
    # Online runs (network allowed): TCP and UDP on loopback only.
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname(), timeout=5)
    conn, _ = server.accept()
    client.sendall(b"tcp")
    assert conn.recv(3) == b"tcp"
    for s in (conn, client, server):
        s.close()
    u1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u1.bind(("127.0.0.1", 0))
    u2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u2.sendto(b"udp", u1.getsockname())
    assert u1.recvfrom(3)[0] == b"udp"
    u1.close()
    u2.close()
    socket.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)


def datascience(where):
    import numpy as np
    import pandas as pd
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    a = np.random.default_rng(1).random((400, 400))
    b = a @ a.T  # OpenBLAS threads
    assert b.shape == (400, 400)
    np.linalg.eigvalsh(b[:100, :100])
    np.fft.fft(a[0])
    np.save(os.path.join(where, "a.npy"), a[:10])
    assert np.load(os.path.join(where, "a.npy")).shape == (10, 400)
    df = pd.DataFrame({"k": np.arange(1000) % 7, "v": np.arange(1000.0)})
    g = df.groupby("k")["v"].mean()
    assert len(g) == 7
    df.to_csv(os.path.join(where, "df.csv"), index=False)
    assert len(pd.read_csv(os.path.join(where, "df.csv"))) == 1000
    pd.date_range("2024-01-01", periods=3, freq="D")
    fig, ax = plt.subplots()
    ax.plot(np.arange(10), np.arange(10) ** 2, label="x^2")
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:4] == b"\x89PNG"
    fig.savefig(os.path.join(where, "fig.svg"))
    plt.close(fig)


def main():
    where = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
    os.chdir(where)
    printing()
    files(where)
    threads()
    forks()
    waiting()
    signals()
    memory()
    clocks_and_randomness()
    process_state()
    sockets(where)
    if "--online" in sys.argv:
        loopback()
    datascience(where)
    print("typical programs: done")


if __name__ == "__main__":
    main()
