"""Text-format edge cases: MLIR builtin syntax (affine maps), properties vs attributes, non-UTF-8 string
bytes, nesting limits."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from fixflow.ir import ParseError, parse_attribute, parse_module, print_module
from fixflow.ir.attributes import StringAttr


MLIR_OPT = shutil.which("mlir-opt-22")


# ---- text format ---------------------------------------------------------------------------------------
def test_affine_map_prints_as_mlir_builtin_syntax():
    text = '"test.a"() {m = affine_map<(d0) -> (d0 + 1)>} : () -> ()\n'
    out = print_module(parse_module(text, allow_unregistered=True))
    assert "m = affine_map<(d0) -> (d0 + 1)>" in out and "#builtin" not in out
    assert print_module(parse_module(out, allow_unregistered=True)) == out


@pytest.mark.skipif(MLIR_OPT is None, reason="mlir-opt-22 is not installed")
def test_affine_map_round_trip_accepted_by_mlir_opt():
    text = '"test.a"() {m = affine_map<(d0, d1) -> (d1, d0)>, s = strided<[4, 1]>} : () -> ()\n'
    out = print_module(parse_module(text, allow_unregistered=True))
    proc = subprocess.run([MLIR_OPT, "--allow-unregistered-dialect"], input=out, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_property_and_attribute_with_the_same_name_is_an_error_not_a_silent_drop():
    with pytest.raises(ParseError, match="also a property") as info:
        parse_module('"test.a"() <{p = 1}> {p = 2} : () -> ()\n', "x.mlir", allow_unregistered=True)
    assert "x.mlir:1:23" in str(info.value.render())
    m = parse_module('"test.a"() <{p = 1}> {q = 2} : () -> ()\n', allow_unregistered=True)
    assert set(m.body.first_op.attributes) == {"p", "q"}


def test_non_utf8_string_bytes_round_trip():
    attr = parse_attribute(r'"\FF\FEa\0A\C3\BC"')
    assert isinstance(attr, StringAttr)
    assert attr.text() == r'"\FF\FEa\n\C3\BC"'
    assert parse_attribute(attr.text()) == attr


@pytest.mark.parametrize("text", [
    '"builtin.module"() ({\n' + '"test.r"() ({\n' * 3000 + '}) : () -> ()\n' * 3000 + '}) : () -> ()\n',
    '"test.a"() {a = ' + "[" * 5000 + "]" * 5000 + "} : () -> ()\n",
    '"test.a"() {a = ' + "{b = " * 3000 + "1" + "}" * 3000 + "} : () -> ()\n",
    '"test.a"() : () -> () loc(' + "callsite(" * 3000 + '"a"' + ' at "b")' * 3000 + ")\n",
], ids=["regions", "arrays", "dictionaries", "locations"])
def test_deep_nesting_is_a_parse_error_with_a_location(text):
    with pytest.raises(ParseError, match="nesting too deep") as info:
        parse_module(text, "deep.mlir", allow_unregistered=True)
    assert info.value.location.file_line_col().filename == "deep.mlir"
