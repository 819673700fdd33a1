"""pycell analyze, syntax: what the parser or the compiler rejects, and the warnings of
compiling, with recovery so that the rest of a program that does not parse is still
checked (the `syntax-error` and `syntax-warning` findings of analyze.py's docstring).

Part of the analyzer (analyze.py): standard library only, CPython 3.9+. As the code of an
execution, its text comes before analyze.py's in one program, after analyze_source.py's
(analyze.py ANALYZE_PARTS); loaded from a file, analyze.py runs it into its own globals,
which hold analyze_source.py's names (_diagnostic). Embedded in the C++ binary as a raw
string literal, so it must never contain that literal's closing delimiter.
"""
import ast
import warnings

_MAX_PARSES = 12  # parse attempts spent recovering from a syntax error


class _SyntaxChecks:
    """The syntax checks of an _Analyzer (analyze.py), which holds the program (`code`,
    `src`), the findings (`out`) and the parse attempts made (`parses`)."""

    # --- syntax ------------------------------------------------------------------------
    def syntax_error(self, error, byte_offsets):
        src = self.src
        line = (error.lineno or 1) - 1
        if line >= len(src.lines):
            line = len(src.lines) - 1
            col = len(src.text(line))
        else:
            offset = (error.offset or 1) - 1
            col = src.char_from_byte(line, offset) if byte_offsets else offset
        end_line = getattr(error, "end_lineno", None)
        end_offset = getattr(error, "end_offset", None)
        end = None
        if end_line and end_offset and end_offset > 0:
            end_line -= 1
            end_offset -= 1
            if end_line < len(src.lines):
                end = (end_line, src.char_from_byte(end_line, end_offset) if byte_offsets
                       else end_offset)
        if end is None or end <= (line, col):
            end = (line, min(col + 1, len(src.text(line))))
        message = error.msg if isinstance(error.msg, str) else str(error)
        self.out.append(_diagnostic(src.range((line, col), end), 1, "syntax-error", message))

    def parse(self, first, last):
        """ASTs covering lines [first, last) (0-based) as far as they parse."""
        if first >= last or self.parses >= _MAX_PARSES:
            return []
        self.parses += 1
        text = "\n" * first + "\n".join(self.src.lines[first:last])
        try:
            return [ast.parse(text, "<pycell>")]
        except SyntaxError as e:
            where = (e.lineno or first + 1) - 1
            if not first <= where < last:
                return []
            trees = self.parse(first, where)
            if not (e.msg or "").startswith("unterminated triple-quoted"):
                trees += self.parse(self.next_statement(where + 1, last), last)
            return trees
        except Exception:  # noqa: BLE001 - best effort only
            return []

    def next_statement(self, line, last):
        """The first 0-based line from `line` that starts a statement at column 0."""
        while line < last:
            text = self.src.text(line)
            if text[:1].isalpha() or text[:1] in ("_", "@"):
                return line
            line += 1
        return last

    def check_syntax(self):
        """Returns the trees to inspect, and records syntax errors and warnings."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                tree = ast.parse(self.code, "<pycell>")
            except SyntaxError as e:
                self.syntax_error(e, byte_offsets=False)
                where = (e.lineno or 1) - 1
                last = len(self.src.lines)
                trees = self.parse(0, min(where, last))
                if not (e.msg or "").startswith("unterminated triple-quoted"):
                    trees += self.parse(self.next_statement(where + 1, last), last)
                return trees
            except (ValueError, TypeError) as e:  # null bytes (3.11 and older)
                self.out.append(_diagnostic(self.src.range((0, 0), (0, 0)), 1, "syntax-error",
                                            str(e)))
                return []
            except (RecursionError, MemoryError):
                self.out.append(_diagnostic(self.src.range((0, 0), (0, 0)), 1, "syntax-error",
                                            "the program is too deeply nested to analyze"))
                return []
            try:
                compile(tree, "<pycell>", "exec", dont_inherit=True)
            except SyntaxError as e:
                self.syntax_error(e, byte_offsets=True)
            except Exception:  # noqa: BLE001 - RecursionError and such: the parse was fine
                pass
        for w in caught:
            if issubclass(w.category, (SyntaxWarning, DeprecationWarning)) and \
                    w.filename == "<pycell>" and isinstance(w.lineno, int) and w.lineno > 0:
                line = w.lineno - 1
                text = self.src.text(line)
                start = len(text) - len(text.lstrip())
                self.out.append(_diagnostic(self.src.range((line, start), (line, len(text))), 2,
                                            "syntax-warning", str(w.message)))
        return [tree]
