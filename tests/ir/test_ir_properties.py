"""Property-based tests: random modules round-trip through the text form and verify; mutated text
makes the parser raise ParseError (or succeed), never anything else."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fixflow.dialects.arith import AddIOp
from fixflow.dialects.builtin import FuncOp, ModuleOp, ReturnOp
from fixflow.ir import (Block, CallSiteLoc, FileLineColLoc, FusedLoc, NameLoc, Operation, ParseError, Region,
                        UNKNOWN_LOC, parse_attribute, parse_module, parse_type, print_module)
from fixflow.ir.attributes import (UNIT, ArrayAttr, BoolAttr, DenseArrayAttr, DenseElementsAttr,
                                   DenseResourceElementsAttr, DictionaryAttr, FloatAttr, IntegerAttr, OpaqueAttr,
                                   StringAttr, SymbolRefAttr, TypeAttr)
from fixflow.dialects.fix.types import FixedPointType
from fixflow.ir.types import (FunctionType, IntegerType, OpaqueType, TensorType,
                              UnrankedTensorType, bf16, f16, f32, f64, i1, i8, i16, i32, i64, index, numpy_dtype)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---- types -------------------------------------------------------------------------------------------
SCALARS = [i1, i8, i16, i32, i64, IntegerType(8, "unsigned"), IntegerType(32, "signed"), f16, bf16, f32, f64,
           index]
fixed_points = st.builds(FixedPointType, st.integers(1, 32), st.integers(-20, 20), st.booleans())
element_types = st.one_of(st.sampled_from(SCALARS), fixed_points)
shapes = st.lists(st.one_of(st.integers(0, 6), st.just(-1)), max_size=4)
idents = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True)
opaque_types = st.builds(OpaqueType, idents, st.one_of(idents,
                                                       idents.map(lambda s: s + '<1, "x>", a->b>')))
value_types = st.one_of(element_types, st.builds(TensorType, shapes, element_types),
                        st.builds(UnrankedTensorType, element_types), opaque_types)
types = st.recursive(value_types, lambda inner: st.builds(FunctionType, st.lists(inner, max_size=3),
                                                          st.lists(inner, max_size=3)), max_leaves=6)


# ---- attributes --------------------------------------------------------------------------------------
def _int_attr(t, data):
    if isinstance(t, IntegerType):
        w = t.width
        lo = 0 if t.signedness == "unsigned" else -(1 << (w - 1))
        hi = (1 << (w - 1)) - 1 if t.signedness == "signed" else (1 << w) - 1
        if t is i1:
            return None
        return st.integers(lo, hi).map(lambda v: IntegerAttr(v, t))
    return st.integers(-2 ** 63, 2 ** 63 - 1).map(lambda v: IntegerAttr(v, t))


int_attrs = st.sampled_from([i8, i16, i32, i64, IntegerType(8, "unsigned"), IntegerType(16, "signed"), index]) \
    .flatmap(lambda t: _int_attr(t, None))
float_attrs = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(lambda v: FloatAttr(v, f64)),
    st.floats(width=32, allow_nan=True).map(lambda v: FloatAttr(v, f32)),
    st.sampled_from([0.0, -0.0, 1.5, 65504.0, float("inf"), float("-inf"), float("nan")]).map(
        lambda v: FloatAttr(v, f16)))
strings = st.text(max_size=12)
names = st.text(min_size=1, max_size=12)  # attribute names and file names (MLIR rejects empty ones)
dense_elem_types = st.one_of(st.sampled_from([i1, i8, i16, i32, i64, IntegerType(8, "unsigned"), f16, f32, f64]),
                             fixed_points)


@st.composite
def dense_attrs(draw):
    et = draw(dense_elem_types)
    shape = draw(st.lists(st.integers(0, 5), max_size=3))
    if draw(st.booleans()):
        shape = [draw(st.integers(65, 90))]  # long enough for the hex form
    dtype = numpy_dtype(et)
    if isinstance(et, FixedPointType):
        elems = st.integers(et.qmin, et.qmax)
    elif dtype.kind == "f":
        elems = st.floats(width=dtype.itemsize * 8, allow_nan=True)
    else:
        elems = None
    arr = draw(hnp.arrays(dtype, shape, elements=elems))
    if draw(st.booleans()) and arr.size:
        arr = np.full(shape, arr.flat[0], dtype)  # splat
    return DenseElementsAttr(TensorType(shape, et), arr)


@st.composite
def resource_attrs(draw):
    et = draw(st.sampled_from([f32, i8, i32, FixedPointType(8, 3), FixedPointType(4, -1, False)]))
    shape = draw(st.lists(st.integers(0, 4), max_size=3))
    arr = draw(hnp.arrays(numpy_dtype(et), shape, elements=st.integers(0, 15) if et != f32 else
                          st.floats(width=32, allow_nan=False)))
    key = draw(st.one_of(idents, st.text(min_size=1, max_size=6)))
    return DenseResourceElementsAttr.from_array(key, arr, et)


dense_arrays = st.one_of(
    st.lists(st.integers(-2 ** 63, 2 ** 63 - 1), max_size=5).map(lambda v: DenseArrayAttr(i64, v)),
    st.lists(st.integers(-2 ** 31, 2 ** 31 - 1), max_size=5).map(lambda v: DenseArrayAttr(i32, v)),
    st.lists(st.booleans(), max_size=5).map(lambda v: DenseArrayAttr(i1, v)),
    st.lists(st.floats(width=32), max_size=5).map(lambda v: DenseArrayAttr(f32, v)),
    st.lists(st.floats(), max_size=5).map(lambda v: DenseArrayAttr(f64, v)))
leaf_attrs = st.one_of(
    int_attrs, float_attrs, st.booleans().map(BoolAttr), st.just(UNIT), strings.map(StringAttr),
    types.map(TypeAttr), st.builds(SymbolRefAttr, names, st.lists(names, max_size=2)), dense_arrays,
    dense_attrs(), st.builds(OpaqueAttr, idents, st.one_of(idents, idents.map(lambda s: s + "<[1], \">\">"))))
attributes = st.recursive(
    leaf_attrs,
    lambda inner: st.one_of(st.lists(inner, max_size=3).map(ArrayAttr),
                            st.dictionaries(names, inner, max_size=3).map(DictionaryAttr)),
    max_leaves=8)
op_attributes = st.dictionaries(names, st.one_of(attributes, resource_attrs()), max_size=3)


# ---- locations ------------------------------------------------------------------------------------------
leaf_locs = st.one_of(st.just(UNKNOWN_LOC), st.builds(FileLineColLoc, names, st.integers(0, 10 ** 6),
                                                      st.integers(0, 999)), strings.map(NameLoc))
locations = st.recursive(
    leaf_locs,
    lambda inner: st.one_of(st.builds(NameLoc, strings, inner), st.builds(CallSiteLoc, inner, inner),
                            st.lists(inner, max_size=3).map(FusedLoc)),
    max_leaves=4)

# name hints: arbitrary text, plus ones that look like the printer's own names
hints = st.one_of(st.none(), strings, st.sampled_from(["0", "arg0", "arg1", "x", "x_1", "1x", "a.b", "-"]))


# ---- modules ---------------------------------------------------------------------------------------------
@st.composite
def modules(draw):
    """A module of random generic ops (with regions, blocks, successors and multiple results) and a
    function of registered arith ops. Every use is dominated by its definition."""
    counter = [0]

    def fill_region(region: Region, visible: list, depth: int) -> None:
        n_blocks = draw(st.integers(1, 3)) if depth > 0 else 1
        blocks = [region.add_block(Block()) for _ in range(n_blocks)]
        for bi, block in enumerate(blocks):
            local = list(visible)
            if bi > 0 or depth > 0:
                for t in draw(st.lists(value_types, max_size=2)):
                    a = block.add_argument(t)
                    a.name_hint = draw(hints)
                    local.append(a)
            for _ in range(draw(st.integers(0, 4))):
                counter[0] += 1
                if counter[0] > 40:
                    break
                operands = draw(st.lists(st.sampled_from(local), max_size=3)) if local else []
                results = draw(st.lists(value_types, max_size=3))
                name = draw(st.sampled_from(["rnd.op", "rnd.other_op", "x.y.z", "rnd.op-with-dash"]))
                op = Operation(name, operands, results, draw(op_attributes), location=draw(locations))
                for r in op.results:
                    r.name_hint = draw(hints)
                if depth < 2 and draw(st.integers(0, 4)) == 0:
                    for _ in range(draw(st.integers(1, 2))):
                        fill_region(op.add_region(), local, depth + 1)
                block.append(op)
                local.extend(op.results)
            if n_blocks > 1:  # an entry block has no predecessors
                term = Operation("rnd.br", [], [], successors=draw(st.lists(st.sampled_from(blocks[1:]),
                                                                             min_size=1, max_size=2)))
                block.append(term)

    m = ModuleOp.empty()
    fill_region_into_block(m.body, fill_region, draw)
    f = FuncOp.create_function("arith_fn", [i32, i32], [i32])
    vals = list(f.args)
    for _ in range(draw(st.integers(0, 5))):
        op = AddIOp.build(draw(st.sampled_from(vals)), draw(st.sampled_from(vals)))
        op.result.name_hint = draw(hints)
        f.body.append(op)
        vals.append(op.result)
    f.body.append(ReturnOp.build([vals[-1]]))
    m.body.append(f)
    return m


def fill_region_into_block(block: Block, fill_region, draw) -> None:
    """Top level: a wrapper region's ops are moved into the module body."""
    tmp = Region()
    fill_region(tmp, [], 0)
    for op in list(tmp.blocks[0].ops):
        op.detach()
        block.append(op)


