"""The asyncio client: `AsyncPycell`.

The same connection as Pycell's (one `pycell serve` child, or a socket to a shared server,
JSON-RPC over newline-delimited JSON), driven by one reader task on the running event loop
instead of a thread. Every
request is a coroutine; cancelling the task that awaits one sends `$/cancelRequest`, and the
server kills the run's sandbox.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
from types import TracebackType
from typing import (Any, AsyncIterator, Awaitable, Callable, Deque, Dict, Generator, List, Mapping, Optional,
                    Sequence, Tuple, Type, Union, cast)

from ._common import (JSON, ExecuteResult, JSONObject, NotificationCallback, Output, OutputCallback, PycellError,
                      ServerExited, analyze_params, connect_params, decode_lines, decode_result,
                      deliver_notification, encode, execute_params, initialize_params, method_not_found,
                      notification_message, parse_address, profile_for, refusal, request_message, result_of,
                      server_command, session_params, streamed_id, unreadable)
from ._tool import lower_timeout, refused_text, tool_arguments_to_execute, tool_text

log = logging.getLogger("pycell")

_CHUNK = 1 << 16


def _split(buffer: bytearray, chunk: bytes) -> List[bytes]:
    """Append chunk to buffer; take the complete lines out of it."""
    buffer += chunk
    end = buffer.rfind(b"\n")
    if end < 0:
        return []
    lines = bytes(buffer[:end + 1]).splitlines(keepends=True)
    del buffer[:end + 1]
    return lines


class _Pipes:
    """A `pycell serve` child: requests go to its stdin, answers come from its stdout, and
    its stderr (its log) is kept for the error messages."""

    def __init__(self, command: Sequence[str], env: Optional[Mapping[str, str]], cwd: Optional[str]) -> None:
        self._command, self._env, self._cwd = list(command), env, cwd
        self.proc: Optional[asyncio.subprocess.Process] = None
        self._stderr: Deque[str] = collections.deque(maxlen=200)
        self._stderr_task: Optional["asyncio.Task[None]"] = None

    async def open(self) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.proc = await asyncio.create_subprocess_exec(
            *self._command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=self._env, cwd=self._cwd, close_fds=True)
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self._stderr_task = asyncio.ensure_future(self._read_stderr())
        return self.proc.stdout, self.proc.stdin

    def end(self, writer: asyncio.StreamWriter) -> None:
        """EOF: the server kills what still runs and exits."""
        writer.close()

    async def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            self.proc.kill()
            return await self.proc.wait()

    async def gone(self) -> str:
        """Why the answers stopped (the reader saw EOF)."""
        assert self.proc is not None
        code = await self.proc.wait()
        await self.release(2)  # its last words, for the errors
        return "the server exited (exit code %s)" % code

    async def broken(self) -> str:
        """Why a write failed, once the reader did not say within its time."""
        assert self.proc is not None
        try:
            await asyncio.wait_for(self.proc.wait(), 2)
        except asyncio.TimeoutError:
            pass
        return "the server is not running (exit code %s)" % self.proc.returncode

    async def release(self, timeout: float) -> None:
        current = asyncio.current_task()
        if self._stderr_task is not None and self._stderr_task is not current:
            await asyncio.wait([self._stderr_task], timeout=timeout)

    @property
    def returncode(self) -> Optional[int]:
        return self.proc.returncode if self.proc is not None else None

    def stderr_tail(self) -> str:
        return "".join(self._stderr)

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        stream, buffer = self.proc.stderr, bytearray()
        while True:
            chunk = await stream.read(_CHUNK)
            lines = _split(buffer, chunk) if chunk else ([bytes(buffer)] if buffer else [])
            for line in lines:
                text = line.decode("utf-8", "replace")
                self._stderr.append(text)
                log.debug("server: %s", text.rstrip())
            if not chunk:
                return


class _Socket:
    """A connection to a shared server (`pycell serve --listen`), unix or TCP."""

    def __init__(self, address: str, timeout: Optional[float]) -> None:
        self.address = address
        self._where = parse_address(address)  # a wrong address fails here, before any await
        self._timeout = timeout
        self._writer: Optional[asyncio.StreamWriter] = None
        self._closed = False

    async def open(self) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        where = self._where
        try:
            if where.kind == "unix":
                opening = asyncio.open_unix_connection(where.host, limit=_CHUNK)
            else:
                opening = asyncio.open_connection(where.host, where.port, limit=_CHUNK)
            reader, writer = await asyncio.wait_for(opening, self._timeout)
        except (OSError, asyncio.TimeoutError) as e:
            why = (e.strerror or str(e)) if isinstance(e, OSError) else "no answer within %s s" % self._timeout
            raise ServerExited("pycell: cannot connect to %s: %s" % (self.address, why)) from None
        self._writer = writer
        return reader, writer

    def end(self, writer: asyncio.StreamWriter) -> None:
        """EOF: the server ends this connection's runs and sessions and closes it (the
        answers still on their way are read until then)."""
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            writer.close()

    async def wait(self, timeout: float) -> int:
        return 0  # nothing to wait for here: the reader waits for the server to close

    async def gone(self) -> str:
        self._closed = True
        return "the connection to %s was closed" % self.address

    async def broken(self) -> str:
        return "the connection to %s is closed" % self.address

    async def release(self, timeout: float) -> None:
        self._closed = True
        if self._writer is not None:
            self._writer.close()
            try:
                await asyncio.wait_for(self._writer.wait_closed(), timeout)
            except (OSError, asyncio.TimeoutError):
                pass

    @property
    def returncode(self) -> Optional[int]:
        return 0 if self._closed else None

    def stderr_tail(self) -> str:
        return ""  # the server's log is not ours to read


_Transport = Union[_Pipes, _Socket]


class AsyncPycell:
    """One `pycell serve` child process and the JSON-RPC connection to it, for asyncio.

        async with AsyncPycell("/path/to/pycell") as cell:
            r = await cell.execute("6 * 7")                 # r["value"] == 42
            async for out in cell.execute_stream("print('hi')"):
                print(out.stream, out.text)

    The arguments are Pycell's. The process starts in `start()` (or on entering `async
    with`, or `await cell`); `close()` stops it. AsyncPycell.connect() talks to a shared
    server instead. Callbacks (on_notification, on_output) are plain functions
    called on the event loop, in the order the server sent the messages.
    """

    def __init__(self, binary: str = "pycell", args: Sequence[str] = (), profile: Optional[str] = None, *,
                 on_notification: Optional[NotificationCallback] = None,
                 env: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None) -> None:
        self.profile = profile
        self.info: Optional[JSONObject] = None  # the initialize result: serverInfo, isolation, profiles
        self._transport: _Transport = _Pipes(server_command(binary, args), env, cwd)
        self._initialize = initialize_params()
        self._on_notification = on_notification
        self._ids = itertools.count(1)
        self._execution_ids = itertools.count(1)
        self._pending: Dict[int, "asyncio.Future[JSONObject]"] = {}
        self._streams: Dict[str, OutputCallback] = {}
        self._closed: Optional[str] = "the client was not started"
        self._refused: Optional[JSONObject] = None  # the error a shared server refused the connection with
        self._reader: Optional[asyncio.StreamReader] = None
        self._writer: Optional[asyncio.StreamWriter] = None
        self._tasks: List["asyncio.Task[None]"] = []
        self._drain_lock: Optional[asyncio.Lock] = None

    @classmethod
    def connect(cls, address: str, token: Optional[str] = None, profile: Optional[str] = None, *,
                on_notification: Optional[NotificationCallback] = None,
                timeout: Optional[float] = 30) -> "AsyncPycell":
        """A client of a shared server (`pycell serve --listen ADDRESS`) instead of a child;
        the arguments are Pycell.connect()'s. Connects when awaited or entered:

            cell = await AsyncPycell.connect("unix:/run/pycell.sock")
            async with AsyncPycell.connect("tcp:127.0.0.1:7777", token=token) as cell: ...

        close() closes the connection, not the server. A refused connection raises
        PycellError (-32003: no token or a wrong one; -32001: too many connections).
        """
        client = cls(profile=profile, on_notification=on_notification)
        client._transport = _Socket(address, timeout)
        client._initialize = connect_params(token)
        return client

    async def start(self) -> "AsyncPycell":
        """Spawn the server (or connect to it) and initialize the connection. Returns self."""
        if self._writer is not None:
            raise RuntimeError("pycell: this client was started already")
        self._reader, self._writer = await self._transport.open()
        self._closed = None
        self._drain_lock = asyncio.Lock()
        self._tasks = [asyncio.ensure_future(self._read_loop())]
        try:
            self.info = await self.request("initialize", self._initialize)
        except BaseException:
            await self._terminate()
            raise
        return self

    def __await__(self) -> Generator[Any, None, "AsyncPycell"]:
        return self.start().__await__()

    # --- requests -------------------------------------------------------------------

    async def request(self, method: str, params: JSON = None, timeout: Optional[float] = None) -> JSON:
        """Send a request and wait for its answer: the result, or PycellError.

        timeout (seconds): give up waiting, cancel the request ($/cancelRequest, which kills
        its sandbox) and raise TimeoutError. Cancelling the awaiting task cancels the request
        the same way.
        """
        if self._closed:
            if self._refused is not None:  # a shared server refused the connection before initialize was sent
                result_of(self._refused, self.stderr_tail)
            raise ServerExited(self._closed, self.stderr_tail())
        request_id = next(self._ids)
        answer: "asyncio.Future[JSONObject]" = asyncio.get_running_loop().create_future()
        self._pending[request_id] = answer
        try:
            # The message is in the pipe's buffer once _send starts waiting (if it waits): from
            # then on, the server has the request and a cancellation must reach it too.
            await self._send(request_message(request_id, method, params))
            if timeout is None:
                response = await answer
            else:
                try:
                    response = await asyncio.wait_for(answer, timeout)
                except asyncio.TimeoutError:
                    self._cancel(request_id)
                    raise TimeoutError("pycell: no answer to %s within %s s (cancelled)" % (method, timeout)) from None
        except asyncio.CancelledError:
            self._cancel(request_id)
            raise
        finally:
            self._pending.pop(request_id, None)
        return result_of(response, self.stderr_tail)

    async def notify(self, method: str, params: JSON = None) -> None:
        """Send a notification (no answer)."""
        await self._send(notification_message(method, params))

    async def execute(self, code: str, *, on_output: Optional[OutputCallback] = None,
                      timeout: Optional[float] = None, language: Optional[str] = None, **params: Any) -> ExecuteResult:
        """Run `code` in a fresh sandbox (or a session's) and return the execute result (a
        dict); the same params as Pycell.execute(), language="javascript" included.
        on_output(stream, text) sees the output as it comes, all of it before this returns.
        Cancelling the awaiting task cancels the run: the server kills it."""
        message = execute_params(code, self.profile, {**params, "language": language}, self.info)
        execution_id = None
        if on_output is not None:
            execution_id = streamed_id(message, "py-async", next(self._execution_ids))
            if execution_id in self._streams:
                raise ValueError("executionId %r is already streaming" % execution_id)
            self._streams[execution_id] = on_output
        try:
            return cast(ExecuteResult, decode_result(await self.request("execute", message, timeout)))
        finally:
            if execution_id is not None:
                self._streams.pop(execution_id, None)

    def execute_stream(self, code: str, *, timeout: Optional[float] = None, **params: Any) -> "Execution":
        """Start a run and return it as an Execution: iterate over it (`async for out in ...`)
        for its output as it comes, as Output(stream, text); await it for the result."""
        return Execution(lambda on_output: self.execute(code, on_output=on_output, timeout=timeout, **params))

    async def kill(self, execution_id: str) -> JSONObject:
        """Kill a running or queued execution: {killed, state}; its execute answers "killed"."""
        return cast(JSONObject, await self.request("kill", {"executionId": execution_id}))

    async def create_session(self, session: Optional[str] = None, profile: Optional[str] = None,
                             limits: Optional[Mapping[str, Any]] = None, *, network: Optional[bool] = None,
                             language: Optional[str] = None) -> str:
        """Start a session; returns its id (execute(..., session=id)). See also session().
        language="javascript": a Node.js session."""
        profile = profile or profile_for(self.profile, language, self.info)
        answer = await self.request("session/create", session_params(session, profile, limits, network, language))
        return cast(str, answer["session"])

    async def close_session(self, session: str) -> bool:
        """End a session; True if it was open."""
        return bool((await self.request("session/close", {"session": session}))["closed"])

    async def result(self, execution_id: str) -> JSONObject:
        """A finished execution's result again, while the server keeps it (see Pycell.result)."""
        return cast(JSONObject, decode_result(await self.request("result", {"executionId": execution_id})))

    async def forget(self, execution_id: str) -> bool:
        """Drop what the server remembers of a finished execution; True if it remembered it."""
        return bool((await self.request("forget", {"executionId": execution_id}))["forgotten"])

    async def kill_session(self, session: str) -> JSONObject:
        """Interrupt the session's running execution (KeyboardInterrupt first): {killed, state}."""
        return cast(JSONObject, await self.request("kill", {"session": session}))

    def session(self, profile: Optional[str] = None, limits: Optional[Mapping[str, Any]] = None, *,
                network: Optional[bool] = None, language: Optional[str] = None) -> "AsyncSession":
        """A session as an object: `async with cell.session() as s:` (closed at the end) or
        `s = await cell.session()`."""
        return AsyncSession(self, profile, limits, network, language)

    async def status(self, execution_id: Optional[str] = None) -> JSONObject:
        """One execution's state ({executionId, state, elapsedMs, ...}) or the server's."""
        return cast(JSONObject, await self.request("status", {"executionId": execution_id} if execution_id else None))

    async def analyze(self, code: str, profile: Optional[str] = None, *, language: Optional[str] = None) -> JSONObject:
        """Static diagnostics of `code` for a profile ({diagnostics: [...]}, LSP's shape);
        language as for execute()."""
        profile = profile or profile_for(self.profile, language, self.info)
        return cast(JSONObject, await self.request("analyze", analyze_params(code, profile, language)))

    async def tool_call(self, arguments: Any, *, max_chars: Optional[int] = 20000, timeout: Optional[float] = None,
                        on_output: Optional[OutputCallback] = None, language: str = "python") -> Tuple[str, bool]:
        """Run one run_python tool call (language="javascript": run_javascript): (text for the
        model, is_error); see tool_call()."""
        text, is_error, _ = await self.run_tool(arguments, max_chars=max_chars, timeout=timeout, on_output=on_output,
                                                language=language)
        return text, is_error

    async def run_tool(self, arguments: Any, *, max_chars: Optional[int] = 20000, timeout: Optional[float] = None,
                       on_output: Optional[OutputCallback] = None,
                       language: str = "python") -> Tuple[str, bool, Optional[ExecuteResult]]:
        """tool_call() that also returns the execute result (None when the call never ran)."""
        try:
            params = tool_arguments_to_execute(arguments, language)
        except ValueError as e:
            return str(e), True, None
        note = lower_timeout(params, self.info, self.profile)
        try:
            result = await self.execute(params.pop("code"), timeout=timeout, on_output=on_output, **params)
        except (PycellError, TimeoutError) as e:
            return refused_text(e, language), True, None
        text, is_error = tool_text(result, note, max_chars)
        return text, is_error, result

    # --- lifecycle ------------------------------------------------------------------

    async def close(self, timeout: float = 30) -> int:
        """shutdown (answered once the executions in flight are done), exit, and wait for the
        process. Returns its exit code (0 after a clean shutdown). Safe to call twice.
        A connection (connect()): the same, then the connection is closed (the server runs
        on); returns 0."""
        if self._writer is None:
            return 0
        if self._transport.returncode is None and not self._closed:
            try:
                await self.request("shutdown", timeout=timeout)
                await self.notify("exit")
            except (PycellError, TimeoutError, OSError):
                pass
        self._closed = self._closed or "the client was closed"
        return await self._terminate(timeout)

    @property
    def returncode(self) -> Optional[int]:
        """The server's exit code, or None while it runs (or before start). A connection
        (connect()): None while it is open, 0 once it is closed (by close() or the server)."""
        return self._transport.returncode

    @property
    def pid(self) -> Optional[int]:
        """The server's process id; None before start, and for a connection (connect())."""
        proc = self._transport.proc if isinstance(self._transport, _Pipes) else None
        return proc.pid if proc is not None else None

    def stderr_tail(self) -> str:
        """The server's last lines of stderr (its log); empty for a connection."""
        return self._transport.stderr_tail()

    async def __aenter__(self) -> "AsyncPycell":
        return self if self._writer is not None else await self.start()

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        await self.close()

    # --- internals ------------------------------------------------------------------

    def _cancel(self, request_id: int) -> None:
        """Give up on a request: forget it and tell the server (no waiting: this runs while
        the awaiting task is being cancelled)."""
        self._pending.pop(request_id, None)
        if self._writer is None or self._closed:
            return
        try:
            self._writer.write(encode(notification_message("$/cancelRequest", {"id": request_id})))
        except (OSError, RuntimeError):
            pass

    async def _terminate(self, timeout: float = 30) -> int:
        assert self._writer is not None
        try:
            self._transport.end(self._writer)
        except (OSError, RuntimeError):
            pass
        code = await self._transport.wait(timeout)
        current = asyncio.current_task()
        waiting = [t for t in self._tasks if t is not current]
        if waiting:
            await asyncio.wait(waiting, timeout=timeout)  # the answers on their way, up to EOF
        await self._transport.release(timeout)
        return code

    async def _send(self, message: JSONObject) -> None:
        writer = self._writer
        if writer is None:
            raise ServerExited("pycell: the client was not started")
        try:
            writer.write(encode(message))
            assert self._drain_lock is not None
            async with self._drain_lock:
                await writer.drain()
            return
        except (OSError, RuntimeError):  # broken pipe or connection, or already closed
            pass
        # The reader says best why: the exit code and last words of the server, or the
        # error a shared server refused the connection with.
        current = asyncio.current_task()
        waiting = [t for t in self._tasks if t is not current]
        if waiting:
            await asyncio.wait(waiting, timeout=2)
        if self._refused is not None:
            result_of(self._refused, self.stderr_tail)
        raise ServerExited("pycell: " + (self._closed or await self._transport.broken()), self.stderr_tail())

    async def _read_loop(self) -> None:
        assert self._reader is not None and self._writer is not None
        stream, buffer = self._reader, bytearray()
        try:
            while True:
                try:
                    chunk = await stream.read(_CHUNK)
                except OSError:  # the connection was reset
                    break
                if not chunk:
                    break
                for line in _split(buffer, chunk):
                    for message in decode_lines(line):
                        self._dispatch(message)
        except asyncio.CancelledError:
            # The loop is ending with the client still open (asyncio.run after an exception):
            # EOF makes the server kill what still runs (and a child exit); nothing here may wait.
            self._closed = self._closed or "the client's event loop stopped reading"
            self._writer.close()
            self._fail_pending({"exited": self._closed})
            raise
        gone = await self._transport.gone()
        self._closed = self._closed or gone
        # A shared server that refused the connection said why just before closing it.
        self._fail_pending(self._refused or {"exited": "pycell: %s before answering" % gone})

    def _fail_pending(self, answer: JSONObject) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_result(answer)

    def _dispatch(self, message: JSONObject) -> None:
        if unreadable(message):
            return
        method = message.get("method")
        self._refused = message if refusal(message) else None  # kept only while it is the last word
        if self._refused is not None:
            log.debug("pycell: an error for no request: %.300s", message)
            return
        if method is None:  # a response
            answer = self._pending.pop(message.get("id"), None)  # type: ignore[arg-type]
            if answer is not None and not answer.done():
                answer.set_result(message)
            else:  # the late answer to a request given up on
                log.debug("pycell: answer for no waiting request: %.300s", message)
            return
        if "id" in message:  # a request from the server: none is defined
            if self._writer is not None and not self._closed:
                self._writer.write(encode(method_not_found(message["id"])))
            return
        deliver_notification(method, message.get("params"),
                             lambda i: self._streams.get(i) if isinstance(i, str) else None, self._on_notification)


class Execution:
    """A run in progress (AsyncPycell.execute_stream): async-iterable over its output,
    awaitable for its result.

        run = cell.execute_stream(code)
        async for out in run:            # Output(stream, text), as the server sends it
            ...
        result = await run               # the execute result (or the PycellError)

    Iteration ends when the run is over; a run the server refused raises its PycellError
    there. Cancelling a task that iterates or awaits it cancels the run (the server kills
    it); so does leaving `async with` before it is over.
    """

    def __init__(self, start: Callable[[OutputCallback], Awaitable[ExecuteResult]]) -> None:
        """start(on_output): the request, as an awaitable (AsyncPycell.execute with on_output)."""
        self._queue: "asyncio.Queue[Optional[Output]]" = asyncio.Queue()
        self._task: "asyncio.Task[ExecuteResult]" = asyncio.ensure_future(start(self._on_output))
        self._task.add_done_callback(lambda _: self._queue.put_nowait(None))

    def _on_output(self, stream: str, text: str) -> None:
        self._queue.put_nowait(Output(stream, text))

    @property
    def done(self) -> bool:
        return self._task.done()

    @property
    def result(self) -> ExecuteResult:
        """The execute result, once the run is over (InvalidStateError before)."""
        return self._task.result()

    def cancel(self) -> None:
        """Cancel the run: the server kills it; awaiting it raises CancelledError."""
        self._task.cancel()

    def __aiter__(self) -> AsyncIterator[Output]:
        return self

    async def __anext__(self) -> Output:
        try:
            item = await self._queue.get()
        except asyncio.CancelledError:
            self._task.cancel()
            raise
        if item is not None:
            return item
        self._queue.put_nowait(None)  # iterating again ends at once too
        if not self._task.cancelled() and self._task.exception() is not None:
            raise cast(BaseException, self._task.exception())
        raise StopAsyncIteration

    def __await__(self) -> Generator[Any, None, ExecuteResult]:
        return self._task.__await__()

    async def __aenter__(self) -> "Execution":
        return self

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        if not self._task.done():
            self._task.cancel()
        await asyncio.wait([self._task])


class AsyncSession:
    """A session of an AsyncPycell (AsyncPycell.session()): runs in it keep their state."""

    def __init__(self, client: AsyncPycell, profile: Optional[str] = None, limits: Optional[Mapping[str, Any]] = None,
                 network: Optional[bool] = None, language: Optional[str] = None) -> None:
        self.client = client
        self.id: Optional[str] = None
        self._options = (profile, limits, network, language)

    async def open(self) -> "AsyncSession":
        """Create the session on the server (once). Returns self."""
        if self.id is None:
            profile, limits, network, language = self._options
            self.id = await self.client.create_session(profile=profile, limits=limits, network=network,
                                                       language=language)
        return self

    def _session_id(self) -> str:
        if self.id is None:
            raise RuntimeError("pycell: the session is not open (await it, or use async with)")
        return self.id

    async def execute(self, code: str, *, on_output: Optional[OutputCallback] = None,
                      timeout: Optional[float] = None, **params: Any) -> ExecuteResult:
        """AsyncPycell.execute() inside this session."""
        return await self.client.execute(code, on_output=on_output, timeout=timeout, session=self._session_id(),
                                         **params)

    def execute_stream(self, code: str, *, timeout: Optional[float] = None, **params: Any) -> Execution:
        """AsyncPycell.execute_stream() inside this session."""
        return self.client.execute_stream(code, timeout=timeout, session=self._session_id(), **params)

    async def kill(self) -> JSONObject:
        """Interrupt the running execution (the session lives on)."""
        return await self.client.kill_session(self._session_id())

    async def close(self) -> bool:
        """End the session; True if it was open."""
        return await self.client.close_session(self._session_id())

    def __await__(self) -> Generator[Any, None, "AsyncSession"]:
        return self.open().__await__()

    async def __aenter__(self) -> "AsyncSession":
        return await self.open()

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        if self.id is not None:
            try:
                await self.close()
            except PycellError:
                pass  # the server is gone: so is the session
