"""The verifier's per-op-class fast checks accept exactly what the general path accepts.

For each kind of problem a fast check looks for, the check declines the op (returns False without making
anything visible) and `verify()` reports the same error as with fast checks switched off; a randomized
comparison covers combinations."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fixflow.dialects.builtin import FuncOp, ModuleOp, ReturnOp
from fixflow.ir import Block, Operation, Region, VerifyError, verifier
from fixflow.ir.attributes import DenseArrayAttr, IntegerAttr, StringAttr
from fixflow.ir.opdef import (I64_ARRAY, INT, Dialect, Enum, Op, SameOperandsAndResultType, Terminator, attr,
                              operand, optional_operand, result, variadic_operand, variadic_result)
from fixflow.ir.types import IntegerType, TensorType, f32, i32, i64

vf = Dialect("vfast")
T = TensorType([4], f32)


@vf.op
class BinOp(Op):
    OP_NAME = "vfast.bin"
    TRAITS = frozenset({SameOperandsAndResultType})
    lhs = operand(IntegerType)
    rhs = operand(IntegerType)
    out = result(IntegerType)


@vf.op
class ConvOp(Op):
    OP_NAME = "vfast.conv"
    input = operand(TensorType)
    weight = operand(TensorType)
    bias = optional_operand(TensorType)
    out = result(TensorType)
    stride = attr(I64_ARRAY, default=(1, 1))
    mode = attr(Enum("zeros", "reflect"), default="zeros")
    groups = attr(INT)

    def verify_(self) -> None:
        if self.groups < 1:
            raise self.error(f"groups must be positive, got {self.groups}")


@vf.op
class PackOp(Op):
    OP_NAME = "vfast.pack"
    head = operand(IntegerType)
    items = variadic_operand(TensorType)
    tail = operand(IntegerType)
    outs = variadic_result(TensorType)


@vf.op
class SameOp(Op):
    OP_NAME = "vfast.same"
    TRAITS = frozenset({SameOperandsAndResultType})
    inputs = variadic_operand()
    out = result()


@vf.op
class EndOp(Op):
    OP_NAME = "vfast.end"
    TRAITS = frozenset({Terminator})
    values = variadic_operand()


class _GeneralOnly(dict):
    """A stand-in for the fast-check table that makes every op take the general path."""

    def get(self, key, default=None):
        return verifier._never


def _outcome(root: Operation):
    try:
        root.verify()
    except VerifyError as e:
        return e.message, e.location, tuple(msg for msg, _ in e.notes)
    return None


def _same_as_general(root: Operation, monkeypatch) -> str | None:
    """Verify with and without fast checks; both must agree. Returns the error message (None if valid)."""
    fast = _outcome(root)
    with monkeypatch.context() as mp:
        mp.setattr(verifier, "_CHECKS", _GeneralOnly())
        general = _outcome(root)
    assert fast == general
    return None if fast is None else fast[0]


def _fast_accepts(op: Operation, visible: set) -> bool:
    """Run op's fast check alone; when it declines it must not have made anything visible."""
    check = verifier._compile_check(type(op))
    vis, added = set(visible), []
    try:
        ok = check(op, vis, added)
    except VerifyError:  # the op's own verify_(), run once its declaration is satisfied
        assert vis == set(visible) and added == []
        raise
    if ok:
        assert added == op.results and vis == set(visible) | set(op.results)
    else:
        assert vis == set(visible) and added == []
    return ok


def _func(*arg_types):
    m = ModuleOp.empty()
    f = FuncOp.create_function("main", list(arg_types), [])
    m.body.append(f)
    return m, f.body, list(f.args)


def _single(name: str, operands, result_types, attributes=None, regions=()):
    """A module whose function holds the op `name` (built without any checks) and a return."""
    types = [v for v in operands if not isinstance(v, int)]
    m, body, args = _func(*types)
    op = Operation.create(name, args, result_types, dict(attributes or {}), list(regions))
    body.append(op)
    body.append(ReturnOp.build([]))
    return m, op, set(args)


GOOD_CONV = {"groups": IntegerAttr(1, i64)}

