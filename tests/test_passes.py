"""Pass manager, pipelines, rewrite drivers, generic passes and fixflow-opt."""

import subprocess
import sys
from pathlib import Path

import pytest

from fixflow.dialects.arith import AddIOp, ConstantOp, MulIOp
from fixflow.ir import parse_module, print_module
from fixflow.ir.diagnostics import PassError
from fixflow.ir.passes import Pass, PassManager, PipelineError, parse_pipeline, register_pass
from fixflow.ir.rewrite import RewritePattern, apply_patterns_greedily, pattern, walk_and_apply
from fixflow.tools.opt import main as opt_main

ROOT = Path(__file__).resolve().parents[1]

FOLDABLE = '''"builtin.module"() ({
  "func.func"() ({
  ^bb0(%a: i32):
    %c0 = "arith.constant"() {value = 0 : i32} : () -> i32
    %c2 = "arith.constant"() {value = 2 : i32} : () -> i32
    %c3 = "arith.constant"() {value = 3 : i32} : () -> i32
    %x = "arith.addi"(%a, %c0) : (i32, i32) -> i32
    %y = "arith.muli"(%c2, %c3) : (i32, i32) -> i32
    %z = "arith.addi"(%x, %y) : (i32, i32) -> i32
    %w = "arith.addi"(%x, %y) : (i32, i32) -> i32
    %dead = "arith.muli"(%w, %w) : (i32, i32) -> i32
    %r = "arith.addi"(%z, %w) : (i32, i32) -> i32
    "func.return"(%r) : (i32) -> ()
  }) {function_type = (i32) -> i32, sym_name = "f"} : () -> ()
}) : () -> ()
'''


def op_names(module):
    return [op.name for op in module.walk()][2:]


def test_canonicalize_folds_constants_identities_and_dead_code():
    m = parse_module(FOLDABLE)
    PassManager.parse("builtin.module(canonicalize)").run(m)
    names = op_names(m)
    assert "arith.muli" not in names  # 2*3 folded, dead mul removed
    consts = [op for op in m.walk(ConstantOp)]
    assert [c.attributes["value"].value for c in consts] == [6]
    # x = a + 0 folded to a: the first add now uses the block argument directly
    adds = list(m.walk(AddIOp))
    assert adds[0].lhs is m.body.first_op.body.args[0]


def test_cse_merges_identical_pure_ops():
    m = parse_module(FOLDABLE)
    PassManager.parse("cse").run(m)
    adds = list(m.walk(AddIOp))
    assert len(adds) == 3  # %z and %w merged
    r = adds[-1]
    assert r.lhs is r.rhs


def test_dce_removes_unused_chains():
    m = parse_module(FOLDABLE)
    PassManager.parse("dce").run(m)
    assert "%dead" not in print_module(m)
    assert m.verify() is None


def test_symbol_dce_removes_unreferenced_private_functions():
    text = '''"builtin.module"() ({
  "func.func"() ({
  ^bb0(%a: i32):
    "func.return"(%a) : (i32) -> ()
  }) {function_type = (i32) -> i32, sym_name = "unused", sym_visibility = "private"} : () -> ()
  "func.func"() ({
  ^bb0(%a: i32):
    "func.return"(%a) : (i32) -> ()
  }) {function_type = (i32) -> i32, sym_name = "kept", sym_visibility = "private"} : () -> ()
  "func.func"() ({
  ^bb0(%a: i32):
    %r = "func.call"(%a) {callee = @kept} : (i32) -> i32
    "func.return"(%r) : (i32) -> ()
  }) {function_type = (i32) -> i32, sym_name = "main"} : () -> ()
}) : () -> ()
'''
    m = parse_module(text)
    PassManager.parse("symbol-dce").run(m)
    names = [f.sym_name for f in m.functions()]
    assert names == ["kept", "main"]


def test_pipeline_syntax_and_options():
    ps = parse_pipeline("builtin.module(canonicalize{max_iterations=3 fold=false},cse, func.func(dce))")
    assert [p.NAME for p in ps] == ["canonicalize", "cse", "dce"]
    assert ps[0].options.max_iterations == 3 and ps[0].options.fold is False
    assert PassManager(ps).pipeline_text() == \
        "builtin.module(canonicalize{max_iterations=3 fold=false},cse,dce)"
    with pytest.raises(PipelineError, match="unknown pass 'nope'"):
        parse_pipeline("canonicalize,nope")
    with pytest.raises(PipelineError, match="no option 'bogus'"):
        parse_pipeline("canonicalize{bogus=1}")
    with pytest.raises(PipelineError, match="expects int"):
        parse_pipeline("canonicalize{max_iterations=many}")
    with pytest.raises(PipelineError, match="missing"):
        parse_pipeline("builtin.module(cse")


class _Flip(RewritePattern):
    """Swaps operands of every add: never converges."""
    OP = AddIOp

    def match_and_rewrite(self, op, rewriter):
        with rewriter.modify_op(op):
            op.set_operands([op.rhs, op.lhs])
        return True


def test_greedy_driver_reports_non_convergence():
    m = parse_module(FOLDABLE)
    with pytest.raises(PassError, match="did not converge"):
        apply_patterns_greedily(m, [_Flip()], max_iterations=3, fold=False)


def test_function_pattern_and_walk_driver():
    @pattern(MulIOp)
    def mul_to_add(op, rewriter):
        add = rewriter.create(AddIOp, op.lhs, op.rhs)
        rewriter.replace_op(op, add)
        return True

    m = parse_module(FOLDABLE)
    assert walk_and_apply(m, [mul_to_add])
    assert not list(m.walk(MulIOp))
    m.verify()


