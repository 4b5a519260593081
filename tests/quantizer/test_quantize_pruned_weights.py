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
