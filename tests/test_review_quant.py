"""Review of the quantizer / fix dialect / xmodel area: misuse and malformed inputs give one clear
user error (never a raw Python exception), and odd but legal models stay bit-exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from fixflow.backends.xmodel import XAttr, XModelError, read_xmodel, write_xmodel
from fixflow.backends.xmodel.fix_xmodel import read_int_xmodel
from fixflow.runtime.fix_executor import run_quantized, simulate_quantized
from fixflow.ir.diagnostics import FixflowError
from fixflow.quantizer import Quantizer, QuantizerError


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.leaky = nn.LeakyReLU(0.2)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.leaky(self.conv(x))), 1))


def _data(n=32, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).random((n, 1, 8, 8)).astype(np.float32))


def _quantizer(path, mode="calib", **kw):
    kw.setdefault("log", None)
    return Quantizer(Net().eval(), (_data(1),), mode=mode, output_dir=path, progress=False, **kw)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    path = tmp_path_factory.mktemp("q")
    q = _quantizer(path)
    q.quant_model(_data())
    q.export_quant_config()
    qt = _quantizer(path, "test")
    return path, qt, qt.export_xmodel()


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


# ---- malformed _int.xmodel attributes
@pytest.mark.parametrize("op_type,key,value", [
    ("conv2d-fix", "pad", [1, 1]),
    ("conv2d-fix", "pad", 0),
    ("conv2d-fix", "kernel", [3]),
    ("conv2d-fix", "stride", "FOO"),
    ("conv2d-fix", "dilation", True),
    ("conv2d-fix", "group", "FOO"),
    ("conv2d-fix", "group", [1, 1]),
    ("pool-fix", "kernel", [2]),
    ("pool-fix", "pad", [0, 0, 0, 0, 0, 0, 0, 0]),
    ("reshape-fix", "shape", 0),
    ("reshape-fix", "shape", "AB"),
])
def test_int_xmodel_malformed_attribute(calibrated, tmp_path, op_type, key, value):
    g = read_xmodel(calibrated[2])
    op = next(o for o in g.ops if o.type == op_type)
    kind = ("int32_vec" if isinstance(value, list) else "bool" if isinstance(value, bool)
            else "int32" if isinstance(value, int) else "string")
    op.attrs[key] = XAttr(kind, value)
    p = tmp_path / "bad.xmodel"
    write_xmodel(g, p)
    with pytest.raises(XModelError) as ei:
        read_int_xmodel(p)
    msg = ei.value.message
    assert msg.startswith(f"{p}: op {op.name!r} ({op_type})") and key in msg and "\n" not in msg


def test_translate_cli_malformed_xmodel(calibrated, tmp_path, capsys):
    from fixflow.tools.translate import main
    g = read_xmodel(calibrated[2])
    next(o for o in g.ops if o.type == "conv2d-fix").attrs["pad"] = XAttr("int32_vec", [1, 1])
    p = tmp_path / "bad.xmodel"
    write_xmodel(g, p)
    assert main(["--import-xmodel", str(p), "-o", str(tmp_path / "out.mlir")]) == 1
    err = capsys.readouterr().err
    assert "internal error" not in err and "'pad' must be 4 integers" in err


def test_int_xmodel_roundtrip_still_bit_exact(calibrated):
    _, qt, path = calibrated
    x = np.random.default_rng(1).random((7, 1, 8, 8)).astype(np.float32)
    m = read_int_xmodel(path)
    a = run_quantized(qt.fix_module, [x])[0]
    assert np.array_equal(a, simulate_quantized(qt.fix_module, [x])[0])
    assert np.array_equal(a, run_quantized(m, [x])[0])


def test_test_mode_rejects_nan_inputs(calibrated):
    qt = calibrated[1]
    x = np.zeros((2, 1, 8, 8), np.float32)
    x[1, 0, 3, 3] = np.nan
    with pytest.raises(FixflowError, match="NaN values"):
        qt.quant_model(x)
    with pytest.raises(FixflowError, match="NaN values"):
        run_quantized(qt.fix_module, [x])


# ---- config files
@pytest.mark.parametrize("config,match", [
    ({"quantizable_data_type": [["input"]]}, "quantizable_data_type"),
    ({"overall_quantize_config": {"symmetry": 1}}, "'overall_quantize_config.symmetry' must be true or false"),
    ({"overall_quantize_config": {"per_channel": 0}}, "'overall_quantize_config.per_channel' must be true or false"),
    ({"overall_quantize_config": {"signed": 1.0}}, "'overall_quantize_config.signed' must be true or false"),
    ({"overall_quantize_config": {"method": ["diffs"]}}, "'overall_quantize_config.method' must be one of"),
])
def test_config_wrong_value_types(config, match):
    from fixflow.quantizer import load_config
    with pytest.raises(QuantizerError, match=match):
        load_config(config)


def test_config_file_encodings(tmp_path):
    from fixflow.quantizer import load_config
    p = tmp_path / "c.json"
    p.write_bytes(b"\xef\xbb\xbf" + b'{"include_cle": false}')   # UTF-8 BOM, as some editors write
    assert load_config(p).include_cle is False
    p.write_bytes(b"\xff\xfe{\x00}\x00")
    with pytest.raises(QuantizerError, match="not a UTF-8 JSON file"):
        load_config(p)


@pytest.mark.parametrize("key", ["include_cle", "convert_relu6_to_relu"])
def test_graph_options_must_agree_between_calib_and_test(tmp_path, key):
    cfg = {key: key == "convert_relu6_to_relu"}
    flipped = {key: not cfg[key]}
    q = _quantizer(tmp_path, config=flipped)
    q.quant_model(_data())
    q.export_quant_config()
    with pytest.raises(QuantizerError, match=f"calibrated with '{key}'"):
        _quantizer(tmp_path, "test", config=cfg)
    _quantizer(tmp_path, "test", config=flipped)


# ---- fixflow-quantize --data files
def _cli_data(tmp_path, capsys, name, **arrays):
    from fixflow.tools.quantize import main
    p = tmp_path / name
    if name.endswith(".npy"):
        np.save(p, arrays["x"])
    elif arrays.get("raw") is not None:
        p.write_bytes(arrays["raw"])
    else:
        np.savez(p, **arrays)
    rc = main(["--model", "digits_cnn", "--data", str(p), "--mode", "calib", "--calib-batches", "1",
               "--batch-size", "8", "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert "internal error" not in err and "Traceback" not in err
    return rc, err


def test_cli_data_files(tmp_path, capsys):
    x = np.random.default_rng(0).random((16, 1, 28, 28)).astype(np.float32)
    rc, err = _cli_data(tmp_path, capsys, "short.npz", x=x, y=np.zeros(8, np.int64))
    assert rc == 1 and "labels 'y'" in err and "(16,)" in err
    rc, err = _cli_data(tmp_path, capsys, "onehot.npz", x=x, y=np.eye(10)[np.zeros(16, int)])
    assert rc == 1 and "integer class indices" in err
    rc, err = _cli_data(tmp_path, capsys, "zero.npz", x=x[:0])
    assert rc == 1 and "holds no inputs" in err
    rc, err = _cli_data(tmp_path, capsys, "garbage.npz", raw=b"PK\x03\x04garbage")
    assert rc == 1 and "cannot read" in err
    rc, err = _cli_data(tmp_path, capsys, "nan.npz", x=np.full((4, 1, 28, 28), np.nan, np.float32))
    assert rc == 1 and "NaN" in err
    rc, err = _cli_data(tmp_path, capsys, "plain.npy", x=x)
    assert rc == 0 and (tmp_path / "out" / "quant_info.json").exists()
