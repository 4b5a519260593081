"""The pass manager (ir/passes.py): pipelines, registration and plugins, rewrite drivers, verification
between passes, IR printing and timing, diagnostics capture."""

from __future__ import annotations

import pytest

from _lib.ir_text import FOLDABLE
from fixflow.dialects.arith import AddIOp, MulIOp
from fixflow.ir import parse_module
from fixflow.ir.diagnostics import FixflowError, PassError
from fixflow.ir.passes import Pass, PassManager, PipelineError, load_pass_plugin, parse_pipeline, register_pass
from fixflow.ir.rewrite import RewritePattern, apply_patterns_greedily, pattern, walk_and_apply


def test_pipeline_syntax_and_options():
    ps = parse_pipeline("builtin.module(canonicalize{max_iterations=3 fold=false},cse, func.func(dce))")
    assert [p.NAME for p in ps] == ["canonicalize", "cse", "dce"]
    assert ps[0].options.max_iterations == 3 and ps[0].options.fold is False
    assert PassManager(ps).pipeline_text() == \
        "builtin.module(canonicalize{max_iterations=3 fold=false},cse,func.func(dce))"
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
