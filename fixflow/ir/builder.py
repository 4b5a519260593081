"""Builder with an insertion point, for creating IR from Python."""

from __future__ import annotations

import sys
from typing import Any

from .core import Block, Operation
from .location import UNKNOWN_LOC, FileLineColLoc, Location


class Builder:
    """Inserts new ops at a point: the end of a block, or before/after an op.

    `capture_locations=True` gives each op the caller's `file:line` when no location is passed.
    """

    def __init__(self, block: Block | None = None, *, before: Operation | None = None,
                 after: Operation | None = None, location: Location | None = None,
                 capture_locations: bool = False):
        self.block = block
        self.before = before
        self.after = after
        self.location = location
        self.capture_locations = capture_locations

    @classmethod
    def at_end(cls, block: Block, **kw: Any) -> "Builder":
        return cls(block, **kw)

    @classmethod
    def before_op(cls, op: Operation, **kw: Any) -> "Builder":
        return cls(op.parent, before=op, **kw)

    @classmethod
    def after_op(cls, op: Operation, **kw: Any) -> "Builder":
        return cls(op.parent, after=op, **kw)

    def set_insertion_point_to_end(self, block: Block) -> None:
        self.block, self.before, self.after = block, None, None

    def set_insertion_point_before(self, op: Operation) -> None:
        self.block, self.before, self.after = op.parent, op, None

    def set_insertion_point_after(self, op: Operation) -> None:
        self.block, self.before, self.after = op.parent, None, op

    def insert(self, op: Operation) -> Operation:
        """Insert `op` at the insertion point (which then moves past it)."""
        if self.block is None:
            raise ValueError("builder has no insertion point")
        if self.before is not None:
            self.block.insert_before(self.before, op)
        elif self.after is not None:
            self.block.insert_after(self.after, op)
            self.after = op
        else:
            self.block.append(op)
        return op

    def create(self, op_class: type, *operands: Any, location: Location | None = None, **kwargs: Any) -> Any:
        """`op_class.build(*operands, **kwargs)` inserted here; returns the op."""
        if location is None:
            location = self.location
            if location is None:
                location = _caller_location() if self.capture_locations else UNKNOWN_LOC
        return self.insert(op_class.build(*operands, location=location, **kwargs))

    def emit(self, op_class: type, *operands: Any, name: str | None = None, verify: bool = True,
             location: Location | None = None, **kwargs: Any) -> Any:
        """The emitters' one idiom (frontends, lowerings, readers): build `op_class`, insert it here,
        name its first result `name` and verify it; returns its result (the op itself when it has
        none or several). An op that fails verification is erased again before the error propagates,
        so a bad op never stays in the IR."""
        op = self.create(op_class, *operands, location=location, **kwargs)
        if name is not None and op.results:
            op.results[0].name_hint = name
        if verify:
            try:
                op.verify()
            except Exception:
                op.erase()
                raise
        return op.results[0] if len(op.results) == 1 else op


def _caller_location() -> Location:
    frame = sys._getframe(2)
    here = __file__
    while frame is not None and frame.f_code.co_filename == here:
        frame = frame.f_back
    if frame is None:
        return UNKNOWN_LOC
    return FileLineColLoc(frame.f_code.co_filename, frame.f_lineno, 1)
