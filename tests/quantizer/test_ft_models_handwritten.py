"""Fast finetuning on hand-written modules of the kinds users bring: residual adds, concat, depthwise convs,
ConvTranspose2d, a Linear after flatten, ReLU6 / Hardswish / LeakyReLU / a Sigmoid gate, one conv module called
twice; from Python and from the shell (`fixflow-quantize --fast-finetune` on a `file.py:Class`), through the
compiler and the DPU interpreter bit for bit."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fixflow.quantizer import Quantizer


class Mixed(nn.Module):
    """Residual through a reused conv, concat, depthwise stride-2 conv + hardswish, 1x1 + leaky relu,
    transposed conv, sigmoid gate (a CPU op in the middle), max pool, linear after flatten."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.act6 = nn.ReLU6()
        self.shared = nn.Conv2d(8, 8, 3, padding=1)          # called twice
        self.mix = nn.Conv2d(16, 16, 3, padding=1)
        self.dw = nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16)
        self.hs = nn.Hardswish()
        self.pw = nn.Conv2d(16, 8, 1)
        self.leaky = nn.LeakyReLU(0.1)
        self.up = nn.ConvTranspose2d(8, 8, 2, stride=2)
        self.gate = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8 * 4 * 4, 10)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.2, 0.2)
            self.bn.running_var.uniform_(0.5, 1.5)

    def forward(self, x):
        x = self.act6(self.bn(self.stem(x)))
        a = F.relu(self.shared(x))
        b = F.relu(self.shared(a)) + x
        y = F.relu(self.mix(torch.cat([a, b], 1)))
        y = self.hs(self.dw(y))
        y = self.leaky(self.pw(y))
        y = F.relu(self.up(y))
        y = y * torch.sigmoid(self.gate(y))
        y = F.max_pool2d(y, 4)
        return self.fc(torch.flatten(y, 1))


class Grouped(nn.Module):
    """A grouped (not depthwise) convolution between two plain ones."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.g = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.b = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.b(F.relu(self.g(F.relu(self.a(x)))))


G = torch.Generator().manual_seed(5)
X = torch.rand((32, 3, 16, 16), generator=G)
XT = torch.rand((6, 3, 16, 16), generator=G)


def _finetune(model, out, config=None, epochs=2):
    q = Quantizer(model, (X[:1],), mode="calib", output_dir=out, log=None, progress=False, config=config)

    def evaluate(loader):
        for xb in loader:
            q.quant_model(xb)
    rep = q.fast_finetune(evaluate, ([X[:16], X[16:]],), epochs=epochs, seed=0)
    q.export_quant_config()
    qt = Quantizer(model, (X[:1],), mode="test", output_dir=out, log=None, progress=False, config=config)
    qt.load_ft_param()
    return q, qt, rep


def _compile_run(xmodel, tmp_path, x):
    """The compiled model's outputs on the DPU interpreter (`fixflow-compile`, `fixflow-run`)."""
    from fixflow.tools import compile as compile_tool
    from fixflow.tools import run as run_tool
    np.save(tmp_path / "x.npy", x)
    assert compile_tool.main(["-x", str(xmodel), "-a", "kv260", "-o", str(tmp_path / "c"), "-n", "net"]) == 0
    assert run_tool.main([str(tmp_path / "c" / "net.xmodel"), "--input", str(tmp_path / "x.npy"), "--no-progress",
                          "-o", str(tmp_path / "dpu.npz")]) == 0
    with np.load(tmp_path / "dpu.npz") as z:
        return z[z.files[0]]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    d = tmp_path_factory.mktemp("mixed")
    q, qt, rep = _finetune(Mixed().eval(), d)
    return d, q, qt, rep


def test_every_weighted_layer_is_tuned_and_none_gets_worse(mixed):
    _, _, _, rep = mixed
    # the conv called twice is two layers (two call sites, as in quant_info.json), each tuned on its own inputs
    assert [r.name for r in rep.layers] == ["stem", "shared#1", "shared#2", "mix", "dw", "pw", "up", "gate", "fc"]
    assert all(r.loss_after <= r.loss_before for r in rep.layers)
    assert sum(r.loss_after < 0.99 * r.loss_before for r in rep.layers) >= 2   # 8 bits: little to gain


