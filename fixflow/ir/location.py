"""Source locations, printed in MLIR's `loc(...)` syntax.

Every operation carries one. Parsed ops get `FileLineColLoc`; ops traced from PyTorch get a
`NameLoc` (the module path) wrapping the user's `FileLineColLoc`.
"""

from __future__ import annotations


def _quote(s: str) -> str:
    from .attributes import quote_string  # MLIR's escapes (newlines and other non-printables too)
    return quote_string(s)


class Location:
    """Base of all locations. Immutable."""

    __slots__ = ()

    def __str__(self) -> str:  # pragma: no cover - overridden
        return self.body()

    def body(self) -> str:
        raise NotImplementedError

    def print(self) -> str:
        """The location as `loc(...)` text."""
        return f"loc({self.body()})"

    def file_line_col(self) -> "FileLineColLoc | None":
        """The innermost file location, if any (for diagnostics)."""
        return None

    def describe(self) -> str:
        """Human form for diagnostics: `file:line:col` or the name."""
        flc = self.file_line_col()
        return f"{flc.filename}:{flc.line}:{flc.col}" if flc else self.body()


class UnknownLoc(Location):
    __slots__ = ()

    def body(self) -> str:
        return "unknown"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnknownLoc)

    def __hash__(self) -> int:
        return 17

    def __repr__(self) -> str:
        return "UnknownLoc()"


UNKNOWN_LOC = UnknownLoc()


class FileLineColLoc(Location):
    __slots__ = ("filename", "line", "col")

    def __init__(self, filename: str, line: int, col: int):
        self.filename = filename
        self.line = line
        self.col = col

    def body(self) -> str:
        return f"{_quote(self.filename)}:{self.line}:{self.col}"

    def file_line_col(self) -> "FileLineColLoc":
        return self

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, FileLineColLoc) and self.line == other.line
                and self.col == other.col and self.filename == other.filename)

    def __hash__(self) -> int:
        return hash((self.filename, self.line, self.col))

    def __repr__(self) -> str:
        return f"FileLineColLoc({self.filename!r}, {self.line}, {self.col})"


class NameLoc(Location):
    """A named location (e.g. a PyTorch module path) with an optional child location."""

    __slots__ = ("name", "child")

    def __init__(self, name: str, child: Location | None = None):
        self.name = name
        self.child = None if isinstance(child, UnknownLoc) else child  # both print as `"name"`

    def body(self) -> str:
        if self.child is None or isinstance(self.child, UnknownLoc):
            return _quote(self.name)
        return f"{_quote(self.name)}({self.child.body()})"

    def file_line_col(self) -> FileLineColLoc | None:
        return self.child.file_line_col() if self.child is not None else None

    def describe(self) -> str:
        flc = self.file_line_col()
        return f"{flc.filename}:{flc.line}:{flc.col} ({self.name})" if flc else self.name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NameLoc) and self.name == other.name and self.child == other.child

    def __hash__(self) -> int:
        return hash((self.name, self.child))

    def __repr__(self) -> str:
        return f"NameLoc({self.name!r}, {self.child!r})"


class CallSiteLoc(Location):
    __slots__ = ("callee", "caller")

    def __init__(self, callee: Location, caller: Location):
        self.callee = callee
        self.caller = caller

    def body(self) -> str:
        return f"callsite({self.callee.body()} at {self.caller.body()})"

    def file_line_col(self) -> FileLineColLoc | None:
        return self.callee.file_line_col() or self.caller.file_line_col()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CallSiteLoc) and self.callee == other.callee and self.caller == other.caller

    def __hash__(self) -> int:
        return hash((self.callee, self.caller))


class FusedLoc(Location):
    __slots__ = ("locations",)

    def __init__(self, locations: tuple[Location, ...] | list[Location]):
        self.locations = tuple(locations)

    def body(self) -> str:
        return "fused[" + ", ".join(loc.body() for loc in self.locations) + "]"

    def file_line_col(self) -> FileLineColLoc | None:
        for loc in self.locations:
            flc = loc.file_line_col()
            if flc is not None:
                return flc
        return None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FusedLoc) and self.locations == other.locations

    def __hash__(self) -> int:
        return hash(self.locations)
