"""Issue 14 item 2: data mistakes are reported when they happen (wrong scale, wrong shape), with both sides
named, as QuantizerWarnings at the user's line (and in the Quantizer's log)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

from fixflow import zoo
from fixflow.quantizer import Quantizer, QuantizerError, QuantizerWarning


def _digits(n=32, size=28, seed=0):
    return torch.from_numpy(zoo.sample_inputs("digits_cnn", n, seed=seed)) if size == 28 else \
        torch.from_numpy(zoo.load_digits("train", size=size)[0][:n])


def _calib(tmp_path, x, example, log=None, model=None):
    model = model or zoo.get_model("digits_cnn")
    q = Quantizer(model, (example,), mode="calib", output_dir=tmp_path, log=log, progress=False)
    for xb in x.split(16):
        q.quant_model(xb)
    q.export_quant_config()
    return model


def test_uint8_scale_calibration_warns_at_the_users_line(tmp_path):
    logs = []
    model = zoo.get_model("digits_cnn")
    q = Quantizer(model, (torch.zeros(1, 1, 28, 28),), mode="calib", output_dir=tmp_path, log=logs.append,
                  progress=False)
    x = _digits() * 255                                           # pixels 0..255, the model was trained on 0..1
    with pytest.warns(QuantizerWarning, match=r"ranges over \[0, 255\].*first layer 'features\.0\.0'.*0\.\.1") as rec:
        q.quant_model(x[:16])
    assert rec[0].filename == __file__                            # the user's call, not fixflow's
    assert any("test_input_checks.py" in s and "warning:" in s for s in logs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                            # once: later batches do not repeat it
        q.quant_model(x[16:])


def test_correctly_scaled_data_is_quiet(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", QuantizerWarning)
        model = _calib(tmp_path, _digits(), torch.zeros(1, 1, 28, 28))
        q = Quantizer(model, (torch.zeros(1, 1, 28, 28),), mode="test", output_dir=tmp_path, log=None)
        q.quant_model(_digits(16, seed=1))


def test_scale_against_example_inputs_without_batch_norm(tmp_path):
    class NoBN(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x):
            return torch.relu(self.conv(x))

    example = torch.rand(1, 1, 8, 8)                              # 0..1
    q = Quantizer(NoBN(), (example,), mode="calib", output_dir=tmp_path, log=None, progress=False)
    with pytest.warns(QuantizerWarning, match=r"the example inputs over \[0\.\d+, 0\.\d+\] \(2\d\dx\)"):
        q.quant_model(torch.rand(4, 1, 8, 8) * 255)


def test_calibration_shape_differs_from_example(tmp_path):
    q = Quantizer(zoo.get_model("tiny_mobilenet"), (torch.zeros(1, 1, 28, 28),), mode="calib", output_dir=tmp_path,
                  log=None, progress=False)
    with pytest.raises(QuantizerError, match=r"expected shape \(N, 1, 28, 28\) as the example inputs given to the "
                                             r"Quantizer, \(1, 1, 28, 28\); got \(16, 1, 8, 8\)"):
        q.quant_model(_digits(16, size=8))
    with pytest.raises(QuantizerError, match="no calibration batch"):
        q.export_quant_config()                                    # the refused batch did not count


def test_test_mode_names_both_shapes_instead_of_a_bare_graph_md5(tmp_path):
    model = _calib(tmp_path, _digits(16, size=8), torch.zeros(1, 1, 8, 8), model=zoo.get_model("tiny_mobilenet"))
    with pytest.raises(QuantizerError, match=r"example inputs of shape \(1, 1, 8, 8\), this quantizer with "
                                             r"\(1, 1, 28, 28\)"):
        Quantizer(model, (torch.zeros(1, 1, 28, 28),), mode="test", output_dir=tmp_path, log=None)


def test_test_data_on_another_scale_than_calibration(tmp_path):
    model = _calib(tmp_path, _digits(), torch.zeros(1, 1, 28, 28))
    stats = json.loads((tmp_path / "input_stats.json").read_text())
    assert stats["example_shapes"] == [[1, 1, 28, 28]] and 0.9 < stats["calibration"][0]["max"] <= 1.0
    q = Quantizer(model, (torch.zeros(1, 1, 28, 28),), mode="test", output_dir=tmp_path, log=None)
    with pytest.warns(QuantizerWarning, match=r"test input 0 ranges over \[0, 255\] but the calibration data ranged "
                                              r"over \[0, 1\]"):
        q.quant_model(_digits(8, seed=2) * 255)
