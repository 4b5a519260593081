"""The parser rejects, with one located error, every constant text mlir-opt-22 rejects (and a few it reads as a
silently different value); the valid spellings next to each still parse to the right value."""

from __future__ import annotations

import math
import re

import pytest

from _parser_cases import ACCEPTED, COL, OP, REJECTED, SYNTAX_REJECTED
from fixflow.ir import FileLineColLoc, parse_module, print_module
from fixflow.ir.attributes import BoolAttr, DenseArrayAttr, FloatAttr, IntegerAttr, StringAttr
from fixflow.ir.diagnostics import FixflowError, ParseError
from fixflow.ir.parser import parse_attribute
from fixflow.ir.types import IntegerType, f16, f32, i8, i64


@pytest.mark.parametrize("attr", list(REJECTED))
def test_rejected_with_a_location(attr):
    offset, fragment = REJECTED[attr]
    with pytest.raises(ParseError) as info:
        parse_module(OP.format(attr), "c.mlir", allow_unregistered=True)
    err = info.value
    assert fragment in err.message, err.render()
    assert (err.filename, err.line, err.col) == ("c.mlir", 1, COL + offset), err.render()


@pytest.mark.parametrize("attr", list(ACCEPTED))
def test_valid_dense_literals_keep_their_values(attr):
    assert parse_attribute(attr).array.tolist() == ACCEPTED[attr]


def test_valid_scalars_and_arrays():
    assert parse_attribute("255 : i8") == IntegerAttr(255, i8)
    assert parse_attribute("-128 : i8") == IntegerAttr(-128, i8)
    assert parse_attribute("-1 : i1") == BoolAttr(True)
    assert parse_attribute("0 : i0") == IntegerAttr(0, IntegerType(0))
    assert parse_attribute("18446744073709551615") == IntegerAttr(2**64 - 1, i64)
    assert parse_attribute("1.") == FloatAttr(1.0)
    assert parse_attribute("1.e5") == FloatAttr(1e5)
    assert parse_attribute("6.5e4 : f16") == FloatAttr(65000.0, f16)
    assert parse_attribute("0x7F800000 : f32") == FloatAttr(math.inf, f32)
    assert parse_attribute("1.0e-400").value == 0.0  # underflow is not an error (MLIR agrees)
    assert parse_attribute("1 : i16777215").type == IntegerType(16777215)
    assert parse_attribute("array<i8: 255, -128, 0x10>") == DenseArrayAttr(i8, [255, -128, 16])
    assert parse_attribute("array<i1: true, false>").value == (True, False)
    assert parse_attribute('"\\0A\\n\\t\\"\\\\\\FF"') == StringAttr('\n\n\t"\\\udcff')


def test_huge_integer_literals_are_errors_or_values_never_crashes():
    big = "1" * 5000
    with pytest.raises(ParseError, match="out of range for i64"):
        parse_attribute(big)
    with pytest.raises(ParseError, match="out of range for i8"):
        parse_attribute(f"dense<[{big}]> : tensor<1xi8>")
    a = parse_attribute(f"{big} : i20000")  # fits: MLIR keeps it, so does fixflow
    assert a.value == int(big[:4000]) * 10**1000 + int(big[4000:])
    text = OP.format(f"{big} : i20000")
    assert print_module(parse_module(text, allow_unregistered=True)).count(big) == 1
    for bad in (f"%0:{big} = \"t.a\"() : () -> ()", f"\"t.a\"() : () -> tensor<{big}xi8>",
                f"%0 = \"t.a\"() : () -> i32\n\"t.b\"(%0#{big}) : (i32) -> ()", f"\"t.a\"() : () -> i{big}",
                f"\"t.a\"() : () -> () loc(\"f\":{big}:1)"):
        with pytest.raises(ParseError):
            parse_module(bad, allow_unregistered=True)


