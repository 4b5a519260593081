"""The same inputs everywhere (issue 14 items 6 and 2): one data loader for fixflow-opt's calibrate pass
and the tools, one model loader (classes listed, checkpoints, whole pickled models, DDP prefixes, no raw
PyTorch error), a file.py:Class without weights refused, fixflow-xir png without dot on PATH, the input
op named the same through fixflow-opt and the Quantizer."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fixflow.tools.inspect import main as inspect_main
from fixflow.tools.opt import main as opt_main
from fixflow.tools.quantize import main as quantize_main
from fixflow.tools.run import main as run_main
from fixflow.tools.translate import main as translate_main
from fixflow.tools.xir import main as xir_main

NET_PY = """
import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


class Other(torch.nn.Module):
    def forward(self, x):
        return x
"""
ANSI = re.compile(r"\x1b\[")


def _one_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and "internal error" not in err and not ANSI.search(err), err
    return lines[0]


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """net.py, its weights in every form users save them, and inputs (.npy, .npz with labels)."""
    tmp_path = tmp_path_factory.mktemp("user")
    (tmp_path / "net.py").write_text(NET_PY)
    script = tmp_path / "save.py"   # a training script: it pickles __main__.Net and imported net.Net
    script.write_text(NET_PY + """
import sys
import torch
torch.manual_seed(0)
m = Net()
torch.save(m, sys.argv[1] + '/main_whole.pt')
sys.path.insert(0, sys.argv[1])
import net
torch.manual_seed(0)
n = net.Net()
torch.save(n, sys.argv[1] + '/whole.pt')
torch.save(n.state_dict(), sys.argv[1] + '/state.pt')
torch.save({'state_dict': n.state_dict(), 'epoch': 3, 'optimizer': {}}, sys.argv[1] + '/ckpt.pth')
torch.save({'module.' + k: v for k, v in n.state_dict().items()}, sys.argv[1] + '/ddp.pt')
torch.save({'epoch': 3, 'lr': 0.1}, sys.argv[1] + '/noweights.pt')
class Foreign:
    pass
