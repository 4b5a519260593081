"""A pruned digits_cnn goes through the whole flow unchanged: prune half the conv channels, finetune, save
the slim state dict, load it into a fresh DigitsCNN, quantize (Quantizer calib/test, _int.xmodel),
compile (fixflow-compile), run (fixflow-run on the DPU interpreter: the quantizer's accuracy), and
fixflow-profile and fixflow-zoo show report the reduced work."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fixflow.quantizer import Quantizer
from fixflow.quantizer.pruning import finetune, get_pruning_runner, load_state_dict
from fixflow.tools import compile as compile_tool
from fixflow.tools import profile as profile_tool
from fixflow.tools import run as run_tool
from fixflow.tools import zoo as zoo_tool
from fixflow.zoo import get_model, load_data, torch_loader
from fixflow.zoo.models import DigitsCNN

EX = (torch.zeros(1, 1, 28, 28),)


def _quantize_compile(model, out):
    """(quantizer test-mode accuracy, compiled xmodel path) of ``model`` on the digits data."""
    xtr, _ = load_data("digits_cnn", "train")
    x, y = load_data("digits_cnn", "test")
    q = Quantizer(model, EX, mode="calib", output_dir=out / "q", log=None, progress=False)
    for xb in torch.from_numpy(xtr[:256]).split(64):
        q.quant_model(xb)
    q.export_quant_config()
    q = Quantizer(model, EX, mode="test", output_dir=out / "q", log=None, progress=False)
    acc = float((q.quant_model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())
    xmodel = q.export_xmodel()
    assert compile_tool.main(["-x", str(xmodel), "-a", "kv260", "-o", str(out / "c"), "-n", "net"]) == 0
    return acc, out / "c" / "net.xmodel"


def _workload(path, tmp_path) -> int:
    assert profile_tool.main([str(path), "--format", "json", "-o", str(tmp_path / "p.json")]) == 0
    return json.loads((tmp_path / "p.json").read_text())["total"]["workload_ops"]


@pytest.mark.slow   # finetunes, quantizes, compiles and runs two models
def test_pruned_digits_cnn_quantizes_compiles_runs(tmp_path, capsys):
    torch.manual_seed(0)
    model = get_model("digits_cnn")
    runner = get_pruning_runner(model, EX, output_dir=tmp_path / "vai", log=None, progress=False)
    slim = runner.prune(channel_ratio=0.5)
    x, y = load_data("digits_cnn", "test")

    def accuracy(m):
        with torch.no_grad():
            return float((m(torch.from_numpy(x)).argmax(1).numpy() == y).mean())

    before = accuracy(slim)
    finetune(slim, torch_loader("train", size=28, batch_size=32, seed=0), epochs=2, lr=3e-3, progress=False,
             log=None)
    tuned = accuracy(slim)
    assert tuned > before + 0.3          # 50% of the channels gone costs much; two epochs get most back
    torch.save(slim.state_dict(), tmp_path / "pruned.pth")

    loaded = load_state_dict(DigitsCNN(), torch.load(tmp_path / "pruned.pth", weights_only=True)).eval()
    assert accuracy(loaded) == tuned
    acc, compiled = _quantize_compile(loaded, tmp_path / "pruned")
    assert acc > tuned - 0.02
    capsys.readouterr()
    assert run_tool.main([str(compiled), "--data", "digits", "--no-progress", "-o", str(tmp_path / "o.npz")]) == 0
    assert f"accuracy {100 * acc:.2f}% (" in capsys.readouterr().out
    with np.load(tmp_path / "o.npz") as z:
        assert z[z.files[0]].shape == (len(y), 10)

    # the profiler's workload: 2 ops per MAC plus one per bias, for the pruned and the original model
    def expected(m):
        from fixflow.zoo import count_macs
        macs = count_macs(m, (1, 1, 28, 28))
        outs = {"features.0.0": m.features[0][0].out_channels * 28 * 28,
                "features.2.0": m.features[2][0].out_channels * 14 * 14,
                "features.3.0": m.features[3][0].out_channels * 7 * 7, "classifier": 10}
        pool = m.features[0][0].out_channels * 14 * 14 * 4
        return 2 * sum(macs.values()) + sum(outs.values()) + pool

    pruned_ops = _workload(compiled, tmp_path)
    assert pruned_ops == expected(loaded)
    _, full = _quantize_compile(get_model("digits_cnn"), tmp_path / "full")
    full_ops = _workload(full, tmp_path)
    assert full_ops == expected(get_model("digits_cnn"))
    assert pruned_ops / full_ops < 0.3

    # fixflow-zoo show --weights: the pruned MACs against the original's
    capsys.readouterr()
    assert zoo_tool.main(["show", "digits_cnn", "--weights", str(tmp_path / "pruned.pth"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["macs"] == 523712 and d["pruned"]["mac_ratio"] == round(523712 / 1950592, 6)
    assert d["params"] == sum(p.numel() for p in loaded.parameters())


def test_zoo_show_weights_reports_the_pruned_macs(tmp_path, capsys):
    slim = get_pruning_runner(get_model("tiny_mobilenet"), EX, output_dir=tmp_path, log=None,
                              progress=False).prune(channel_ratio=0.5)
    from fixflow.zoo import count_macs
    from fixflow.zoo.checkpoint import save_npz
    save_npz(slim, tmp_path / "tm.npz")
    assert zoo_tool.main(["show", "tiny_mobilenet", "--weights", str(tmp_path / "tm.npz"), "--layers"]) == 0
    out = capsys.readouterr().out
    macs = count_macs(slim, (1, 1, 28, 28))
    total = sum(macs.values())
    assert f"GOPs:           {2 * total / 1e9:.4g} (" in out
    assert f"pruned:         {100 * total / 842656:.1f}% of the original's MACs" in out
    assert "blocks.0.dw" in out and f"{macs['blocks.0.dw']:,}" in out and "1x8x28x28" in out
    torch.save(get_model("digits_cnn").state_dict(), tmp_path / "other.pth")
    assert zoo_tool.main(["show", "tiny_mobilenet", "--weights", str(tmp_path / "other.pth")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "state dict does not fit TinyMobileNet: missing stem.0.weight" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow   # quantizes and compiles a residual net
def test_pruned_residual_net_quantizes_compiles_and_runs_like_the_quantizer(tmp_path):
    """A stem and two basic blocks (residual adds, a strided 1x1 downsample), half the channels pruned: the
    compiled program on the DPU interpreter gives the quantizer's test-mode outputs."""
    from torch import nn

    from fixflow.zoo.models import BasicBlock

    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
            self.b1, self.b2 = BasicBlock(16, 16), BasicBlock(16, 32, stride=2)
            self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(32, 10)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(self.b2(self.b1(self.stem(x)))), 1))

    torch.manual_seed(0)
    model = Res()
    finetune(model, torch_loader("train", size=28, batch_size=64, seed=0), epochs=1, lr=3e-3, progress=False,
             log=None)
    runner = get_pruning_runner(model, EX, output_dir=tmp_path / "vai", log=None, progress=False)
    slim = runner.prune(channel_ratio=0.5)
    groups = {g.name: g.producers for g in runner.groups() if g.prunable}
    assert groups["stem.0"] == ["stem.0", "b1.conv2"] and groups["b2.downsample.0"] == ["b2.downsample.0", "b2.conv2"]
    assert slim.b1.conv2.out_channels == slim.stem[0].out_channels == 8
    assert slim.b2.downsample[0].out_channels == slim.b2.conv2.out_channels == slim.fc.in_features == 16
    x, _ = load_data("digits_cnn", "test")
    xs = x[:40]
    xtr, _ = load_data("digits_cnn", "train")
    q = Quantizer(slim, EX, mode="calib", output_dir=tmp_path / "q", log=None, progress=False)
    for xb in torch.from_numpy(xtr[:128]).split(64):
        q.quant_model(xb)
    q.export_quant_config()
    q = Quantizer(slim, EX, mode="test", output_dir=tmp_path / "q", log=None, progress=False)
    expected = np.asarray(torch.as_tensor(q.quant_model(torch.from_numpy(xs))).detach())
    xmodel = q.export_xmodel()
    assert compile_tool.main(["-x", str(xmodel), "-a", "kv260", "-o", str(tmp_path / "c"), "-n", "res"]) == 0
    np.savez(tmp_path / "in.npz", x=xs)
    assert run_tool.main([str(tmp_path / "c" / "res.xmodel"), "--input", str(tmp_path / "in.npz"), "--no-progress",
                          "-o", str(tmp_path / "out.npz")]) == 0
    with np.load(tmp_path / "out.npz") as z:
        got = z[z.files[0]]
    assert got.shape == expected.shape == (40, 10)
    assert np.array_equal(got, expected)
