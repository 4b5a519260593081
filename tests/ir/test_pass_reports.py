"""The pass manager's reports, shaped as mlir-opt's: statistics (passes declare them), timing with nested
pipelines, --dump-pass-pipeline, IR printing only after a change, eliding large data in IR dumps."""

from __future__ import annotations

import re

import numpy as np

from _lib.ir_text import FOLDABLE
from fixflow.ir import parse_module
from fixflow.ir.attributes import DenseResourceElementsAttr
from fixflow.ir.passes import Pass, PassManager, Statistic, parse_pipeline, pass_statistics

DUPLICATES = '''"builtin.module"() ({
  "func.func"() ({
  ^bb0(%a: i32):
    %0 = "arith.addi"(%a, %a) : (i32, i32) -> i32
    %1 = "arith.addi"(%a, %a) : (i32, i32) -> i32
    %2 = "arith.muli"(%0, %1) : (i32, i32) -> i32
    "func.return"(%2) : (i32) -> ()
  }) {function_type = (i32) -> i32, sym_name = "f"} : () -> ()
}) : () -> ()
'''


class _Counting(Pass):
    NAME = "test-counting"
    num_ops = Statistic("num-ops", "Number of ops seen")
    num_funcs = Statistic("num-funcs", "Number of functions seen")

    def run(self, module):
        for op in module.walk():
            self.num_ops += 1
            if op.name == "func.func":
                self.num_funcs += 1


def test_statistic_declared_and_counted():
    p = _Counting()
    assert _Counting.num_ops.name == "num-ops" and p.num_ops == 0
    p.run(parse_module(DUPLICATES))
    assert [(st.name, v) for st, v in pass_statistics(p)] == [("num-ops", 6), ("num-funcs", 1)]
    assert _Counting().num_ops == 0  # per instance


def test_statistics_report_pipeline_and_list():
    passes = parse_pipeline("builtin.module(func.func(cse,canonicalize),cse)")
    pm = PassManager(passes)
    pm.run(parse_module(DUPLICATES))
    report = pm.statistics_report()
    bar = "===" + "-" * 73 + "==="
    assert report.splitlines()[:3] == [bar, " " * 25 + "... Pass statistics report ...", bar]
    assert report.rstrip().splitlines()[3:] == ["'func.func' Pipeline", "  cse", "    (S) 1 num-cse'd - Number of operations CSE'd",
                                       "  canonicalize", "cse", "  (S) 0 num-cse'd - Number of operations CSE'd"]
    assert pm.statistics_report("list").rstrip().splitlines()[3:] == [
        "canonicalize", "cse", "  (S) 1 num-cse'd - Number of operations CSE'd"]


def test_statistic_values_right_aligned():
    pm = PassManager([_Counting()])
    pm.run(parse_module(DUPLICATES))
    assert pm.statistics_report().rstrip().splitlines()[3:] == ["test-counting", "  (S) 6 num-ops - Number of ops seen",
                                                       "  (S) 1 num-funcs - Number of functions seen"]
    big = _Counting()
    big.num_ops, big.num_funcs = 1234, 5
    assert PassManager([big]).statistics_report().rstrip().splitlines()[4:] == [
        "  (S) 1234 num-ops - Number of ops seen", "  (S)    5 num-funcs - Number of functions seen"]


def test_nested_pipeline_round_trips_and_dumps():
    text = "builtin.module(func.func(canonicalize{max_iterations=3 fold=true},cse),symbol-dce)"
    pm = PassManager(parse_pipeline(text))
    assert pm.pipeline_text() == text
    assert PassManager(parse_pipeline(pm.pipeline_text())).pipeline_text() == text
    assert [p.nest for p in pm.passes] == [("func.func",), ("func.func",), ()]
    assert pm.pipeline_dump() == ("Pass Manager with 2 passes:\nbuiltin.module(\n  func.func(\n"
                                  "    canonicalize{max_iterations=3 fold=true},\n    cse\n  ),\n  symbol-dce\n)\n\n")


