"""Diagnostics for people: `file:line:col: error: message`, the source line and a caret.

`FixflowError` is the base of every user-facing error (bad text, bad model, unsupported op, hardware
limit, corrupt file). Command-line tools print `err.render()` and exit 1; they never show a traceback.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .location import FileLineColLoc, Location

if TYPE_CHECKING:
    from .core import Operation

#: the most recently parsed source texts by file name, so diagnostics can quote lines
_SOURCES: dict[str, str] = {}
_LEADING_NEWLINES = re.compile(r"\n*")
_MAX_SOURCES = 32


def register_source(filename: str, text: str) -> None:
    _SOURCES.pop(filename, None)
    _SOURCES[filename] = text
    while len(_SOURCES) > _MAX_SOURCES:
        del _SOURCES[next(iter(_SOURCES))]


def source_line(filename: str, line: int) -> str | None:
    text = _SOURCES.get(filename)
    if text is None:
        try:
            with open(filename, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError):
            return None
    lead = _LEADING_NEWLINES.match(text).end()  # fixflow-opt pads split chunks with newlines: skip them cheaply
    if 0 < line <= lead:
        return ""
    lines = text[lead:].splitlines()
    line -= lead
    if line == len(lines) + 1:
        return ""  # the end of a text that ends with a newline
    return lines[line - 1] if 0 < line <= len(lines) else None


def format_diagnostic(severity: str, message: str, location: Location | None) -> str:
    """One diagnostic with its location, source line and caret (when the source is known)."""
    flc = location.file_line_col() if location is not None else None
    if flc is None:
        where = f"{location.describe()}: " if location is not None and location.body() != "unknown" else ""
        return f"{where}{severity}: {message}"
    head = f"{flc.filename}:{flc.line}:{flc.col}: {severity}: {message}"
    text = source_line(flc.filename, flc.line)
    if text is None:
        return head
    caret = " " * max(flc.col - 1, 0) + "^"
    return f"{head}\n{text}\n{caret}"


class FixflowError(Exception):
    """A user-facing error: one message with a location."""

    severity = "error"

    def __init__(self, message: str, location: Location | None = None,
                 notes: list[tuple[str, Location | None]] | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.notes = notes or []

    def render(self) -> str:
        parts = [format_diagnostic(self.severity, self.message, self.location)]
        parts += [format_diagnostic("note", msg, loc) for msg, loc in self.notes]
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.render()


class ParseError(FixflowError):
    """Malformed text at `file:line:col`."""

    def __init__(self, message: str, filename: str, line: int, col: int):
        super().__init__(message, FileLineColLoc(filename, line, col))
        self.filename, self.line, self.col = filename, line, col


class VerifyError(FixflowError):
    """An op that breaks its definition's rules."""

    def __init__(self, message: str, op: "Operation | None" = None,
                 notes: list[tuple[str, Location | None]] | None = None):
        self.op = op
        loc = op.location if op is not None else None
        full = f"'{op.name}' op {message}" if op is not None else message
        super().__init__(full, loc, notes)
        self.bare_message = message


class PassError(FixflowError):
    """A pass could not do its job on valid input (e.g. a pattern driver that does not converge)."""


# ---- warnings and remarks -----------------------------------------------------------------
class Diagnostic:
    """A non-fatal diagnostic (warning, remark, note) emitted by a pass."""

    __slots__ = ("severity", "message", "location")

    def __init__(self, severity: str, message: str, location: Location | None):
        self.severity = severity
        self.message = message
        self.location = location

    def render(self) -> str:
        return format_diagnostic(self.severity, self.message, self.location)

    def __repr__(self) -> str:
        return f"<{self.severity}: {self.message}>"


_HANDLERS: list[list[Diagnostic]] = []


def emit(severity: str, message: str, location: Location | None = None) -> Diagnostic:
    """Report a warning/remark: to the innermost `capture_diagnostics()` block, or to stderr."""
    import sys
    d = Diagnostic(severity, message, location)
    if _HANDLERS:
        _HANDLERS[-1].append(d)
    else:
        sys.stderr.write(d.render() + "\n")
    return d


def emit_warning(message: str, location: Location | None = None) -> Diagnostic:
    return emit("warning", message, location)


def emit_remark(message: str, location: Location | None = None) -> Diagnostic:
    return emit("remark", message, location)


class capture_diagnostics:
    """`with capture_diagnostics() as diags:` collects warnings instead of printing them."""

    def __enter__(self) -> list[Diagnostic]:
        self.diags: list[Diagnostic] = []
        _HANDLERS.append(self.diags)
        return self.diags

    def __exit__(self, *exc) -> None:
        _HANDLERS.remove(self.diags)
