"""A value one DPU subgraph writes (its REG_3) and another reads (its REG_2) has an address in each:
`dpu.ddr` in the producer's subgraph, `dpu.ddr_in[<reader>]` in the reader's. With one address for both
(before), the producer wrote the value at the reader's REG_2 address, over its own input, and the result
was wrong once the conv read its input band by band."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "passes" / "dpu"))
from _dpu_testlib import FT, compile_module, conv_ops

from fixflow.backends.xmodel.dpu_emit import emit_compiled
from fixflow.backends.xmodel.vaic import write_compiler_outputs
from fixflow.dialects.builtin import FuncOp, ModuleOp, ReturnOp
from fixflow.dialects.fix import ops as Q
from fixflow.ir.types import TensorType, f32


def _module(side: int, c: int = 16):
    """x -> conv a (DPU) -> hard-swish (CPU); add(hard_swish(a), a) + conv pre(x) (a second DPU subgraph)."""
    rng = np.random.default_rng(side)
    m = ModuleOp.empty()
    f = FuncOp.create_function("main", [TensorType((1, side, side, c), f32)], [])
    m.body.append(f)
    x = Q.DataOp.build(f.args[0], result_types=[FT((1, side, side, c), 8, 5)])
    x.results[0].name_hint = "x"
    ops = [x] + conv_ops(x.results[0], rng, 8, (3, 3), pad=(1, 1, 1, 1), act="RELU", name="a", fps=(7, 6, 4))
    a = ops[-1].results[0]
    ops += conv_ops(x.results[0], rng, 8, (1, 1), name="pre", fps=(7, 6, 4))
    pre = ops[-1].results[0]
    shape = (1, side, side, 8)
    h = Q.HardSwishOp.build(a, result_types=[FT(shape, 8, 4)])
    h.results[0].name_hint = "hsw"
    e = Q.EltwiseOp.build([h.results[0], a], type="ADD", nonlinear="NONE", result_types=[FT(shape, 8, 3)])
    e.results[0].name_hint = "add"
    e2 = Q.EltwiseOp.build([e.results[0], pre], type="ADD", nonlinear="NONE", result_types=[FT(shape, 8, 3)])
    e2.results[0].name_hint = "add2"
    for o in ops + [h, e, e2]:
        f.body.append(o)
    fl = Q.FloatOp.build(e2.results[0])
    f.body.append(fl)
    f.body.append(ReturnOp.build([fl.results[0]]))
    f.update_function_type()
    m.verify()
    return m


@pytest.mark.parametrize("side,target", [(6, "DPUCZDX8G_ISA1_B4096"), (96, "DPUCZDX8G_ISA1_B512")])
def test_value_between_two_dpu_subgraphs_has_an_address_in_each(side, target, tmp_path):
    from fixflow.runtime import GraphRunner
    from fixflow.runtime.fix_executor import run_quantized
    m = _module(side)
    ref = m.clone()
    compile_module(m, target)
    func = next(op for op in m.body.ops if op.name == "func.func")
    a = next(op for op in func.body.ops if op.results and op.results[0].name_hint == "a")
    reader = next(op for op in func.body.ops if op.results and op.results[0].name_hint == "add")
    own, other = a.attributes["dpu.subgraph"].value, reader.attributes["dpu.subgraph"].value
    assert own != other
    assert int(a.attributes["dpu.ddr"].value[0]) == 3                     # its subgraph's output
    assert int(a.attributes["dpu.ddr_in"].value[other].value[0]) == 2     # the reader's input
    cm = emit_compiled(m, "two")
    ups = {o.name: o.output for o in cm.ops if o.type == "upload"}
    assert ups["a_upload_0"].attr("ddr_addr") == int(a.attributes["dpu.ddr_in"].value[other].value[1])
    write_compiler_outputs(cm, tmp_path, "two")
    xs = np.random.default_rng(1).uniform(-2, 2, size=(2, side, side, 16)).astype(np.float32)
    got = GraphRunner.from_xmodel(tmp_path / "two.xmodel", mode="fast").run([xs])[0]
    np.testing.assert_array_equal(got, run_quantized(ref, [xs])[0])
