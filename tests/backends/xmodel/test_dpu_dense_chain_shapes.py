"""Dense layers in a row: the DPU chains the second onto the first (one super-layer, the first's result kept
on chip), and the compiled xmodel still gives the last dense's logical [1, N] shape back through a
`reshape-fix` view of its conv form: the download, the fix2float after it and the run's output are
(batch, N), bit for bit with the fix-level execution."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "passes" / "dpu"))
from _dpu_testlib import FT, compile_module, conv_ops, dense_ops, module_with, rand_ints

from fixflow.backends.xmodel.dpu_emit import emit_compiled
from fixflow.backends.xmodel.vaic import write_compiler_outputs
from fixflow.dialects.fix import ops as Q
from fixflow.runtime import GraphRunner
from fixflow.runtime.fix_executor import run_quantized


def _dense_on(x, rng, out, fps, act, name):
    """A dense reading a [1, K] value directly (no flatten: a dense after a dense)."""
    k = int(x.type.shape[-1])
    wc = Q.ConstOp.from_ints(rand_ints(rng, (out, k)), 8, fps[0])
    b = Q.ConstOp.from_ints(rand_ints(rng, (out,)), 8, fps[1])
    d = Q.DenseOp.build(x, wc.results[0], b.results[0], nonlinear=act, result_types=[FT((1, out), 8, fps[2])])
    d.results[0].name_hint = name
    return [wc, b, d]


def _chain(n_dense):
    def build(x, rng):
        ops = conv_ops(x, rng, 8, (3, 3), stride=(2, 2), pad=(1, 1, 1, 1), act="RELU", fps=(7, 6, 4), name="c1")
        ops += dense_ops(ops[-1].results[0], rng, 16, fps=(9, 6, 4), act="RELU", name="fc1")
        for i in range(2, n_dense + 1):
            last = i == n_dense
            ops += _dense_on(ops[-1].results[0], rng, 5 if last else 12, (7, 6, 3), "NONE" if last else "RELU",
                             f"fc{i}")
        return ops
    return build


@pytest.mark.parametrize("target", ["DPUCZDX8G_ISA1_B512", "DPUCZDX8G_ISA1_B4096"])
@pytest.mark.parametrize("n_dense", [2, 3])
def test_chained_denses_keep_the_logical_output_shape(n_dense, target, tmp_path):
    rng = np.random.default_rng(n_dense)
    shape = (1, 8, 8, 3)
    m = module_with(shape, 4, lambda x: _chain(n_dense)(x, rng))
    ref = m.clone()
    compile_module(m, target)
    func = next(op for op in m.body.ops if op.name == "func.func")
    dense = [op for op in func.body.ops if op.name == "fix.dense"]
    assert all(op.attributes["dpu.device"].value == "DPU" for op in dense)
    assert "dpu.chained_operand" in dense[-1].attributes          # the case that lost its [1, N] view
    cm = emit_compiled(m, "net")
    cm.validate()
    last = f"fc{n_dense}"
    view = cm.op(last)
    assert view.type == "reshape-fix" and view.output.shape == [1, 5]
    assert view.inputs["input"] == [last + "(TransferMatMulToConv2d)"]
    down = cm.op(last + "_download_0")
    assert down.inputs["input"] == [last] and down.output.shape == [1, 5]
    fl = next(op for op in cm.ops if op.type == "fix2float")
    assert fl.inputs["input"] == [down.name] and fl.output.shape == [1, 5]
    for mid in (f"fc{i}" for i in range(1, n_dense)):              # read only by a dense: no view
        assert cm.op(mid + "(TransferMatMulToConv2d)").type == "conv2d-fix"
        assert not any(op.name == mid for op in cm.ops)
    write_compiler_outputs(cm, tmp_path, "net")
    x = rng.uniform(-2, 2, size=(3,) + shape[1:]).astype(np.float32)
    want = np.concatenate([run_quantized(ref, [x[i:i + 1]])[0] for i in range(len(x))])   # the module is batch 1
    assert want.shape == (3, 5)
    for mode in ("fast", "reference"):
        got = GraphRunner.from_xmodel(tmp_path / "net.xmodel", mode=mode).run([x])[0]
        assert got.shape == want.shape, mode
        np.testing.assert_array_equal(got, want, err_msg=mode)
