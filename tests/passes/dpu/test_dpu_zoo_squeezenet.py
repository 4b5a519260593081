"""The zoo's SqueezeNet 1.1 (seeded weights, calibrated on random 64x64 images): fire modules' concats by
placement, so the whole network but the final fix-to-float is one DPU subgraph, bit-exact against the
fix-level integer execution."""

from __future__ import annotations

import numpy as np
import pytest

from _dpu_testlib import compile_module, fix_reference, run_program
from fixflow.passes.dpu.layers import Concat
from fixflow.passes.dpu.program import load_programs

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def squeezenet(tmp_path_factory):
    from fixflow import zoo
    from fixflow.quantizer import Quantizer
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    out = tmp_path_factory.mktemp("sq")
    example = (torch.from_numpy(x[:1]),)
    q = Quantizer(zoo.get_model("squeezenet1_1"), example, mode="calib", output_dir=out, log=None, progress=False)
    q.quant_model(torch.from_numpy(x))
    q.export_quant_config()
    return Quantizer(zoo.get_model("squeezenet1_1"), example, mode="test", output_dir=out, log=None,
                     progress=False).fix_module


@pytest.mark.slow
@pytest.mark.parametrize("size", [4096, 1152, 512])
def test_squeezenet_one_dpu_subgraph_bit_exact(squeezenet, size):
    m = squeezenet.clone()
    compile_module(m, f"DPUCZDX8G_ISA1_B{size}")
    func = next(iter(m.body.ops))
    on_cpu = [op.name for op in func.body.ops if op.attributes.get("dpu.device") is not None
              and op.attributes["dpu.device"].value == "CPU"]
    assert on_cpu == ["fix.float"]
    (prog,) = load_programs(m)
    assert sum(isinstance(L, Concat) for L in prog.layers) == 8
    x = np.random.default_rng(size).standard_normal((1, 3, 64, 64)).astype(np.float32)
    xin, ref = fix_reference(m, x)
    np.testing.assert_array_equal(run_program(prog, xin, "fast").reshape(-1), ref.reshape(-1))
