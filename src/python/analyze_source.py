"""pycell analyze, the program's text: its lines, and positions and ranges as LSP counts
them (0-based lines split at \\n, \\r\\n and \\r; UTF-16 code units), converted from
Python's (UTF-8 byte offsets of ast nodes and compiler errors, characters elsewhere); and
the diagnostics built on them.

Part of the analyzer (analyze.py, whose docstring describes the diagnostics): standard
library only, CPython 3.9+. As the code of an execution, its text comes before
analyze.py's in one program (analyze.py ANALYZE_PARTS); loaded from a file, analyze.py
runs it into its own globals. Embedded in the C++ binary as a raw string literal, so it
must never contain that literal's closing delimiter.
"""
import re

_SOURCE = "pycell"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class _Source:
    """The program's lines, and conversions of positions to LSP's."""

    def __init__(self, code):
        self.lines = _LINE_BREAK.split(code)
        self._encoded = {}

    def text(self, line):  # 0-based
        return self.lines[line] if 0 <= line < len(self.lines) else ""

    def char_from_byte(self, line, col):
        """Python character index on a 0-based line from a UTF-8 byte offset."""
        text = self.text(line)
        if text.isascii():
            return max(0, min(col, len(text)))
        data = self._encoded.get(line)
        if data is None:
            data = self._encoded[line] = text.encode("utf-8", "surrogatepass")
        return len(data[:max(0, col)].decode("utf-8", "ignore"))

    def utf16(self, line, char):
        """UTF-16 code units before Python character index `char` on a 0-based line."""
        text = self.text(line)
        char = max(0, min(char, len(text)))
        if text.isascii():
            return char
        return char + sum(1 for c in text[:char] if ord(c) > 0xFFFF)

    def position(self, line, char):
        if line >= len(self.lines):  # past the end (errors at EOF)
            line = max(len(self.lines) - 1, 0)
            char = len(self.text(line))
        line = max(line, 0)
        return {"line": line, "character": self.utf16(line, char)}

    def range(self, start, end):
        """LSP range from (line, char) pairs (0-based lines, Python characters)."""
        if end < start:
            end = start
        return {"start": self.position(*start), "end": self.position(*end)}

    def node_start(self, node):
        return node.lineno - 1, self.char_from_byte(node.lineno - 1, node.col_offset)

    def node_end(self, node):
        line = getattr(node, "end_lineno", None)
        col = getattr(node, "end_col_offset", None)
        if line is None or col is None:
            return self.node_start(node)
        return line - 1, self.char_from_byte(line - 1, col)

    def node_range(self, node):
        return self.range(self.node_start(node), self.node_end(node))

    def search(self, start, end_line, pattern):
        """The first match of `pattern` (a compiled regex) from `start` (line, char) up
        to the end of 0-based `end_line`; returns ((line, char), (line, char)) or None."""
        line, char = start
        while line <= end_line and line < len(self.lines):
            match = pattern.search(self.lines[line], char)
            if match:
                return (line, match.start()), (line, match.end())
            line, char = line + 1, 0
        return None


def _diagnostic(rng, severity, code, message):
    return {"range": rng, "severity": severity, "code": code, "source": _SOURCE,
            "message": message}


def _name_pattern(dotted):
    """A regex for a dotted name as a whole word, allowing spaces around the dots."""
    parts = [re.escape(p) for p in dotted.split(".")]
    return re.compile(r"(?<![\w.])" + r"\s*\.\s*".join(parts) + r"(?!\w)")
