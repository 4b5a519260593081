"""Regression tests for problems found by reviewing the core IR, the text format, passes and fixflow-opt
as a demanding user (each test fails without its fix)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from fixflow.ir import ParseError, parse_attribute, parse_module, print_module
from fixflow.ir.attributes import StringAttr
from fixflow.ir.diagnostics import FixflowError, PassError
from fixflow.ir.passes import Pass, PassManager, load_pass_plugin, register_pass
from fixflow.tools.opt import main as opt_main

MLIR_OPT = shutil.which("mlir-opt-22")

FUNC = ('"builtin.module"() ({\n  "func.func"() ({\n  ^bb0(%a: i32):\n{body}'
        '    "func.return"(%a) : (i32) -> ()\n  }) {function_type = (i32) -> i32, sym_name = "f"} : () -> ()\n'
        '}) : () -> ()\n')


def _func(body: str) -> str:
    return FUNC.replace("{body}", body)


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


def test_deep_nesting_from_the_cli(tmp_path, capsys):
    f = tmp_path / "deep.mlir"
    f.write_text('"test.a"() {a = ' + "[" * 5000 + "]" * 5000 + "} : () -> ()\n")
    assert opt_main([str(f), "--allow-unregistered-dialect"]) == 1
    err = capsys.readouterr().err
    assert f"{f}:1:" in err and "nesting too deep" in err and "internal error" not in err


# ---- passes --------------------------------------------------------------------------------------------
FOLD = _func('    %c = "arith.constant"() {value = 2 : i32} : () -> i32\n'
             '    %x = "arith.addi"(%c, %c) : (i32, i32) -> i32\n')


def test_canonicalize_max_iterations_minus_one_means_no_limit(capsys):
    m = parse_module(FOLD)
    PassManager.parse("canonicalize{max-iterations=-1}").run(m)
    assert "arith.addi" not in print_module(m)
    with pytest.raises(PassError, match="max_iterations must be positive"):
        PassManager.parse("canonicalize{max-iterations=0}").run(parse_module(FOLD))


def test_plugin_pass_that_raises_names_the_pass(tmp_path, capsys):
    plugin = tmp_path / "crashy_plugin.py"
    plugin.write_text("from fixflow.ir.passes import Pass, register_pass\n\n@register_pass\nclass Crash(Pass):\n"
                      "    NAME = 'review-crash'\n    SUMMARY = 'raises'\n\n    def run(self, module):\n"
                      "        return {}['missing']\n")
    f = tmp_path / "in.mlir"
    f.write_text(FOLD)
    assert opt_main([str(f), "--load-pass-plugin", str(plugin), "-p", "review-crash"]) == 1
    err = capsys.readouterr().err
    assert "pass 'review-crash'" in err and "KeyError" in err and f"{plugin}:9" in err
    assert "internal error" not in err


def test_plugin_cannot_silently_take_a_builtin_pass_name(tmp_path):
    plugin = tmp_path / "dup_plugin.py"
    plugin.write_text("from fixflow.ir.passes import Pass, register_pass\n\n@register_pass\nclass Canon(Pass):\n"
                      "    NAME = 'canonicalize'\n    SUMMARY = 'dup'\n\n    def run(self, module):\n        pass\n")
    with pytest.raises(FixflowError, match="'canonicalize' .* already registered by fixflow.passes.generic"):
        load_pass_plugin(str(plugin))


def test_reregistering_the_same_pass_class_is_fine():
    def make():
        class Same(Pass):
            NAME = "review-same"
            SUMMARY = "x"

            def run(self, module):
                pass
        return Same
    register_pass(make())
    register_pass(make())  # same module and qualname: e.g. a notebook cell run twice


# ---- fixflow-opt ---------------------------------------------------------------------------------------
def test_split_input_file_reports_errors_of_every_chunk(tmp_path, capsys):
    f = tmp_path / "m.mlir"
    f.write_text('"builtin.module"() ({\n  %0 = "arith.addi"(%x, %x) : (i32, i32) -> i32\n}) : () -> ()\n'
                 '// -----\n"builtin.module"() ({\n}) : () -> ()\n// -----\n'
                 '"builtin.module"() ({\n  %0 = "arith.constant"() : () -> i32\n}) : () -> ()\n')
    assert opt_main([str(f), "--split-input-file"]) == 1
    captured = capsys.readouterr()
    assert f"{f}:2:21: error" in captured.err and f"{f}:9:3: error" in captured.err
    assert captured.out.count('"builtin.module"') == 1


def _verify(tmp_path, capsys, text: str) -> tuple[int, str]:
    f = tmp_path / "d.mlir"
    f.write_text(text)
    code = opt_main([str(f), "--verify-diagnostics"])
    return code, capsys.readouterr().err


def test_verify_diagnostics_above_and_below_skip_designator_lines(tmp_path, capsys):
    above = ('"builtin.module"() ({\n  %0 = "arith.addi"(%nope, %nope) : (i32, i32) -> i32\n'
             '  // expected-remark @above {{not produced}}\n'
             '  // expected-error @above {{use of undeclared SSA value}}\n}) : () -> ()\n')
    code, err = _verify(tmp_path, capsys, above)
    assert code == 1 and "unexpected" not in err and 'expected remark "not produced"' in err
    below = ('"builtin.module"() ({\n  // expected-error @below {{use of undeclared SSA value}}\n'
             '  // expected-warning @below {{not produced}}\n'
             '  %0 = "arith.addi"(%nope, %nope) : (i32, i32) -> i32\n}) : () -> ()\n')
    code, err = _verify(tmp_path, capsys, below)
    assert code == 1 and "unexpected" not in err and 'expected warning "not produced"' in err


def test_verify_diagnostics_ignore_matching_lines_of_other_files(tmp_path, capsys):
    text = _func('    // expected-error @+1 {{requires the same type}}\n'
                 '    %x = "arith.addi"(%a, %a) : (i32, i32) -> i64 loc("other.py":5:1)\n')
    code, err = _verify(tmp_path, capsys, text)
    assert code == 1 and "other.py:5: unexpected error" in err and "was not produced" in err


def test_verify_diagnostics_unknown_location_and_regex(tmp_path, capsys):
    unknown = _func('    // expected-error @unknown {{requires the same type}}\n'
                    '    %x = "arith.addi"(%a, %a) : (i32, i32) -> i64 loc(unknown)\n')
    assert _verify(tmp_path, capsys, unknown)[0] == 0
    regex = _func('    // expected-error-re @+1 {{requires the {{[a-z]+}} type for all operands}}\n'
                  '    %x = "arith.addi"(%a, %a) : (i32, i32) -> i64\n')
    assert _verify(tmp_path, capsys, regex)[0] == 0
    wrong = regex.replace("[a-z]+", "[0-9]+")
    code, err = _verify(tmp_path, capsys, wrong)
    assert code == 1 and "unexpected error" in err