def test_pattern_that_changes_ir_but_returns_false_is_caught():
    @pattern(AddIOp)
    def liar(op, rewriter):
        rewriter.notify_op_modified(op)
        return False

    with pytest.raises(PassError, match="returned False"):
        apply_patterns_greedily(parse_module(FOLDABLE), [liar], fold=False)


def test_verification_after_each_pass_names_the_pass():
    @register_pass
    class Breaker(Pass):
        NAME = "test-breaker"
        SUMMARY = "breaks the IR"

        def run(self, module):
            ret = module.body.first_op.return_op
            ret.set_operands([])

    m = parse_module(FOLDABLE)
    from fixflow.ir.diagnostics import VerifyError
    with pytest.raises(VerifyError) as info:
        PassManager.parse("test-breaker").run(m)
    assert "after pass 'test-breaker'" in info.value.render()


def test_print_ir_after_and_timing():
    out = []
    pm = PassManager.parse("canonicalize,cse", print_after=["cse"], print_before_all=True, print_fn=out.append)
    pm.run(parse_module(FOLDABLE))
    text = "".join(out)
    assert "IR Dump Before canonicalize" in text and "IR Dump After cse" in text
    assert "IR Dump After canonicalize" not in text
    report = pm.timing_report()
    assert "canonicalize" in report and "Total Execution Time" in report


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
    f = ROOT / "tests" / "ir_files" / "diagnostics.mlir"
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


def test_entry_point_plugins(tmp_path, monkeypatch):
    pkg = tmp_path / "myplug.py"
    pkg.write_text('''
import attrs
from fixflow.ir.passes import Pass
class Hello(Pass):
    NAME = "hello-ep"
    SUMMARY = "registered through an entry point"
    def run(self, module):
        module.set_attr("hello", "world")
''')
    dist = tmp_path / "myplug-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplug\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[fixflow.passes]\nhello = myplug:Hello\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from fixflow.ir import passes
    assert "hello" in passes.load_entry_point_plugins()
    m = parse_module('"builtin.module"() ({\n}) : () -> ()\n')
    PassManager.parse("hello-ep").run(m)
    assert m.attributes["hello"].value == "world"


def test_opt_help_is_fast_and_works_as_a_process():
    r = subprocess.run([sys.executable, "-m", "fixflow.tools.opt", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "canonicalize" in r.stdout


def test_canonicalize_puts_constants_last_and_cse_sees_commuted_ops():
    text = '''"builtin.module"() ({
  "func.func"() ({
  ^bb0(%a: i32, %b: i32):
    %c = "arith.constant"() {value = 7 : i32} : () -> i32
    %x = "arith.addi"(%c, %a) : (i32, i32) -> i32
    %y = "arith.muli"(%a, %b) : (i32, i32) -> i32
    %z = "arith.muli"(%b, %a) : (i32, i32) -> i32
    %r = "arith.addi"(%y, %z) : (i32, i32) -> i32
    %s = "arith.addi"(%r, %x) : (i32, i32) -> i32
    "func.return"(%s) : (i32) -> ()
  }) {function_type = (i32, i32) -> i32, sym_name = "f"} : () -> ()
}) : () -> ()
'''
    m = parse_module(text)
    PassManager.parse("canonicalize,cse").run(m)
    f = m.body.first_op
    x = [op for op in m.walk(AddIOp) if isinstance(op.rhs.op if hasattr(op.rhs, "op") else None, ConstantOp)]
    assert len(x) == 1 and x[0].lhs is f.args[0]
    assert len(list(m.walk(MulIOp))) == 1


def test_verify_error_notes_point_at_related_ops():
    from fixflow.ir.diagnostics import VerifyError
    text = '''"builtin.module"() ({
  "func.func"() ({
  ^bb0(%a: i32):
    "func.return"(%a) : (i32) -> ()
  }) {function_type = (i32) -> f32, sym_name = "f"} : () -> ()
}) : () -> ()
'''
    with pytest.raises(VerifyError) as info:
        parse_module(text, "n.mlir").verify()
    rendered = info.value.render()
    assert "n.mlir:4:5: error:" in rendered and "n.mlir:2:3: note: function @f declared here" in rendered


def test_opt_stdin_that_is_not_utf8_is_one_message():
    r = subprocess.run([sys.executable, "-m", "fixflow.tools.opt"], input=b'"\xff"', capture_output=True)
    assert r.returncode == 1
    assert r.stderr.decode().startswith("error: cannot read '<stdin>'") and b"Traceback" not in r.stderr


def test_warnings_and_remarks_are_captured_not_printed(capsys):
    from fixflow.ir.diagnostics import capture_diagnostics, emit_remark, emit_warning
    from fixflow.ir.location import FileLineColLoc
    with capture_diagnostics() as diags:
        emit_warning("slope forced to 26/256", FileLineColLoc("m.py", 3, 1))
        emit_remark("fused conv+relu")
    assert [(d.severity, d.message) for d in diags] == [("warning", "slope forced to 26/256"),
                                                        ("remark", "fused conv+relu")]
    assert diags[0].render().startswith("m.py:3:1: warning:")
    assert capsys.readouterr().err == ""
    emit_warning("outside a capture")
    assert capsys.readouterr().err == "warning: outside a capture\n"
