"""fixflow-quantize: calib then test on a zoo model, a user model file, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fixflow.tools.quantize import main


MODEL_PY = """
import torch, torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)
    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))
"""


def test_user_model_calib_and_test(tmp_path, capsys):
    (tmp_path / "net.py").write_text(MODEL_PY)
    torch.manual_seed(0)
    ns = {}
    exec(MODEL_PY, ns)
    torch.save(ns["Net"]().state_dict(), tmp_path / "w.pt")
    x = np.random.default_rng(0).random((40, 1, 8, 8)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 10, 40)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    out = tmp_path / "q"
    common = ["--model", f"{tmp_path / 'net.py'}:Net", "--weights", str(tmp_path / "w.pt"), "--data",
              str(tmp_path / "d.npz"), "--output-dir", str(out), "--batch-size", "8"]
    assert main(common + ["--mode", "calib", "--calib-batches", "3"]) == 0
    assert json.loads((out / "quant_info.json").read_text())["graph_md5"]
    assert main(common + ["--mode", "test"]) == 0
    text = capsys.readouterr().out
    assert "Parsing Net..." in text and "quantized accuracy" in text
    assert (out / "Net_int.xmodel").exists()


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["--model", "no_such_model"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown model 'no_such_model'")
    assert main(["--model", "digits_cnn", "--mode", "test", "--output-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run the quantizer in 'calib' mode" in err[0]
    (tmp_path / "c.json").write_text('{"include_cle": true, "fast": 1}')
    assert main(["--model", "digits_cnn", "--config", str(tmp_path / "c.json"), "--output-dir", str(tmp_path)]) == 1
    assert "unknown config key 'fast'" in capsys.readouterr().err
    assert main(["--model", "digits_cnn", "--mode", "deploy"]) == 1
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.slow
def test_zoo_digits_calib_test(tmp_path, capsys):
    out = str(tmp_path / "q")
    assert main(["--model", "tiny_mobilenet", "--mode", "calib", "--output-dir", out, "--calib-batches", "4"]) == 0
    assert main(["--model", "tiny_mobilenet", "--mode", "test", "--output-dir", out]) == 0
    text = capsys.readouterr().out
    assert "Successfully convert 'TinyMobileNet' to xmodel" in text and "359 test images" in text


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
