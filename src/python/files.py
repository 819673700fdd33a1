"""pycell files: the request's `files` written into the working directory before the run,
and the files its `returnFiles` globs name read back after it.

Part of the bootstrap (bootstrap.py), which loads this file by path from beside itself (no
import finds it, so the program cannot reach it by name). Both directions walk from
directory fds with O_NOFOLLOW: a symlink the program (or an earlier run of a session)
left is refused, never followed. Every builtin and function it calls is its own
reference, taken when it was loaded, which the program cannot rebind. Embedded in the C++
binary as a raw string literal, so it must never contain that literal's closing delimiter.

Given by the bootstrap before this code runs (`_given`, see bootstrap.py _load_module):
the values module (for _clean), its fd and stderr writers, and the run's caps (one dict,
updated for each run).
"""
import base64, builtins, contextlib, errno, fnmatch, os, re, stat

# Snapshot the builtins into our own globals (searched before builtins), so user code that
# rebinds builtins.sorted, builtins.len, ... cannot change what this module calls.
globals().update({k: v for k, v in vars(builtins).items() if not k.startswith("_")})

_os_read, _os_close, _os_open, _os_mkdir = os.read, os.close, os.open, os.mkdir
_os_fstat, _os_scandir, _os_readlink = os.fstat, os.scandir, os.readlink
_S_ISREG, _ELOOP, _ENOTDIR = stat.S_ISREG, errno.ELOOP, errno.ENOTDIR
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_O_NOFOLLOW_DIR = _O_DIR | os.O_NOFOLLOW
_O_NOFOLLOW_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_O_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
_b64decode = base64.b64decode
_glob_translate, _re_compile = fnmatch.translate, re.compile
_suppress = contextlib.suppress
_clean = _given["values"]._clean
_write_all, _stderr, _caps = _given["write_all"], _given["stderr"], _given["caps"]


class _FileError(Exception):
    pass


# --- the request's files -------------------------------------------------------------------
def _check_file(rel, spec):
    """Validate one `files` entry; returns (path components, bytes)."""
    if not isinstance(rel, str) or rel.startswith("/") or "\0" in rel:
        raise _FileError("invalid file path: %r" % (rel,))
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise _FileError("file path must stay inside the working directory: %r" % rel)
    try:
        if isinstance(spec, dict) and len(spec) == 1 and isinstance(spec.get("text"), str):
            return parts, spec["text"].encode("utf-8")
        if isinstance(spec, dict) and len(spec) == 1 and isinstance(spec.get("base64"), str):
            return parts, _b64decode(spec["base64"], validate=True)
    except ValueError as e:  # binascii.Error, or lone surrogates in the text
        raise _FileError("%s: bad content: %s" % (rel, e))
    raise _FileError('%s: content must be {"text": str} or {"base64": str}' % rel)


def _write_files(files):
    if not isinstance(files, (dict, type(None))):
        raise _FileError("files must be an object")
    todo = [(rel, *_check_file(rel, spec)) for rel, spec in (files or {}).items()]
    for rel, parts, data in todo:  # only once all entries proved valid
        # Walk with O_NOFOLLOW from directory fds: a symlink (a session may
        # keep one from an earlier run) is refused, never followed.
        dirfd = _os_open(".", _O_DIR)
        try:
            for name in parts[:-1]:
                with _suppress(FileExistsError):
                    _os_mkdir(name, 0o755, dir_fd=dirfd)
                sub = _os_open(name, _O_NOFOLLOW_DIR, dir_fd=dirfd)
                _os_close(dirfd)
                dirfd = sub
            fd = _os_open(parts[-1], _O_NEW_FILE, 0o644, dir_fd=dirfd)
            try:
                _write_all(fd, data)
            finally:
                _os_close(fd)
        except OSError as e:
            symlink = e.errno in (_ELOOP, _ENOTDIR)
            raise _FileError("%s: %s" % (rel, "path goes through a symlink or non-directory"
                                         if symlink else e.strerror or e))
        finally:
            _os_close(dirfd)


# --- returned files ------------------------------------------------------------------------
_ANY_DEPTH = "**"


def _compile_globs(patterns):
    """returnFiles globs -> lists of segments: "**", a literal name, or (match, dotted).
    Relative paths only, without "..": glob syntax per segment (* ? [...]), "**" for any
    number of directories; wildcards do not match names starting with "." (as glob)."""
    if patterns is None:
        return []
    if not isinstance(patterns, list) or len(patterns) > 100:
        raise _FileError("returnFiles must be an array of at most 100 glob strings")
    compiled = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern or "\0" in pattern or pattern.startswith("/"):
            raise _FileError("returnFiles: invalid pattern %r (a relative glob)" % (pattern,))
        segments = [s for s in pattern.split("/") if s not in ("", ".")]
        if ".." in segments:
            raise _FileError("returnFiles: pattern must stay inside the working directory: %r" % pattern)
        if not segments:
            continue
        compiled.append([s if s == _ANY_DEPTH or not any(c in s for c in "*?[")
                         else (_re_compile(_glob_translate(s)).match, s.startswith("."))
                         for s in segments])
    return compiled


def _closure(globs, states):
    """Adds the states reached by letting each "**" match no directory at all."""
    todo, out = list(states), set(states)
    while todo:
        g, i = todo.pop()
        if i < len(globs[g]) and globs[g][i] == _ANY_DEPTH and (g, i + 1) not in out:
            out.add((g, i + 1))
            todo.append((g, i + 1))
    return out