torch.save({'w': Foreign()}, sys.argv[1] + '/foreign.pt')
""")
    subprocess.run([sys.executable, str(script), str(tmp_path)], check=True, cwd=tmp_path)
    x = np.random.default_rng(0).random((24, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "d.npz", x=x, y=np.random.default_rng(1).integers(0, 10, 24))
    return tmp_path


def _import(user, weights, capsys) -> tuple[int, str, str]:
    code = translate_main(["--import-torch", f"{user / 'net.py'}:Net", "--input-shape", "1,1,8,8",
                           "--weights", str(user / weights)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("weights", ["state.pt", "whole.pt", "main_whole.pt", "ckpt.pth", "ddp.pt"])
def test_weights_in_every_saved_form_load_the_same(user, weights, capsys):
    code, out, err = _import(user, weights, capsys)
    assert code == 0, err
    reference = _import(user, "state.pt", capsys)[1]
    assert out == reference


@pytest.mark.parametrize("weights,match", [
    ("noweights.pt", r"'.*noweights.pt' is a dict without model weights \(keys: epoch, lr\)"),
    ("foreign.pt", r"needs __main__.Foreign, which fixflow does not load .*torch.save\(model.state_dict\(\)"),
])
def test_weights_that_cannot_load_name_the_fix(user, weights, match, capsys):
    code, _, err = _import(user, weights, capsys)
    assert code == 1 and re.search(match, _one_error(err))


def test_mismatched_weights_list_the_keys(user, capsys):
    torch.save({"conv.weight": torch.zeros(4, 1, 3, 3), "head.bias": torch.zeros(10)}, user / "other.pt")
    code, _, err = _import(user, "other.pt", capsys)
    line = _one_error(err)
    assert code == 1 and "missing conv.bias, fc.bias, fc.weight" in line and "unexpected head.bias" in line


@pytest.mark.parametrize("tool,argv", [
    (quantize_main, ["--model", "{d}/net.py"]),
    (translate_main, ["--import-torch", "{d}/net.py", "--input-shape", "1,1,8,8"]),
    (inspect_main, ["{d}/net.py"]),
])
def test_a_py_without_class_lists_its_classes(user, tool, argv, capsys):
    assert tool([a.format(d=user) for a in argv]) == 1
    line = _one_error(capsys.readouterr().err)
    assert "say which class to use" in line and "nn.Module classes in" in line and "Net, Other" in line


def test_a_weights_file_as_the_model_names_the_fix(user, capsys):
    assert quantize_main(["--model", str(user / "whole.pt")]) == 1
    assert "--model FILE.py:CLASS and this file as --weights" in _one_error(capsys.readouterr().err)


def test_quantize_refuses_random_initial_weights(user, capsys):
    argv = ["--model", f"{user / 'net.py'}:Net", "--data", str(user / "d.npz"), "--output-dir", str(user / "qr"),
            "--calib-batches", "1", "--batch-size", "8"]
    assert quantize_main(argv) == 1
    line = _one_error(capsys.readouterr().err)
    assert "without --weights would quantize the random initial weights of Net()" in line and "--random-weights" in line
    assert not (user / "qr").exists()
    assert quantize_main(argv + ["--random-weights"]) == 0
    assert "WARNING: --random-weights" in capsys.readouterr().err
    assert quantize_main(argv + ["--weights", str(user / "ckpt.pth")]) == 0


def test_calibrate_pass_takes_what_quantize_takes(user, capsys):
    """`calibrate{data=x.npy}` ended in "internal error" while `fixflow-quantize --data x.npy` worked."""
    assert translate_main(["--import-torch", f"{user / 'net.py'}:Net", "--input-shape", "1,1,8,8", "--weights",
                           str(user / "state.pt"), "-o", str(user / "net.mlir")]) == 0
    for data in ("x.npy", "d.npz"):
        assert opt_main([str(user / "net.mlir"), "-p", f"calibrate{{data={user / data} batches=1 batch_size=8}}",
                         "-o", str(user / "cal.mlir")]) == 0, capsys.readouterr().err
        assert "fix.calib_batches = 1" in (user / "cal.mlir").read_text()
        assert quantize_main(["--model", f"{user / 'net.py'}:Net", "--weights", str(user / "state.pt"), "--data",
                              str(user / data), "--output-dir", str(user / "q"), "--calib-batches", "1",
                              "--batch-size", "8"]) == 0
    capsys.readouterr()
    np.save(user / "wrong.npy", np.zeros((4, 1, 9, 9), np.float32))
    assert opt_main([str(user / "net.mlir"), "-p", f"calibrate{{data={user / 'wrong.npy'}}}"]) == 1
    assert "does not fit the network input (N, 1, 8, 8)" in _one_error(capsys.readouterr().err)
    assert quantize_main(["--model", f"{user / 'net.py'}:Net", "--weights", str(user / "state.pt"), "--data",
                          str(user / "wrong.npy"), "--input-shape", "1,1,8,8", "--output-dir", str(user / "q")]) == 1
    assert "does not fit" in _one_error(capsys.readouterr().err)


def test_image_folder_for_quantize_and_calibrate(tmp_path, capsys):
    from PIL import Image

    from fixflow.zoo.data import load_digits
    x, y = load_digits("test", size=28)
    for i in range(20):
        d = tmp_path / "imgs" / str(int(y[i]))
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray((x[i, 0] * 255).round().astype(np.uint8)).save(d / f"{i}.png")
    assert quantize_main(["--model", "digits_cnn", "--data", str(tmp_path / "imgs"), "--output-dir",
                          str(tmp_path / "q"), "--calib-batches", "1", "--batch-size", "8"]) == 0
    assert "quantized accuracy" in capsys.readouterr().out   # labels from the class folders


@pytest.mark.skipif(not os.path.exists("/usr/bin/dot"), reason="Graphviz is not installed in /usr/bin")
def test_xir_png_finds_dot_off_path(tmp_path, monkeypatch, capsys):
    from _lib.small_quantizer import calibrate  # noqa: F401 - only to have a model file below
    from fixflow.backends.xmodel.fix_xmodel import write_int_xmodel
    from fixflow.frontends.dsl import import_dsl_file
    from fixflow.ir.passes import PassManager
    module = import_dsl_file(Path(__file__).resolve().parents[2] / "examples" / "cnn.ffn")
    PassManager.parse("fold-bn,calibrate{batches=1 batch_size=4},quantize").run(module)
    write_int_xmodel(module, tmp_path / "cnn_int.xmodel")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))      # dot installed, but not on PATH
    monkeypatch.delenv("GRAPHVIZ_DOT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert xir_main(["png", str(tmp_path / "cnn_int.xmodel"), str(tmp_path / "g.png")]) == 0, capsys.readouterr().err
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert xir_main(["png", str(tmp_path / "cnn_int.xmodel")]) == 0          # no output name: next to it
    assert (tmp_path / "cnn_int.png").read_bytes()[:4] == b"\x89PNG"
    monkeypatch.setattr("fixflow.tools.xir._DOT_PLACES", ())
    assert xir_main(["png", str(tmp_path / "cnn_int.xmodel"), str(tmp_path / "h.png")]) == 1
    assert "GRAPHVIZ_DOT" in _one_error(capsys.readouterr().err) and not (tmp_path / "h.png").exists()


def test_input_op_named_alike_through_text_and_quantizer(calibrated, tmp_path):
    """The Quantizer's _int.xmodel names the input op `x`; the same fix module printed (the printer makes the
    data op `%x_1` beside the argument `%x`), read back and exported names it `x` too."""
    from fixflow.backends.xmodel import read_xmodel
    from fixflow.backends.xmodel.fix_xmodel import write_int_xmodel
    from fixflow.ir import parse_module, print_module
    _, q, xmodel = calibrated
    text = print_module(q.fix_module)
    assert '%x_1 = "fix.data"(%x)' in text
    write_int_xmodel(parse_module(text), tmp_path / "text_int.xmodel")

    def inputs(path):
        return [op.name for op in read_xmodel(path).ops if op.type == "data-fix"]
    assert inputs(xmodel) == inputs(tmp_path / "text_int.xmodel") == ["x"]


def test_run_reads_the_same_sources(user, tmp_path, capsys):
    from _lib.small_quantizer import calibrate
    _, _, xmodel = calibrate(tmp_path / "cal")
    np.save(tmp_path / "in.npy", np.random.default_rng(0).random((4, 1, 8, 8)).astype(np.float32))
    assert run_main([str(xmodel), "--input", str(tmp_path / "in.npy"), "--no-progress"]) == 0
    capsys.readouterr()
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert run_main([str(xmodel), "--input", str(tmp_path / "obj.npy"), "--no-progress"]) == 1
    assert "holds Python objects" in _one_error(capsys.readouterr().err)
    assert run_main([str(xmodel), "--input", str(tmp_path / "in.npy"), "--no-progress", "--compare-torch",
                     str(user / "net.py")]) == 1
    assert "say which class to use" in capsys.readouterr().err


def test_a_dsl_network_as_the_model(tmp_path, capsys):
    """`--model mynet.ffn` was "unknown model": fixflow-quantize (calib, test, xmodel) and fixflow-inspect take it."""
    from fixflow.frontends.dsl import export_weights, import_dsl_file
    from fixflow.zoo.data import load_digits
    ffn = Path(__file__).resolve().parents[2] / "examples" / "cnn.ffn"
    np.savez(tmp_path / "cnn.npz", **export_weights(import_dsl_file(ffn)))
    x, y = load_digits("test", size=28)
    np.savez(tmp_path / "d.npz", x=x[:16], y=y[:16])
    common = ["--model", str(ffn), "--data", str(tmp_path / "d.npz"), "--output-dir", str(tmp_path / "q"),
              "--calib-batches", "1", "--batch-size", "8"]
    assert quantize_main(common) == 1
    assert "random initial weights of the DSL network" in _one_error(capsys.readouterr().err)
    common += ["--weights", str(tmp_path / "cnn.npz")]
    assert quantize_main(common + ["--mode", "calib"]) == 0
    assert quantize_main(common + ["--mode", "test"]) == 0
    out = capsys.readouterr().out
    assert "Parsing CNN..." in out and "quantized accuracy" in out and (tmp_path / "q" / "CNN_int.xmodel").exists()
    assert inspect_main([str(ffn), "--weights", str(tmp_path / "cnn.npz"), "--quant-dir", str(tmp_path / "q")]) == 0
    text = capsys.readouterr().out
    assert "CNN on DPUCZDX8G_ISA1_B4096" in text and "cnn.ffn:24:3" in text   # DSL source lines
    assert inspect_main([str(ffn), "--data", str(tmp_path / "d.npz"), "--format", "json"]) == 0
    assert '"dpu_ops": 6' in capsys.readouterr().out


def test_prune_reads_data_with_the_same_loader(tmp_path, capsys):
    from fixflow.tools.prune import main as prune_main
    np.save(tmp_path / "x.npy", np.zeros((4, 1, 28, 28), np.float32))
    argv = ["--model", "digits_cnn", "-o", str(tmp_path / "o"), "--no-progress", "--channel-ratio", "0.5"]
    assert prune_main(argv + ["--data", str(tmp_path / "x.npy")]) == 1
    assert "has no labels: pruning trains and evaluates" in _one_error(capsys.readouterr().err)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert prune_main(argv + ["--data", str(tmp_path / "obj.npy")]) == 1
    assert "holds Python objects" in _one_error(capsys.readouterr().err)
    assert prune_main(["--model", str(tmp_path / "x.npy"), "-o", str(tmp_path / "o"), "--channel-ratio", "0.5"]) == 1
    _one_error(capsys.readouterr().err)
