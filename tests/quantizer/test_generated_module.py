"""The generated `<Model>.py` computes what test mode computes, bit for bit, for every op and zoo model
(issue 14 item 1: it used to call F.adaptive_avg_pool2d where the DPU multiplies by 21/1024...)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from _quantizer_gen_lib import AllOps, load_generated, quantize

from fixflow import zoo
from fixflow.dialects.fix.numerics import avgpool_multiplier


def _assert_bit_exact(q, x, out):
    want = q.quant_model(x)
    gen = getattr(load_generated(out, q.name), q.name)().eval()
    with torch.no_grad():
        got = gen(x)
    want = want if isinstance(want, tuple) else (want,)
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(want)
    for a, b in zip(want, got):
        assert b.dtype == torch.float32 and a.shape == b.shape
        assert np.array_equal(a.numpy().view(np.int32), b.numpy().view(np.int32)), \
            f"{np.mean(a.numpy() != b.numpy()):.1%} of the outputs differ"


def test_every_fix_op(tmp_path):
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((8, 3, 12, 12)).astype(np.float32))
    q = quantize(AllOps().eval(), x, tmp_path)
    names = {op.name for op in q.fix_module.walk()}
    assert names >= {"fix.concat", "fix.conv2d", "fix.depthwise_conv2d", "fix.transposed_conv2d", "fix.dense",
                     "fix.eltwise", "fix.hard_sigmoid", "fix.hard_swish", "fix.pad", "fix.pool", "fix.upsample",
                     "fix.reshape", "graph.sigmoid"}
    _assert_bit_exact(q, x, tmp_path)
    x2 = torch.from_numpy(np.random.default_rng(1).standard_normal((3, 3, 12, 12)).astype(np.float32) * 3)
    _assert_bit_exact(q, x2, tmp_path)          # another batch size, values beyond the calibrated range
    src = (tmp_path / "AllOps.py").read_text()
    assert "26.0 / 256.0" in src and "2731" in src and "x 7/2^6" in src and "x 10/2^8" in src   # 3x3, 5x5 pools
    assert "graph.sigmoid" in src.split("import os")[0]     # the header names the op run by numpy


class _Gap(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(2, 4, 1)

    def forward(self, x):
        return torch.flatten(F.adaptive_avg_pool2d(F.relu(self.conv(x)), 1), 1)


@pytest.mark.parametrize("k", [3, 5, 6, 7, 14])
def test_global_average_pool_uses_the_dpu_factor(tmp_path, k):
    x = torch.from_numpy(np.random.default_rng(k).random((16, 2, k, k)).astype(np.float32))
    q = quantize(_Gap().eval(), x, tmp_path)
    mult, shift = avgpool_multiplier(k, k)
    assert f"{mult}, {shift}," in (tmp_path / "_Gap.py").read_text()
    _assert_bit_exact(q, x, tmp_path)
    # and the factor matters: the float mean differs from test mode on these inputs
    assert mult / 2**shift != 1 / k**2
    assert not np.array_equal(q.quant_model(x).numpy(), _Gap().eval()(x).detach().numpy())


# every zoo model; the ImageNet ones at small inputs (their global pools then see 2x2 or 3x3 maps)
ZOO = [("digits_cnn", None), ("tiny_mobilenet", None), ("tiny_mobilenet_imbalanced", None),
       pytest.param("resnet18_cifar", None, marks=pytest.mark.slow),
       pytest.param("resnet18", (3, 96, 96), marks=pytest.mark.slow),
       pytest.param("resnet50", (3, 64, 64), marks=pytest.mark.slow),
       pytest.param("mobilenet_v2", (3, 96, 96), marks=pytest.mark.slow),
       pytest.param("squeezenet1_1", (3, 96, 96), marks=pytest.mark.slow)]


def test_zoo_list_is_complete():
    assert {getattr(p, "values", p)[0] for p in ZOO} == set(zoo.list_models())


@pytest.mark.parametrize("name,shape", ZOO)
def test_zoo_model(tmp_path, name, shape):
    if shape is None:
        x = torch.from_numpy(zoo.sample_inputs(name, 8))
    else:
        x = torch.from_numpy(np.random.default_rng(0).standard_normal((4,) + shape).astype(np.float32))
    q = quantize(zoo.get_model(name), x, tmp_path)
    _assert_bit_exact(q, x, tmp_path)


@pytest.mark.slow
def test_resnet18_at_224_uses_21_over_1024(tmp_path):
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32))
    q = quantize(zoo.get_model("resnet18"), x, tmp_path, batches=1)
    assert "x 21/2^10" in (tmp_path / "ResNet.py").read_text()        # 7x7: 21/1024
    _assert_bit_exact(q, x, tmp_path)


def test_readme_of_the_generated_file_loads_it(tmp_path):
    """The loading recipe in the generated file's header (and docs/quantization.md) works as written."""
    x = torch.from_numpy(zoo.sample_inputs("digits_cnn", 4))
    q = quantize(zoo.get_model("digits_cnn"), x, tmp_path)
    header = [line[6:] for line in (tmp_path / "DigitsCNN.py").read_text().splitlines()
              if line.startswith("#     ")]
    code = "\n".join(header).replace("<output_dir>", str(tmp_path))
    ns = {"x": x}
    exec(code, ns)  # noqa: S102
    assert np.array_equal(ns["y"].detach().numpy(), q.quant_model(x).numpy())
    assert isinstance(ns["net"], torch.nn.Module) and not ns["net"].training