def _step(globs, states, name):
    """The states after matching one more path component."""
    out = set()
    hidden = name.startswith(".")
    for g, i in states:
        if i >= len(globs[g]):
            continue
        segment = globs[g][i]
        if segment == _ANY_DEPTH:
            if not hidden:
                out.add((g, i))
        elif isinstance(segment, str):
            if segment == name:
                out.add((g, i + 1))
        elif (segment[1] or not hidden) and segment[0](name):
            out.add((g, i + 1))
    return _closure(globs, out)


class _FileCollector:
    """Walks the working directory from a directory fd, never following a symlink, and
    reads the regular, singly linked files that the globs match, within the caps."""

    def __init__(self, globs, root):
        self.globs, self.root = globs, root
        self.files, self.skipped, self.unlisted = [], [], 0
        self.total, self.scanned, self.scan_stopped = 0, 0, False
        self.real_root = None

    def skip(self, path, reason):
        if len(self.skipped) < _caps["maxSkippedListed"]:
            self.skipped.append({"path": _clean(path), "reason": reason})
        else:
            self.unlisted += 1

    def run(self):
        dirfd = _os_open(self.root, _O_DIR)
        try:
            with _suppress(OSError):
                self.real_root = _os_readlink("/proc/self/fd/%d" % dirfd)
            self.walk(dirfd, "", _closure(self.globs, {(g, 0) for g in range(len(self.globs))}), 0)
        finally:
            _os_close(dirfd)
        if self.scan_stopped:
            _stderr("pycell: returnFiles stopped looking after %d directory entries\n" % self.scanned)
        if self.unlisted:
            _stderr("pycell: returnFiles skipped %d more file(s) than skippedFiles lists\n" % self.unlisted)

    def walk(self, dirfd, prefix, states, depth):
        try:
            with _os_scandir(dirfd) as it:
                entries = sorted(((e.name, e) for e in it), key=lambda pair: pair[0])
        except OSError as e:
            return self.skip(prefix or ".", "cannot list the directory: %s" % (e.strerror or e))
        for name, entry in entries:
            if self.scanned >= _caps["maxScanEntries"]:
                self.scan_stopped = True
                return
            self.scanned += 1
            after = _step(self.globs, states, name)
            if not after:
                continue
            path = prefix + name
            try:
                symlink, directory = entry.is_symlink(), entry.is_dir(follow_symlinks=False)
            except OSError:
                continue  # gone meanwhile
            if symlink:
                if any(i == len(self.globs[g]) for g, i in after):
                    self.skip(path, "symbolic link")
                continue
            if directory:
                if depth < 64 and any(i < len(self.globs[g]) for g, i in after):
                    try:
                        sub = _os_open(name, _O_NOFOLLOW_DIR, dir_fd=dirfd)
                    except OSError:
                        continue  # replaced meanwhile (by a symlink, say): not followed
                    try:
                        self.walk(sub, path + "/", after, depth + 1)
                    finally:
                        _os_close(sub)
                continue
            if any(i == len(self.globs[g]) for g, i in after):
                self.read(dirfd, name, path)

    def read(self, dirfd, name, path):
        try:
            str.encode(path, "utf-8")
        except UnicodeEncodeError:
            return self.skip(path, "name is not valid UTF-8")
        if len(self.files) >= _caps["maxFiles"]:
            return self.skip(path, "more than %d files" % _caps["maxFiles"])
        try:
            fd = _os_open(name, _O_NOFOLLOW_FILE, dir_fd=dirfd)
        except OSError as e:
            return self.skip(path, "symbolic link" if e.errno == _ELOOP else
                             "cannot open: %s" % (e.strerror or e))
        try:
            st = _os_fstat(fd)
            if not _S_ISREG(st.st_mode):
                return self.skip(path, "not a regular file")
            if st.st_nlink > 1:
                return self.skip(path, "hard link (%d names)" % st.st_nlink)
            if st.st_nlink == 0:
                return self.skip(path, "removed while being read")
            if self.real_root is not None:
                with _suppress(OSError):
                    where = _os_readlink("/proc/self/fd/%d" % fd)
                    if not where.startswith(self.real_root.rstrip("/") + "/"):
                        return self.skip(path, "outside the working directory")
            limit = min(_caps["maxFileBytes"], _caps["maxTotalFileBytes"] - self.total)
            if st.st_size > _caps["maxFileBytes"]:
                return self.skip(path, "larger than %d bytes" % _caps["maxFileBytes"])
            if st.st_size > limit:
                return self.skip(path, "returned files would exceed %d bytes in total"
                                 % _caps["maxTotalFileBytes"])
            chunks, size = [], 0
            while size <= limit:
                chunk = _os_read(fd, min(1 << 20, limit + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            if size > limit:  # it grew while being read
                return self.skip(path, "larger than %d bytes" % limit)
        except OSError as e:
            return self.skip(path, "cannot read: %s" % (e.strerror or e))
        finally:
            _os_close(fd)
        self.total += size
        self.files.append((path, size, b"".join(chunks)))


def _collect_files(globs, root):
    """Returns (files as (path, size, bytes), skippedFiles entries)."""
    if not globs:
        return [], []
    collector = _FileCollector(globs, root)
    try:
        collector.run()
    except OSError as e:
        _stderr("pycell: returnFiles: cannot read the working directory: %s\n" % (e.strerror or e))
    return collector.files, collector.skipped
