"""The zoo's MobileNetV2 (seeded weights, calibrated on random images at 64x64 to stay quick): compiled
whole onto the DPU (depthwise on the ALU, residual adds on ELEW, 1x1 convs, global pool, dense) and
equal bit for bit to the fix-level integer execution."""

from __future__ import annotations

import numpy as np
import pytest

from _dpu_testlib import compile_whole, fix_reference, quantize_zoo_model, run_program

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def mobilenet_v2(tmp_path_factory):
    from fixflow.zoo import get_model
    model = get_model("mobilenet_v2").eval()
    rng = np.random.default_rng(0)
    calib = [rng.uniform(0, 1, (2, 3, 64, 64)).astype(np.float32) for _ in range(2)]
    return quantize_zoo_model(lambda: model, calib, tmp_path_factory.mktemp("mbv2"),
                              example=np.zeros((1, 3, 64, 64), dtype=np.float32))


@pytest.mark.slow
@pytest.mark.parametrize("size", [4096, 512])
def test_mobilenet_v2_bit_exact(mobilenet_v2, size):
    m, prog = compile_whole(mobilenet_v2, f"DPUCZDX8G_ISA1_B{size}")
    names = {i.name for i in prog.instructions}
    assert {"ELEW", "ELEWINIT", "ALU", "CONV"} <= names
    x = np.random.default_rng(size).uniform(0, 1, (1, 3, 64, 64)).astype(np.float32)
    xin, ref = fix_reference(m, x)
    got = run_program(prog, xin, "fast")
    np.testing.assert_array_equal(got.reshape(-1), ref.reshape(-1))
