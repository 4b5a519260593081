"""Quantizer API misuse: bad batches, weights, output dirs, bit widths and inputs are one clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _lib.small_quantizer import Net
from _lib.small_quantizer import data as _data
from _lib.small_quantizer import quantizer as _quantizer
from fixflow.ir.diagnostics import FixflowError
from fixflow.quantizer import Quantizer, QuantizerError
from fixflow.runtime.fix_executor import run_quantized


# ---- Quantizer API misuse
def test_calib_rejects_empty_nan_and_non_numeric_batches(tmp_path):
    q = _quantizer(tmp_path)
    with pytest.raises(FixflowError, match="empty calibration batch"):
        q.quant_model(torch.zeros(0, 1, 8, 8))
    bad = _data(4).clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(FixflowError, match="NaN or inf"):
        q.quant_model(bad)
    with pytest.raises(QuantizerError, match="numeric arrays, got str"):
        q.quant_model("hello")
    # none of the failed batches counts as calibration
    with pytest.raises(QuantizerError, match="no calibration batch was run"):
        q.export_quant_config()


def test_calib_wrong_shape_batch_does_not_count(tmp_path):
    q = _quantizer(tmp_path)
    with pytest.raises(FixflowError, match=r"expected shape \(N, 1, 8, 8\)"):
        q.quant_model(torch.zeros(2, 1, 9, 9))
    with pytest.raises(QuantizerError, match="no calibration batch was run"):
        q.export_quant_config()


def test_nan_weights_are_a_user_error(tmp_path):
    model = Net().eval()
    with torch.no_grad():
        model.conv.weight[0, 0, 0, 0] = float("nan")
    q = Quantizer(model, (_data(1),), mode="calib", output_dir=tmp_path, log=None, progress=False)
    with pytest.raises(FixflowError, match="weights or bias hold NaN"):
        q.quant_model(_data())


def test_output_dir_that_is_a_file(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(QuantizerError, match="cannot create output directory"):
        _quantizer(f)
    with pytest.raises(QuantizerError, match="cannot create output directory"):
        _quantizer(f / "sub")


def test_export_xmodel_into_a_file(calibrated, tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(QuantizerError, match="cannot create output directory"):
        calibrated[1].export_xmodel(f)


@pytest.mark.parametrize("bw", [0, 1, 17, 32, "8", 8.0, True])
def test_bitwidth_argument_is_checked(tmp_path, bw):
    with pytest.raises(QuantizerError, match=r"bitwidth must be an integer in \[2, 16\]"):
        _quantizer(tmp_path, bitwidth=bw)


def test_test_mode_checks_input_shapes(calibrated):
    qt = calibrated[1]
    for shape in [(2, 1, 9, 9), (1, 8, 8, 1), (2, 3, 8, 8), (8, 8)]:
        with pytest.raises(FixflowError, match=r"input #0 'x': expected shape \(N, 1, 8, 8\)"):
            qt.quant_model(torch.zeros(shape))
    assert qt.quant_model(np.zeros((3, 1, 8, 8), np.float32)).shape == (3, 5)


def test_leaky_slope_warning_goes_through_the_log(tmp_path, capsys):
    lines = []
    _quantizer(tmp_path, log=lines.append)
    assert any("leaky_relu slope 0.2" in s for s in lines)
    _quantizer(tmp_path, log=None)
    assert "leaky_relu" not in capsys.readouterr().err


def test_test_mode_rejects_nan_inputs(calibrated):
    qt = calibrated[1]
    x = np.zeros((2, 1, 8, 8), np.float32)
    x[1, 0, 3, 3] = np.nan
    with pytest.raises(FixflowError, match="NaN values"):
        qt.quant_model(x)
    with pytest.raises(FixflowError, match="NaN values"):
        run_quantized(qt.fix_module, [x])
