"""Quality bars of W8A8 post-training quantization on the digits models (fix-dialect simulation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fixflow import zoo
from fixflow.quantizer import Quantizer

pytestmark = pytest.mark.slow


def _quantize(name, tmp_path, config=None):
    model = zoo.get_model(name)
    xtr, _ = zoo.load_data(name, "train")
    xte, yte = zoo.load_data(name, "test")
    ex = (torch.from_numpy(xtr[:1]),)
    q = Quantizer(model, ex, mode="calib", output_dir=tmp_path, config=config, log=None, progress=False)
    for i in range(0, 320, 32):
        q.quant_model(xtr[i:i + 32])
    q.export_quant_config()
    qt = Quantizer(model, ex, mode="test", output_dir=tmp_path, config=config, log=None)
    yq = qt.quant_model(xte)
    with torch.no_grad():
        yf = model(torch.from_numpy(xte)).numpy()
    return yf, yq, yte


@pytest.mark.parametrize("name", ["digits_cnn", "tiny_mobilenet"])
def test_w8a8_quality(name, tmp_path):
    yf, yq, y = _quantize(name, tmp_path)
    fa, qa = (yf.argmax(1) == y).mean(), (yq.argmax(1) == y).mean()
    assert qa >= fa - 0.006
    assert (yf.argmax(1) == yq.argmax(1)).mean() >= 0.994
    sqnr = 10 * np.log10((yf ** 2).mean() / ((yf - yq) ** 2).mean())
    assert sqnr >= 24


def test_imbalanced_needs_cle(tmp_path):
    yf, yq, y = _quantize("tiny_mobilenet_imbalanced", tmp_path / "naive", config={"include_cle": False})
    assert (yq.argmax(1) == y).mean() < 0.5        # naive per-tensor PTQ collapses
    yf, yq, y = _quantize("tiny_mobilenet_imbalanced", tmp_path / "cle")
    assert (yq.argmax(1) == y).mean() >= 0.975