def test_resource_blobs_are_validated_where_they_are_written():
    def module(blob: str, extra: str = "") -> str:
        return ('"t.op"() {a = dense_resource<k> : tensor<2xi8>} : () -> ()\n{-#\n'
                f'  dialect_resources: {{ builtin: {{ k: "{blob}"{extra} }} }}\n#-}}\n')
    m = parse_module(module("0x040000000102"), allow_unregistered=True)
    assert m.body.first_op.attributes["a"].array.tolist() == [1, 2]
    for blob, fragment in [("0x0400000001zz", "not a hex blob"), ("0x04000000010", "not a hex blob"),
                           ("040000000102", "not a hex blob"), ("0x0102", "4-byte alignment")]:
        with pytest.raises(ParseError, match=fragment) as info:
            parse_module(module(blob), "r.mlir", allow_unregistered=True)
        assert (info.value.line, info.value.col) == (3, 38)
    with pytest.raises(ParseError, match="defined twice"):
        parse_module(module("0x040000000102", ', k: "0x040000000102"'), allow_unregistered=True)
    with pytest.raises(ParseError, match="or ',' between entries"):
        parse_module(module("0x040000000102", ' j: "0x040000000102"'), allow_unregistered=True)
    with pytest.raises(ParseError, match="expected a resource key"):  # no trailing comma (mlir-opt agrees)
        parse_module(module("0x040000000102", ","), allow_unregistered=True)


def test_locations_need_unsigned_32_bit_numbers():
    for loc in ('"f":-1:2', '"f":1:-2', '"f":4294967296:1', '"f":1:2 to -3:4'):
        with pytest.raises(ParseError):
            parse_module(f'"t.a"() : () -> () loc({loc})\n', allow_unregistered=True)
    op = parse_module('"t.a"() : () -> () loc("f":4294967295:0x10 to :3)\n', allow_unregistered=True).body.first_op
    assert op.location == FileLineColLoc("f", 4294967295, 16)


def test_op_names_may_not_hold_nul():
    with pytest.raises(ParseError, match="null character"):
        parse_module('"t.a\\00b"() : () -> ()\n', allow_unregistered=True)


def test_empty_module_prints_an_entry_block():
    for text in ("", '"builtin.module"() ({\n^bb0:\n}) : () -> ()\n'):
        out = print_module(parse_module(text))
        assert out == '"builtin.module"() ({\n^bb0:\n}) : () -> ()\n'
        assert print_module(parse_module(out)) == out


def test_many_ops_on_one_line_parse_like_separate_lines():
    ops = " ".join(f'%v{k} = "t.a"() {{i = {k} : i32}} : () -> tensor<2xf32>' for k in range(300))
    text = f'"builtin.module"() ({{ {ops} "t.end"(%v0, %v299) : (tensor<2xf32>, tensor<2xf32>) -> () }}) : () -> ()'
    one = parse_module(text, allow_unregistered=True)
    lines = parse_module(text.replace(" %v", "\n%v"), allow_unregistered=True)
    assert print_module(one) == print_module(lines)
    assert [op.location.col for op in one.body.ops][:300] == [text.index(f'%v{k} =') + 1 for k in range(300)]


@pytest.mark.parametrize("text", [OP.format("[" * 20000 + "]" * 20000),
                                  OP.format("dense<" + "[" * 20000 + "1" + "]" * 20000 + "> : tensor<1xi8>"),
                                  '"t.a"() ({' * 5000 + "}) : () -> ()" * 5000,
                                  '"t.a"() : () -> ' + "tensor<" * 5000 + "f32" + ">" * 5000,
                                  '"t.a"() : () -> () loc(' + "callsite(" * 5000 + '"a"' + ' at "b")' * 5000 + ")"],
                         ids=["array", "dense", "regions", "types", "locations"])
def test_deep_nesting_is_a_located_error(text):
    with pytest.raises(FixflowError) as info:
        parse_module(text, "deep.mlir", allow_unregistered=True)
    err = info.value
    assert err.filename == "deep.mlir" and err.line == 1 and len(err.message) < 200
    if "dense" in text:  # parsed without recursion: the shape is what is wrong
        assert err.col == COL + 6 and "(20000 dimensions)] differs from the type's [1]" in err.message
    else:
        assert err.col > 100 and "nesting too deep" in err.message  # where it got too deep, not the op start


