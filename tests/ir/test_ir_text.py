"""Text round trips of the generic MLIR syntax: every type and attribute, locations, multiple
results, multi-block regions with successors, forward references and the resources section."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fixflow.ir.diagnostics import ParseError

from fixflow.dialects.arith import AddIOp, ConstantOp
from fixflow.dialects.builtin import FuncOp, ModuleOp, ReturnOp
from fixflow.ir import (CallSiteLoc, FileLineColLoc, FusedLoc, NameLoc, Operation, UNKNOWN_LOC, parse_attribute,
                        parse_module, parse_type, print_module)
from fixflow.ir.attributes import (UNIT, ArrayAttr, BoolAttr, DenseArrayAttr, DenseElementsAttr,
                                   DenseResourceElementsAttr, DictionaryAttr, FloatAttr, IntegerAttr,
                                   LocationAttr, OpaqueAttr, StringAttr, SymbolRefAttr, TypeAttr)
from fixflow.dialects.fix.types import FixedPointType
from fixflow.ir.types import (FunctionType, IntegerType, NoneType, OpaqueType, TensorType,
                              UnrankedTensorType, bf16, f16, f32, f64, i1, i8, i16, i32, i64, index)

TYPES = [
    i1, i8, i32, i64, IntegerType(16, "signed"), IntegerType(8, "unsigned"), f16, bf16, f32, f64, index,
    NoneType(), FixedPointType(8, 4), FixedPointType(8, -3), FixedPointType(4, 0, False),
    FixedPointType(16, -12, False), TensorType([], f32), TensorType([1, 3, 224, 224], f32),
    TensorType([-1, 4], i8), TensorType([0], f32), TensorType([2, 2], FixedPointType(8, -7)),
    UnrankedTensorType(f16), FunctionType([], []), FunctionType([i32], [i32, i64]),
    FunctionType([i32], [FunctionType([f32], [f32])]), OpaqueType("foo", "bar<1, \"x>\", a->b>"),
    OpaqueType("foo", ""), TensorType([3], OpaqueType("q", "t<3>")),
]


@pytest.mark.parametrize("t", TYPES, ids=str)
def test_every_type_prints_and_parses_back(t):
    assert parse_type(str(t)) is t


def test_type_text_forms():
    assert str(FixedPointType(8, -2)) == "!fix.xint<8, -2>"
    assert str(FixedPointType(4, 1, False)) == "!fix.xuint<4, 1>"
    assert str(FunctionType([i32], [])) == "(i32) -> ()"
    assert str(FunctionType([], [FunctionType([], [])])) == "() -> (() -> ())"
    assert parse_type("tensor<1x?x8xf32>") is TensorType([1, -1, 8], f32)


def _arr(*a, dtype=np.float32):
    return np.array(a, dtype=dtype)


ATTRS = [
    IntegerAttr(0), IntegerAttr(-5, i32), IntegerAttr(2 ** 63 - 1), IntegerAttr(-2 ** 63), IntegerAttr(255, IntegerType(8, "unsigned")),
    IntegerAttr(7, index), BoolAttr(True), BoolAttr(False), UNIT,
    FloatAttr(1.5), FloatAttr(-0.0), FloatAttr(1e300), FloatAttr(5e-324), FloatAttr(0.1, f32), FloatAttr(2.0, f16),
    FloatAttr(float("inf"), f32), FloatAttr(float("-inf"), f32), FloatAttr(float("nan"), f32),
    FloatAttr(float("inf")), FloatAttr(float("nan")), FloatAttr(float("inf"), f16), FloatAttr(float("-inf"), bf16),
    StringAttr(""), StringAttr("plain"), StringAttr('quote " and \\ backslash'), StringAttr("nl\nand\ttab"),
    StringAttr("ctrl \x01\x7f and unicode é✓"), StringAttr("//not a comment"),
    ArrayAttr([]), ArrayAttr([IntegerAttr(1), StringAttr("a"), ArrayAttr([UNIT, ArrayAttr([])])]),
    DenseArrayAttr(i64, []), DenseArrayAttr(i64, [1, -2, 3]), DenseArrayAttr(i32, [7]), DenseArrayAttr(i1, [True, False]),
    DenseArrayAttr(f32, [1.5, float("inf"), -0.25]), DenseArrayAttr(f64, [float("nan"), 1e-10]), DenseArrayAttr(f32, []),
    DictionaryAttr({}), DictionaryAttr({"a": IntegerAttr(1), "b": UNIT, "nested": DictionaryAttr({"c": DictionaryAttr({})}),
                                        "needs quotes": StringAttr("v"), "x.y$z": BoolAttr(True)}),
    TypeAttr(f32), TypeAttr(FixedPointType(8, -1)), TypeAttr(FunctionType([i32], [])),
    TypeAttr(TensorType([2], FixedPointType(8, 3))),
    SymbolRefAttr("main"), SymbolRefAttr("outer", ["inner", "leaf"]), SymbolRefAttr("with space"),
    SymbolRefAttr("1starts_with_digit"),
    DenseElementsAttr.from_array(np.zeros((2, 3), np.float32)),  # splat
    DenseElementsAttr.from_array(_arr(1.0, -2.5, 3.25)),
    DenseElementsAttr.from_array(_arr([[1, 2], [3, 4]], [[5, 6], [7, 8]], dtype=np.int8)),  # nested
    DenseElementsAttr.from_array(np.arange(100, dtype=np.float32).reshape(10, 10)),  # hex
    DenseElementsAttr.from_array(np.arange(-50, 50, dtype=np.int16)),  # hex, negative
    DenseElementsAttr.from_array(np.arange(65, dtype=np.uint8)),
    DenseElementsAttr.from_array(_arr(float("inf"), float("nan"), -1.0)),
    DenseElementsAttr.from_array(np.array([True, False, True])),
    DenseElementsAttr.from_array(np.array([True] * 70 + [False] * 30)),
    DenseElementsAttr.from_array(np.zeros((0, 3), np.float32)),  # empty
    DenseElementsAttr.from_array(np.array(2.5, np.float32)),  # rank 0
    DenseElementsAttr(TensorType([2, 2], FixedPointType(8, -3)), np.array([[1, -128], [127, 4]])),
    DenseElementsAttr(TensorType([70], FixedPointType(4, 2, False)), np.arange(70) % 16),
    OpaqueAttr("foo", "bar<1, \"x>\">"), OpaqueAttr("foo", ""),
    LocationAttr(NameLoc("conv1", FileLineColLoc("model.py", 10, 5))),
]


@pytest.mark.parametrize("a", ATTRS, ids=lambda a: a.text()[:40])
def test_every_attribute_prints_and_parses_back(a):
    text = a.text()
    b = parse_attribute(text)
    assert b == a
    assert b.text() == text


def test_attribute_text_forms():
    assert FloatAttr(float("inf"), f32).text() == "0x7F800000 : f32"
    assert FloatAttr(float("-inf")).text() == "0xFFF0000000000000 : f64"
    assert FloatAttr(float("inf"), f16).text() == "0x7C00 : f16"
    assert FloatAttr(1e-7, f64).text() == "1.0e-07 : f64"
    assert StringAttr('a"b\\c\n\x01é').text() == r'"a\"b\\c\n\01\C3\A9"'
    assert DenseArrayAttr(i64, []).text() == "array<i64>"
    assert DenseElementsAttr.from_array(np.zeros((2, 3), np.float32)).text() == "dense<0.0> : tensor<2x3xf32>"
    assert DenseElementsAttr.from_array(np.zeros((0, 3), np.float32)).text() == "dense<> : tensor<0x3xf32>"
    assert parse_attribute("dense<[]> : tensor<0xf32>").array.shape == (0,)
    fx = DenseElementsAttr(TensorType([2, 3], FixedPointType(8, 1)), np.array([[1, -1, 2], [3, 4, 5]]))
    assert fx.text() == 'dense<"0x01FF02030405"> : tensor<2x3x!fix.xint<8, 1>>'  # MLIR takes only hex here
    assert DenseElementsAttr(TensorType([3], FixedPointType(8, 1)), np.array([7, 7, 7])).text() == \
        'dense<"0x07"> : tensor<3x!fix.xint<8, 1>>'  # hex splat
    hexed = DenseElementsAttr.from_array(np.arange(65, dtype=np.int8)).text()
    assert hexed.startswith('dense<"0x000102') and hexed.endswith('40"> : tensor<65xi8>')
    assert SymbolRefAttr("a", ["b"]).text() == "@a::@b" and SymbolRefAttr("a b").text() == '@"a b"'
    assert DictionaryAttr({"u": UNIT, "a b": IntegerAttr(1, i16)}).text() == '{u, "a b" = 1 : i16}'


def test_parser_accepts_mlir_spellings():
    assert parse_attribute("1.0 : f32") == FloatAttr(1.0, f32)
    assert parse_attribute("0x3F800000 : f32") == FloatAttr(1.0, f32)
    assert parse_attribute("1 : i1") == BoolAttr(True)
    assert parse_attribute("-1 : i1") == BoolAttr(True)  # (mlir-opt rejects `true : i1`)
    assert parse_attribute('"s" : i32').text() == '"s" : i32'  # typed string: the type is kept
    assert parse_attribute("-0x10 : i32") == IntegerAttr(-16, i32)
    assert parse_attribute("dense<[1, 2]> : tensor<2xi32>").array.tolist() == [1, 2]
    assert parse_attribute('dense<"0x0100000002000000"> : tensor<2xi32>').array.tolist() == [1, 2]
    assert parse_attribute('dense<"0x07000000"> : tensor<3xi32>').array.tolist() == [7, 7, 7]  # hex splat
    assert parse_attribute("dense<[[0x7F800000, 1.0]]> : tensor<1x2xf32>").array[0, 0] == np.inf
    assert parse_attribute("array<i64: 0x10, -3>") == DenseArrayAttr(i64, [16, -3])
    assert parse_attribute("{a = 1, b}") == DictionaryAttr({"a": IntegerAttr(1), "b": UNIT})
    loc = parse_attribute('loc("f":1:2 to 3:4)').value
    assert loc == FileLineColLoc("f", 1, 2)
    assert isinstance(parse_attribute("affine_map<(d0) -> (d0)>"), OpaqueAttr)


def test_dense_attrs_keep_numpy_values_without_python_objects():
    w = np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32)
    a = parse_attribute(DenseElementsAttr.from_array(w).text())
    assert a.array.dtype == np.float32 and np.array_equal(a.array, w)
    fx = parse_attribute(DenseElementsAttr(TensorType([4], FixedPointType(8, 5)), np.array([-128, 0, 1, 127])).text())
    assert fx.array.dtype == np.int8 and fx.array.tolist() == [-128, 0, 1, 127]


# ---- resources -------------------------------------------------------------------------------------
def _module_with(attrs: dict, name="m") -> ModuleOp:
    m = ModuleOp.empty()
    m.body.append(Operation("test.holder", [], [], attrs))
    return m


def test_dense_resource_section_round_trip_with_alignment_prefix():
    w = np.arange(12, dtype=np.float32).reshape(3, 4) / 8
    q = np.array([[-1, 2], [3, -4]], dtype=np.int8)
    m = _module_with({"w": DenseResourceElementsAttr.from_array("conv1.weight", w),
                      "q": DenseResourceElementsAttr.from_array("q", q, FixedPointType(8, 2)),
                      "e": DenseResourceElementsAttr.from_array("empty", np.zeros((0,), np.float32))})
    text = print_module(m)
    assert "dense_resource<conv1.weight> : tensor<3x4xf32>" in text
    assert "dense_resource<q> : tensor<2x2x!fix.xint<8, 2>>" in text
    section = text[text.index("{-#"):]
    assert section.startswith("{-#\n  dialect_resources: {\n    builtin: {\n")
    expected_hex = "0x04000000" + w.tobytes().hex().upper()  # 4-byte LE alignment, then little-endian data
    assert f'conv1.weight: "{expected_hex}"' in section
    assert 'empty: "0x04000000"' in section
    again = parse_module(text, allow_unregistered=True)
    holder = again.body.first_op
    assert np.array_equal(holder.attributes["w"].array, w) and holder.attributes["w"].array.dtype == np.float32
    assert holder.attributes["q"].array.tolist() == q.tolist()
    assert holder.attributes["e"].array.shape == (0,)
    assert holder.attributes["w"].blob.alignment == 4
    assert print_module(again) == text


def test_resource_keys_are_deduplicated_and_quoted():
    a = DenseResourceElementsAttr.from_array("w", np.ones(2, np.float32))
    b = DenseResourceElementsAttr.from_array("w", np.zeros(2, np.float32))
    c = DenseResourceElementsAttr.from_array("needs quoting/1", np.zeros(2, np.float32))
    m = _module_with({"a": a, "b": b, "c": c, "a2": a})
    text = print_module(m)
    assert "a = dense_resource<w>" in text and "b = dense_resource<w_1>" in text and "a2 = dense_resource<w>" in text
    assert 'dense_resource<"needs quoting/1">' in text and '"needs quoting/1": "0x04000000' in text
    again = parse_module(text, allow_unregistered=True).body.first_op
    assert again.attributes["a"].array.tolist() == [1, 1] and again.attributes["b"].array.tolist() == [0, 0]
    assert again.attributes["c"].array.tolist() == [0, 0]


def test_resource_inside_array_and_dict_attrs_and_missing_data():
    r = DenseResourceElementsAttr.from_array("r", np.array([1, 2], np.int32))
    m = _module_with({"arr": ArrayAttr([r]), "d": DictionaryAttr({"k": r})})
    text = print_module(m)
    assert text.count('r: "0x04000000') == 1
    again = parse_module(text, allow_unregistered=True).body.first_op
    assert again.attributes["arr"][0].array.tolist() == [1, 2]
    assert again.attributes["d"].value["k"].array.tolist() == [1, 2]
    nodata = parse_module('"test.h"() {w = dense_resource<gone> : tensor<2xf32>} : () -> ()',
                          allow_unregistered=True).body.first_op.attributes["w"]
    with pytest.raises(ValueError, match="no data"):
        nodata.array
    with pytest.raises(ParseError, match="<stdin>:1:17: error: resource 'k' holds 1 bytes but tensor<2xf32> needs 8"):
        parse_module('"test.h"() {w = dense_resource<k> : tensor<2xf32>} : () -> ()\n'
                     '{-#\n dialect_resources: { builtin: { k: "0x0400000001" } }\n#-}\n', allow_unregistered=True)


def test_external_resources_are_skipped_other_dialect_resources_rejected():
    text = ('"test.h"() {w = dense_resource<k> : tensor<1xi8>} : () -> ()\n{-#\n'
            '  dialect_resources: { builtin: { k: "0x0100000005" } },\n'
            '  external_resources: { mlir_reproducer: { pipeline: "builtin.module(cse)" } }\n#-}\n')
    op = parse_module(text, allow_unregistered=True).body.first_op
    assert op.attributes["w"].array.tolist() == [5]
    with pytest.raises(ParseError, match="unexpected resources of dialect 'other'"):  # mlir-opt rejects them too
        parse_module(text.replace("{ builtin:", '{ other: { z: "0x00" }, builtin:'), allow_unregistered=True)


# ---- locations ---------------------------------------------------------------------------------------
LOCS = [
    UNKNOWN_LOC, FileLineColLoc("model.py", 12, 4), FileLineColLoc('we"ird\\name.py', 1, 1),
    NameLoc("conv1"), NameLoc("features.0.conv", FileLineColLoc("net.py", 30, 9)),
    FusedLoc([FileLineColLoc("a.py", 1, 1), NameLoc("bn")]),
    CallSiteLoc(NameLoc("inner"), FileLineColLoc("caller.py", 5, 2)),
    FusedLoc([CallSiteLoc(FileLineColLoc("x", 1, 2), FusedLoc([UNKNOWN_LOC])), NameLoc("n", NameLoc("m"))]),
]


@pytest.mark.parametrize("loc", LOCS, ids=lambda l: l.print())
def test_locations_round_trip_on_ops(loc):
    m = _module_with({})
    m.body.first_op.location = loc
    text = print_module(m, print_locations=True)
    assert loc.print() in text
    again = parse_module(text, "x.mlir", allow_unregistered=True)
    assert again.body.first_op.location == loc
    assert print_module(again, print_locations=True) == text


def test_location_describe_and_file_line_col():
    assert FileLineColLoc("a.py", 3, 4).describe() == "a.py:3:4"
    assert NameLoc("conv", FileLineColLoc("a.py", 3, 4)).describe() == "a.py:3:4 (conv)"
    assert CallSiteLoc(NameLoc("f"), FileLineColLoc("c.py", 1, 2)).file_line_col() == FileLineColLoc("c.py", 1, 2)
    assert FusedLoc([NameLoc("x"), FileLineColLoc("b", 9, 9)]).file_line_col().line == 9
    assert NameLoc("x").describe() == "x"


def test_parsed_ops_keep_line_and_column():
    text = ('"builtin.module"() ({\n'
            '  "func.func"() ({\n'
            '  ^bb0(%a: i32):\n'
            '      %0 = "arith.addi"(%a, %a) : (i32, i32) -> i32\n'
            '    %big = "arith.addi"(%0, %0) {x = 1} : (i32, i32) -> i32 // comment\n'
            '    "func.return"(%big) : (i32) -> ()\n'
            '  }) {function_type = (i32) -> i32, sym_name = "f"} : () -> ()\n'
            '}) : () -> ()\n')
    m = parse_module(text, "locs.mlir")
    got = [(op.name, op.location.line, op.location.col) for op in m.walk()]
    assert got == [("builtin.module", 1, 1), ("func.func", 2, 3), ("arith.addi", 4, 7), ("arith.addi", 5, 5),
                   ("func.return", 6, 5)]
    assert all(op.location.filename == "locs.mlir" for op in m.walk())


def test_location_aliases_and_explicit_locations_override():
    text = ('#loc = loc("orig.py":7:8)\n#loc1 = loc("conv1"(#loc))\n'
            '"test.a"() : () -> () loc(#loc1)\n'
            '"test.b"() {l = #loc} : () -> () loc(fused<"meta">["a.py":1:1, "b.py":2:2])\n')
    m = parse_module(text, "alias.mlir", allow_unregistered=True)
    a, b = m.body.ops
    assert a.location == NameLoc("conv1", FileLineColLoc("orig.py", 7, 8))
    assert b.location == FusedLoc([FileLineColLoc("a.py", 1, 1), FileLineColLoc("b.py", 2, 2)])
    assert b.attributes["l"] == LocationAttr(FileLineColLoc("orig.py", 7, 8))


# ---- ops, regions and SSA names ------------------------------------------------------------------------
CFG = '''"builtin.module"() ({
  "func.func"() ({
  ^bb0(%arg0: i32, %x: tensor<2x!fix.xint<8, -2>>):
    %0:2 = "test.two"(%arg0) : (i32) -> (i32, i32)
    %1 = "arith.addi"(%0#0, %0#1) : (i32, i32) -> i32
    "test.br"()[^bb1] : () -> ()
  ^bb1:
    %fwd = "test.def"(%later) {w = dense_resource<blob1> : tensor<2xf32>} : (i32) -> i32
    "test.cond"(%1)[^bb1, ^bb2] : (i32) -> ()
  ^bb2:
    %later = "test.late"(%fwd) : (i32) -> i32
    "test.region"() ({
      "test.inner"(%later, %1) : (i32, i32) -> ()
    }, {
    ^bb3(%y: i32):
      "test.inner"(%y) : (i32) -> ()
    }) : () -> ()
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
'''


def test_multi_result_multi_block_forward_refs_round_trip():
    m = parse_module(CFG, "cfg.mlir", allow_unregistered=True)
    assert print_module(m) == CFG  # the canonical text is its own fixed point
    f = m.body.first_op
    entry, bb1, bb2 = f.regions[0].blocks
    two = entry.first_op
    add = two.next_op
    assert len(two.results) == 2 and add.operands == [two.results[0], two.results[1]]
    assert entry.last_op.successors == [bb1] and bb1.last_op.successors == [bb1, bb2]
    fwd, late = bb1.first_op, bb2.first_op
    assert fwd.operands == [late.result] and late.operands == [fwd.result]  # a cycle through the CFG
    assert fwd.result.name_hint == "fwd" and late.result.uses
    reg = late.next_op
    assert len(reg.regions) == 2 and reg.regions[1].blocks[0].args[0].name_hint == "y"
    assert reg.regions[0].blocks[0].first_op.operands == [late.result, add.result]
    assert np.array_equal(fwd.attributes["w"].array, [1.0, 2.0])


def test_printer_numbers_unnamed_values_and_uniquifies_hints():
    m = ModuleOp.empty()
    f = FuncOp.create_function("f", [i32], [i32])
    m.body.append(f)
    c = ConstantOp.build(value=IntegerAttr(1, i32))
    a1 = AddIOp.build(f.args[0], c.result)
    a2 = AddIOp.build(a1.result, a1.result)
    a3 = AddIOp.build(a2.result, a2.result)
    for op in (c, a1, a2, a3):
        f.body.append(op)
    f.body.append(ReturnOp.build([a3.result]))
    a1.result.name_hint = "sum"
    a2.result.name_hint = "sum"
    a3.result.name_hint = "9 bad-name!"
    f.args[0].name_hint = "input"
    text = print_module(m)
    assert '%0 = "arith.constant"() {value = 1 : i32} : () -> i32' in text
    assert '%sum = "arith.addi"(%input, %0)' in text and '%sum_1 = "arith.addi"(%sum, %sum)' in text
    assert '%_9_bad-name_ = "arith.addi"(%sum_1, %sum_1)' in text
    plain = print_module(m, name_hints=False)
    assert '%1 = "arith.addi"(%arg0, %0)' in plain and '"func.return"(%3)' in plain
    for t in (text, plain):
        again = parse_module(t)
        again.verify()
        assert print_module(again, name_hints=False) == plain


def test_isolated_regions_restart_numbering_and_hide_outer_values():
    text = ('"func.func"() ({\n  %0 = "test.a"() : () -> i32\n  "func.return"() : () -> ()\n'
            '}) {function_type = () -> (), sym_name = "a"} : () -> ()\n'
            '"func.func"() ({\n  %0 = "test.b"() : () -> i32\n  "func.return"() : () -> ()\n'
            '}) {function_type = () -> (), sym_name = "b"} : () -> ()\n')
    m = parse_module(text, allow_unregistered=True)
    out = print_module(m)
    assert out.count('%0 = "test') == 2
    from fixflow.ir import ParseError
    bad = text.replace('"func.return"() : () -> ()\n}) {function_type = () -> (), sym_name = "b"}',
                       '"test.use"(%x) : (i32) -> ()\n  "func.return"() : () -> ()\n}) '
                       '{function_type = () -> (), sym_name = "b"}')
    bad = bad.replace('%0 = "test.a"', '%x = "test.a"')
    with pytest.raises(ParseError, match="undeclared SSA value '%x'"):
        parse_module(bad, allow_unregistered=True)


def test_top_level_ops_are_wrapped_in_a_module_and_properties_are_attributes():
    m = parse_module('%0 = "test.a"() <{p = 1 : i32}> {q} : () -> i32\n"test.b"(%0) : (i32) -> ()\n',
                     allow_unregistered=True)
    assert isinstance(m, ModuleOp) and [o.name for o in m.body.ops] == ["test.a", "test.b"]
    a = m.body.first_op
    assert a.attributes == {"p": IntegerAttr(1, i32), "q": UNIT}
    assert math.isclose(parse_attribute("1.5e3 : f32").value, 1500.0)
