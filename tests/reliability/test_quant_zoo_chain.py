"""calib -> test -> export (`_int.xmodel`) on every zoo model, and quantization points per call site.

A module called twice (torchvision's BasicBlock/Bottleneck call `self.relu` twice) or one conv
applied to two inputs has one quantization point, one bias correction and one parameter format per
call site, so test mode finds every annotation calibration wrote.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from fixflow import zoo
from fixflow.backends.xmodel.fix_xmodel import read_int_xmodel
from fixflow.quantizer import Quantizer
from fixflow.quantizer.api import call_site_names
from fixflow.runtime.fix_executor import simulate_quantized

SLOW = {"resnet18", "resnet50", "mobilenet_v2", "resnet18_cifar"}


def _chain(model, x, out):
    """calib on `x` (one batch), export, test, export the _int.xmodel; returns (calib q, test q, xmodel path)."""
    qc = Quantizer(model, (x[:1],), mode="calib", output_dir=out, log=None, progress=False)
    qc.quant_model(x)
    qc.export_quant_config()
    qt = Quantizer(model, (x[:1],), mode="test", output_dir=out, log=None, progress=False)
    return qc, qt, qt.export_xmodel()


def test_every_zoo_model_is_listed_here():
    assert set(zoo.list_models()) >= SLOW | {"resnet18_cifar", "squeezenet1_1", "digits_cnn"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in zoo.list_models()])
def test_zoo_model_reaches_int_xmodel(name, tmp_path):
    model = zoo.get_model(name)
    x = torch.from_numpy(zoo.sample_inputs(name, 2))
    qc, qt, path = _chain(model, x, tmp_path)
    info = json.loads((tmp_path / "quant_info.json").read_text())
    # one output entry per quantization point, each point annotated in test mode
    points = qt._points()
    assert set(info["output"]) == set(points)
    assert all("fix.out" in op.attributes for op in points.values())
    y = qt.quant_model(x).numpy()
    yf = model(x).detach().numpy()
    assert y.shape == yf.shape and np.isfinite(y).all()
    # the written file reads back and runs as the test-mode model did
    back = read_int_xmodel(path)
    yb = simulate_quantized(back, [x.numpy()])[0]
    np.testing.assert_array_equal(yb.reshape(y.shape), y)


def test_resnet_blocks_get_one_point_per_call_site(tmp_path):
    model = zoo.get_model("resnet18_cifar")
    qt = Quantizer(model, (torch.zeros(1, 3, 32, 32),), mode="float", output_dir=tmp_path, log=None,
                   progress=False)
    names = call_site_names(qt.func)
    assert len(set(names.values())) == len(names)
    relus = sorted(n for n in names.values() if n.startswith("layer1.0.relu"))
    assert relus == ["layer1.0.relu#1", "layer1.0.relu#2"]


class SharedConv(nn.Module):
    """`self.c` applied to two different inputs, `self.relu` called three times."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.c = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        a = self.relu(self.stem(x))
        b = self.relu(self.c(a))
        return self.relu(self.c(b)) + a


@pytest.mark.parametrize("bitwidth", [8, 4])
def test_shared_conv_gets_a_format_and_correction_per_call_site(tmp_path, bitwidth):
    torch.manual_seed(0)
    model = SharedConv().eval()
    x = torch.randn(8, 1, 8, 8)
    qc = Quantizer(model, (x[:1],), mode="calib", output_dir=tmp_path, log=None, progress=False,
                   bitwidth=bitwidth)
    for i in range(3):
        qc.quant_model(x[i:i + 6])
    qc.export_quant_config()
    info = json.loads((tmp_path / "quant_info.json").read_text())
    assert {"SharedConv::c#1.weight", "SharedConv::c#2.weight", "SharedConv::c#1.bias",
            "SharedConv::c#2.bias", "SharedConv::stem.weight"} <= set(info["param"])
    assert "SharedConv::c.weight" not in info["param"]
    # calibration's frozen fake-quant forward, with the annotations it wrote
    ref = qc.runner.forward([x.numpy()])[0]
    if bitwidth == 4:   # 4 bits: bias correction has something to correct, per call site
        with np.load(tmp_path / "bias_corr.npz") as z:
            assert {"SharedConv::c#1.bias", "SharedConv::c#2.bias"} <= set(z.files)
    qt = Quantizer(model, (x[:1],), mode="test", output_dir=tmp_path, log=None, progress=False, bitwidth=bitwidth)
    keys = [op.bias.op.attributes["value"].key for op in qt.func.walk() if op.name == "graph.conv2d"]
    assert len(set(keys)) == (3 if bitwidth == 4 else 2)   # corrected: one bias constant per call site
    y = qt.quant_model(x).numpy()
    np.testing.assert_allclose(y, ref, atol=2.0 ** -4)
    qt.export_xmodel()
