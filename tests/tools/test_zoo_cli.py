"""fixflow-zoo command line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from fixflow.tools.zoo import main
from fixflow.zoo import registry


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list(capsys):
    code, out, err = run(capsys, "list")
    assert code == 0 and err == ""
    for name in registry.list_models():
        assert name in out
    assert "8.178" in out and "98." in out


def test_list_json(capsys):
    code, out, _ = run(capsys, "list", "--json")
    rows = json.loads(out)
    assert [r["name"] for r in rows] == registry.list_models()


def test_show(capsys):
    code, out, _ = run(capsys, "show", "resnet50")
    assert code == 0
    assert "8.178" in out and "published GOPs: 8.2" in out and "seeded random" in out
    code, out, _ = run(capsys, "show", "tiny_mobilenet", "--layers")
    assert code == 0 and "blocks.0.dw  dwconv3x3/2  1x16x14x14  28,224" in out
    code, out, _ = run(capsys, "show", "digits_cnn", "--json")
    d = json.loads(out)
    assert d["float_accuracy"] == registry.float_accuracy("digits_cnn")


def test_unknown_model(capsys):
    code, out, err = run(capsys, "show", "X")
    assert code == 1 and out == ""
    assert err.strip() == f"error: unknown model 'X' (available: {', '.join(registry.list_models())})"


def test_usage_errors(capsys):
    code, _, err = run(capsys, "frobnicate")
    assert code == 1 and err.startswith("error: ") and "Traceback" not in err
    code, _, err = run(capsys, "train", "digits_cnn", "--epochs", "zero")
    assert code == 1 and "invalid int value" in err
    code, _, err = run(capsys, "train", "digits_cnn", "--epochs", "0")
    assert code == 1 and "--epochs must be >= 1" in err
    code, _, err = run(capsys, "train", "resnet50")
    assert code == 1 and "no training recipe" in err


def test_train_and_eval(capsys, tmp_path):
    pytest.importorskip("torch")
    out_path = tmp_path / "w.npz"
    code, out, err = run(capsys, "train", "tiny_mobilenet", "--epochs", "1", "--output", str(out_path))
    assert code == 0, err
    assert "epoch 1/1: loss" in out and f"weights written to {out_path}" in out
    assert out_path.exists()
    code, out, _ = run(capsys, "eval", "tiny_mobilenet", "--weights", str(out_path))
    assert code == 0 and "top-1 accuracy" in out
    code, _, err = run(capsys, "train", "tiny_mobilenet", "--epochs", "1", "-o", str(tmp_path / "no/dir/w.npz"))
    assert code == 1 and "cannot write" in err


def test_eval_bundled(capsys):
    pytest.importorskip("torch")
    code, out, _ = run(capsys, "eval", "digits_cnn")
    assert code == 0
    assert f"{100 * registry.float_accuracy('digits_cnn'):.2f}%" in out
    code, _, err = run(capsys, "eval", "resnet18")
    assert code == 1 and "not a digits model" in err
    code, _, err = run(capsys, "eval", "digits_cnn", "--weights", "/nonexistent.npz")
    assert code == 1 and "cannot read weights" in err


def test_console_script():
    exe = shutil.which("fixflow-zoo")
    cmd = [exe] if exe else [sys.executable, "-m", "fixflow.tools.zoo"]
    proc = subprocess.run([*cmd, "show", "nope"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: unknown model 'nope'") and "Traceback" not in proc.stderr


def _zoo_error(capsys, *argv) -> str:
    assert main(list(argv)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize("flags, needle", [(["--lr", "nan"], "--lr must be a positive number"),
                                           (["--lr", "inf"], "--lr must be a positive number"),
                                           (["--seed", "-1"], "--seed must be >= 0")])
def test_zoo_train_rejects_bad_settings(capsys, tmp_path, flags, needle):
    assert needle in _zoo_error(capsys, "train", "digits_cnn", *flags, "-o", str(tmp_path / "w.npz"))


def test_zoo_eval_rejects_files_that_are_not_weights(capsys, tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(3))
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "text.npz").write_text("hello\n")
    assert "a single .npy array" in _zoo_error(capsys, "eval", "digits_cnn", "--weights", str(tmp_path / "a.npy"))
    for name in ("empty.npz", "text.npz"):
        assert "not a .npz file" in _zoo_error(capsys, "eval", "digits_cnn", "--weights", str(tmp_path / name))
    from fixflow.zoo import get_model
    state = {k: v.numpy() for k, v in get_model("digits_cnn").state_dict().items()}
    state["classifier.bias"] = np.array(list("abcdefghij"))
    np.savez(tmp_path / "str.npz", **state)
    assert "classifier.bias holds <U1 values" in _zoo_error(capsys, "eval", "digits_cnn", "--weights",
                                                            str(tmp_path / "str.npz"))
