"""fixflow-prune: prune (and finetune) from the shell; the slim weights and the generated model file load
into fixflow-quantize; one `error:` line per bad input."""

from __future__ import annotations

import json

import pytest
import torch

from fixflow.tools.prune import main
from fixflow.tools.user_model import load_torch_model
from fixflow.zoo import count_macs, get_model


def test_prune_cli_writes_slim_weights_and_a_model_file(tmp_path, capsys):
    out = tmp_path / "pr"
    assert main(["--model", "digits_cnn", "--channel-ratio", "0.5", "--epochs", "0", "-o", str(out),
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "[fixflow] MACs 1,950,592 -> 523,712 (26.8%), parameters 54,778 -> 21,634" in text
    assert "float accuracy 98.33%, pruned 9.75% on the digits test split" in text
    model = load_torch_model(str(out / "DigitsCNN_pruned.py"), "DigitsCNNPruned", str(out / "DigitsCNN_pruned.pth"))
    assert sum(count_macs(model, (1, 1, 28, 28)).values()) == 523712
    spec = json.loads((out / "DigitsCNN_channel_ratio_0.5.spec.json").read_text())
    assert spec["macs_after"] == 523712 and len(spec["groups"]["features.0.0"]["kept"]) == 8
    # the same channels as the Python API
    from fixflow.quantizer.pruning import get_pruning_runner
    ref = get_pruning_runner(get_model("digits_cnn"), torch.zeros(1, 1, 28, 28), output_dir=tmp_path / "v",
                             log=None, progress=False).prune(channel_ratio=0.5)
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))


@pytest.mark.slow   # finetunes one epoch and calibrates
def test_prune_cli_finetunes_and_the_result_quantizes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["--model", "digits_cnn", "--channel-ratio", "0.5", "--epochs", "1", "-o", "pr", "--no-progress"]) == 0
    assert "finetuned" in capsys.readouterr().out
    from fixflow.tools.quantize import main as quantize
    assert quantize(["--model", "pr/DigitsCNN_pruned.py:DigitsCNNPruned", "--weights", "pr/DigitsCNN_pruned.pth",
                     "--data", "digits", "--mode", "calib", "--output-dir", "q"]) == 0
    assert (tmp_path / "q" / "quant_info.json").exists()


@pytest.mark.parametrize("args, message", [
    (["--channel-ratio", "1.5"], "error: channel_ratio must be in (0, 1) (the fraction removed), got 1.5"),
    (["--channel-ratio", "0.5", "--exclude", "features.7"],
     "error: excludes[0]: 'features.7' names no layer of DigitsCNN (conv layers: features.0.0, features.2.0, "
     "features.3.0)"),
    (["--channel-ratio", "0.5", "--epochs", "-1"], "error: --epochs must be >= 0"),
    (["--channel-ratio", "0.5", "--data", "nothing.npz"], "error: --data: file nothing.npz not found"),
    ([], "one of the arguments --channel-ratio --removal-ratio --mac-budget --threshold --spec is required"),
])
def test_prune_cli_errors(tmp_path, capsys, args, message):
    assert main(["--model", "digits_cnn", "-o", str(tmp_path / "o"), "--no-progress", *args]) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_prune_cli_mac_budget_below_reachable(tmp_path, capsys):
    assert main(["--model", "digits_cnn", "--mac-budget", "1000", "--ana-images", "50", "--epochs", "0",
                 "-o", str(tmp_path / "o"), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: mac_budget 1000 asks for at most 1,000 MACs, below the fewest this model can "
                          "reach: 41,748 of 1,950,592") and len(err.splitlines()) == 1