@SETTINGS
@given(modules(), st.booleans(), st.booleans())
def test_random_modules_round_trip_and_verify(m, locs, hint_names):
    m.verify()
    text = print_module(m, print_locations=locs, name_hints=hint_names)
    again = parse_module(text, "random.mlir", allow_unregistered=True)
    again.verify()
    assert print_module(again, print_locations=locs, name_hints=hint_names) == text
    assert [op.name for op in again.walk()] == [op.name for op in m.walk()]
    if locs:
        assert [op.location for op in again.walk()] == [op.location for op in m.walk()]
    assert print_module(m.clone(), print_locations=locs, name_hints=hint_names) == text  # deep clone


def _check_invariants(block: Block, values: list) -> None:
    """Use lists agree with operand lists; the intrusive op list is consistent."""
    from collections import Counter
    ops = list(block.ops)
    assert len(block) == len(ops)
    for a, b in zip(ops, ops[1:]):
        assert a.next_op is b and b.prev_op is a and a.parent is block
    assert (block.first_op, block.last_op) == ((ops[0], ops[-1]) if ops else (None, None))
    expected = {id(v): Counter() for v in values}
    for op in ops:
        for v in op.operands:
            expected[id(v)][op] += 1
    for v in values:
        assert v.uses == dict(expected[id(v)]), (v, v.uses, expected[id(v)])