@pytest.mark.parametrize("attr, col, fragment", [
    ("dense<[8, 2]> : tensor<2x!fix.xint<4, 3>>", 22, "integer constant 8 out of range for si4 (the range of !fix.xint<4, 3>)"),
    ("dense<[-1, 0]> : tensor<2x!fix.xuint<4, 3>>", 22, "negative integer literal"),
    ('dense<"0x08"> : tensor<2x!fix.xint<4, 3>>', 21, "hex data holds values outside [-8, 7]"),
    ("dense<[1, 2]> : tensor<3x!fix.xint<8, 0>>", 21, "shape [2] differs"),
])
def test_fixed_point_elements_stay_in_their_bit_width(attr, col, fragment):
    with pytest.raises(ParseError) as info:
        parse_module(OP.format(attr), "c.mlir", allow_unregistered=True)
    assert fragment in info.value.message and info.value.col == col, info.value.render()
    ok = parse_attribute("dense<[-8, 7]> : tensor<2x!fix.xint<4, 3>>")
    assert ok.array.tolist() == [-8, 7]
    assert parse_attribute(ok.text()) == ok


def test_a_resource_without_data_keeps_having_none():
    text = '"t.a"() {w = dense_resource<gone> : tensor<2xf32>} : () -> ()\n'
    out = print_module(parse_module(text, allow_unregistered=True))
    assert "dense_resource<gone>" in out and "{-#" not in out  # no invented (empty) blob
    again = parse_module(out, allow_unregistered=True).body.first_op.attributes["w"]
    with pytest.raises(ValueError, match="no data"):
        again.array


@pytest.mark.parametrize("text", list(SYNTAX_REJECTED))
def test_mlir_syntax_details(text):
    with pytest.raises(ParseError, match=re.escape(SYNTAX_REJECTED[text])):
        parse_module(text, allow_unregistered=True)


def test_balanced_bodies_typed_strings_and_external_resources_round_trip():
    text = ('%0 = "t.a"() {a = #t.attr<{x = [1, (2)]}, "}>">, s = "typed" : i32, f = affine_map<(d0) -> (d0)>} : '
            '() -> !t.ty<[<1>]>\n{-#\n  external_resources: { mlir_reproducer: { pipeline: "p", disable_threading: '
            'true } }\n#-}\n')
    m = parse_module(text, allow_unregistered=True)
    out = print_module(m)
    assert '#t.attr<{x = [1, (2)]}, "}>">' in out and 's = "typed" : i32' in out and "!t.ty<[<1>]>" in out
    assert print_module(parse_module(out, allow_unregistered=True)) == out


def test_error_messages_show_non_utf8_name_bytes_escaped():
    with pytest.raises(ParseError) as info:
        parse_module('"func.ret\\FFurn"() : () -> ()\n')
    assert info.value.message == "unknown operation 'func.ret\\FFurn' in dialect 'func'"
    info.value.render().encode("utf-8")  # printable on any UTF-8 stream


def test_fixed_point_resources_stay_in_their_bit_width():
    def module(data: str) -> str:
        return ('"t.a"() {w = dense_resource<k> : tensor<2x!fix.xint<4, 1>>} : () -> ()\n{-#\n'
                f'  dialect_resources: {{ builtin: {{ k: "0x04000000{data}" }} }}\n#-}}\n')
    ok = parse_module(module("07F8"), allow_unregistered=True).body.first_op.attributes["w"]
    assert ok.array.tolist() == [7, -8]
    with pytest.raises(ParseError, match=r"resource 'k' holds values outside \[-8, 7\]") as info:
        parse_module(module("0708"), "r.mlir", allow_unregistered=True)
    assert (info.value.line, info.value.col) == (1, 14)