def test_files_name_both_calls_of_the_reused_module(mixed):
    d, _, _, _ = mixed
    info = json.loads((d / "quant_info.json").read_text())
    with np.load(d / "fast_finetune.npz") as z:
        assert set(z.files) == set(info["param"])
        assert {"Mixed::shared#1.weight", "Mixed::shared#2.weight"} <= set(z.files)
        assert not np.array_equal(z["Mixed::shared#1.weight"], z["Mixed::shared#2.weight"])


def test_test_mode_int_xmodel_and_dpu_agree_bit_for_bit(mixed, tmp_path):
    from fixflow.runtime import GraphRunner
    _, _, qt, _ = mixed
    yt = np.asarray(qt.quant_model(XT))
    xmodel = qt.export_xmodel()
    np.testing.assert_array_equal(GraphRunner.from_xmodel(xmodel).run([XT.numpy()])[0], yt)
    np.testing.assert_array_equal(_compile_run(xmodel, tmp_path, XT.numpy()), yt)
    with torch.no_grad():
        ref = Mixed().eval()(XT).numpy()
    assert float(np.linalg.norm(yt - ref) / np.linalg.norm(ref)) < 0.05


def test_w4a8_finetune_of_the_mixed_module_runs_bit_exact(tmp_path):
    cfg = {"tensor_quantize_config": {"weights": {"bit_width": 4}}}
    _, qt, _ = _finetune(Mixed().eval(), tmp_path / "q", config=cfg, epochs=1)
    yt = np.asarray(qt.quant_model(XT))
    np.testing.assert_array_equal(_compile_run(qt.export_xmodel(), tmp_path, XT.numpy()), yt)


def _cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.path.dirname(__file__),
                                                                        os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "fixflow.tools.quantize", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow   # two finetunes of 10 epochs in subprocesses: ~25 s CPU