@SETTINGS
@given(st.data())
def test_random_edits_keep_use_lists_consistent(data):
    block = Block([i32, i32])
    values = list(block.args)
    for _ in range(data.draw(st.integers(1, 30))):
        kind = data.draw(st.sampled_from(["create", "set_operand", "set_operands", "rauw", "erase", "move",
                                          "clone", "detach_reinsert"]))
        ops = list(block.ops)
        if kind == "create" or not ops:
            operands = data.draw(st.lists(st.sampled_from(values), max_size=3))
            op = Operation("e.op", operands, [i32] * data.draw(st.integers(0, 2)))
            block.append(op)
            values.extend(op.results)
        elif kind == "set_operand":
            op = data.draw(st.sampled_from(ops))
            if op.operands:
                op.set_operand(data.draw(st.integers(0, len(op.operands) - 1)), data.draw(st.sampled_from(values)))
        elif kind == "set_operands":
            data.draw(st.sampled_from(ops)).set_operands(data.draw(st.lists(st.sampled_from(values), max_size=3)))
        elif kind == "rauw":
            old, new = data.draw(st.sampled_from(values)), data.draw(st.sampled_from(values))
            old.replace_all_uses_with(new)
            assert not old.uses or old is new
        elif kind == "erase":
            op = data.draw(st.sampled_from(ops))
            if any(r.uses for r in op.results):
                continue  # erase() refuses; covered in test_ir_core
            op.erase()
            values = [v for v in values if getattr(v, "op", None) is not op]
        elif kind == "move":
            a, b = data.draw(st.sampled_from(ops)), data.draw(st.sampled_from(ops))
            if a is not b:
                a.move_after(b) if data.draw(st.booleans()) else a.move_before(b)
        elif kind == "clone":
            op = data.draw(st.sampled_from(ops))
            copy = block.insert_after(op, op.clone())
            values.extend(copy.results)
        else:
            op = data.draw(st.sampled_from(ops)).detach()
            block.prepend(op)
        _check_invariants(block, values)