_ROW = re.compile(r"^  +\d+\.\d{4} \( *\d+\.\d%\)  +\d+\.\d{4} \( *\d+\.\d%\)  (.*)$")


def test_timing_report_nests_pipelines():
    pm = PassManager(parse_pipeline("builtin.module(func.func(canonicalize,cse),symbol-dce,func.func(cse))"))
    pm.run(parse_module(DUPLICATES))
    report = pm.timing_report(before=[("Parser", 0.5, 0.4)], after=[("Output", 0.1, 0.1)], total=(2.0, 1.0))
    lines = report.splitlines()
    assert lines[1] == " " * 25 + "... Execution time report ..."
    assert lines[3].startswith("  Total Execution Time: 2.0000 seconds")
    assert lines[5] == "  ----User Time----  ----Wall Time----  ----Name----"
    names = [_ROW.match(line).group(1) for line in lines[6:] if line]
    assert names == ["Parser", "'func.func' Pipeline", "  canonicalize", "  cse", "symbol-dce",
                     "'func.func' Pipeline", "  cse", "(V) verifier", "Output", "Rest", "Total"]
    assert lines[-1].endswith("(100.0%)  Total")
    listed = [_ROW.match(line).group(1) for line in pm.timing_report(display="list").splitlines()[6:] if line]
    assert sorted(listed) == sorted(["canonicalize", "cse", "symbol-dce", "(V) verifier", "Total"])


def test_print_after_change_skips_passes_that_change_nothing():
    out: list[str] = []
    pm = PassManager(parse_pipeline("cse,dce,cse"), print_after_all=True, print_after_change=True,
                     print_fn=out.append)
    pm.run(parse_module(DUPLICATES))
    heads = [s.splitlines()[0] for s in out]
    assert heads == ["// -----// IR Dump After cse //----- //"]  # dce and the second cse change nothing
    out.clear()
    PassManager(parse_pipeline("cse,dce,cse"), print_after_all=True, print_fn=out.append).run(parse_module(DUPLICATES))
    assert len(out) == 3


def test_print_after_change_sees_an_attribute_change():
    class SetAttr(Pass):
        NAME = "test-set-attr"

        def run(self, module):
            for op in module.walk():
                if op.name == "arith.muli":
                    op.set_attr("tag", 1)

    out: list[str] = []
    PassManager([SetAttr(), SetAttr()], print_after_all=True, print_after_change=True,
                print_fn=out.append).run(parse_module(DUPLICATES))
    assert len(out) == 1  # the second pass sets an equal attribute (a new object): no change, as in MLIR
    assert '"arith.muli"(%0, %1) {tag = 1 : i64}' in out[0]

    class Weights(Pass):
        NAME = "test-weights"

        def __init__(self, value):
            super().__init__()
            self.value = value

        def run(self, module):  # only data changes: the elided dumps look the same, but it is a change
            module.attributes["w"] = DenseResourceElementsAttr.from_array("w", np.full(100, self.value, np.float32))

    out.clear()
    PassManager([Weights(1.0), Weights(1.0), Weights(2.0)], print_after_all=True, print_after_change=True,
                print_fn=out.append).run(parse_module(DUPLICATES))
    assert len(out) == 2 and out[0] == out[1]


def test_ir_dumps_elide_large_data_by_default():
    m = parse_module(FOLDABLE)
    m.attributes["w"] = DenseResourceElementsAttr.from_array("w", np.arange(1000, dtype=np.float32))
    out: list[str] = []
    PassManager(parse_pipeline("cse"), print_after_all=True, print_fn=out.append).run(m)
    assert "dense_resource<w>" in out[0] and "dialect_resources" not in out[0]
    out.clear()
    PassManager(parse_pipeline("cse"), print_after_all=True, print_fn=out.append,
                print_elide_elements=None, print_elide_resources=None).run(m)
    assert "w: \"0x04000000" in out[0]
