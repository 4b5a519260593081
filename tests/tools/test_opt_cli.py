"""fixflow-opt as a command: pass flags and pipelines, --split-input-file, --verify-diagnostics, plugins,
errors as one message (pass behaviour itself is tested by the .mlir corpus in tests/filecheck/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from _lib.graph import GraphBuilder, every_op_model, rand
from _lib.ir_text import FOLD, FOLDABLE, func_text
from fixflow.dialects import graph as G
from fixflow.ir import parse_module, print_module
from fixflow.tools.opt import main as opt_main


def test_deep_nesting_from_the_cli(tmp_path, capsys):
    f = tmp_path / "deep.mlir"
    f.write_text('"test.a"() {a = ' + "[" * 5000 + "]" * 5000 + "} : () -> ()\n")
    assert opt_main([str(f), "--allow-unregistered-dialect"]) == 1
    err = capsys.readouterr().err
    assert f"{f}:1:" in err and "nesting too deep" in err and "internal error" not in err


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
    text = func_text('    // expected-error @+1 {{requires the same type}}\n'
                 '    %x = "arith.addi"(%a, %a) : (i32, i32) -> i64 loc("other.py":5:1)\n')
    code, err = _verify(tmp_path, capsys, text)
    assert code == 1 and "other.py:5: unexpected error" in err and "was not produced" in err


def test_verify_diagnostics_unknown_location_and_regex(tmp_path, capsys):
    unknown = func_text('    // expected-error @unknown {{requires the same type}}\n'
                    '    %x = "arith.addi"(%a, %a) : (i32, i32) -> i64 loc(unknown)\n')
    assert _verify(tmp_path, capsys, unknown)[0] == 0
    regex = func_text('    // expected-error-re @+1 {{requires the {{[a-z]+}} type for all operands}}\n'
                  '    %x = "arith.addi"(%a, %a) : (i32, i32) -> i64\n')
    assert _verify(tmp_path, capsys, regex)[0] == 0
    wrong = regex.replace("[a-z]+", "[0-9]+")
    code, err = _verify(tmp_path, capsys, wrong)
    assert code == 1 and "unexpected error" in err

ROOT = Path(__file__).resolve().parents[2]


def test_opt_cli_pipeline_and_flags(tmp_path, capsys):
    f = tmp_path / "in.mlir"
    f.write_text(FOLDABLE)
    assert opt_main([str(f), "--pass-pipeline=builtin.module(canonicalize,cse)"]) == 0
    a = capsys.readouterr().out
    assert opt_main([str(f), "--canonicalize", "--cse"]) == 0
    b = capsys.readouterr().out
    assert a == b and "arith.muli" not in a
    out = tmp_path / "out.mlir"
    assert opt_main([str(f), "-p", "cse", "-o", str(out), "--print-debuginfo"]) == 0
    assert 'loc("' in out.read_text()
    assert parse_module(out.read_text()) is not None


def test_opt_cli_errors_are_one_message(tmp_path, capsys):
    bad = tmp_path / "bad.mlir"
    bad.write_text('"builtin.module"() ({\n  %0 = "arith.addi"(%x) : (i32) -> i32\n}) : () -> ()\n')
    assert opt_main([str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{bad}:2:")
    assert "Traceback" not in err
    assert opt_main([str(bad), "-p", "nope"]) == 1
    assert "unknown pass 'nope'" in capsys.readouterr().err
    assert opt_main([str(tmp_path / "missing.mlir")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_verify_diagnostics_file():
    f = ROOT / "tests" / "filecheck" / "ir" / "verify_diagnostics.mlir"
    assert opt_main([str(f), "--split-input-file", "--verify-diagnostics"]) == 0


def test_verify_diagnostics_reports_missing_and_unexpected(tmp_path, capsys):
    f = tmp_path / "d.mlir"
    f.write_text('"builtin.module"() ({\n  // expected-error @+1 {{something else}}\n'
                 '  %0 = "arith.addi"(%x, %x) : (i32, i32) -> i32\n}) : () -> ()\n')
    assert opt_main([str(f), "--verify-diagnostics"]) == 1
    err = capsys.readouterr().err
    assert "unexpected error" in err and "was not produced" in err


def test_split_input_file_keeps_line_numbers(tmp_path, capsys):
    f = tmp_path / "s.mlir"
    f.write_text('"builtin.module"() ({\n}) : () -> ()\n// -----\n"builtin.module"() ({\n'
                 '  %0 = "arith.addi"(%x, %x) : (i32, i32) -> i32\n}) : () -> ()\n')
    assert opt_main([str(f), "--split-input-file"]) == 1
    assert f":5:" in capsys.readouterr().err


def test_plugin_file_registers_pass_with_options(tmp_path, capsys):
    plugin = ROOT / "examples" / "plugin" / "strength_reduce.py"
    f = tmp_path / "in.mlir"
    f.write_text('''"builtin.module"() ({
  "func.func"() ({
  ^bb0(%a: i32):
    %c2 = "arith.constant"() {value = 2 : i32} : () -> i32
    %y = "arith.muli"(%a, %c2) : (i32, i32) -> i32
    "func.return"(%y) : (i32) -> ()
  }) {function_type = (i32) -> i32, sym_name = "f"} : () -> ()
}) : () -> ()
''')
    assert opt_main(["--load-pass-plugin", str(plugin), "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "mul-to-add" in help_text and "max_factor" in help_text
    assert opt_main(["--load-pass-plugin", str(plugin), str(f), "-p", "mul-to-add{max_factor=2}"]) == 0
    out = capsys.readouterr().out
    assert '"arith.addi"(%a, %a)' in out and "arith.muli" not in out
    assert opt_main(["--load-pass-plugin", str(tmp_path / "nope.py"), str(f)]) == 1


def test_opt_help_is_fast_and_works_as_a_process():
    r = subprocess.run([sys.executable, "-m", "fixflow.tools.opt", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "canonicalize" in r.stdout


def test_opt_stdin_that_is_not_utf8_is_one_message():
    r = subprocess.run([sys.executable, "-m", "fixflow.tools.opt"], input=b'"\xff"', capture_output=True)
    assert r.returncode == 1
    assert r.stderr.decode().startswith("error: cannot read '<stdin>'") and b"Traceback" not in r.stderr


def test_fixflow_opt_runs_graph_passes(tmp_path):
    import subprocess
    import sys
    m, _, _ = every_op_model()
    src = tmp_path / "every.mlir"
    src.write_text(print_module(m))
    cmd = [sys.executable, "-m", "fixflow.tools.opt", str(src),
           "--pass-pipeline=builtin.module(fold-bn,remove-dropout,infer-shapes{batch=3})"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = parse_module(proc.stdout)
    out.verify()
    assert not list(out.walk((G.BatchNormOp, G.DropoutOp, G.IdentityOp)))
    assert out.functions()[0].args[0].type.shape == (3, 3, 8, 8)
    mean_arg = tmp_path / "arg.mlir"
    g = GraphBuilder([(1, 4, 6, 6), (4,)])
    w = g.w("w", rand(np.random.default_rng(0), 4, 4, 1, 1))
    y = g.op(G.Conv2dOp, g.args[0], w)
    mean_arg.write_text(print_module(g.ret(g.op(G.BatchNormOp, y, g.args[1], g.args[1], g.args[1], g.args[1]))))
    proc = subprocess.run([sys.executable, "-m", "fixflow.tools.opt", str(mean_arg),
                           "--pass-pipeline=builtin.module(fold-bn{strict=true})"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "error: fold-bn: this graph.batch_norm cannot be folded" in proc.stderr
    assert "Traceback" not in proc.stderr