@SETTINGS
@given(attributes)
def test_random_attributes_round_trip(a):
    text = a.text()
    b = parse_attribute(text)
    assert b == a and b.text() == text


@SETTINGS
@given(types)
def test_random_types_round_trip(t):
    assert parse_type(str(t)) is t


# ---- fuzzing the parser ---------------------------------------------------------------------------------
SEED_TEXTS = [
    '''"builtin.module"() ({
  "func.func"() ({
  ^bb0(%arg0: i32, %x: tensor<2x!fix.xint<8, -2>>):
    %0:2 = "test.two"(%arg0) {s = "a\\"b", d = {n = [1, 2.5 : f32, @sym::@x]}} : (i32) -> (i32, i32)
    %1 = "arith.addi"(%0#0, %0#1) : (i32, i32) -> i32 loc("f.py":3:4)
    "test.br"()[^bb1] : () -> ()
  ^bb1:
    %w = "test.def"() <{p = array<i64: 1, 2>}> {w = dense_resource<blob1> : tensor<2xf32>, u} : () -> i32
    "test.r"() ({
    ^bb0(%y: i32):
      "test.use"(%y, %w) : (i32, i32) -> ()
    }) : () -> () loc(fused["a":1:2, callsite("x" at "y":3:4)])
    "func.return"(%1) : (i32) -> ()
  }) {function_type = (i32, tensor<2x!fix.xint<8, -2>>) -> i32, sym_name = "main"} : () -> ()
}) : () -> ()
{-#
  dialect_resources: {
    builtin: {
      blob1: "0x040000000000803F00000040"
    }
  }
#-}
''',
    '''#loc = loc("m.py":1:1)
!t = tensor<4xf32>
"test.a"() {v = dense<[[1.0, 0x7F800000], [-2.5e-3, 4.0]]> : tensor<2x2xf32>, h = dense<"0x0102"> : tensor<2xi8>,
  s = dense<1> : tensor<3xi32>, e = dense<[]> : tensor<0xf32>, t = !t, o = #foo.bar<"x>">} : () -> () loc(#loc)
%a = "test.b"() : () -> !foo.thing<1, [2]>
"test.c"(%a) : (!foo.thing<1, [2]>) -> ()
''',
]
TOKENS = ['"', "%", "^", "#", "!", "@", "(", ")", "{", "}", "[", "]", "<", ">", "{-#", "#-}", ":", ",", "=", "->",
          "0x", "-", ".", "loc(", "dense<", "dense_resource<", "array<", "tensor<", "\\", "\n", " ", "%0", "i32",
          "f32", "//", "x", "9", "e", "::", "?"]


@st.composite
def mutated_texts(draw):
    text = draw(st.sampled_from(SEED_TEXTS))
    for _ in range(draw(st.integers(1, 10))):
        kind = draw(st.sampled_from(["delete", "insert", "swap", "token", "dup"]))
        i = draw(st.integers(0, max(len(text) - 1, 0)))
        j = min(len(text), i + draw(st.integers(1, 8)))
        if kind == "delete":
            text = text[:i] + text[j:]
        elif kind == "insert":
            text = text[:i] + draw(st.characters(codec="utf-8")) + text[i:]
        elif kind == "swap" and j < len(text):
            text = text[:i] + text[j] + text[i + 1:j] + text[i] + text[j + 1:]
        elif kind == "token":
            text = text[:i] + draw(st.sampled_from(TOKENS)) + text[j if draw(st.booleans()) else i:]
        else:
            text = text[:i] + text[i:j] * 2 + text[j:]
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_texts())
def test_fuzzed_text_only_raises_parse_errors(text):
    try:
        m = parse_module(text, "fuzz.mlir", allow_unregistered=True)
    except ParseError as e:
        e.render()  # rendering the diagnostic must not fail either
        return
    print_module(m, print_locations=True)  # whatever parsed must print


def test_seed_texts_parse():
    for text in SEED_TEXTS:
        m = parse_module(text, "seed.mlir", allow_unregistered=True)
        again = parse_module(print_module(m), allow_unregistered=True)
        assert print_module(again) == print_module(m)
    assume(True)
