"""python3 -m pycell_client: run a program once in a pycell sandbox, or a REPL in a session.

    python3 -m pycell_client FILE.py [--binary PATH] [--profile NAME] [--timeout-ms MS]
    python3 -m pycell_client -c CODE
    python3 -m pycell_client              # a REPL: state lives in a session until you leave
    python3 -m pycell_client FILE.js      # JavaScript (Node.js); or --language javascript

Output is shown as it comes; the value of a last expression is printed as the REPL does.
Exit code (one-shot): 0 when the run is ok, the program's own when it exits with one, 124 on
timeout, 137 when killed, 1 otherwise; 2 when pycell refused the request.
"""

from __future__ import annotations

import argparse
import codeop
import sys
from typing import List, Optional, TextIO

from . import __version__
from ._common import ExecuteResult, JSONObject, PycellError, default_binary
from ._sync import Pycell


def _show(stream: str, text: str) -> None:
    out: TextIO = sys.stderr if stream == "stderr" else sys.stdout
    out.write(text)
    out.flush()


def _report(result: ExecuteResult) -> None:
    """What the streamed output did not already say: the value, or why the run stopped."""
    status = result.get("status")
    if status == "ok":
        if result.get("valueRepr") not in (None, "None"):
            print(result["valueRepr"], flush=True)
        return
    if status != "error":  # an error's traceback was on stderr already
        error = result.get("error") or {}
        detail = (": " + error["message"]) if isinstance(error, dict) and error.get("message") else ""
        print("pycell: %s%s" % (status, detail), file=sys.stderr, flush=True)


def _exit_code(result: ExecuteResult) -> int:
    status = result.get("status")
    if status == "ok":
        return 0
    if status == "timeout":
        return 124
    if status == "killed":
        return 137
    code = result.get("exitCode")
    return code if isinstance(code, int) and 0 < code < 256 else 1


def _limits(timeout_ms: Optional[int]) -> JSONObject:
    return {"limits": {"timeoutMs": timeout_ms}} if timeout_ms else {}


def run_once(cell: Pycell, code: str, timeout_ms: Optional[int], language: Optional[str] = None) -> int:
    try:
        result = cell.execute(code, on_output=_show, language=language, **_limits(timeout_ms))
    except PycellError as e:
        print("pycell: %s" % e, file=sys.stderr)
        return 2
    _report(result)
    return _exit_code(result)


def _javascript_complete(source: str) -> bool:
    """Whether JavaScript source looks complete: its brackets are closed. A rough test (a
    bracket inside a string counts), enough to let a block span lines; what is still wrong
    the sandbox reports with its line."""
    depth = sum(source.count(c) for c in "([{") - sum(source.count(c) for c in ")]}")
    return depth <= 0


def _read_statement(prompt: bool, language: Optional[str] = None) -> Optional[str]:
    """One complete statement from stdin (several lines for a block), None at EOF."""
    lines: List[str] = []
    while True:
        if prompt:
            sys.stderr.write("... " if lines else ">>> ")
            sys.stderr.flush()
        line = sys.stdin.readline()
        if not line:
            return "\n".join(lines) + "\n" if lines else None
        lines.append(line.rstrip("\n"))
        source = "\n".join(lines)
        if language == "javascript":
            if _javascript_complete(source):
                return source + "\n"
            continue
        try:
            if codeop.compile_command(source, "<pycell>", "single") is not None:
                return source + "\n"
        except (SyntaxError, ValueError, OverflowError):
            return source + "\n"  # let the sandbox report it, with its line


def repl(cell: Pycell, timeout_ms: Optional[int], language: Optional[str] = None) -> int:
    prompt = sys.stdin.isatty()
    with cell.session(language=language) as session:
        if prompt:
            isolation = (cell.info or {}).get("isolation", {}).get("level", "?")
            print("pycell %s (isolation: %s), session %s; Ctrl-D leaves"
                  % ((cell.info or {}).get("serverInfo", {}).get("version", "?"), isolation, session.id),
                  file=sys.stderr)
        while True:
            try:
                source = _read_statement(prompt, language)
            except KeyboardInterrupt:
                print(file=sys.stderr)
                continue
            if source is None:
                if prompt:
                    print(file=sys.stderr)
                return 0
            if not source.strip():
                continue
            try:
                result = session.execute(source, on_output=_show, **_limits(timeout_ms))
            except KeyboardInterrupt:
                session.kill()
                continue
            except PycellError as e:
                print("pycell: %s" % e, file=sys.stderr)
                continue
            _report(result)
            alive = (result.get("session") or {}).get("alive", True)
            if not alive:
                print("pycell: the session ended (%s)" % result.get("status"), file=sys.stderr)
                return _exit_code(result) or 1


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m pycell_client",
                                     description="Run Python (or JavaScript) in a pycell sandbox: a file, -c CODE, "
                                                 "or a REPL.")
    parser.add_argument("file", nargs="?", help="the program to run ('-' reads it from stdin)")
    parser.add_argument("-c", dest="code", metavar="CODE", help="run CODE instead of a file")
    parser.add_argument("--binary", default=None,
                        help="the pycell executable (default: $PYCELL_BINARY, else pycell on PATH)")
    parser.add_argument("--profile", default=None, help="the pycell profile to run under")
    parser.add_argument("--timeout-ms", type=int, default=None, help="the wall-clock limit of a run")
    parser.add_argument("--language", choices=("python", "javascript"), default=None,
                        help="the language of the code (default: javascript for a .js/.mjs/.cjs file, else the "
                             "profile's, Python unless it serves JavaScript)")
    parser.add_argument("--version", action="version", version="pycell_client " + __version__)
    args = parser.parse_args(argv)
    if args.code is not None and args.file is not None:
        parser.error("give a file or -c CODE, not both")
    code: Optional[str] = args.code
    if args.file == "-":
        code = sys.stdin.read()
    elif args.file is not None:
        try:
            with open(args.file, encoding="utf-8") as f:
                code = f.read()
        except OSError as e:
            parser.error("cannot read %s: %s" % (args.file, e.strerror))
    language: Optional[str] = args.language
    if language is None and args.file is not None and args.file.endswith((".js", ".mjs", ".cjs")):
        language = "javascript"
    try:
        cell = Pycell(args.binary or default_binary(), profile=args.profile)
    except FileNotFoundError:
        parser.error("pycell not found: pass --binary PATH or set PYCELL_BINARY")
    except PycellError as e:
        print("pycell: %s" % e, file=sys.stderr)
        return 2
    with cell:
        if code is not None:
            return run_once(cell, code, args.timeout_ms, language)
        return repl(cell, args.timeout_ms, language)


if __name__ == "__main__":
    sys.exit(main())
