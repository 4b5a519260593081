"""Canonicalization patterns of the graph dialect (used by the generic `canonicalize` pass).

Folding (constants, identity/dropout, no-op reshapes and transposes) lives in the ops' `fold()`;
here are the rewrites that create new ops: chains of reshape/flatten become one reshape, chains of
transposes become one transpose.
"""

from __future__ import annotations

from typing import Sequence

from ...ir.core import Operation
from ...ir.rewrite import PatternRewriter, RewritePattern
from .ops import FlattenOp, ReshapeOp, TransposeOp
from .shapes import ShapeError, normalize_axis


def flatten_as_reshape(rank: int, start_dim: int, end_dim: int) -> tuple[int, ...]:
    """The batch-independent reshape target of `flatten(start_dim, end_dim)` on a rank-`rank` input."""
    s = normalize_axis(start_dim, rank, "flatten", "start_dim")
    e = normalize_axis(end_dim, rank, "flatten", "end_dim")
    return (0,) * s + (-1,) + (0,) * (rank - 1 - e)


def _as_reshape(op: Operation) -> tuple[int, ...] | None:
    """The reshape target equivalent to a reshape or flatten op (None for other ops)."""
    if isinstance(op, ReshapeOp):
        return tuple(op.shape)
    if isinstance(op, FlattenOp):
        rank = op.input.type.rank
        if rank == 0:
            return None
        try:
            return flatten_as_reshape(rank, op.start_dim, op.end_dim)
        except ShapeError:
            return None
    return None


def merge_reshape_targets(inner: Sequence[int], outer: Sequence[int]) -> tuple[int, ...] | None:
    """Target of reshape(reshape(x, inner), outer) as one reshape of x, or None when a 0 of `outer`
    would copy a dimension that `inner` did not copy from x (then the merge could change other batches)."""
    for i, d in enumerate(outer):
        if d == 0 and not (i < len(inner) and inner[i] == 0):
            return None
    return tuple(outer)


class MergeReshapes(RewritePattern):
    """reshape/flatten of a reshape/flatten -> one reshape of the original input."""

    def __init__(self, op_class: type):
        self.OP = op_class

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> bool:
        producer = getattr(op.input, "op", None)
        inner = _as_reshape(producer) if producer is not None else None
        outer = _as_reshape(op)
        if inner is None or outer is None:
            return False
        target = merge_reshape_targets(inner, outer)
        if target is None:
            return False
        new = rewriter.create(ReshapeOp, producer.input, shape=target, result_types=[op.output.type])
        new.result.name_hint = op.output.name_hint
        rewriter.replace_op(op, new)
        return True


class MergeTransposes(RewritePattern):
    """transpose(transpose(x, p1), p2) -> transpose(x, p1[p2]) (or x when that is the identity)."""

    OP = TransposeOp

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> bool:
        producer = getattr(op.input, "op", None)
        if not isinstance(producer, TransposeOp):
            return False
        rank = op.input.type.rank
        p1 = [p % rank for p in producer.perm]
        p2 = [p % rank for p in op.perm]
        perm = tuple(p1[i] for i in p2)
        if perm == tuple(range(rank)):
            rewriter.replace_op(op, [producer.input])
            return True
        new = rewriter.create(TransposeOp, producer.input, perm=perm, result_types=[op.output.type])
        new.result.name_hint = op.output.name_hint
        rewriter.replace_op(op, new)
        return True


_PATTERNS: dict[type, list[RewritePattern]] = {}


def patterns_for(cls: type) -> list[RewritePattern]:
    """The canonicalization patterns of a graph op class."""
    found = _PATTERNS.get(cls)
    if found is None:
        if cls in (ReshapeOp, FlattenOp):
            found = [MergeReshapes(cls)]
        elif cls is TransposeOp:
            found = [MergeTransposes()]
        else:
            found = []
        _PATTERNS[cls] = found
    return list(found)
