"""Subgraph order of the compiled xmodel: a grouped conv as the quantizer exports it (per-group CPU
strided_slice ops, one conv per group, a channel concat) puts both group convs into one DPU subgraph
although the second slice (CPU) comes between them in the module; the emitted graph lists every subgraph
after the ones it reads, so the xmodel writes, reads back and runs bit for bit."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "passes" / "dpu"))
from _dpu_testlib import FT, compile_module, conv_ops, module_with

from fixflow.backends.xmodel.dpu_emit import emit_compiled
from fixflow.backends.xmodel.vaic import write_compiler_outputs
from fixflow.dialects.fix import ops as Q
from fixflow.runtime import GraphRunner
from fixflow.runtime.fix_executor import run_quantized


def _grouped(groups):
    def build(x, rng):
        ops = conv_ops(x, rng, 8, (3, 3), pad=(1, 1, 1, 1), act="RELU", fps=(7, 6, 4), name="a")
        a = ops[-1].results[0]
        _, h, w, c = a.type.shape
        cg, outs = c // groups, []
        for g in range(groups):               # slice g, then its conv, in the order the exporter writes them
            s = Q.StridedSliceOp.build(a, begin=(0, 0, 0, g * cg), end=(1, h, w, (g + 1) * cg), strides=(1, 1, 1, 1),
                                       result_types=[FT((1, h, w, cg), 8, 4)])
            s.results[0].name_hint = "slice" if g == 0 else f"slice_{g}"
            ops += [s] + conv_ops(s.results[0], rng, 3, (3, 3), pad=(1, 1, 1, 1), act="RELU", fps=(7, 6, 4),
                                  name=f"g{g}")
            outs.append(ops[-1].results[0])
        cat = Q.ConcatOp.build(outs, axis=3, result_types=[FT((1, h, w, 3 * groups), 8, 4)])
        cat.results[0].name_hint = "cat"
        return ops + [cat] + conv_ops(cat.results[0], rng, 4, (1, 1), fps=(7, 6, 3), name="out")
    return build


@pytest.mark.parametrize("groups", [2, 3])
def test_grouped_conv_subgraphs_are_emitted_in_dependency_order(groups, tmp_path):
    rng = np.random.default_rng(groups)
    shape = (1, 6, 5, 3)
    m = module_with(shape, 4, lambda x: _grouped(groups)(x, rng))
    ref = m.clone()
    compile_module(m, "DPUCZDX8G_ISA1_B1024")
    func = next(op for op in m.body.ops if op.name == "func.func")
    sub = {op.results[0].name_hint: op.attributes["dpu.subgraph"].value for op in func.body.ops if op.results}
    assert sub["g0"] == sub[f"g{groups - 1}"] != sub[f"slice_{groups - 1}"]   # the case that was out of order
    cm = emit_compiled(m, "net")
    cm.validate()
    index = {op.name: i for i, op in enumerate(cm.ops)}
    for op in cm.ops:
        for ns in op.inputs.values():
            assert all(index[n] < index[op.name] for n in ns), op.name
    first = {s.name: min(index[n] for n in _op_names(s)) for s in cm.subgraphs}
    assert first[sub[f"slice_{groups - 1}"]] < first[sub["g0"]]
    write_compiler_outputs(cm, tmp_path, "net")
    for _ in range(2):
        x = rng.uniform(-2, 2, size=shape).astype(np.float32)
        want = run_quantized(ref, [x])[0]
        for mode in ("fast", "reference"):
            got = GraphRunner.from_xmodel(tmp_path / "net.xmodel", mode=mode).run([x])[0]
            np.testing.assert_array_equal(got, want, err_msg=mode)


def _op_names(s):
    return s.op_names if hasattr(s, "op_names") else [n for c in s.children for n in c.op_names]
