"""The thread-based client: `Pycell`.

It spawns the pycell binary and speaks JSON-RPC 2.0 to it over newline-delimited JSON on the
child's stdin/stdout, or (Pycell.connect) speaks the same to a shared server over a unix or
TCP socket. One reader thread hands each response to the request waiting for it and each
notification to its callback, so several threads may have executions in flight at once.
"""

from __future__ import annotations

import collections
import itertools
import logging
import socket
import subprocess
import threading
from types import TracebackType
from typing import (IO, Any, Deque, Dict, Iterator, Mapping, Optional, Sequence, Tuple, Type, TypeVar, Union,
                    cast)

from ._common import (JSON, ExecuteResult, JSONObject, NotificationCallback, OutputCallback, PycellError,
                      ServerExited, analyze_params, connect_params, decode_lines, decode_result,
                      deliver_notification, encode, execute_params, initialize_params, method_not_found,
                      notification_message, parse_address, profile_for, refusal, request_message, result_of,
                      server_command, session_params, streamed_id, unreadable)

log = logging.getLogger("pycell")

_Client = TypeVar("_Client", bound="Pycell")


class _Pipes:
    """A `pycell serve` child: requests go to its stdin, answers come from its stdout, and
    its stderr (its log) is kept for the error messages."""

    def __init__(self, command: Sequence[str], env: Optional[Mapping[str, str]], cwd: Optional[str]) -> None:
        self._stderr: Deque[str] = collections.deque(maxlen=200)
        self._stderr_lock = threading.Lock()
        self.proc = subprocess.Popen(
            list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, cwd=cwd, close_fds=True)
        self._stdin = cast(IO[bytes], self.proc.stdin)
        self._stderr_reader = threading.Thread(target=self._read_stderr, name="pycell-stderr", daemon=True)
        self._stderr_reader.start()

    def write(self, data: bytes) -> None:
        self._stdin.write(data)
        self._stdin.flush()

    def lines(self) -> Iterator[bytes]:
        yield from _lines(self.proc.stdout)

    def end(self) -> None:
        """EOF: the server kills what still runs and exits."""
        try:
            self._stdin.close()
        except OSError:
            pass

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def gone(self) -> str:
        """Why the answers stopped (the reader saw EOF)."""
        code = self.proc.wait()
        self._stderr_reader.join(2)  # its last words, for the errors
        return "the server exited (exit code %s)" % code

    def broken(self) -> str:
        """Why a write failed, once the reader did not say within its time."""
        try:
            self.proc.wait(2)
        except subprocess.TimeoutExpired:
            pass
        return "the server is not running (exit code %s)" % self.proc.poll()

    def release(self, timeout: float) -> None:
        self._stderr_reader.join(timeout)
        for stream in (self.proc.stdout, self.proc.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass

    @property
    def returncode(self) -> Optional[int]:
        return self.proc.poll()

    def stderr_tail(self) -> str:
        with self._stderr_lock:
            return "".join(self._stderr)

    def _read_stderr(self) -> None:
        for line in _lines(self.proc.stderr):
            text = line.decode("utf-8", "replace")
            with self._stderr_lock:
                self._stderr.append(text)
            log.debug("server: %s", text.rstrip())


class _Socket:
    """A connection to a shared server (`pycell serve --listen`), unix or TCP."""

    def __init__(self, address: str, timeout: Optional[float]) -> None:
        self.address = address
        where = parse_address(address)
        try:
            if where.kind == "unix":
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    self._sock.settimeout(timeout)
                    self._sock.connect(where.host)
                except BaseException:
                    self._sock.close()
                    raise
            else:
                self._sock = socket.create_connection((where.host, where.port), timeout)
        except OSError as e:
            raise ServerExited("pycell: cannot connect to %s: %s" % (address, e.strerror or e)) from None
        self._sock.settimeout(None)  # the timeout was for connecting; answers take their time
        self._input = self._sock.makefile("rb")
        self._closed = False

    def write(self, data: bytes) -> None:
        self._sock.sendall(data)

    def lines(self) -> Iterator[bytes]:
        yield from _lines(self._input)

    def end(self) -> None:
        """EOF: the server ends this connection's runs and sessions and closes it (the
        answers still on their way are read until then)."""
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def wait(self, timeout: float) -> int:
        return 0  # nothing to wait for here: the reader waits for the server to close

    def gone(self) -> str:
        self._closed = True
        return "the connection to %s was closed" % self.address

    def broken(self) -> str:
        return "the connection to %s is closed" % self.address

    def release(self, timeout: float) -> None:
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes a reader still waiting
        except OSError:
            pass
        self._input.close()
        self._sock.close()

    @property
    def returncode(self) -> Optional[int]:
        return 0 if self._closed else None

    def stderr_tail(self) -> str:
        return ""  # the server's log is not ours to read


_Transport = Union[_Pipes, _Socket]


def _lines(stream: Optional[IO[bytes]]) -> Iterator[bytes]:
    if stream is not None:
        yield from iter(stream.readline, b"")


class _Pending:
    __slots__ = ("event", "response")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.response: JSONObject = {}


class Pycell:
    """One `pycell serve` child process and the JSON-RPC connection to it (or, made with
    Pycell.connect(), a connection to a shared server).

    binary:  path of the pycell executable (or a name found on PATH).
    args:    extra command-line options for `pycell serve`, e.g. ("--config", "pycell.json").
    profile: the profile every execute uses unless it names one (None: the server's "default").
    on_notification(method, params): called for every notification the server sends.
    env, cwd: for the child process.

    Callbacks run on the client's reader thread, in the order the server sent them: keep
    them short, and do not make requests from them (that raises RuntimeError).
    """

    def __init__(self, binary: str = "pycell", args: Sequence[str] = (), profile: Optional[str] = None, *,
                 on_notification: Optional[NotificationCallback] = None,
                 env: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None) -> None:
        self._open(_Pipes(server_command(binary, args), env, cwd), initialize_params(), profile, on_notification)

    @classmethod
    def connect(cls: Type[_Client], address: str, token: Optional[str] = None, profile: Optional[str] = None, *,
                on_notification: Optional[NotificationCallback] = None,
                timeout: Optional[float] = 30) -> _Client:
        """A client of a shared server (`pycell serve --listen ADDRESS`) instead of a child:
        address "unix:PATH", "tcp:HOST:PORT" or "tcp:[IPv6]:PORT"; token: the first line of
        the server's --token-file, if it has one. timeout: for connecting only.

        The methods are the same; executions and sessions are this connection's own, and
        close() closes the connection, not the server. A refused connection raises
        PycellError: -32003 (no token or a wrong one), -32001 (too many connections); one
        that cannot be made, or is dropped, raises ServerExited.
        """
        client = cls.__new__(cls)
        client._open(_Socket(address, timeout), connect_params(token), profile, on_notification)
        return client

    def _open(self, transport: _Transport, initialize: JSONObject, profile: Optional[str],
              on_notification: Optional[NotificationCallback]) -> None:
        """Start reading from the transport and initialize: what both ways of making a
        client share."""
        self.profile = profile
        self.info: Optional[JSONObject] = None  # the initialize result: serverInfo, isolation, profiles
        self._on_notification = on_notification
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._execution_ids = itertools.count(1)
        self._pending: Dict[int, _Pending] = {}
        self._streams: Dict[str, OutputCallback] = {}
        self._closed: Optional[str] = None  # why requests are no longer possible, once they are not
        self._refused: Optional[JSONObject] = None  # the error a shared server refused the connection with
        self._transport = transport
        self._reader = threading.Thread(target=self._read_loop, name="pycell-reader", daemon=True)
        self._reader.start()
        try:
            self.info = self.request("initialize", initialize)
        except BaseException:
            self._terminate()
            raise

    # --- requests -------------------------------------------------------------------

    def request(self, method: str, params: JSON = None, timeout: Optional[float] = None) -> JSON:
        """Send a request and wait for its answer: the result, or PycellError.

        timeout (seconds): give up waiting, cancel the request ($/cancelRequest, which kills
        its sandbox) and raise TimeoutError. None waits as long as it takes.
        """
        if threading.current_thread() is self._reader:
            raise RuntimeError("pycell: requests cannot be made from a callback (it runs on the reader thread)")
        pending = _Pending()
        with self._lock:
            closed, refused = self._closed, self._refused
            if not closed:
                request_id = next(self._ids)
                self._pending[request_id] = pending
        if closed:
            if refused is not None:  # a shared server refused the connection before initialize was sent
                result_of(refused, self.stderr_tail)
            raise ServerExited(closed, self.stderr_tail())
        try:
            self._send(request_message(request_id, method, params))
        except BaseException:
            with self._lock:
                self._pending.pop(request_id, None)
            raise
        if not pending.event.wait(timeout):
            self._cancel(request_id)
            raise TimeoutError("pycell: no answer to %s within %s s (cancelled)" % (method, timeout))
        return result_of(pending.response, self.stderr_tail)

    def notify(self, method: str, params: JSON = None) -> None:
        """Send a notification (no answer)."""
        self._send(notification_message(method, params))

    def execute(self, code: str, *, on_output: Optional[OutputCallback] = None, timeout: Optional[float] = None,
                language: Optional[str] = None, **params: Any) -> ExecuteResult:
        """Run `code` in a fresh sandbox (or a session's) and return the execute result (a dict).

        language: "python" or "javascript" (Node.js); None is the profile's (Python unless
        the profile serves JavaScript). Without a profile, JavaScript runs in the server's
        built-in profile "javascript"; results have the same shape for both.
        params are execute's members as on the wire: profile, session, inputs, stdin, files,
        limits ({timeoutMs, cpuMs, memoryMb, maxOutputBytes, maxProcesses, diskMb}),
        executionId, network, returnFiles, stream. A Python (or JavaScript) exception is a
        result with status "error", not an exception here; a refused request (bad params,
        unknown profile, a language the profile does not serve) raises PycellError.
        on_output(stream, text): stream the output as it comes ("stdout" or "stderr"); every
        call is made before execute returns. timeout: see request().
        """
        message = execute_params(code, self.profile, {**params, "language": language}, self.info)
        execution_id = None
        if on_output is not None:
            execution_id = streamed_id(message, "py", next(self._execution_ids))
            with self._lock:
                if execution_id in self._streams:
                    raise ValueError("executionId %r is already streaming" % execution_id)
                self._streams[execution_id] = on_output
        try:
            return cast(ExecuteResult, decode_result(self.request("execute", message, timeout)))
        finally:
            if execution_id is not None:
                with self._lock:
                    self._streams.pop(execution_id, None)

    def execute_stream(self, code: str, on_output: OutputCallback, **params: Any) -> ExecuteResult:
        """execute() with its output streamed to on_output(stream, text) as it comes."""
        return self.execute(code, on_output=on_output, **params)

    def kill(self, execution_id: str) -> JSONObject:
        """Kill a running or queued execution: {killed, state}. Its execute still answers,
        with status "killed". An unknown id raises PycellError (-32602)."""
        return cast(JSONObject, self.request("kill", {"executionId": execution_id}))

    def create_session(self, session: Optional[str] = None, profile: Optional[str] = None,
                       limits: Optional[Mapping[str, Any]] = None, *, network: Optional[bool] = None,
                       language: Optional[str] = None) -> str:
        """Start a session (a sandbox that keeps globals, imports and files between runs);
        returns its id. Pass it as execute(..., session=id), or use session().
        language="javascript": a Node.js session (top-level let/const persist between runs)."""
        profile = profile or profile_for(self.profile, language, self.info)
        answer = self.request("session/create", session_params(session, profile, limits, network, language))
        return cast(str, answer["session"])

    def close_session(self, session: str) -> bool:
        """End a session; True if it was open."""
        return bool(self.request("session/close", {"session": session})["closed"])

    def kill_session(self, session: str) -> JSONObject:
        """Interrupt the session's running execution (KeyboardInterrupt first): {killed, state}."""
        return cast(JSONObject, self.request("kill", {"session": session}))

    def session(self, profile: Optional[str] = None, limits: Optional[Mapping[str, Any]] = None, *,
                network: Optional[bool] = None, language: Optional[str] = None) -> "Session":
        """A new session as an object (`with cell.session() as s: s.execute(...)`); closed at
        the end of the with block."""
        return Session(self, self.create_session(profile=profile, limits=limits, network=network, language=language))

    def status(self, execution_id: Optional[str] = None) -> JSONObject:
        """One execution's state ({executionId, state, elapsedMs, ...}) or the server's."""
        return cast(JSONObject, self.request("status", {"executionId": execution_id} if execution_id else None))

    def result(self, execution_id: str) -> JSONObject:
        """A finished execution's result again, as execute answered it, while the server keeps
        it (the last 256). Raises PycellError (-32602) when unknown, unfinished or dropped."""
        return cast(JSONObject, decode_result(self.request("result", {"executionId": execution_id})))

    def forget(self, execution_id: str) -> bool:
        """Drop what the server remembers of a finished execution; True if it remembered it."""
        return bool(self.request("forget", {"executionId": execution_id})["forgotten"])

    def analyze(self, code: str, profile: Optional[str] = None, *, language: Optional[str] = None) -> JSONObject:
        """Static diagnostics of `code` for a profile ({diagnostics: [...]}, LSP's shape);
        language as for execute()."""
        profile = profile or profile_for(self.profile, language, self.info)
        return cast(JSONObject, self.request("analyze", analyze_params(code, profile, language)))

    def tool_call(self, arguments: Any, **kwargs: Any) -> Tuple[str, bool]:
        """Run one `run_python` (language="javascript": `run_javascript`) tool call; see the
        module function tool_call()."""
        from ._tool import tool_call
        return tool_call(arguments, self, **kwargs)

    # --- lifecycle ------------------------------------------------------------------

    def close(self, timeout: float = 30) -> int:
        """shutdown (answered once the executions in flight are done), exit, and wait for the
        process. Returns its exit code (0 after a clean shutdown). Safe to call twice.
        A connection (connect()): the same, then the connection is closed (the server runs
        on); returns 0."""
        if self._transport.returncode is None and not self._closed:
            try:
                self.request("shutdown", timeout=timeout)
                self.notify("exit")
            except (PycellError, TimeoutError, OSError):
                pass
        with self._lock:
            self._closed = self._closed or "the client was closed"
        return self._terminate(timeout)

    @property
    def returncode(self) -> Optional[int]:
        """The server's exit code, or None while it runs. A connection (connect()): None
        while it is open, 0 once it is closed (by close() or by the server)."""
        return self._transport.returncode

    @property
    def pid(self) -> Optional[int]:
        """The server's process id; None for a connection (connect())."""
        return self._transport.proc.pid if isinstance(self._transport, _Pipes) else None

    def stderr_tail(self) -> str:
        """The server's last lines of stderr (its log); empty for a connection."""
        return self._transport.stderr_tail()

    def __enter__(self) -> "Pycell":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()

    # --- internals ------------------------------------------------------------------

    def _cancel(self, request_id: int) -> None:
        with self._lock:
            self._pending.pop(request_id, None)
        try:
            self.notify("$/cancelRequest", {"id": request_id})
        except PycellError:
            pass

    def _terminate(self, timeout: float = 30) -> int:
        self._transport.end()
        code = self._transport.wait(timeout)
        if threading.current_thread() is not self._reader:
            self._reader.join(timeout)  # the answers still on their way, up to the server's EOF
        self._transport.release(timeout)
        return code

    def _send(self, message: JSONObject) -> None:
        data = encode(message)
        with self._write_lock:
            try:
                self._transport.write(data)
            except (OSError, ValueError):  # broken pipe or connection, or already closed
                pass
            else:
                return
        # The reader says best why: the exit code and last words of the server, or the
        # error a shared server refused the connection with.
        if threading.current_thread() is not self._reader:
            self._reader.join(2)
        with self._lock:
            refused, closed = self._refused, self._closed
        if refused is not None:
            result_of(refused, self.stderr_tail)
        raise ServerExited("pycell: " + (closed or self._transport.broken()), self.stderr_tail())

    def _read_loop(self) -> None:
        try:
            for line in self._transport.lines():
                for message in decode_lines(line):
                    self._dispatch(message)
        except (OSError, ValueError):  # the connection was reset, or closed by close()
            pass
        finally:
            gone = self._transport.gone()
            with self._lock:
                self._closed = self._closed or gone
                pending, self._pending = self._pending, {}
                # A shared server that refused the connection said why just before closing it.
                answer = self._refused or {"exited": "pycell: %s before answering" % gone}
            for p in pending.values():
                p.response = answer
                p.event.set()

    def _dispatch(self, message: JSONObject) -> None:
        if unreadable(message):
            return
        method = message.get("method")
        refused = message if refusal(message) else None
        with self._lock:  # kept only while it is the last word: see _read_loop
            self._refused = refused
        if refused is not None:
            log.debug("pycell: an error for no request: %.300s", message)
            return
        if method is None:  # a response
            with self._lock:
                pending = self._pending.pop(message.get("id"), None)  # type: ignore[arg-type]
            if pending is not None:
                pending.response = message
                pending.event.set()
            else:  # e.g. the late answer to a request given up on
                log.debug("pycell: answer for no waiting request: %.300s", message)
            return
        if "id" in message:  # a request from the server: none is defined
            try:
                self._send(method_not_found(message["id"]))
            except PycellError:
                pass
            return
        deliver_notification(method, message.get("params"), self._stream_for, self._on_notification)

    def _stream_for(self, execution_id: Any) -> Optional[OutputCallback]:
        with self._lock:
            return self._streams.get(execution_id) if isinstance(execution_id, str) else None


class Session:
    """A session of a Pycell: execute() runs in it, state carries over between runs."""

    def __init__(self, client: Pycell, session_id: str) -> None:
        self.client = client
        self.id = session_id

    def execute(self, code: str, *, on_output: Optional[OutputCallback] = None, timeout: Optional[float] = None,
                **params: Any) -> ExecuteResult:
        """Pycell.execute() inside this session."""
        return self.client.execute(code, on_output=on_output, timeout=timeout, session=self.id, **params)

    def kill(self) -> JSONObject:
        """Interrupt the running execution (the session lives on)."""
        return self.client.kill_session(self.id)

    def close(self) -> bool:
        """End the session; True if it was open."""
        return self.client.close_session(self.id)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        try:
            self.close()
        except PycellError:
            pass  # the server is gone: so is the session
