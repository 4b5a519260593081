"""Quantizer API: modes, quant_info.json, config keys, mismatch checks, generated module, xmodel."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from fixflow.quantizer import Quantizer, QuantizerError, load_config, param_name


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4 * 8 * 8, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.relu(self.bn(self.conv(x))), 1))


class Other(Small):
    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


def _data(n=64, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).random((n, 1, 8, 8)).astype(np.float32))


def _calibrate(tmp_path, model=None, **kw):
    model = model or Small().eval()
    q = Quantizer(model, (_data(1),), mode="calib", output_dir=tmp_path, log=None, progress=False, **kw)
    x = _data()
    for i in range(0, 64, 16):
        q.quant_model(x[i:i + 16])
    q.export_quant_config()
    return model, q


def test_float_mode_matches_torch():
    model = Small().eval()
    q = Quantizer(model, (_data(1),), log=None)
    x = _data(8)
    torch.testing.assert_close(q.quant_model(x), model(x), rtol=1e-4, atol=1e-5)


def test_calib_then_test(tmp_path):
    model, _ = _calibrate(tmp_path)
    info = json.loads((tmp_path / "quant_info.json").read_text())
    assert set(info) >= {"param", "output", "input", "fast_finetuned", "bias_corrected", "version", "graph_md5"}
    assert "Small::conv.weight" in info["param"] and "Small::fc.bias" in info["param"]
    assert all(len(v) == 1 and len(v[0]) == 2 for v in info["output"].values())
    assert info["fast_finetuned"] is False
    logs = []
    q = Quantizer(model, (_data(1),), mode="test", output_dir=tmp_path, log=logs.append)
    x = _data(32, seed=3)
    y = q.quant_model(x)
    assert isinstance(y, torch.Tensor) and y.shape == (32, 5)
    yf = model(x).detach().numpy()
    sqnr = 10 * np.log10((yf ** 2).mean() / ((yf - y.numpy()) ** 2).mean())
    assert sqnr > 20
    # test mode == integer execution of the fix module, bit for bit
    from fixflow.runtime.fix_executor import run_quantized
    np.testing.assert_array_equal(run_quantized(q.fix_module, [x.numpy()])[0], y.numpy())
    path = q.export_xmodel()
    assert path.name == "Small_int.xmodel" and path.stat().st_size > 0
    assert any("Successfully convert 'Small' to xmodel" in s for s in logs)
    assert any(s.startswith("[fixflow] Parsing Small...") for s in logs)
    from fixflow.backends.xmodel.fix_xmodel import read_int_xmodel
    m2 = read_int_xmodel(path)
    np.testing.assert_array_equal(run_quantized(m2, [x.numpy()])[0], y.numpy())


def test_generated_module_runs_and_matches(tmp_path):
    model, _ = _calibrate(tmp_path)
    q = Quantizer(model, (_data(1),), mode="test", output_dir=tmp_path, log=None)
    spec = importlib.util.spec_from_file_location("gen_small", tmp_path / "Small.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    g = mod.Small()
    x = _data(16, seed=4)
    y = g(x).detach().numpy()
    assert np.array_equal(y, q.quant_model(x).numpy())       # bit for bit (tests/quantizer/test_generated_module.py)


def test_mismatched_quant_info(tmp_path):
    _calibrate(tmp_path)
    with pytest.raises(QuantizerError, match=r"node 'Small::\w+' is not in this model's graph"):
        Quantizer(Other().eval(), (_data(1),), mode="test", output_dir=tmp_path, log=None)
    info = json.loads((tmp_path / "quant_info.json").read_text())
    info["graph_md5"] = "0" * 32
    (tmp_path / "quant_info.json").write_text(json.dumps(info))
    with pytest.raises(QuantizerError, match="graph_md5"):
        Quantizer(Small().eval(), (_data(1),), mode="test", output_dir=tmp_path, log=None)
    with pytest.raises(QuantizerError, match="run the quantizer in 'calib' mode"):
        Quantizer(Small().eval(), (_data(1),), mode="test", output_dir=tmp_path / "none", log=None)


def test_config_keys(tmp_path):
    cfg = load_config({"include_cle": False, "overall_quantize_config": {"method": "maxmin", "bit_width": 8}})
    assert cfg.include_cle is False and cfg.method == "maxmin"
    with pytest.raises(QuantizerError, match="unknown config key 'include_clee'"):
        load_config({"include_clee": True})
    with pytest.raises(QuantizerError, match="unknown config key 'overall_quantize_config.bits'"):
        load_config({"overall_quantize_config": {"bits": 8}})
    with pytest.raises(QuantizerError, match="per_channel.*not supported"):
        load_config({"overall_quantize_config": {"per_channel": True}})
    p = tmp_path / "bad.json"
    p.write_text("{\"include_cle\": tru}")
    with pytest.raises(QuantizerError, match="invalid JSON"):
        load_config(p)
    _, q = _calibrate(tmp_path, config={"include_bias_corr": False, "convert_relu6_to_relu": True})
    assert json.loads((tmp_path / "quant_info.json").read_text())["bias_corrected"] is False


def test_bad_usage(tmp_path):
    with pytest.raises(QuantizerError, match="unknown quant mode 'calibrate'"):
        Quantizer(Small().eval(), (_data(1),), mode="calibrate", log=None)
    q = Quantizer(Small().eval(), (_data(1),), mode="calib", output_dir=tmp_path, log=None)
    with pytest.raises(QuantizerError, match="no calibration batch"):
        q.export_quant_config()
    with pytest.raises(QuantizerError, match="export_xmodel\\(\\) needs mode='test'"):
        q.export_xmodel()


def test_unsupported_op_is_named():
    from fixflow.ir.diagnostics import FixflowError

    class WithGRU(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(8, 8)

        def forward(self, x):
            return self.gru(x)[0]

    with pytest.raises(FixflowError, match="GRU"):
        Quantizer(WithGRU(), (torch.zeros(2, 1, 8),), log=None)


def test_cpu_fallback_warns_with_constraint(tmp_path):
    class Sig(Small):
        def forward(self, x):
            return torch.sigmoid(self.fc(torch.flatten(self.relu(self.bn(self.conv(x))), 1)))

    model, _ = _calibrate(tmp_path, Sig().eval())
    logs = []
    q = Quantizer(model, (_data(1),), mode="test", output_dir=tmp_path, log=logs.append)
    assert any("warning" in s and "sigmoid is not supported by the DPU" in s for s in logs)
    y = q.quant_model(_data(4)).numpy()
    assert np.all((y >= 0) & (y <= 1))


def test_param_name():
    assert param_name("a.b.weight_bnfold_cle2_biascorr") == "a.b.weight"
