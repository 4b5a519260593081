"""fixflow-inspect: zoo names, file.py:Class models, _int.xmodel and .mlir inputs, --target/--board, the four
formats, -o, and one-line errors through the shared tool path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fixflow.tools.inspect import main

torch = pytest.importorskip("torch")

NET = textwrap.dedent("""\
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.big = nn.Conv2d(8, 8, 17, padding=8)
            self.head = nn.Conv2d(8, 4, 1)

        def forward(self, x):
            x = torch.relu(self.conv(x))
            x = torch.sigmoid(self.big(x))
            return self.head(x)
    """)


def _run(capsys, *args):
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def net_py(tmp_path):
    p = tmp_path / "net.py"
    p.write_text(NET)
    return p


def test_zoo_model_text_and_board(capsys):
    rc, out, err = _run(capsys, "digits_cnn", "--board", "kv260", "--calib-images", "2")
    assert rc == 0, err
    assert out.startswith("fixflow inspector: DigitsCNN on DPUCZDX8G_ISA1_B4096")
    assert "Ops assigned to the CPU" in out and "Fused groups" in out
    assert "features.0.0 (conv2d, batch_norm folded), features.0.2 (relu fused)" in out


def test_user_model_reasons_json_and_source_lines(capsys, net_py):
    rc, out, err = _run(capsys, f"{net_py}:Net", "--input-shape", "1,3,20,20", "--target", "B512",
                        "--format", "json", "--calib-images", "2")
    assert rc == 0, err
    d = json.loads(out)
    assert d["target"] == "DPUCZDX8G_ISA1_B512"
    ops = {o["name"]: o for o in d["ops"]}
    assert ops["big"]["device"] == "CPU" and "kernel 17x17 is outside the conv engine's 1-16" in ops["big"]["reason"]
    line = next(i for i, t in enumerate(NET.splitlines(), 1) if "self.big(x)" in t)
    col = NET.splitlines()[line - 1].index("self.big(x)") + 1
    assert ops["big"]["source"] == f"{net_py}:{line}:{col}"    # x = torch.sigmoid(self.big(x))
    sig = next(o for o in d["ops"] if o["kind"] == "graph.sigmoid")
    assert sig["device"] == "CPU" and "sigmoid is not supported by the DPU" in sig["reason"]
    assert ops["relu"]["device"] == "DPU" and ops["relu"]["super_layer"]
    assert d["summary"]["dpu_subgraphs"] == 2


def test_int_xmodel_and_mlir_inputs(capsys, tmp_path):
    from fixflow.ir import print_module
    from fixflow.quantizer import Quantizer
    from fixflow.zoo import get_model, sample_inputs
    x = torch.from_numpy(sample_inputs("digits_cnn", 4))
    q = Quantizer(get_model("digits_cnn"), (x[:1],), mode="calib", output_dir=tmp_path, log=None, progress=False)
    q.quant_model(x)
    q.export_quant_config()
    q = Quantizer(get_model("digits_cnn"), (x[:1],), mode="test", output_dir=tmp_path, log=None, progress=False)
    xm = q.export_xmodel()
    rc, out, err = _run(capsys, xm, "--target", "DPUCZDX8G_ISA1_B1024", "--format", "json")
    assert rc == 0, err
    from_xmodel = {o["name"]: (o["device"], o["super_layer"]) for o in json.loads(out)["ops"]}
    rc, out, _ = _run(capsys, "digits_cnn", "--target", "B1024", "--quant-dir", tmp_path, "--format", "json")
    assert rc == 0
    assert {o["name"]: (o["device"], o["super_layer"]) for o in json.loads(out)["ops"]} == from_xmodel
    mlir = tmp_path / "fix.mlir"
    mlir.write_text(print_module(q.fix_module, print_locations=True))
    out_file = tmp_path / "r" / "fix.dot"
    rc, out, err = _run(capsys, mlir, "--format", "dot", "-o", out_file)
    assert rc == 0 and out == "", err
    assert out_file.read_text().startswith('digraph "DigitsCNN"') or out_file.read_text().startswith('digraph "fix"')
    rc, _, err = _run(capsys, xm, "--input-shape", "1,1,28,28")
    assert rc == 1 and err.strip() == f"error: --input-shape applies to float models (a zoo name or file.py:Class), " \
                                      f"not to {xm}"


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_svg(capsys, tmp_path):
    rc, out, err = _run(capsys, "digits_cnn", "--format", "svg", "--calib-images", "1")
    assert rc == 0, err
    assert "<svg" in out and "#a6d96a" in out          # DPU fill colour


def test_svg_without_dot_is_one_line(capsys, monkeypatch):
    import fixflow.quantizer.inspector as mod
    monkeypatch.setattr(mod.shutil, "which", lambda name: None)
    rc, out, err = _run(capsys, "digits_cnn", "--format", "svg", "--calib-images", "1")
    assert rc == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: Graphviz's 'dot' program is not installed")


@pytest.mark.parametrize("args, message", [
    (["nothere_int.xmodel"], "error: cannot read 'nothere_int.xmodel': no such file"),
    (["digits_cnn", "--target", "B999"], "unknown size B999"),
    (["digits_cnn", "--board", "vck190"], "error: --board: unknown board 'vck190' (known: zcu102, zcu104, kv260)"),
    (["digits_cnn", "--board", "kv260", "--target", "B512"], "not allowed with argument"),
    (["digits_cnn", "--format", "png"], "invalid choice: 'png'"),
    (["nozoo"], "nozoo"),
    (["digits_cnn", "--calib-images", "0"], "error: --calib-images must be at least 1, got 0"),
])
def test_errors_are_one_line(capsys, args, message):
    rc, out, err = _run(capsys, *args)
    assert rc == 1 and out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_user_model_without_shape_and_bad_data(capsys, net_py, tmp_path):
    rc, _, err = _run(capsys, f"{net_py}:Net")
    assert rc == 1 and err.strip() == "error: a file.py:Class model needs --input-shape (e.g. 1,3,32,32) or --data"
    bad = tmp_path / "x.npz"
    np.savez(bad, x=np.zeros((2, 3, 8, 8), np.float32))
    rc, _, err = _run(capsys, f"{net_py}:Net", "--data", bad, "--input-shape", "1,3,20,20")
    assert rc == 1 and "does not fit the network input (N, 3, 20, 20)" in err
    rc, out, err = _run(capsys, f"{net_py}:Net", "--data", bad, "--format", "json")
    assert rc == 0, err                              # --data alone gives the shape
    assert json.loads(out)["ops"][0]["shape"] == [1, 8, 8, 3]


def test_console_script():
    exe = shutil.which("fixflow-inspect")
    if exe is None:
        pytest.skip("fixflow-inspect is not installed (pip install -e .)")
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, check=False)
    assert r.returncode == 0 and "--format" in r.stdout and sys.executable


WIDE = textwrap.dedent("""\
    from torch import nn


    class Wide(nn.Module):
        def __init__(self):
            super().__init__()
            self.expand = nn.Conv2d(3, 720, 1)
            self.wide = nn.Conv2d(720, 8, 5, padding=2, stride=1)
            self.far = nn.Conv2d(8, 8, 1, stride=9)

        def forward(self, x):
            return self.far(self.wide(self.expand(x)))
    """)


def test_weight_bank_and_stride_limits_by_target(capsys, tmp_path):
    p = tmp_path / "wide.py"
    p.write_text(WIDE)
    devices = {}
    for flag, target in (("--target", "B512"), ("--board", "zcu104")):
        rc, out, err = _run(capsys, f"{p}:Wide", "--input-shape", "1,3,9,9", flag, target, "--format", "json",
                            "--calib-images", "2")
        assert rc == 0, err
        ops = {o["name"]: o for o in json.loads(out)["ops"]}
        devices[target] = ops["wide"]["device"]
        assert ops["far"]["device"] == "CPU" and "stride 9x9 is outside the conv engine's 1-8" in ops["far"]["reason"]
        if target == "B512":
            assert "5x5x720 weights need 2250 lines of a weight bank (depth 2048)" in ops["wide"]["reason"]
    assert devices == {"B512": "CPU", "zcu104": "DPU"}
