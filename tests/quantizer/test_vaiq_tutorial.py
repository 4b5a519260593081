"""examples/vaiq_tutorial/digits_quant.py: a vai_q_pytorch tutorial script whose only changed line is the
import runs calib then test (+ deploy) as it would under vai_q_pytorch."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "vaiq_tutorial" / "digits_quant.py"


def test_only_the_import_line_names_fixflow_quantizer():
    src = SCRIPT.read_text()
    lines = [line for line in src.splitlines() if "fixflow.quantizer" in line or "pytorch_nndct" in line]
    assert lines == ["from fixflow.quantizer import torch_quantizer          # vai_q_pytorch: from pytorch_nndct.apis "
                     "import torch_quantizer"]
    for call in ("torch_quantizer(quant_mode, model, (input)", "quantizer.quant_model", "quantizer.export_quant_config()",
                 "quantizer.export_xmodel(", "quantizer.fast_finetune(evaluate", "quantizer.load_ft_param()",
                 "quantizer.export_torch_script(", "quantizer.export_onnx_model("):
        assert call in src, call


def _run(tmp_path, *args):
    r = subprocess.run([sys.executable, str(SCRIPT), "--subset_len", "160", *args], cwd=tmp_path, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    m = re.search(r"top-1 / top-5 accuracy: ([\d.]+) / ([\d.]+)", r.stdout)
    assert m, r.stdout
    return float(m.group(1)), r.stdout


@pytest.mark.slow
def test_calib_then_test_then_deploy(tmp_path):
    acc_float, _ = _run(tmp_path, "--quant_mode", "float")
    acc_calib, out = _run(tmp_path, "--quant_mode", "calib")
    assert "Quant config exported" in out and (tmp_path / "quantize_result" / "quant_info.json").exists()
    acc_test, out = _run(tmp_path, "--quant_mode", "test", "--deploy")
    assert acc_float > 95 and acc_test > 95 and abs(acc_test - acc_float) < 3
    res = tmp_path / "quantize_result"
    for name in ("DigitsCNN_int.xmodel", "DigitsCNN_int.pt", "DigitsCNN_int.onnx", "DigitsCNN.py"):
        assert (res / name).exists(), name
    from fixflow.backends.xmodel.serial import read_xmodel
    names = [op.name for op in read_xmodel(res / "DigitsCNN_int.xmodel").ops]
    assert "DigitsCNN__input_0" in names
    assert any(n.startswith("DigitsCNN__DigitsCNN_Sequential_features__") for n in names)