def test_fixflow_quantize_fast_finetune_on_a_model_file_from_the_shell(tmp_path):
    """`fixflow-quantize --model file.py:Class --fast-finetune` in calib then test mode: the files are the finetuned
    model (the test-mode xmodel computes what test mode computes from the CLI's quant_info.json and
    fast_finetune.npz), and they differ from plain calibration's."""
    rng = np.random.default_rng(0)
    x = rng.random((32, 3, 16, 16)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=rng.integers(0, 10, 32))
    common = ["--model", f"{__file__}:Mixed", "--random-weights", "--data", str(tmp_path / "data.npz"),
              "--calib-batches", "2", "--batch-size", "16", "--fast-finetune", "--output-dir", str(tmp_path / "q")]
    r = _cli(*common, "--mode", "calib", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Finetuned parameters exported" in r.stdout + r.stderr
    r = _cli(*common, "--mode", "test", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Finetuned parameters in use" in r.stdout + r.stderr and "Traceback" not in r.stderr
    from fixflow.runtime import GraphRunner
    y_cli = GraphRunner.from_xmodel(tmp_path / "q" / "Mixed_int.xmodel").run([x])[0]
    qt = Quantizer(Mixed().eval(), (torch.from_numpy(x[:1]),), mode="test", output_dir=tmp_path / "q", log=None,
                   progress=False)
    assert qt.load_ft_param() is None
    np.testing.assert_array_equal(y_cli, np.asarray(qt.quant_model(torch.from_numpy(x))))
    plain = common[:-3] + ["--output-dir", str(tmp_path / "plain")]
    assert _cli(*plain, "--mode", "calib", cwd=tmp_path).returncode == 0
    assert _cli(*plain, "--mode", "test", cwd=tmp_path).returncode == 0
    y_plain = GraphRunner.from_xmodel(tmp_path / "plain" / "Mixed_int.xmodel").run([x])[0]
    assert not np.array_equal(y_plain, y_cli)


def test_grouped_conv_finetunes_and_matches_its_int_xmodel(tmp_path):
    from fixflow.runtime import GraphRunner
    q, qt, rep = _finetune(Grouped().eval(), tmp_path / "q", epochs=1)
    assert [r.name for r in rep.layers] == ["a", "g", "b"]
    yt = np.asarray(qt.quant_model(XT))
    np.testing.assert_array_equal(yt, np.asarray(q.quant_model(XT)))
    np.testing.assert_array_equal(GraphRunner.from_xmodel(qt.export_xmodel()).run([XT.numpy()])[0], yt)


def test_grouped_conv_compiles(tmp_path):
    _, qt, _ = _finetune(Grouped().eval(), tmp_path / "q", epochs=1)
    yt = np.asarray(qt.quant_model(XT))
    np.testing.assert_array_equal(_compile_run(qt.export_xmodel(), tmp_path, XT.numpy()), yt)


class Relu6Residual(nn.Module):
    """x = relu6(bn(conv(x))) (fix position forced to 4) added to a conv+relu branch calibrated at fix position 8:
    the DPU's ELEW pre-scale floors the finer input to 2^-(4 + 2) before adding."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.2, 0.2)
            self.bn.running_var.uniform_(0.5, 1.5)

    def forward(self, x):
        x = F.relu6(self.bn(self.stem(x)))
        return F.relu(self.conv(x)) + x


def test_relu6_residual_test_mode_matches_the_dpu(tmp_path):
    """What is deployed is exact: test mode, the _int.xmodel and the compiled model agree."""
    from fixflow.runtime import GraphRunner
    _, qt, _ = _finetune(Relu6Residual().eval(), tmp_path / "q", epochs=1)
    info = json.loads((tmp_path / "q" / "quant_info.json").read_text())["output"]
    assert info["Relu6Residual::relu6"][0][1] == 4 and info["Relu6Residual::relu"][0][1] >= 7   # the spread
    yt = np.asarray(qt.quant_model(XT))
    xmodel = qt.export_xmodel()
    np.testing.assert_array_equal(GraphRunner.from_xmodel(xmodel).run([XT.numpy()])[0], yt)
    np.testing.assert_array_equal(_compile_run(xmodel, tmp_path, XT.numpy()), yt)


def test_calib_mode_after_finetune_equals_test_mode_across_a_residual_add(tmp_path):
    q, qt, _ = _finetune(Relu6Residual().eval(), tmp_path / "q", epochs=1)
    np.testing.assert_array_equal(np.asarray(q.quant_model(XT)), np.asarray(qt.quant_model(XT)))


class HardswishNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.o = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.o(F.hardswish(self.a(x)))


def test_calib_mode_after_finetune_equals_test_mode_across_hardswish(tmp_path):
    q, qt, _ = _finetune(HardswishNet().eval(), tmp_path / "q", epochs=1)
    np.testing.assert_array_equal(np.asarray(q.quant_model(XT)), np.asarray(qt.quant_model(XT)))


class TwoLinears(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.fc = nn.Linear(128, 16)
        self.fc2 = nn.Linear(16, 5)

    def forward(self, x):
        return self.fc2(F.relu(self.fc(torch.flatten(F.relu(self.a(x)), 1))))


def test_two_linear_layers_compute_what_test_mode_computes(tmp_path):
    _, qt, _ = _finetune(TwoLinears().eval(), tmp_path / "q", epochs=1)
    yt = np.asarray(qt.quant_model(XT))
    yd = _compile_run(qt.export_xmodel(), tmp_path, XT.numpy())
    np.testing.assert_array_equal(yd.reshape(yt.shape), yt)


def test_two_linear_layers_keep_the_output_shape(tmp_path):
    _, qt, _ = _finetune(TwoLinears().eval(), tmp_path / "q", epochs=1)
    yt = np.asarray(qt.quant_model(XT))
    assert _compile_run(qt.export_xmodel(), tmp_path, XT.numpy()).shape == yt.shape


def test_fast_finetune_with_a_layer_left_in_float(tmp_path):
    cfg = {"layer_quantize_config": [{"layer_type": "torch.nn.Linear", "layer_name": None, "quantizable_data_type": []}]}
    q, qt, rep = _finetune(TwoLinears().eval(), tmp_path / "q", config=cfg, epochs=1)
    assert [r.name for r in rep.layers] == ["a"]
    np.testing.assert_array_equal(np.asarray(q.quant_model(XT)), np.asarray(qt.quant_model(XT)))
