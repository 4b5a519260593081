"""Structural and op-definition verification (SSA scoping, operand/result/attribute rules, traits).

Each op class gets a *fast check*, compiled once from its declaration (`_compile_check`): straight-line
code that returns True only when the op certainly passes (its operands dominate it, its operand/result
counts, type constraints, attributes, region count and traits match the declaration), after running the
op's own `verify_()` and making its results visible. Whenever it cannot vouch for an op it returns False
before touching anything, and the general path (`_verify_op`) checks the op again and reports the exact
problem. So the fast check only decides how fast an op is accepted, never what is accepted.
"""

from __future__ import annotations

from typing import Callable

from .core import Block, BlockArgument, Operation, OpResult, Value
from .diagnostics import VerifyError
from .opdef import (OPTIONAL, SINGLE, AttrKind, IsolatedFromAbove, Op, SameOperandsAndResultType,
                    Terminator)

#: (op, visible values, list of values made visible) -> True if the op was verified and its results added
FastCheck = Callable[[Operation, set, list], bool]
_CHECKS: dict[type, FastCheck] = {}


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
                    _verify_block(block, inner, added, root)
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
                _verify_block(block, inner, new, root)
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


def _verify_block(block: Block, visible: set[Value], added: list[Value], root: Operation | None = None) -> None:
    """Verify the ops of `block` in order; each op's results become visible (and are appended to `added`)."""
    checks = _CHECKS
    op = block.first_op
    while op is not None:
        check = checks.get(op.__class__)
        if check is None:
            check = checks[op.__class__] = _compile_check(op.__class__)
        if not check(op, visible, added):
            if Terminator in op.TRAITS and op.next_op is not None:
                raise VerifyError("must be the last operation in its block", op)
            _verify_op(op, visible, root)
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


# ---- fast checks ----------------------------------------------------------------------------------
def _never(op: Operation, visible: set, added: list) -> bool:
    """The fast check of ops that always take the general path (regions, several variadic groups)."""
    return False


def _compile_check(cls: type) -> FastCheck:
    """Compile the fast check of op class `cls` from its declaration (see the module docstring).

    The generated function returns False, before changing anything, on the first condition it cannot
    vouch for; the general path then decides (and reports) exactly as without the fast check."""
    is_op = issubclass(cls, Op)
    if is_op and (cls.REGIONS or _variadic_groups(cls.OPERANDS) > 1 or _variadic_groups(cls.RESULTS) > 1):
        return _never
    env: dict = {}
    code = ["def check(op, visible, added):"]
    emit = code.append
    emit("    if op.regions" + (" or op.next_op is not None" if Terminator in cls.TRAITS else "")
         + ": return False")
    if not is_op:  # an unregistered op: only dominance
        emit("    for v in op._operands:")
        emit("        if v not in visible: return False")
        emit("    for v in op.results:")
        emit("        visible.add(v)")
        emit("        added.append(v)")
        emit("    return True")
        return _build(code, env)
    same = SameOperandsAndResultType in cls.TRAITS
    deferred: list = []  # with one type for all, fixed-count groups' constraints are checked once on it
    operands = _emit_group(code, "o", "op._operands", cls.OPERANDS, env, True, deferred if same else None)
    results = _emit_group(code, "r", "op.results", cls.RESULTS, env, False, deferred if same else None)
    if same:
        _emit_same_type(code, operands, results, deferred, env)
    _emit_attributes(code, cls.ATTRS, env)
    emit("    op.verify_()")
    if results[0] is not None:
        for v in results[0]:
            emit(f"    visible.add({v})")
            emit(f"    added.append({v})")
    else:
        emit("    for v in r:")
        emit("        visible.add(v)")
        emit("        added.append(v)")
    emit("    return True")
    return _build(code, env)


def _build(code: list[str], env: dict) -> FastCheck:
    exec(compile("\n".join(code) + "\n", "<fixflow fast verifier>", "exec"), env)  # noqa: S102
    return env["check"]


def _variadic_groups(defs: tuple) -> int:
    return sum(1 for d in defs if d.kind != SINGLE)


