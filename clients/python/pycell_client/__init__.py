"""A client for `pycell serve`, standard library only (Python 3.8+).

pycell runs untrusted Python in a sandbox the Linux kernel enforces; this package spawns the
pycell binary and speaks its JSON-RPC protocol (docs/PROTOCOL.md in the pycell repository)
over the child's stdin/stdout, or connects to a shared server (`pycell serve --listen`):
`Pycell.connect("unix:/run/pycell.sock")`, `await AsyncPycell.connect("tcp:HOST:PORT",
token=...)`, with the same methods.

    from pycell_client import Pycell

    with Pycell("/path/to/pycell") as cell:
        r = cell.execute("x = 6 * 7\\nx")
        r["status"], r["value"]                    # ('ok', 42)
        cell.execute_stream("print('hi')", on_output=lambda stream, text: print(text, end=""))

    from pycell_client import AsyncPycell

    async with AsyncPycell("/path/to/pycell") as cell:
        r = await cell.execute("6 * 7")
        async for out in cell.execute_stream("print('hi')"):
            print(out.stream, out.text)

For an LLM agent, `tool_call(arguments)` runs one call of the `run_python` tool (definitions
in OpenAI and Anthropic formats: `openai_tool()`, `anthropic_tool()`) and returns the text
to give back to the model and whether it is an error; with language="javascript", the same
for the `run_javascript` tool (Node.js).

`python3 -m pycell_client FILE.py` (or `-c CODE`) runs a program once; with no arguments it
is a REPL whose state lives in a pycell session.
"""

from ._async import AsyncPycell, AsyncSession, Execution
from ._common import (INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, QUEUE_FULL, REQUEST_CANCELLED,
                      SANDBOX_FAILED, JSONObject, NotificationCallback, Output, OutputCallback, PycellError,
                      ServerExited)
from ._sync import Pycell, Session
from ._tool import (anthropic_tool, default_client, format_tool_result, openai_tool, run_tool, tool_arguments_to_execute,
                    tool_call)

__version__ = "0.1.0"

__all__ = [
    "Pycell", "Session", "AsyncPycell", "AsyncSession", "Execution", "Output", "PycellError", "ServerExited",
    "tool_call", "run_tool", "tool_arguments_to_execute", "format_tool_result", "openai_tool", "anthropic_tool",
    "default_client", "OutputCallback", "NotificationCallback", "JSONObject",
    "PARSE_ERROR", "INVALID_REQUEST", "METHOD_NOT_FOUND", "INVALID_PARAMS", "REQUEST_CANCELLED", "SANDBOX_FAILED",
    "QUEUE_FULL", "__version__",
]
