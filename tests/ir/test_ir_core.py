"""Unit tests of the core IR data structures: use lists, erasure, walks, cloning, builders, types,
attribute conversion and declarative op definitions."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from fixflow.dialects.arith import AddIOp, ConstantOp, MulIOp
from fixflow.dialects.builtin import FuncOp, ModuleOp, ReturnOp
from fixflow.ir import (Block, Builder, FileLineColLoc, IRError, Operation, Region, VerifyError, parse_module,
                        print_module)
from fixflow.ir.attributes import (UNIT, ArrayAttr, BoolAttr, DenseArrayAttr, DenseElementsAttr,
                                   DictionaryAttr, FloatAttr, IntegerAttr, StringAttr, TypeAttr, from_attribute,
                                   to_attribute)
from fixflow.ir.opdef import (BOOL, ELEMENTS, FLOAT, I64_ARRAY, INT, STR, TYPE, Dialect, Enum, Op,
                              SameOperandsAndResultType, Terminator, attr, lookup_op_class, operand,
                              optional_operand, region, result, variadic_operand, variadic_result)
from fixflow.dialects.fix.types import FixedPointType
from fixflow.ir.types import (FloatType, FunctionType, IntegerType, TensorType, element_type_for,
                              f32, i1, i8, i32, i64, numpy_dtype)

# ---- a small test dialect ----------------------------------------------------------------------
irt = Dialect("irtcore")


@irt.op
class ConvLikeOp(Op):
    OP_NAME = "irtcore.conv"
    input = operand(TensorType)
    weight = operand(TensorType)
    bias = optional_operand(TensorType)
    output = result(TensorType)
    stride = attr(I64_ARRAY, default=(1, 1))
    mode = attr(Enum("zeros", "reflect"), default="zeros")
    groups = attr(INT, default=1)
    alpha = attr(FLOAT, default=None)
    label = attr(STR, default=None)

    def infer_types(self):
        return [self.input.type]

    def verify_(self):
        if self.groups < 1:
            raise self.error(f"groups must be positive, got {self.groups}")


@irt.op
class ConcatOp(Op):
    OP_NAME = "irtcore.concat"
    TRAITS = frozenset({SameOperandsAndResultType})
    inputs = variadic_operand()
    out = result()
    axis = attr(INT)


@irt.op
class TwoListsOp(Op):
    OP_NAME = "irtcore.two_lists"
    first = variadic_operand()
    second = variadic_operand()
    outs = variadic_result()
    flag = attr(BOOL, default=False)
    elem = attr(TYPE, default=None)
    weights = attr(ELEMENTS, default=None)


@irt.op
class YieldOp(Op):
    OP_NAME = "irtcore.yield"
    TRAITS = frozenset({Terminator})
    values = variadic_operand()

    def infer_types(self):
        return []


@irt.op
class ScopeOp(Op):
    OP_NAME = "irtcore.scope"
    body = region()
    outs = variadic_result()


def _func(inputs=(i32, i32), results=(i32,)):
    m = ModuleOp.empty()
    f = FuncOp.create_function("main", list(inputs), list(results))
    m.body.append(f)
    return m, f


def _gen(name, operands=(), types=(i32,), **kw):
    return Operation(name, list(operands), list(types), **kw)


# ---- use lists ---------------------------------------------------------------------------------
def test_use_lists_count_each_operand():
    a = _gen("t.a")
    b = _gen("t.b", [a.result, a.result])
    c = _gen("t.c", [a.result])
    v = a.result
    assert v.uses == {b: 2, c: 1}
    assert v.num_uses == 3 and set(v.users) == {b, c} and v.has_uses()
    b.set_operand(0, c.result)
    assert v.uses == {b: 1, c: 1} and c.result.uses == {b: 1}
    b.set_operands([c.result])
    assert v.uses == {c: 1} and c.result.uses == {b: 1}
    b.set_operand(0, c.result)  # no-op: same value
    assert c.result.uses == {b: 1}


def test_replace_all_uses_with_moves_every_use():
    a, x = _gen("t.a"), _gen("t.x")
    b = _gen("t.b", [a.result, a.result])
    c = _gen("t.c", [x.result, a.result])
    a.result.replace_all_uses_with(x.result)
    assert not a.result.uses
    assert b.operands == [x.result, x.result] and c.operands == [x.result, x.result]
    assert x.result.uses == {b: 2, c: 2} and x.result.num_uses == 4
    x.result.replace_all_uses_with(x.result)  # self-replacement keeps everything
    assert x.result.num_uses == 4


def test_replace_uses_where_and_op_level_replace():
    a, x = _gen("t.a"), _gen("t.x")
    b = _gen("t.b", [a.result])
    c = _gen("t.c", [a.result])
    a.result.replace_uses_where(x.result, lambda user: user is c)
    assert b.operands == [a.result] and c.operands == [x.result]
    two = _gen("t.two", types=(i32, i32))
    u = _gen("t.u", [two.results[1], two.results[0]])
    one, other = _gen("t.1"), _gen("t.2")
    two.replace_all_uses_with([one.result, other.result])
    assert u.operands == [other.result, one.result]
    with pytest.raises(IRError, match="needs 2 values"):
        two.replace_all_uses_with([one.result])
    with pytest.raises(IRError, match="not one"):
        two.result


def test_erase_refuses_used_results_and_drops_nested_uses():
    m, f = _func()
    b = Builder.at_end(f.body)
    add = b.create(AddIOp, f.args[0], f.args[1])
    ret = b.create(ReturnOp, [add.result])
    with pytest.raises(IRError, match=r"cannot erase 'arith.addi': result #0 is still used by func.return"):
        add.erase()
    assert add.parent is f.body
    ret.erase()
    add.erase()
    assert len(f.body) == 0 and not f.args[0].uses and not f.args[1].uses
    # erasing an op with a region drops the uses made from inside it
    outer = _gen("t.v")
    scope = ScopeOp.build(regions=[Region([Block()])], result_types=[])
    inner = _gen("t.use", [outer.result], ())
    scope.body.block.append(inner)
    assert outer.result.uses == {inner: 1}
    scope.erase()
    assert not outer.result.uses
    used = _gen("t.w")
    _gen("t.user", [used.result])
    used.erase(drop_uses=True)  # explicitly allowed


# ---- blocks and regions --------------------------------------------------------------------------
def test_block_linking_and_moves():
    blk = Block([i32])
    a, b, c, d = (_gen(n, types=()) for n in "abcd")
    blk.append(b)
    blk.prepend(a)
    blk.insert_after(b, d)
    blk.insert_before(d, c)
    assert [o.name for o in blk.ops] == list("abcd") and len(blk) == 4
    assert blk.index_of(c) == 2 and blk.first_op is a and blk.last_op is d
    with pytest.raises(IRError, match="already in a block"):
        blk.append(a)
    a.move_after(d)
    assert [o.name for o in blk] == list("bcda")
    a.move_before(b)
    assert [o.name for o in blk] == list("abcd")
    c.detach()
    assert [o.name for o in blk] == list("abd") and len(blk) == 3 and c.parent is None
    assert (b.prev_op, b.next_op) == (a, d)
    with pytest.raises(IRError, match="not in this block"):
        blk.index_of(c)
    use = _gen("t.use", [blk.args[0]], ())
    with pytest.raises(IRError, match="still used"):
        blk.erase_argument(0)
    use.drop_all_references()
    blk.add_argument(i64)
    blk.erase_argument(0)
    assert [a_.type for a_ in blk.args] == [i64] and blk.args[0].index == 0


def test_region_and_parent_links():
    m, f = _func()
    region = f.regions[0]
    assert region.parent is f and f.parent_op is m and f.parent_region is m.regions[0]
    ret = ReturnOp.build([f.args[0]])
    f.body.append(ret)
    assert ret.parent_op is f and ret.parent_block is f.body and m.is_ancestor_of(ret)
    assert not f.is_ancestor_of(m)
    region.add_block(Block())
    with pytest.raises(IRError, match="2 blocks"):
        region.block
    with pytest.raises(IRError, match="already belongs"):
        Region([f.body])
    with pytest.raises(IRError, match="already belongs"):
        _gen("t.x").add_region(region)


# ---- walks ---------------------------------------------------------------------------------------
def _nested():
    """module { func { a; scope { b; c }; d } }"""
    m, f = _func(results=())
    b = Builder.at_end(f.body)
    b.insert(_gen("t.a", types=()))
    scope = b.insert(ScopeOp.build(regions=[Region([Block()])], result_types=[]))
    inner = Builder.at_end(scope.body.block)
    inner.insert(_gen("t.b", types=()))
    inner.insert(_gen("t.c", types=()))
    b.insert(_gen("t.d", types=()))
    b.create(ReturnOp, [])
    return m


def test_walk_orders_and_filter():
    m = _nested()
    pre = [o.name for o in m.walk()]
    assert pre == ["builtin.module", "func.func", "t.a", "irtcore.scope", "t.b", "t.c", "t.d", "func.return"]
    post = [o.name for o in m.walk(post_order=True)]
    assert post == ["t.a", "t.b", "t.c", "irtcore.scope", "t.d", "func.return", "func.func", "builtin.module"]
    rev = [o.name for o in m.walk(reverse=True)]
    assert rev == ["builtin.module", "func.func", "func.return", "t.d", "irtcore.scope", "t.c", "t.b", "t.a"]
    assert [o.name for o in m.walk(reverse=True, post_order=True)] == pre[::-1]
    assert [o.name for o in m.walk(op_type=ScopeOp)] == ["irtcore.scope"]
    assert [o.name for o in m.walk(op_type=(FuncOp, ReturnOp))] == ["func.func", "func.return"]
    assert [o.name for o in m.walk(op_type=ModuleOp, post_order=True)] == ["builtin.module"]


def test_walk_tolerates_erasing_the_current_op():
    m = _nested()
    for op in m.walk():
        if op.name in ("t.a", "t.b", "t.d"):
            op.erase()
    assert [o.name for o in m.walk()] == ["builtin.module", "func.func", "irtcore.scope", "t.c", "func.return"]
    for op in m.walk(reverse=True):
        if op.name == "t.c":
            op.erase()
    assert [o.name for o in m.walk(op_type=ScopeOp)][0] == "irtcore.scope"


# ---- cloning -------------------------------------------------------------------------------------
def test_deep_clone_remaps_regions_args_and_successors():
    text = '''
"func.func"() ({
^bb0(%x: i32):
  %outer = "t.outer"() : () -> i32
  "t.cfg"() ({
  ^bb0(%a: i32):
    %s = "t.add"(%a, %outer) : (i32, i32) -> i32
    "t.br"()[^bb2] : () -> ()
  ^bb1:
    "t.br"()[^bb1] : () -> ()
  ^bb2:
    "t.ret"(%s) : (i32) -> ()
  }) : () -> ()
  "func.return"(%outer) : (i32) -> ()
}) {function_type = (i32) -> i32, sym_name = "f"} : () -> ()
'''
    m = parse_module(text, "clone.mlir", allow_unregistered=True)
    f = m.body.first_op
    cfg = next(o for o in f.walk() if o.name == "t.cfg")
    outer = cfg.prev_op.result
    copy = cfg.clone()
    assert copy is not cfg and type(copy) is type(cfg)
    r_old, r_new = cfg.regions[0], copy.regions[0]
    assert len(r_new.blocks) == 3 and r_new.parent is copy
    assert [a.type for a in r_new.blocks[0].args] == [i32] and r_new.blocks[0].args[0].name_hint == "a"
    add = r_new.blocks[0].first_op
    assert add.operands[0] is r_new.blocks[0].args[0]  # block argument remapped
    assert add.operands[1] is outer  # value from above kept
    assert outer.num_uses == 3  # original add, cloned add, func.return
    br0, br1 = r_new.blocks[0].last_op, r_new.blocks[1].last_op
    assert br0.successors == [r_new.blocks[2]]  # forward successor remapped
    assert br1.successors == [r_new.blocks[1]]
    assert r_new.blocks[2].first_op.operands == [add.result]
    for b_old in r_old.blocks:
        for op in b_old.ops:
            assert all(s in r_old.blocks for s in op.successors)
    # the clone prints like the original (standalone printing numbers both the same way)
    assert str(copy) == str(cfg)
    f.body.insert_after(cfg, copy)
    text_after = print_module(m)
    assert text_after.count('"t.cfg"') == 2
    parse_module(text_after, allow_unregistered=True)


def test_clone_with_value_map_and_attributes_are_copied():
    a, b = _gen("t.a"), _gen("t.b")
    op = _gen("t.use", [a.result], (i32, i64), attributes={"k": IntegerAttr(1)})
    op.results[0].name_hint = "hint"
    vmap = {a.result: b.result}
    c = op.clone(vmap)
    assert c.operands == [b.result] and not a.result.uses.get(c)
    assert vmap[op.results[1]] is c.results[1] and c.results[0].name_hint == "hint"
    c.attributes["k"] = IntegerAttr(2)
    assert op.attributes["k"] == IntegerAttr(1)


# ---- builder -------------------------------------------------------------------------------------
def test_builder_insertion_points():
    m, f = _func()
    x, y = f.args
    b = Builder.at_end(f.body)
    add = b.create(AddIOp, x, y)
    ret = b.create(ReturnOp, [add.result])
    Builder.before_op(ret).create(MulIOp, x, y)
    after = Builder.after_op(add)
    c1 = after.create(ConstantOp, value=IntegerAttr(1, i32))
    c2 = after.create(ConstantOp, value=IntegerAttr(2, i32))  # the point moves past each inserted op
    assert [o.name for o in f.body] == ["arith.addi", "arith.constant", "arith.constant", "arith.muli",
                                        "func.return"]
    assert c1.next_op is c2
    b.set_insertion_point_before(add)
    first = b.create(ConstantOp, value=IntegerAttr(0, i32))
    assert f.body.first_op is first
    b.set_insertion_point_after(ret)
    b.set_insertion_point_to_end(f.body)
    assert b.before is None and b.after is None
    m.verify()
    with pytest.raises(ValueError, match="no insertion point"):
        Builder().insert(_gen("t.x"))


def test_builder_locations():
    m, f = _func()
    loc = FileLineColLoc("model.py", 7, 3)
    op = Builder.at_end(f.body, location=loc).create(AddIOp, *f.args)
    assert op.location == loc
    op2 = Builder.at_end(f.body, capture_locations=True).create(AddIOp, *f.args); line = op2.location.line  # noqa: E702
    assert op2.location.filename == __file__
    import inspect
    src = inspect.getsource(test_builder_locations).splitlines()
    assert "capture_locations=True" in src[line - test_builder_locations.__code__.co_firstlineno]
    op3 = Builder.at_end(f.body).create(AddIOp, *f.args, location=FileLineColLoc("x", 1, 1))
    assert op3.location.filename == "x"


# ---- types and attribute conversion ------------------------------------------------------------------
def test_types_are_interned_and_pickle_to_the_same_object():
    t = TensorType([1, 3, 8, 8], FixedPointType(8, -2))
    assert t is TensorType((1, 3, 8, 8), FixedPointType(8, -2, True))
    assert t is not TensorType([1, 3, 8, 8], FixedPointType(8, -2, False))
    assert pickle.loads(pickle.dumps(t)) is t
    ft = FunctionType([t, i32], [f32])
    assert pickle.loads(pickle.dumps(ft)) is ft and str(ft) == "(tensor<1x3x8x8x!fix.xint<8, -2>>, i32) -> f32"
    assert IntegerType(32) is i32 and FloatType("f32") is f32
    assert t.rank == 4 and t.num_elements == 192 and t.has_static_shape()
    assert not TensorType([-1, 3], f32).has_static_shape() and str(TensorType([-1, 3], f32)) == "tensor<?x3xf32>"
    assert t.with_element_type(f32) is TensorType([1, 3, 8, 8], f32)
    with pytest.raises(ValueError):
        FixedPointType(33, 0)
    with pytest.raises(ValueError):
        FloatType("f8")


def test_fixed_point_ranges_and_dtypes():
    s8, u4, s12 = FixedPointType(8, 3), FixedPointType(4, -1, False), FixedPointType(12, 0)
    assert (s8.qmin, s8.qmax, u4.qmin, u4.qmax) == (-128, 127, 0, 15)
    assert numpy_dtype(s8) == np.int8 and numpy_dtype(u4) == np.uint8 and numpy_dtype(s12) == np.int16
    assert numpy_dtype(f32) == np.float32 and numpy_dtype(i1) == np.bool_
    for dt in (np.float16, np.float32, np.float64, np.int8, np.int32, np.uint8, np.bool_):
        assert numpy_dtype(element_type_for(dt)) == np.dtype(dt)
    with pytest.raises(ValueError):
        element_type_for(np.complex64)


def test_to_and_from_attribute():
    assert to_attribute(3) == IntegerAttr(3, i64) and to_attribute(True) == BoolAttr(True)
    assert to_attribute(2.5) == FloatAttr(2.5) and to_attribute("s") == StringAttr("s")
    assert to_attribute([1, 2]) == DenseArrayAttr(i64, [1, 2])
    assert to_attribute([1.0, 2.0]) == DenseArrayAttr(FloatType("f64"), [1.0, 2.0])
    assert to_attribute(["a", 1]) == ArrayAttr([StringAttr("a"), IntegerAttr(1)])
    assert to_attribute(None) is UNIT and to_attribute(i8) == TypeAttr(i8)
    d = to_attribute({"a": 1, "b": {"c": [True]}})
    assert isinstance(d, DictionaryAttr) and from_attribute(d) == {"a": 1, "b": {"c": [True]}}
    arr = np.arange(6, dtype=np.int8).reshape(2, 3)
    dense = to_attribute(arr)
    assert isinstance(dense, DenseElementsAttr) and dense.type is TensorType([2, 3], i8)
    assert np.array_equal(from_attribute(dense), arr) and not dense.array.flags.writeable
    with pytest.raises(TypeError):
        to_attribute(object())
    assert FloatAttr(0.1, f32).value == float(np.float32(0.1))
    assert FloatAttr(float("nan"), f32) == FloatAttr(float("nan"), f32)
    assert DenseArrayAttr(f32, [float("nan")]) == DenseArrayAttr(f32, [float("nan")])
    assert hash(DenseElementsAttr.from_array(arr)) == hash(DenseElementsAttr.from_array(arr.copy()))


# ---- declarative ops -----------------------------------------------------------------------------------
_BLOCK = Block()


def _tensor_values(*types):
    """Results of producer ops placed in a block (so an op using them verifies on its own)."""
    return [_BLOCK.append(_gen("t.src", types=(t,))).result for t in types]


def _placed(op):
    return _BLOCK.append(op)


def test_declared_op_defaults_accessors_and_optional_operand():
    t = TensorType([1, 4], f32)
    x, w, b = _tensor_values(t, t, t)
    op = _placed(ConvLikeOp.build(x, w, None, stride=(2, 2)))
    assert op.input is x and op.weight is w and op.bias is None
    assert op.stride == (2, 2) and op.mode == "zeros" and op.groups == 1 and op.alpha is None
    assert op.attributes["stride"] == DenseArrayAttr(i64, [2, 2]) and "alpha" not in op.attributes
    assert op.output.type is t
    op.alpha = 0.5
    assert op.attributes["alpha"] == FloatAttr(0.5) and op.alpha == 0.5
    op.alpha = None
    assert "alpha" not in op.attributes
    with_bias = _placed(ConvLikeOp.build(x, w, b))
    assert with_bias.bias is b and len(with_bias.operands) == 3
    op.verify()
    with_bias.verify()
    assert lookup_op_class("irtcore.conv") is ConvLikeOp
    with pytest.raises(IRError, match="no attribute field 'bogus'"):
        ConvLikeOp.build(x, w, bogus=1)
    with pytest.raises(IRError, match="must be a Value"):
        ConvLikeOp.build(x, "w")
    with pytest.raises(IRError, match="cannot infer"):
        TwoListsOp.build([x], [])


def test_variadic_operands_and_segment_sizes():
    a, b, c = _tensor_values(i32, i32, i32)
    cat = ConcatOp.build([a, b, c], axis=0)
    assert cat.inputs == [a, b, c] and cat.out.type is i32 and cat.axis == 0
    two = _placed(TwoListsOp.build([a], [b, c], result_types=[i32, i64, f32]))
    assert two.first == [a] and two.second == [b, c] and len(two.outs) == 3
    assert two.attributes["operandSegmentSizes"] == DenseArrayAttr(i32, [1, 2])
    two.weights = np.ones((2, 2), np.float32)
    assert isinstance(two.attributes["weights"], DenseElementsAttr) and two.weights.shape == (2, 2)
    two.verify()
    # the segment sizes survive the text round trip
    m, f = _func(results=())
    for op in (a.op, b.op, c.op, two):
        op.detach()
    f.body.add_ops([a.op, b.op, c.op, two, ReturnOp.build([])])
    again = parse_module(print_module(m), allow_unregistered=True)
    two2 = next(again.walk(op_type=TwoListsOp))
    assert len(two2.first) == 1 and len(two2.second) == 2


def _verify_message(op) -> str:
    with pytest.raises(VerifyError) as info:
        op.verify()
    return info.value.message


def test_verify_messages_of_declared_ops():
    t = TensorType([4], f32)
    x, w, y = _tensor_values(t, t, t)
    loc = FileLineColLoc("m.mlir", 3, 5)
    op = _placed(ConvLikeOp.build(x, w, location=loc))
    op.set_operands([x, w, y, y])
    assert _verify_message(op) == "'irtcore.conv' op expects operands (input, weight, bias?) but has 4"
    op.set_operands([x, _tensor_values(i32)[0]])
    assert _verify_message(op) == "'irtcore.conv' op operand 'weight' must be TensorType, got i32"
    op.set_operands([x, w])
    op.attributes["mode"] = StringAttr("wrap")
    assert _verify_message(op) == "'irtcore.conv' op attribute 'mode': expected one of zeros, reflect, got \"wrap\""
    op.attributes["mode"] = StringAttr("reflect")
    op.attributes["stride"] = DenseArrayAttr(i32, [1, 1])
    assert "attribute 'stride': expected array<i64: ...>" in _verify_message(op)
    op.stride = (1, 1)
    op.attributes["groups"] = StringAttr("x")
    assert _verify_message(op) == "'irtcore.conv' op attribute 'groups': expected integer, got \"x\""
    op.groups = 0
    with pytest.raises(VerifyError) as info:
        op.verify()
    assert info.value.bare_message == "groups must be positive, got 0"
    assert info.value.location == loc and info.value.render().startswith("m.mlir:3:5: error: 'irtcore.conv' op")
    cat = _placed(ConcatOp.build([x], axis=1))
    del cat.attributes["axis"]
    assert _verify_message(cat) == "'irtcore.concat' op requires attribute 'axis' (integer)"
    mixed = _placed(ConcatOp.build([x, _tensor_values(i32)[0]], axis=0, result_types=[t]))
    assert "requires the same type for all operands and results, got i32, tensor<4xf32>" in _verify_message(mixed)
    scope = ScopeOp.build(result_types=[])
    assert _verify_message(scope) == "'irtcore.scope' op expects 1 region(s) but has 0"
    two_blocks = ScopeOp.build(regions=[Region([Block(), Block()])], result_types=[])
    assert "region 'body' must have at most one block, has 2" in _verify_message(two_blocks)


def test_verify_structure_terminator_and_dominance():
    m, f = _func(results=())
    b = Builder.at_end(f.body)
    y = YieldOp.build([])
    b.insert(y)
    b.create(ReturnOp, [])
    assert _verify_message(m) == "'irtcore.yield' op must be the last operation in its block"
    y.erase()
    late = _gen("t.late")
    use = _gen("t.use", [late.result], ())
    f.body.prepend(late)
    f.body.prepend(use)
    assert "operand #0 does not dominate this use" in _verify_message(m)
    use.move_after(late)
    m.verify()
    # a value from inside an isolated op cannot be used from another function
    g = FuncOp.create_function("g", [], [])
    m.body.append(g)
    g.body.append(_gen("t.use", [late.result], ()))
    g.body.append(ReturnOp.build([]))
    assert "does not dominate" in _verify_message(m)
    f.verify()  # a nested op verifies on its own: values from above it are given
    use.verify()
    detached = _gen("t.use", [_gen("t.free").result], ())
    assert "does not dominate" in _verify_message(detached)  # a free-standing root checks everything


def test_func_verifier_messages():
    m, f = _func()
    f.body.append(ReturnOp.build([f.args[0], f.args[1]]))
    with pytest.raises(VerifyError) as info:
        m.verify()
    assert info.value.message == "'func.return' op returns (i32, i32) but the enclosing function's type is " \
                                 "(i32, i32) -> i32"
    f.body.last_op.erase()
    assert "must end with a terminator" in _verify_message(m)
    f.body.append(ReturnOp.build([f.args[0]]))
    m.verify()
    f.body.add_argument(i8)
    assert "entry block arguments (i32, i32, i8) do not match" in _verify_message(m)


def _cfg(body: str) -> ModuleOp:
    return parse_module('"test.cfg"() ({\n' + body + '}) : () -> ()\n', "cfg.mlir", allow_unregistered=True)


def test_verify_dominance_in_multi_block_regions():
    # %late is printed after its use but its block dominates the using block: valid (mlir-opt agrees)
    _cfg('  %0 = "t.entry"() : () -> i32\n  "t.br"()[^bb2] : () -> ()\n'
         '^bb1:\n  "t.use"(%0, %late) : (i32, i32) -> ()\n  "t.ret"() : () -> ()\n'
         '^bb2:\n  %late = "t.late"() : () -> i32\n  "t.br"()[^bb1] : () -> ()\n').verify()
    # ^bb2 does not dominate ^bb1 (the entry branches to both)
    bad = _cfg('  "t.br"()[^bb1, ^bb2] : () -> ()\n'
               '^bb1:\n  "t.use"(%late) : (i32) -> ()\n  "t.ret"() : () -> ()\n'
               '^bb2:\n  %late = "t.late"() : () -> i32\n  "t.br"()[^bb1] : () -> ()\n')
    with pytest.raises(VerifyError, match="operand #0 does not dominate this use") as info:
        bad.verify()
    assert (info.value.location.line, info.value.location.col) == (4, 3)
    # block arguments of a dominating block are visible; those of a sibling are not
    _cfg('  "t.br"()[^bb1] : () -> ()\n^bb1(%a: i32):\n  "t.br"()[^bb2] : () -> ()\n'
         '^bb2:\n  "t.use"(%a) : (i32) -> ()\n').verify()
    with pytest.raises(VerifyError, match="does not dominate"):
        _cfg('  "t.br"()[^bb1, ^bb2] : () -> ()\n^bb1(%a: i32):\n  "t.ret"() : () -> ()\n'
             '^bb2:\n  "t.use"(%a) : (i32) -> ()\n').verify()
    # within a block, a use must follow its definition, also in multi-block regions
    with pytest.raises(VerifyError, match="does not dominate"):
        _cfg('  "t.br"()[^bb1] : () -> ()\n^bb1:\n  "t.use"(%x) : (i32) -> ()\n  %x = "t.def"() : () -> i32\n'
             '  "t.br"()[^bb1] : () -> ()\n').verify()
    # an unreachable block is dominated by everything; nested regions see what their op sees
    _cfg('  %0 = "t.entry"() : () -> i32\n  "t.ret"() : () -> ()\n'
         '^bb1:\n  "t.use"(%1) : (i32) -> ()\n  "t.br"()[^bb2] : () -> ()\n'
         '^bb2:\n  %1 = "t.def"() : () -> i32\n  "t.nest"() ({\n    "t.use"(%0, %1) : (i32, i32) -> ()\n'
         '  }) : () -> ()\n  "t.br"()[^bb1] : () -> ()\n').verify()


def test_op_field_may_not_hide_operation_members():
    import pytest
    from fixflow.ir.opdef import Op, attr, operand
    with pytest.raises(TypeError, match="would hide Operation.results"):
        class _Bad(Op):  # noqa: F841
            OP_NAME = "x.bad"
            results = operand()
    with pytest.raises(TypeError, match="would hide Operation.location"):
        class _Bad2(Op):  # noqa: F841
            OP_NAME = "x.bad2"
            location = attr()


def test_function_may_end_in_an_unregistered_terminator():
    from fixflow.ir import parse_module
    m = parse_module('"builtin.module"() ({\n  "func.func"() ({\n  ^bb0(%a: i32):\n'
                     '    "my.ret"(%a) : (i32) -> ()\n  }) {function_type = (i32) -> i32, sym_name = "f"}'
                     ' : () -> ()\n}) : () -> ()\n', allow_unregistered=True)
    m.verify()
