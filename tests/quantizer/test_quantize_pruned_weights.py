"""fixflow-quantize --model <zoo name> --weights <slim state dict>: the zoo model's layers are resized to the
pruned shapes (as fixflow-prune's generated <Model>_pruned.py does), and a state dict no pruning gives is one
message."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fixflow.quantizer.pruning import get_pruning_runner
from fixflow.tools.quantize import main as quantize
from fixflow.tools.user_model import load_torch_model
from fixflow.zoo import get_model


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    d = tmp_path_factory.mktemp("pruned")
    slim = get_pruning_runner(get_model("digits_cnn"), torch.zeros(1, 1, 28, 28), output_dir=d / "p", log=None,
                              progress=False).prune(channel_ratio=0.5)
    torch.save(slim.state_dict(), d / "pruned.pth")
    np.savez(d / "pruned.npz", **{k: v.numpy() for k, v in slim.state_dict().items()})
    # the generated model file of fixflow-prune: the reference way of loading the slim weights
    from fixflow.tools.prune import main as prune
    assert prune(["--model", "digits_cnn", "--channel-ratio", "0.5", "--epochs", "0", "-o", str(d / "cli"),
                  "--no-progress"]) == 0
    return d, slim


@pytest.mark.parametrize("suffix", ["pth", "npz"])
def test_zoo_model_is_resized_to_pruned_weights(pruned, tmp_path, capsys, suffix):
    d, slim = pruned
    out = tmp_path / "q"
    assert quantize(["--model", "digits_cnn", "--weights", str(d / f"pruned.{suffix}"), "--data", "digits",
                     "--mode", "calib", "--calib-batches", "2", "--output-dir", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"DigitsCNN: layers resized to the pruned shapes of '{d / f'pruned.{suffix}'}'" in err
    info = json.loads((out / "quant_info.json").read_text())
    assert info["param"]    # calibrated the slim network: its weights are the pruned ones
    from fixflow.quantizer import Quantizer
    q = Quantizer(slim.eval(), (torch.zeros(1, 1, 28, 28),), mode="calib", output_dir=tmp_path / "ref", log=None,
                  progress=False)
    assert q.graph_md5 == info["graph_md5"]   # the same graph as the slim model's


def test_resized_zoo_model_equals_the_generated_pruned_model(pruned):
    from fixflow.tools.user_model import load_state_dict
    d, _ = pruned
    model = get_model("digits_cnn")
    load_state_dict(model, str(d / "cli" / "DigitsCNN_pruned.pth"), pruned=True)
    ref = load_torch_model(str(d / "cli" / "DigitsCNN_pruned.py"), "DigitsCNNPruned",
                           str(d / "cli" / "DigitsCNN_pruned.pth"))
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), ref(x))


def test_weights_no_pruning_gives_are_one_message(pruned, tmp_path, capsys):
    d, slim = pruned
    state = dict(slim.state_dict())
    w = state["features.0.0.weight"]
    state["features.0.0.weight"] = torch.zeros(w.shape[0], w.shape[1], 5, 5)   # another kernel size
    torch.save(state, tmp_path / "bad.pth")
    assert quantize(["--model", "digits_cnn", "--weights", str(tmp_path / "bad.pth"), "--data", "digits",
                     "--mode", "calib", "--output-dir", str(tmp_path / "q")]) != 0
    err = capsys.readouterr().err
    assert "error: weights '" in err and "'features.0.0.weight' has shape (8, 1, 5, 5), which no pruning of" in err
    assert "Traceback" not in err


# ------------------------------------------------------------------------------------ DSL networks
_CNN_PY = '''
import torch
from torch import nn


class CNN(nn.Module):
    """examples/cnn.ffn in PyTorch, with the DSL's statement names as module names."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.conv3 = nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(64)
        self.fc = nn.Linear(3136, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2, 2)
        x = torch.relu(self.bn2(self.conv2(x)))
        x = torch.relu(self.bn3(self.conv3(x)))
        return self.fc(torch.flatten(x, 1))