# (case, op name, operand types, result types, attributes, regions, expected message or None)
CASES = [
    ("bin ok", "vfast.bin", [i32, i32], [i32], {}, 0, None),
    ("operand count", "vfast.bin", [i32, i32, i32], [i32], {}, 0, "expects operands (lhs, rhs) but has 3"),
    ("result count", "vfast.bin", [i32, i32], [i32, i32], {}, 0, "expects 1 result(s) but has 2"),
    ("constraint checked once on the common type", "vfast.bin", [T, T], [T], {}, 0,
     "operand 'lhs' must be IntegerType, got tensor<4xf32>"),
    ("same type", "vfast.bin", [i32, i64], [i32], {}, 0,
     "requires the same type for all operands and results, got i32, i64"),
    ("same type (result)", "vfast.bin", [i64, i64], [i32], {}, 0,
     "requires the same type for all operands and results, got i32, i64"),
    ("conv ok", "vfast.conv", [T, T], [T], GOOD_CONV, 0, None),
    ("conv ok with bias", "vfast.conv", [T, T, T], [T], GOOD_CONV, 0, None),
    ("optional: too many", "vfast.conv", [T, T, T, T], [T], GOOD_CONV, 0,
     "expects operands (input, weight, bias?) but has 4"),
    ("optional: too few", "vfast.conv", [T], [T], GOOD_CONV, 0, "expects operands (input, weight, bias?) but has 1"),
    ("optional operand's constraint", "vfast.conv", [T, T, i32], [T], GOOD_CONV, 0,
     "operand 'bias' must be TensorType, got i32"),
    ("result constraint", "vfast.conv", [T, T], [i32], GOOD_CONV, 0, "result 'out' must be TensorType, got i32"),
    ("required attribute", "vfast.conv", [T, T], [T], {}, 0, "requires attribute 'groups' (integer)"),
    ("attribute class", "vfast.conv", [T, T], [T], {"groups": StringAttr("x")}, 0,
     "attribute 'groups': expected integer, got \"x\""),
    ("attribute kind check", "vfast.conv", [T, T], [T], {**GOOD_CONV, "stride": DenseArrayAttr(i32, [1, 1])}, 0,
     "attribute 'stride': expected array<i64: ...>, got array<i32: 1, 1>"),
    ("enum", "vfast.conv", [T, T], [T], {**GOOD_CONV, "mode": StringAttr("wrap")}, 0,
     "attribute 'mode': expected one of zeros, reflect, got \"wrap\""),
    ("verify_", "vfast.conv", [T, T], [T], {"groups": IntegerAttr(0, i64)}, 0, "groups must be positive, got 0"),
    ("undeclared region", "vfast.conv", [T, T], [T], GOOD_CONV, 1, "expects 0 region(s) but has 1"),
    ("pack ok", "vfast.pack", [i32, T, T, i64], [T, T], {}, 0, None),
    ("pack ok, no items", "vfast.pack", [i32, i64], [], {}, 0, None),
    ("variadic: too few", "vfast.pack", [i32], [], {}, 0, "expects operands (head, items*, tail) but has 1"),
    ("variadic member's constraint", "vfast.pack", [i32, T, i32, i32], [], {}, 0,
     "operand 'items' must be TensorType, got i32"),
    ("operand after a variadic group", "vfast.pack", [i32, T, T], [], {}, 0,
     "operand 'tail' must be IntegerType, got tensor<4xf32>"),
    ("variadic result's constraint", "vfast.pack", [i32, i32], [T, i32], {}, 0,
     "result 'outs' must be TensorType, got i32"),
    ("same type, variadic", "vfast.same", [T, T], [T], {}, 0, None),
    ("same type, variadic, mixed", "vfast.same", [T, i32], [T], {}, 0,
     "requires the same type for all operands and results, got i32, tensor<4xf32>"),
    ("same type, no operands", "vfast.same", [], [i32], {}, 0, None),
    ("unregistered op", "other.op", [i32, T], [i64], {}, 0, None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_declaration_problem_is_caught(case, monkeypatch):
    _, name, operands, results, attributes, n_regions, expected = case
    regions = [Region([Block()]) for _ in range(n_regions)]
    m, op, visible = _single(name, operands, results, attributes, regions)
    if name == "vfast.conv" and attributes.get("groups") == IntegerAttr(0, i64):
        with pytest.raises(VerifyError, match=expected):
            _fast_accepts(op, visible)
    else:
        assert _fast_accepts(op, visible) == (expected is None)
    message = _same_as_general(m, monkeypatch)
    if expected is None:
        assert message is None
    else:
        assert message is not None and message.endswith(expected)


def test_dominance_is_checked_by_the_fast_path(monkeypatch):
    m, body, (a, b) = _func(i32, i32)
    late = Operation.create("vfast.bin", [a, b], [i32])
    use = Operation.create("vfast.bin", [a, late.results[0]], [i32])
    body.add_ops([use, late, ReturnOp.build([])])
    assert not _fast_accepts(use, {a, b}) and _fast_accepts(use, {a, b, late.results[0]})
    assert "operand #1 does not dominate this use" in _same_as_general(m, monkeypatch)
    # the same for an unregistered op
    m, body, (a,) = _func(i32)
    late = Operation.create("other.def", [], [i32])
    use = Operation.create("other.use", [late.results[0]], [])
    body.add_ops([use, late, ReturnOp.build([])])
    assert not _fast_accepts(use, {a})
    assert "operand #0 does not dominate this use" in _same_as_general(m, monkeypatch)


def test_terminator_must_be_last(monkeypatch):
    m, body, (a,) = _func(i32)
    end = Operation.create("vfast.end", [a], [])
    body.add_ops([end, ReturnOp.build([])])
    assert not _fast_accepts(end, {a})
    assert _same_as_general(m, monkeypatch).endswith("'vfast.end' op must be the last operation in its block")


def test_values_from_above_a_nested_root_are_given(monkeypatch):
    m, body, (a, b) = _func(i32, i32)
    op = Operation.create("vfast.bin", [a, b], [i32])
    body.add_ops([op, ReturnOp.build([])])
    assert not _fast_accepts(op, set())  # its operands are not visible from inside it ...
    assert _same_as_general(op, monkeypatch) is None  # ... but verifying it alone takes them as given


def test_ops_with_regions_nest_and_are_checked_inside(monkeypatch):
    m, body, (a,) = _func(i32)
    inner = Block()
    inner.append(Operation.create("vfast.bin", [a, a], [i64]))
    outer = Operation.create("other.scope", [], [], {}, [Region([inner])])
    body.add_ops([outer, ReturnOp.build([])])
    assert not _fast_accepts(outer, {a})
    assert "requires the same type" in _same_as_general(m, monkeypatch)


TYPES = [i32, i64, T]
ATTRS = [{}, GOOD_CONV, {"groups": IntegerAttr(0, i64)}, {"groups": StringAttr("x")},
         {**GOOD_CONV, "stride": DenseArrayAttr(i32, [1])}, {**GOOD_CONV, "mode": StringAttr("reflect")}]
NAMES = ["vfast.bin", "vfast.conv", "vfast.pack", "vfast.same", "vfast.end", "other.op"]


@st.composite
def _programs(draw):
    """1-4 random ops over the function's arguments and earlier (or later) results, then a return."""
    m, body, args = _func(i32, i64, T)
    ops = []
    for _ in range(draw(st.integers(1, 4))):
        pool = args + [r for o in ops for r in o.results]
        operands = draw(st.lists(st.sampled_from(pool), max_size=4))
        results = draw(st.lists(st.sampled_from(TYPES), max_size=2))
        regions = [Region([Block()])] if draw(st.integers(0, 9)) == 0 else []
        ops.append(Operation.create(draw(st.sampled_from(NAMES)), operands, results,
                                    dict(draw(st.sampled_from(ATTRS))), regions))
    order = draw(st.permutations(ops))
    body.add_ops(list(order) + [ReturnOp.build([])])
    return m


@settings(max_examples=300)
@given(_programs())
def test_fast_and_general_paths_agree_on_random_ops(m):
    with pytest.MonkeyPatch.context() as mp:
        _same_as_general(m, mp)


def test_every_registered_op_class_compiles_a_fast_check():
    from fixflow.ir.opdef import registered_dialects
    classes = [cls for d in registered_dialects().values() for cls in d.ops.values()]
    assert len(classes) > 20
    for cls in classes:
        check = verifier._compile_check(cls)
        assert callable(check)
        if not cls.REGIONS and verifier._variadic_groups(cls.OPERANDS) <= 1 \
                and verifier._variadic_groups(cls.RESULTS) <= 1:
            assert check is not verifier._never, cls.OP_NAME
