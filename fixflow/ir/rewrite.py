"""Rewrite patterns, the tracking rewriter, and the greedy (fixed point) and walk drivers."""

from __future__ import annotations

import itertools
from collections import deque
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Sequence

from .attributes import Attribute
from .core import Operation, Value
from .diagnostics import PassError
from .location import Location
from .opdef import _DIALECTS, ConstantLike, Op, Pure, Terminator


class RewritePattern:
    """Subclass and set `OP` (an op class or an op name; None matches every op)."""

    OP: type | str | None = None
    BENEFIT: int = 1

    def match_and_rewrite(self, op: Operation, rewriter: "PatternRewriter") -> bool:
        """Rewrite `op` through `rewriter` and return True, or return False without touching the IR."""
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<pattern {self.name}>"


class FunctionPattern(RewritePattern):
    def __init__(self, fn: Callable[[Operation, "PatternRewriter"], bool], op: type | str | None, benefit: int):
        self.fn = fn
        self.OP = op
        self.BENEFIT = benefit

    def match_and_rewrite(self, op: Operation, rewriter: "PatternRewriter") -> bool:
        return bool(self.fn(op, rewriter))

    @property
    def name(self) -> str:
        return self.fn.__name__


def pattern(op: type | str | None = None, benefit: int = 1) -> Callable:
    """Decorator: a function `f(op, rewriter) -> bool` keyed by op class or name becomes a pattern."""
    def wrap(fn: Callable[[Operation, "PatternRewriter"], bool]) -> FunctionPattern:
        return FunctionPattern(fn, op, benefit)
    return wrap


class PatternRewriter:
    """Performs and records IR changes on behalf of patterns, so drivers know what to revisit."""

    def __init__(self, on_created: Callable[[Operation], None] | None = None,
                 on_changed: Callable[[Operation], None] | None = None,
                 on_erased: Callable[[Operation], None] | None = None):
        self._on_created = on_created or (lambda op: None)
        self._on_changed = on_changed or (lambda op: None)
        self._on_erased = on_erased or (lambda op: None)
        self.current: Operation | None = None
        self._before: Operation | None = None
        self._after: Operation | None = None
        self.changed = False

    # insertion point
    def set_insertion_point_before(self, op: Operation) -> None:
        self._before, self._after = op, None

    def set_insertion_point_after(self, op: Operation) -> None:
        self._before, self._after = None, op

    def _start(self, op: Operation) -> None:
        self.current = op
        self._before, self._after = op, None

    def insert(self, op: Operation) -> Operation:
        """Insert a built op at the insertion point (before the matched op by default)."""
        if self._after is not None:
            self._after.parent.insert_after(self._after, op)
            self._after = op
        elif self._before is not None:
            self._before.parent.insert_before(self._before, op)
        else:
            raise PassError("rewriter has no insertion point")
        self.changed = True
        self._on_created(op)
        return op

    def create(self, op_class: type, *operands, location: Location | None = None, **kwargs) -> Operation:
        """Build `op_class` and insert it; the location defaults to the matched op's."""
        if location is None and self.current is not None:
            location = self.current.location
        return self.insert(op_class.build(*operands, location=location, **kwargs))

    # changes
    def replace_all_uses_with(self, old: Value, new: Value) -> None:
        for user in list(old.uses):
            self._on_changed(user)
        old.replace_all_uses_with(new)
        self.changed = True

    def replace_op(self, op: Operation, new: Sequence[Value] | Operation) -> None:
        """Replace every result of `op` with `new` (values or another op's results) and erase `op`."""
        values = new.results if isinstance(new, Operation) else list(new)
        if len(values) != len(op.results):
            raise PassError(f"replace_op: '{op.name}' has {len(op.results)} results, got {len(values)} values")
        for r, v in zip(op.results, values):
            self.replace_all_uses_with(r, v)
        self.erase_op(op)

    def erase_op(self, op: Operation) -> None:
        for v in op.operands:
            owner = getattr(v, "op", None)
            if owner is not None:
                self._on_changed(owner)
        for nested in op.walk():
            self._on_erased(nested)
        op.erase()
        self.changed = True

    @contextmanager
    def modify_op(self, op: Operation) -> Iterator[Operation]:
        """Context manager for in-place changes of `op` (attributes, operands)."""
        yield op
        self.notify_op_modified(op)

    def notify_op_modified(self, op: Operation) -> None:
        self.changed = True
        self._on_changed(op)
        for r in op.results:
            for user in r.uses:
                self._on_changed(user)


class PatternSet:
    """Patterns indexed by op name / class for fast lookup."""

    def __init__(self, patterns: Iterable[RewritePattern]):
        self.by_name: dict[str, list[RewritePattern]] = {}
        self.by_class: list[tuple[type, RewritePattern]] = []
        self.generic: list[RewritePattern] = []
        for p in patterns:
            key = p.OP
            if key is None:
                self.generic.append(p)
            elif isinstance(key, str):
                self.by_name.setdefault(key, []).append(p)
            elif getattr(key, "OP_NAME", None):
                self.by_name.setdefault(key.OP_NAME, []).append(p)
            else:
                self.by_class.append((key, p))
        self._cache: dict[type, list[RewritePattern]] = {}

    def for_op(self, op: Operation) -> list[RewritePattern]:
        cls = type(op)
        if cls is not Operation:
            found = self._cache.get(cls)
            if found is None:
                found = list(self.by_name.get(op.name, ()))
                found += [p for k, p in self.by_class if isinstance(op, k)]
                found += self.generic
                found.sort(key=lambda p: -p.BENEFIT)
                self._cache[cls] = found
            return found
        found = list(self.by_name.get(op.name, ())) + self.generic
        found.sort(key=lambda p: -p.BENEFIT)
        return found

    def __bool__(self) -> bool:
        return bool(self.by_name or self.by_class or self.generic)


