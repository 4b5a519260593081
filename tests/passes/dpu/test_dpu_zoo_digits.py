"""The digits models end to end: quantize (calib + test on the bundled digits data), compile the
fix-level module with the DPU passes, run the program on the DPU interpreter and compare with the
fix-level integer execution, bit for bit, on real test images, for several target sizes."""

from __future__ import annotations

import numpy as np
import pytest

from _dpu_testlib import SIZES, compile_module, fix_reference, run_program
from fixflow.passes.dpu.program import load_programs
from fixflow.passes.dpu.schedule import Geometry, check
from fixflow.passes.dpu.codegen import Arch

torch = pytest.importorskip("torch")


def _quantized(name, tmp_path_factory):
    from fixflow.quantizer import Quantizer
    from fixflow.zoo import get_model, load_digits
    model = get_model(name).eval()
    x, _ = load_digits("train", size=28)
    out = tmp_path_factory.mktemp(name)
    example = (torch.zeros(1, 1, 28, 28),)
    q = Quantizer(model, example, mode="calib", output_dir=out, log=None, progress=False)
    for i in range(0, 128, 64):
        q.quant_model(torch.from_numpy(x[i:i + 64]))
    q.export_quant_config()
    q = Quantizer(model, example, mode="test", output_dir=out, log=None, progress=False)
    return q.fix_module


@pytest.fixture(scope="module")
def digits_cnn(tmp_path_factory):
    return _quantized("digits_cnn", tmp_path_factory)


@pytest.fixture(scope="module")
def tiny_mobilenet(tmp_path_factory):
    return _quantized("tiny_mobilenet", tmp_path_factory)


@pytest.fixture(scope="module")
def images():
    from fixflow.zoo import load_digits
    x, _ = load_digits("test", size=28)
    return x


def _check_model(module, size, images, n, mode="fast"):
    m = module.clone()
    compile_module(m, f"DPUCZDX8G_ISA1_B{size}")
    devices = {op.attributes["dpu.device"].value for op in next(iter(m.body.ops)).body.ops
               if "dpu.device" in op.attributes}
    assert devices == {"USER", "DPU", "CPU"}
    (prog,) = load_programs(m)
    check(prog.instructions, Geometry.of(Arch.of(prog.target)))
    for k in range(n):
        xin, ref = fix_reference(m, images[k:k + 1])
        got = run_program(prog, xin, mode)
        np.testing.assert_array_equal(got.reshape(-1), ref.reshape(-1), err_msg=f"image {k}, B{size}")
    return prog


@pytest.mark.parametrize("size", [4096, 1024, 512])
def test_digits_cnn_bit_exact(digits_cnn, images, size):
    prog = _check_model(digits_cnn, size, images, 8)
    kinds = {i.name for i in prog.instructions}
    assert kinds == {"LOAD", "SAVE", "CONVINIT", "CONV", "ALUINIT", "ALU", "END"}


@pytest.mark.parametrize("size", [4096, 1024])
def test_tiny_mobilenet_bit_exact(tiny_mobilenet, images, size):
    prog = _check_model(tiny_mobilenet, size, images, 6)
    modes = {i["exec_mode"] for i in prog.instructions if i.name == "ALUINIT"}
    assert modes == {0, 2}          # depthwise conv and the global average pool on the ALU


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES)
def test_digits_models_every_size(digits_cnn, tiny_mobilenet, images, size):
    _check_model(digits_cnn, size, images, 20)
    _check_model(tiny_mobilenet, size, images, 20)


def test_reference_mode_agrees(digits_cnn, images):
    _check_model(digits_cnn, 4096, images, 2, mode="reference")