'''


def _shell(tool, *args, cwd):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", f"fixflow.tools.{tool}", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def pruned_dsl(tmp_path_factory):
    """fixflow-prune of the PyTorch twin of examples/cnn.ffn, from the shell: its slim state dict (.pth) and an .npz."""
    d = tmp_path_factory.mktemp("dsl")
    (d / "cnn.py").write_text(_CNN_PY)
    r = _shell("prune", "--model", "cnn.py:CNN", "--data", "digits", "--channel-ratio", "0.5", "--epochs", "0",
               "-o", "pr", "--no-progress", cwd=d)
    assert r.returncode == 0, r.stderr
    state = torch.load(d / "pr" / "CNN_pruned.pth", weights_only=True)
    np.savez(d / "slim.npz", **{k: v.numpy() for k, v in state.items()})
    return d


@pytest.mark.parametrize("weights", ["pr/CNN_pruned.pth", "slim.npz"])
def test_dsl_network_is_resized_to_pruned_weights_from_the_shell(pruned_dsl, weights):
    """`fixflow-quantize --model net.ffn --weights <slim state dict>`: the conv2d statements take their output
    channels from the weights, batch norms and the linear layer follow, and the quantized network is the pruned
    model (its float accuracy is the generated <Model>_pruned.py's)."""
    from pathlib import Path
    d = pruned_dsl
    ffn = str(Path(__file__).resolve().parents[2] / "examples" / "cnn.ffn")
    out = f"q_{weights.replace('/', '_')}"
    r = _shell("quantize", "--model", ffn, "--weights", weights, "--data", "digits", "--mode", "calib",
               "--calib-batches", "2", "--output-dir", out, cwd=d)
    assert r.returncode == 0, r.stderr
    assert f"conv1, conv2, conv3 resized to the pruned shapes of '{weights}'" in r.stderr
    assert "Traceback" not in r.stderr
    info = json.loads((d / out / "quant_info.json").read_text())
    assert "CNN::conv1.weight" in info["param"]
    ref = load_torch_model(str(d / "pr" / "CNN_pruned.py"), "CNNPruned", str(d / "pr" / "CNN_pruned.pth"))
    from fixflow.zoo.data import load_digits
    x, y = load_digits("test", size=28)
    with torch.no_grad():
        acc = float((ref(torch.from_numpy(np.asarray(x, np.float32))).argmax(1).numpy() == y).mean())
    assert f"float accuracy {100 * acc:.2f}%" in r.stdout
    r = _shell("quantize", "--model", ffn, "--weights", weights, "--data", "digits", "--mode", "test",
               "--output-dir", out, cwd=d)
    assert r.returncode == 0, r.stderr
    from fixflow.backends.xmodel import read_xmodel
    g = read_xmodel(d / out / "CNN_int.xmodel")
    w = next(o for o in g.ops if o.name == next(o for o in g.ops if o.name == "relu1").inputs["weights"][0])
    assert w.output.shape[0] == 8     # 16 channels pruned to 8


def test_dsl_resize_only_narrows_conv_outputs():
    """Without the pruning option the DSL still says the shape is wrong; weights wider than `out` or with another
    kernel are not a pruning and keep the DSL's message; a depthwise conv follows its pruned input."""
    from fixflow.frontends.dsl import DslError, import_dsl
    src = ("net N(x: f32[1, 4, 8, 8]) {\n  a = conv2d(x, out=8, kernel=3, pad=1)\n"
           "  d = conv2d(a, out=8, kernel=3, pad=1, groups=8)\n  b = batch_norm(d)\n  return b\n}\n")
    rng = np.random.default_rng(0)
    w = {"a.weight": rng.normal(size=(4, 4, 3, 3)), "a.bias": rng.normal(size=4),
         "d.weight": rng.normal(size=(4, 1, 3, 3)), "d.bias": rng.normal(size=4)}
    with pytest.raises(DslError, match=r"weights entry 'a.weight' has shape \[4, 4, 3, 3\] but \[8, 4, 3, 3\]"):
        import_dsl(src, "n.ffn", w)
    resized: list[str] = []
    m = import_dsl(src, "n.ffn", w, resized=resized)
    assert resized == ["a", "d"]
    ops = {op.results[0].name_hint: op for op in m.walk() if op.name in ("graph.conv2d", "graph.batch_norm")}
    assert ops["d"].groups == 4 and tuple(ops["b"].results[0].type.shape) == (1, 4, 8, 8)
    wide = {**w, "a.weight": rng.normal(size=(9, 4, 3, 3)), "a.bias": rng.normal(size=9)}
    with pytest.raises(DslError, match=r"'a.weight' has shape \[9, 4, 3, 3\] but \[8, 4, 3, 3\]"):
        import_dsl(src, "n.ffn", wide, resized=[])
    k5 = {**w, "a.weight": rng.normal(size=(4, 4, 5, 5))}
    with pytest.raises(DslError, match=r"'a.weight' has shape \[4, 4, 5, 5\] but \[8, 4, 3, 3\]"):
        import_dsl(src, "n.ffn", k5, resized=[])


def test_dsl_weights_from_a_ddp_checkpoint(pruned_dsl, tmp_path, capsys):
    """A training checkpoint holding a DDP state dict ({'state_dict': {'module.conv1.weight': ...}}) loads into the
    DSL network too (the .pth was once read as an .npz: 'weights not used by any statement: CNN_pruned/data.pkl')."""
    from pathlib import Path
    state = torch.load(pruned_dsl / "pr" / "CNN_pruned.pth", weights_only=True)
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "ckpt.pth")
    ffn = str(Path(__file__).resolve().parents[2] / "examples" / "cnn.ffn")
    assert quantize(["--model", ffn, "--weights", str(tmp_path / "ckpt.pth"), "--data", "digits", "--mode", "calib",
                     "--calib-batches", "1", "--output-dir", str(tmp_path / "q")]) == 0
    assert "conv1, conv2, conv3 resized to the pruned shapes" in capsys.readouterr().err
