"""The zoo's ResNet-18-CIFAR (seeded weights, calibrated on random images): every op but the final
fix-to-float runs on the DPU (convs with fused ReLU, strided 1x1 shortcuts, residual add + ReLU on ELEW,
global average pool on the ALU, dense as a conv), bit-exact against the fix-level integer execution."""

from __future__ import annotations

import numpy as np
import pytest

from _dpu_testlib import compile_whole, fix_reference, quantize_zoo_model, run_program

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def resnet18_cifar(tmp_path_factory):
    from fixflow import zoo
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    return quantize_zoo_model(lambda: zoo.get_model("resnet18_cifar"), [x], tmp_path_factory.mktemp("r18c"))


@pytest.mark.slow
@pytest.mark.parametrize("size", [4096, 512])
def test_resnet18_cifar_bit_exact(resnet18_cifar, size):
    m, prog = compile_whole(resnet18_cifar, f"DPUCZDX8G_ISA1_B{size}")
    assert sum(i.name == "ELEW" for i in prog.instructions) > 0
    x = np.random.default_rng(size).standard_normal((1, 3, 32, 32)).astype(np.float32)
    xin, ref = fix_reference(m, x)
    np.testing.assert_array_equal(run_program(prog, xin, "fast").reshape(-1), ref.reshape(-1))
