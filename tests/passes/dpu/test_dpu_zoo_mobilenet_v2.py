"""The zoo's MobileNetV2 (seeded weights, calibrated on random images at 64x64 to stay quick): compiled
whole onto the DPU (depthwise on the ALU, residual adds on ELEW, 1x1 convs, global pool, dense) and
equal bit for bit to the fix-level integer execution."""

from __future__ import annotations

import numpy as np
import pytest

from _dpu_testlib import compile_module, fix_reference, run_program
from fixflow.passes.dpu.program import load_programs

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def mobilenet_v2(tmp_path_factory):
    from fixflow.quantizer import Quantizer
    from fixflow.zoo import get_model
    model = get_model("mobilenet_v2").eval()
    rng = np.random.default_rng(0)
    out = tmp_path_factory.mktemp("mbv2")
    example = (torch.zeros(1, 3, 64, 64),)
    q = Quantizer(model, example, mode="calib", output_dir=out, log=None, progress=False)
    for _ in range(2):
        q.quant_model(torch.from_numpy(rng.uniform(0, 1, (2, 3, 64, 64)).astype(np.float32)))
    q.export_quant_config()
    return Quantizer(model, example, mode="test", output_dir=out, log=None, progress=False).fix_module


@pytest.mark.slow
@pytest.mark.parametrize("size", [4096, 512])
def test_mobilenet_v2_bit_exact(mobilenet_v2, size):
    m = mobilenet_v2.clone()
    compile_module(m, f"DPUCZDX8G_ISA1_B{size}")
    func = next(iter(m.body.ops))
    on_cpu = [op.name for op in func.body.ops if op.attributes.get("dpu.device") is not None
              and op.attributes["dpu.device"].value == "CPU"]
    assert on_cpu == ["fix.float"]
    (prog,) = load_programs(m)
    names = {i.name for i in prog.instructions}
    assert {"ELEW", "ELEWINIT", "ALU", "CONV"} <= names
    x = np.random.default_rng(size).uniform(0, 1, (1, 3, 64, 64)).astype(np.float32)
    xin, ref = fix_reference(m, x)
    got = run_program(prog, xin, "fast")
    np.testing.assert_array_equal(got.reshape(-1), ref.reshape(-1))
