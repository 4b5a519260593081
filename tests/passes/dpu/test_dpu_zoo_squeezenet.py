"""The zoo's SqueezeNet 1.1 (seeded weights, calibrated on random 64x64 images): fire modules' concats by
placement, so the whole network but the final fix-to-float is one DPU subgraph, bit-exact against the
fix-level integer execution."""

from __future__ import annotations

import numpy as np
import pytest

from _dpu_testlib import compile_whole, fix_reference, quantize_zoo_model, run_program
from fixflow.passes.dpu.layers import Concat

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def squeezenet(tmp_path_factory):
    from fixflow import zoo
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    return quantize_zoo_model(lambda: zoo.get_model("squeezenet1_1"), [x], tmp_path_factory.mktemp("sq"))


@pytest.mark.slow
@pytest.mark.parametrize("size", [4096, 1152, 512])
def test_squeezenet_one_dpu_subgraph_bit_exact(squeezenet, size):
    m, prog = compile_whole(squeezenet, f"DPUCZDX8G_ISA1_B{size}")
    assert sum(isinstance(L, Concat) for L in prog.layers) == 8
    x = np.random.default_rng(size).standard_normal((1, 3, 64, 64)).astype(np.float32)
    xin, ref = fix_reference(m, x)
    np.testing.assert_array_equal(run_program(prog, xin, "fast").reshape(-1), ref.reshape(-1))