def _emit_group(code: list[str], var: str, expr: str, defs: tuple, env: dict, dominance: bool,
                deferred: list | None) -> tuple[list[str] | None, str]:
    """Emit the count, dominance (operands) and type-constraint checks of an operand or result group.

    With `deferred` (a list), the constraints of a fixed-count group are appended to it instead.
    Returns (the names of the single values when the count is fixed, else None; the list's name)."""
    emit = code.append
    emit(f"    {var} = {expr}")
    singles = len(defs) - _variadic_groups(defs)
    if singles == len(defs):  # fixed count: unpack into names
        names = [f"{var}{i}" for i in range(len(defs))]
        emit(f"    if len({var}) != {len(defs)}: return False")
        if names:
            emit(f"    {', '.join(names)}, = {var}")
            if dominance:
                emit("    if " + " or ".join(f"{n} not in visible" for n in names) + ": return False")
        for n, d in zip(names, defs):
            if d.constraint is not None:
                if deferred is not None:
                    deferred.append((n, d.constraint))
                else:
                    emit(f"    if not isinstance({n}.type, {_name(env, 'C', d.constraint)}): return False")
        return names, var
    k = next(i for i, d in enumerate(defs) if d.kind != SINGLE)
    after = len(defs) - k - 1
    if defs[k].kind == OPTIONAL:
        emit(f"    if not {singles} <= len({var}) <= {singles + 1}: return False")
    elif singles:
        emit(f"    if len({var}) < {singles}: return False")
    if dominance:
        emit(f"    for v in {var}:")
        emit("        if v not in visible: return False")
    for i, d in enumerate(defs):
        if d.constraint is None:
            continue
        c = _name(env, "C", d.constraint)
        if i < k:
            emit(f"    if not isinstance({var}[{i}].type, {c}): return False")
        elif i > k:
            emit(f"    if not isinstance({var}[{i - k - 1 - after}].type, {c}): return False")
        else:
            stop = f"len({var}) - {after}" if after else ""
            emit(f"    for v in {var}[{k}:{stop}]:")
            emit(f"        if not isinstance(v.type, {c}): return False")
    return None, var


def _emit_same_type(code: list[str], operands: tuple, results: tuple, deferred: list, env: dict) -> None:
    """SameOperandsAndResultType: every operand and result has the very same (interned) type object;
    then the `deferred` constraints (of fixed-count groups) are checked once, on that type."""
    emit = code.append
    if operands[0] is not None and results[0] is not None:
        names = operands[0] + results[0]
        if names:
            emit(f"    t = {names[0]}.type")
        if len(names) > 1:
            emit("    if " + " or ".join(f"{n}.type is not t" for n in names[1:]) + ": return False")
        for c in dict.fromkeys(c for _, c in deferred):
            emit(f"    if not isinstance(t, {_name(env, 'C', c)}): return False")
        return
    for n, c in deferred:
        emit(f"    if not isinstance({n}.type, {_name(env, 'C', c)}): return False")
    emit(f"    vs = [*{operands[1]}, *{results[1]}]")
    emit("    if vs:")
    emit("        t = vs[0].type")
    emit("        for v in vs:")
    emit("            if v.type is not t: return False")


def _emit_attributes(code: list[str], defs: tuple, env: dict) -> None:
    """Declared attributes: present when required, of an accepted kind and passing the kind's check."""
    if not defs:
        return
    emit = code.append
    emit("    a = op.attributes")
    for d in defs:
        emit(f"    x = a.get({d.name!r})")
        kind = d.kind
        if type(kind).check is AttrKind.check:
            bad = f"not isinstance(x, {_name(env, 'A', kind.accepts)})"
            if kind._check is not None:
                bad += f" or {_name(env, 'K', kind._check)}(x)"
        else:
            bad = f"{_name(env, 'K', kind.check)}(x)"
        if d.required:
            emit("    if x is None: return False")
            emit(f"    if {bad}: return False")
        else:
            emit(f"    if x is not None and ({bad}): return False")


def _name(env: dict, prefix: str, value: object) -> str:
    """The name under which `value` is available to generated code."""
    for k, v in env.items():
        if k.startswith(prefix) and v is value:
            return k
    key = f"{prefix}{len(env)}"
    env[key] = value
    return key
