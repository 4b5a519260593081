"""The zoo's ResNet-18-CIFAR (seeded weights, calibrated on random images): every op but the final
fix-to-float runs on the DPU (convs with fused ReLU, strided 1x1 shortcuts, residual add + ReLU on ELEW,
global average pool on the ALU, dense as a conv), bit-exact against the fix-level integer execution."""

from __future__ import annotations

import numpy as np
import pytest

from _dpu_testlib import compile_module, fix_reference, run_program
from fixflow.passes.dpu.program import load_programs

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def resnet18_cifar(tmp_path_factory):
    from fixflow import zoo
    from fixflow.quantizer import Quantizer
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    out = tmp_path_factory.mktemp("r18c")
    example = (torch.from_numpy(x[:1]),)
    q = Quantizer(zoo.get_model("resnet18_cifar"), example, mode="calib", output_dir=out, log=None, progress=False)
    q.quant_model(torch.from_numpy(x))
    q.export_quant_config()
    return Quantizer(zoo.get_model("resnet18_cifar"), example, mode="test", output_dir=out, log=None,
                     progress=False).fix_module


@pytest.mark.slow
@pytest.mark.parametrize("size", [4096, 512])
def test_resnet18_cifar_bit_exact(resnet18_cifar, size):
    m = resnet18_cifar.clone()
    compile_module(m, f"DPUCZDX8G_ISA1_B{size}")
    func = next(iter(m.body.ops))
    on_cpu = [op.name for op in func.body.ops if op.attributes.get("dpu.device") is not None
              and op.attributes["dpu.device"].value == "CPU"]
    assert on_cpu == ["fix.float"]
    (prog,) = load_programs(m)
    assert sum(i.name == "ELEW" for i in prog.instructions) > 0
    x = np.random.default_rng(size).standard_normal((1, 3, 32, 32)).astype(np.float32)
    xin, ref = fix_reference(m, x)
    np.testing.assert_array_equal(run_program(prog, xin, "fast").reshape(-1), ref.reshape(-1))
