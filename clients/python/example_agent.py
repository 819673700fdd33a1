#!/usr/bin/env python3
"""An agent harness that gives a model the run_python tool, with a scripted stand-in for the
model so that it runs offline in a couple of seconds.

The loop is the one a real harness runs: send the conversation and the tool definitions to
the model; when it answers with tool calls, run each one through pycell and append the
result as a `tool` message; stop when it answers with text. Messages use OpenAI's chat
format (the Anthropic one differs only in names: `tool_use` / `tool_result` blocks, the
arguments as a dict in `input`, `anthropic_tool()` as the definition; `tool_call` takes
either). To use a real model, replace ScriptedModel with a call to your provider's API,
passing tools=[openai_tool()]. With --async the same loop runs on asyncio (AsyncPycell), as
it would inside an async web service or agent framework.

    python3 example_agent.py [--binary PATH] [--async]   # default: $PYCELL_BINARY, else pycell on PATH

pycell_client is the package beside this file (or installed: pip install clients/python).
"""

import argparse
import asyncio
import json
import os
import shutil
import sys
import textwrap
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pycell_client import AsyncPycell, Pycell, openai_tool, tool_call  # noqa: E402

Message = Dict[str, Any]

TEMPERATURES: Dict[str, Any] = {"days": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
                "celsius": [18.5, 21.0, 24.5, 23.0, 19.5, 26.0, 22.5]}

TASK = ("Here are last week's noon temperatures: %s. What were the mean and the standard "
        "deviation, and which day was the hottest?" % json.dumps(TEMPERATURES))


class ScriptedModel:
    """Plays the model: reads the conversation, answers with tool calls or with text.

    Its first attempt forgets an import (a NameError the model reads and fixes), then it
    tries an exhaustive search that never ends (stopped by timeoutMs), then it finishes.
    """

    def __init__(self) -> None:
        self.calls = 0
        self.summary: Optional[str] = None

    def _call(self, code: str, inputs: Any = None, timeout_ms: Optional[int] = None) -> Message:
        self.calls += 1
        arguments = {"code": textwrap.dedent(code).strip() + "\n",
                     "inputs_json": None if inputs is None else json.dumps(inputs),
                     "timeoutMs": timeout_ms}
        return {"role": "assistant", "content": None,
                "tool_calls": [{"id": "call_%d" % self.calls, "type": "function",
                                "function": {"name": "run_python", "arguments": json.dumps(arguments)}}]}

    def __call__(self, messages: List[Message], tools: List[Dict[str, Any]]) -> Message:
        assert any(t["function"]["name"] == "run_python" for t in tools)
        results = [m for m in messages if m["role"] == "tool"]
        if not results:
            return self._call("""
                days, temps = inputs["days"], inputs["celsius"]
                print("readings:", len(temps))
                summary = {"mean": round(statistics.mean(temps), 2),
                           "stdev": round(statistics.stdev(temps), 2),
                           "hottest": days[temps.index(max(temps))]}
                summary
                """, TEMPERATURES)
        last = results[-1]["content"]
        if "NameError" in last and "statistics" in last:
            return self._call("""
                import statistics
                days, temps = inputs["days"], inputs["celsius"]
                print("readings:", len(temps))
                summary = {"mean": round(statistics.mean(temps), 2),
                           "stdev": round(statistics.stdev(temps), 2),
                           "hottest": days[temps.index(max(temps))]}
                summary
                """, TEMPERATURES)
        if len(results) == 2:
            self.summary = next((l[len("value: "):] for l in last.splitlines() if l.startswith("value: ")), None)
            # Curious about a pattern, the model tries a search that never ends.
            return self._call("""
                import itertools
                for n in itertools.count(1):
                    if n * n == 2 * 10 ** 9 + 1:   # no such n: runs until stopped
                        break
                n
                """, timeout_ms=500)
        return {"role": "assistant",
                "content": "Over the week: %s. (A search for a perfect square stopped at its time limit: "
                           "there is none to find.)" % self.summary}


def show(role: str, text: str, indent: str = "    ") -> None:
    print(role)
    print(textwrap.indent(text.rstrip("\n"), indent) if text else indent + "(empty)")


def show_live(stream: str, text: str) -> None:
    """Output as it streams from the sandbox, for the person watching the agent."""
    print(textwrap.indent(text.rstrip("\n"), "    | %s " % stream[3:]), flush=True)


def show_call(call: Message) -> None:
    """A tool call as the person watching the agent reads it."""
    arguments = json.loads(call["function"]["arguments"])
    shown = "code:\n" + textwrap.indent(arguments["code"], "  ")
    if arguments.get("inputs_json"):
        shown += "inputs_json: " + arguments["inputs_json"] + "\n"
    if arguments.get("timeoutMs"):
        shown += "timeoutMs: %d\n" % arguments["timeoutMs"]
    show("assistant -> run_python (%s):" % call["id"], shown)


def run(binary: str) -> int:
    model = ScriptedModel()
    tools = [openai_tool()]
    messages: List[Message] = [{"role": "user", "content": TASK}]
    show("user:", TASK)
    with Pycell(binary) as cell:
        info = cell.info or {}
        print("[pycell %s, isolation: %s]" % (info["serverInfo"]["version"], info["isolation"]["level"]))
        for _ in range(10):  # a harness bounds the number of turns
            reply = model(messages, tools)
            messages.append(reply)
            if not reply.get("tool_calls"):
                show("assistant:", reply["content"])
                return 0
            for call in reply["tool_calls"]:
                show_call(call)
                text, is_error = tool_call(call["function"]["arguments"], cell, on_output=show_live)
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": text})
                show("tool (%s)%s:" % (call["id"], ", error" if is_error else ""), text)
    print("the model did not finish within 10 turns", file=sys.stderr)
    return 1


async def run_async(binary: str) -> int:
    """run(), with the asyncio client: the tool calls of one turn run concurrently."""
    model = ScriptedModel()
    tools = [openai_tool()]
    messages: List[Message] = [{"role": "user", "content": TASK}]
    show("user:", TASK)
    async with AsyncPycell(binary) as cell:
        info = cell.info or {}
        print("[pycell %s, isolation: %s, asyncio]" % (info["serverInfo"]["version"], info["isolation"]["level"]))
        for _ in range(10):
            reply = model(messages, tools)
            messages.append(reply)
            if not reply.get("tool_calls"):
                show("assistant:", reply["content"])
                return 0
            calls = reply["tool_calls"]
            for call in calls:
                show_call(call)
            answers = await asyncio.gather(*(cell.tool_call(call["function"]["arguments"], on_output=show_live)
                                             for call in calls))
            for call, (text, is_error) in zip(calls, answers):
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": text})
                show("tool (%s)%s:" % (call["id"], ", error" if is_error else ""), text)
    print("the model did not finish within 10 turns", file=sys.stderr)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=os.environ.get("PYCELL_BINARY") or shutil.which("pycell"),
                        help="the pycell executable (default: $PYCELL_BINARY, else pycell on PATH)")
    parser.add_argument("--async", dest="use_async", action="store_true",
                        help="run the loop on asyncio with AsyncPycell")
    args = parser.parse_args()
    if not args.binary:
        parser.error("pycell not found: pass --binary PATH or set PYCELL_BINARY")
    return asyncio.run(run_async(args.binary)) if args.use_async else run(args.binary)


if __name__ == "__main__":
    sys.exit(main())
