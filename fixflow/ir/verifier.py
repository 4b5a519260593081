"""Structural and op-definition verification (SSA scoping, operand/result/attribute rules, traits)."""

from __future__ import annotations

from .core import Block, BlockArgument, Operation, OpResult, Value
from .diagnostics import VerifyError
from .opdef import (OPTIONAL, SINGLE, IsolatedFromAbove, Op, SameOperandsAndResultType, Terminator)


def verify(root: Operation) -> None:
    """Verify `root` and everything nested in it; raise `VerifyError` on the first problem.

    When `root` is nested in a block, values defined outside it (above it) are taken as given."""
    _verify_op(root, set(), root if root.parent is not None else None)


def _from_outside(v: Value, root: Operation | None) -> bool:
    """Is `v` defined outside the nested op `root` being verified (so not ours to check)?"""
    if root is None:
        return False
    if isinstance(v, OpResult):
        owner = v.op
        if owner.parent is None:
            return False
    elif isinstance(v, BlockArgument):
        if v.block.parent is None:
            return False
        owner = v.block.parent_op
        if owner is None:
            return True
    else:
        return False
    return not root.is_ancestor_of(owner)


def _verify_op(op: Operation, visible: set[Value], root: Operation | None = None) -> None:
    for i, v in enumerate(op._operands):
        if v not in visible and not _from_outside(v, root):
            owner = getattr(v, "op", None)
            notes = [("operand defined here", owner.location)] if owner is not None else []
            raise VerifyError(f"operand #{i} does not dominate this use (it is defined later, "
                              f"in another scope, or not at all)", op, notes)
    if isinstance(op, Op):
        _verify_definition(op)
    if op.regions:
        isolated = IsolatedFromAbove in op.TRAITS
        for region in op.regions:
            inner = set() if isolated else visible
            blocks = region.blocks
            if len(blocks) <= 1:
                added: list[Value] = []
                for block in blocks:
                    for a in block.args:
                        inner.add(a)
                        added.append(a)
                    _verify_block(block, inner, added, True, root)
                if not isolated:
                    for v in added:
                        visible.discard(v)
                continue
            doms = _dominators(blocks)
            for block in blocks:
                # a block sees the values of the blocks that dominate it (all of them when unreachable)
                dom = doms.get(block)
                added = []
                for b in blocks:
                    if b is block or (dom is not None and b not in dom):
                        continue
                    added.extend(b.args)
                    for child in b.ops:
                        added.extend(child.results)
                added.extend(block.args)
                new = [v for v in added if v not in inner]
                inner.update(new)
                _verify_block(block, inner, new, True, root)
                for v in new:
                    inner.discard(v)
    if isinstance(op, Op):
        op.verify_()  # after the nested ops, so the innermost problem is reported


def _dominators(blocks: list[Block]) -> dict[Block, set[Block]]:
    """For each block reachable from the entry (the first block), the blocks that dominate it."""
    succs = {b: [s for op in b.ops for s in op.successors] for b in blocks}
    entry = blocks[0]
    order, seen, stack = [], {entry}, [entry]
    while stack:
        b = stack.pop()
        order.append(b)
        for s in succs[b]:
            if s not in seen and s in succs:
                seen.add(s)
                stack.append(s)
    preds: dict[Block, list[Block]] = {b: [] for b in order}
    for b in order:
        for s in succs[b]:
            if s in preds:
                preds[s].append(b)
    everything = set(order)
    dom = {b: ({b} if b is entry else set(everything)) for b in order}
    changed = True
    while changed:
        changed = False
        for b in order:
            if b is entry:
                continue
            new = set.intersection(*(dom[p] for p in preds[b])) | {b} if preds[b] else {b}
            if new != dom[b]:
                dom[b] = new
                changed = True
    return dom


def _verify_block(block: Block, visible: set[Value], added: list[Value], define: bool,
                  root: Operation | None = None) -> None:
    op = block.first_op
    while op is not None:
        if Terminator in op.TRAITS and op.next_op is not None:
            raise VerifyError("must be the last operation in its block", op)
        _verify_op(op, visible, root)
        if define:
            for r in op.results:
                visible.add(r)
                added.append(r)
        op = op.next_op


def _count_ok(n: int, defs: tuple) -> bool:
    singles = sum(1 for d in defs if d.kind == SINGLE)
    variadic = sum(1 for d in defs if d.kind != SINGLE)
    if variadic == 0:
        return n == singles
    if all(d.kind == OPTIONAL or d.kind == SINGLE for d in defs) and variadic:
        return singles <= n <= singles + variadic
    return n >= singles


def _verify_definition(op: Op) -> None:
    cls = type(op)
    if not _count_ok(len(op._operands), cls.OPERANDS):
        names = ", ".join(d.name + ("?" if d.kind == OPTIONAL else "*" if d.kind != SINGLE else "")
                          for d in cls.OPERANDS)
        raise VerifyError(f"expects operands ({names}) but has {len(op._operands)}", op)
    if not _count_ok(len(op.results), cls.RESULTS):
        raise VerifyError(f"expects {len(cls.RESULTS)} result(s) but has {len(op.results)}", op)
    for group, what in ((cls.OPERANDS, "operand"), (cls.RESULTS, "result")):
        for d in group:
            if d.constraint is None:
                continue
            vals = d.__get__(op, cls)
            vals = [vals] if isinstance(vals, Value) else (vals or [])
            for v in vals:
                if not isinstance(v.type, d.constraint):
                    raise VerifyError(f"{what} '{d.name}' must be {_constraint_name(d.constraint)}, "
                                      f"got {v.type}", op)
    for d in cls.ATTRS:
        a = op.attributes.get(d.name)
        if a is None:
            if d.required:
                raise VerifyError(f"requires attribute '{d.name}' ({d.kind.name})", op)
            continue
        problem = d.kind.check(a)
        if problem:
            raise VerifyError(f"attribute '{d.name}': {problem}", op)
    if len(op.regions) != len(cls.REGIONS):
        raise VerifyError(f"expects {len(cls.REGIONS)} region(s) but has {len(op.regions)}", op)
    for d, r in zip(cls.REGIONS, op.regions):
        if d.single_block and len(r.blocks) > 1:
            raise VerifyError(f"region '{d.name}' must have at most one block, has {len(r.blocks)}", op)
    if SameOperandsAndResultType in cls.TRAITS:
        types = {v.type for v in op._operands} | {r.type for r in op.results}
        if len(types) > 1:
            raise VerifyError("requires the same type for all operands and results, got "
                              + ", ".join(sorted(str(t) for t in types)), op)


def _constraint_name(c) -> str:
    if isinstance(c, tuple):
        return " or ".join(x.__name__ for x in c)
    return c.__name__