def materialize_constant(value: Attribute, type, location: Location, like: Operation) -> Operation | None:
    """A constant op for a folded value, from the folding op's dialect (`Dialect.constant_builder`)."""
    dialect = _DIALECTS.get(like.name.split(".", 1)[0])
    builder = getattr(dialect, "constant_builder", None)
    if builder is None:
        return None
    return builder(value, type, location)


def _try_fold(op: Operation, rewriter: PatternRewriter) -> bool:
    if not isinstance(op, Op) or not op.results or ConstantLike in op.TRAITS:
        return False
    folded = op.fold()
    if not folded:
        return False
    if len(folded) != len(op.results):
        return False
    values: list[Value] = []
    created: list[Operation] = []
    for r, f in zip(op.results, folded):
        if isinstance(f, Value):
            if f is r:
                return False
            values.append(f)
        else:
            const = materialize_constant(f, r.type, op.location, op)
            if const is None:
                for c in created:
                    c.erase(drop_uses=True)
                return False
            created.append(const)
            values.append(const.results[0])
    for c in created:
        rewriter.insert(c)
    rewriter.replace_op(op, values)
    return True


def is_trivially_dead(op: Operation) -> bool:
    if not op.results or Pure not in op.TRAITS or Terminator in op.TRAITS:
        return False
    for r in op.results:
        if r.uses:
            return False
    return True


def apply_patterns_greedily(root: Operation, patterns: Iterable[RewritePattern], *, max_iterations: int = 10,
                            fold: bool = True, remove_dead: bool = True,
                            max_rewrites_per_iteration: int | None = None) -> bool:
    """Apply patterns (and folding, and dead-op removal) until nothing changes.

    Raises `PassError` when the IR does not converge within `max_iterations` sweeps (-1: no limit). Returns whether
    anything changed.
    """
    pset = patterns if isinstance(patterns, PatternSet) else PatternSet(patterns)
    if max_iterations == 0 or max_iterations < -1:
        raise PassError(f"max_iterations must be positive, or -1 for no limit (as in MLIR), got {max_iterations}")
    any_change = False
    last = ""
    for iteration in (itertools.count() if max_iterations == -1 else range(max_iterations)):
        worklist: deque[Operation] = deque()
        in_list: set[Operation] = set()
        erased: set[Operation] = set()

        def push(op: Operation) -> None:
            if op not in in_list and op not in erased:
                in_list.add(op)
                worklist.append(op)

        def on_erased(op: Operation) -> None:
            erased.add(op)

        rewriter = PatternRewriter(on_created=push, on_changed=push, on_erased=on_erased)
        for op in root.walk():
            if op is not root:
                push(op)
        limit = max_rewrites_per_iteration or (10 * len(in_list) + 1000)
        rewrites = 0
        changed = False
        last = ""
        while worklist:
            op = worklist.popleft()
            in_list.discard(op)
            if op in erased or op.parent is None:
                continue
            rewriter._start(op)
            rewriter.changed = False
            if remove_dead and is_trivially_dead(op):
                rewriter.erase_op(op)
            elif fold and _try_fold(op, rewriter):
                last = f"folding '{op.name}'"
            else:
                for p in pset.for_op(op):
                    if p.match_and_rewrite(op, rewriter):
                        last = f"pattern {p.name} on '{op.name}'"
                        break
                    if rewriter.changed:
                        raise PassError(f"pattern {p.name} changed the IR but returned False")
            if rewriter.changed:
                changed = True
                rewrites += 1
                if rewrites > limit:
                    raise PassError(f"greedy rewriting did not converge: more than {limit} rewrites in one "
                                    f"sweep (last: {last}); a pattern probably undoes another")
        if not changed:
            return any_change
        any_change = True
    raise PassError(f"greedy rewriting did not converge within {max_iterations} iterations "
                    f"(last change: {last}); raise max_iterations or check for patterns that undo each other")


def walk_and_apply(root: Operation, patterns: Iterable[RewritePattern], *, reverse: bool = False) -> bool:
    """One walk over `root`, applying the first matching pattern to each op (no fixed point)."""
    pset = patterns if isinstance(patterns, PatternSet) else PatternSet(patterns)
    erased: set[Operation] = set()
    rewriter = PatternRewriter(on_erased=erased.add)
    any_change = False
    for op in list(root.walk(reverse=reverse)):
        if op is root or op in erased or op.parent is None:
            continue
        rewriter._start(op)
        rewriter.changed = False
        for p in pset.for_op(op):
            if p.match_and_rewrite(op, rewriter):
                break
        any_change |= rewriter.changed
    return any_change
