"""fixflow-run: compiled and _int xmodels, --data digits / .npy / .npz inputs, outputs .npz, accuracy and
throughput lines, --threads/--batch/--mode, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from _runtime_testlib import MNIST, mnist_expected, mnist_inputs, quantize_digits  # noqa: E402
from fixflow.tools.run import main  # noqa: E402


@pytest.fixture(scope="module")
def digits_int(tmp_path_factory):
    return quantize_digits(tmp_path_factory.mktemp("q"))


@pytest.mark.slow   # quantizes digits_cnn (calib + test) first
def test_int_xmodel_digits_accuracy_equals_quantizer(digits_int, tmp_path, capsys):
    path, acc = digits_int
    out = tmp_path / "o.npz"
    assert main([str(path), "--data", "digits", "--threads", "2", "--batch", "50", "-o", str(out),
                 "--no-progress", "--compare-torch", "digits_cnn"]) == 0
    text = capsys.readouterr().out
    assert f"accuracy {100 * acc:.2f}% (" in text
    import torch
    from fixflow.zoo import get_model, load_data
    x, y = load_data("digits_cnn", "test")
    with torch.no_grad():
        fa = float((get_model("digits_cnn")(torch.from_numpy(x)).numpy().argmax(1) == y).mean())
    assert "PyTorch fp32 eager (digits_cnn):" in text and f"float accuracy {100 * fa:.2f}%" in text
    assert "fixflow / PyTorch time:" in text
    assert "images/s" in text and "ms per image" in text and "2 thread(s), batch 50" in text
    with np.load(out) as z:
        assert z.files == ["classifier_float"] and z["classifier_float"].shape == (359, 10)


def test_compiled_mnist_npz_and_modes(tmp_path, capsys):
    x = mnist_inputs().astype(np.float32) / 64
    y = mnist_expected().argmax(1)
    np.savez(tmp_path / "in.npz", x=x, y=y)
    for mode in ("fast", "reference", "fix"):
        out = tmp_path / f"{mode}.npz"
        assert main([str(MNIST), "--input", str(tmp_path / "in.npz"), "--mode", mode, "--batch", "2",
                     "-o", str(out), "--no-progress"]) == 0
        assert "accuracy 100.00% (5/5" in capsys.readouterr().out
        with np.load(out) as z:
            assert np.array_equal(z["quant_dense_1_softmax"].argmax(1), y)
    np.save(tmp_path / "x.npy", x)
    assert main([str(MNIST), "--input", str(tmp_path / "x.npy"), "--no-progress", "--limit", "3"]) == 0
    text = capsys.readouterr().out
    assert "3 images" in text and "accuracy" not in text


@pytest.mark.parametrize("args, message", [
    (["missing.xmodel", "--data", "digits"], "error: missing.xmodel: cannot read"),
    ([str(MNIST)], "error: one of the arguments --input --data is required"),
    ([str(MNIST), "--input", "nope.npy"], "error: --input: file nope.npy not found"),
    ([str(MNIST), "--data", "digits", "--threads", "0"], "error: --batch, --threads"),
    ([str(MNIST), "--data", "digits", "--mode", "turbo"], "error: argument --mode: invalid choice"),
    ([str(MNIST), "--data", "digits", "--limit", "2", "--compare-torch", "nosuch"], "error: unknown model 'nosuch'"),
])
def test_errors_are_one_line(args, message, capsys):
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.strip().splitlines()) == 1, err


def test_wrong_input_shape_and_bad_file(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((2, 28, 28), np.float32))
    assert main([str(MNIST), "--input", str(tmp_path / "x.npy")]) == 1
    assert "error: inputs have shape (2, 28, 28), the model input 'quant_input_1' needs (N, 28, 28, 1)" in \
        capsys.readouterr().err
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    assert main([str(MNIST), "--input", str(tmp_path / "bad.npz")]) == 1
    assert capsys.readouterr().err.startswith("error: --input: cannot read")


def test_runs_as_a_process(tmp_path):
    np.save(tmp_path / "x.npy", mnist_inputs().astype(np.float32) / 64)
    p = subprocess.run([sys.executable, "-c", "from fixflow.tools.run import main; raise SystemExit(main())",
                        str(MNIST), "--input", str(tmp_path / "x.npy"), "--batch", "1"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "throughput" in p.stdout


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_corrupt_mc_code_is_one_line_with_the_instruction(mode, tmp_path, capsys):
    from fixflow.backends.xmodel.compiled import read_compiled, write_compiled
    m = read_compiled(MNIST)
    sg = m.dpu_subgraphs[0]
    code = bytearray(sg.mc_code)
    code[40 * 4:41 * 4] = b"\xff\xff\xff\xff"      # an undefined opcode in the middle of the program
    sg.mc_code = bytes(code)
    bad = tmp_path / "bad.xmodel"
    write_compiled(m, bad)
    np.save(tmp_path / "x.npy", mnist_inputs().astype(np.float32) / 64)
    assert main([str(bad), "--input", str(tmp_path / "x.npy"), "--mode", mode, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and "instruction " in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("mode, noted", [("fast", True), ("reference", False)])
def test_fast_mode_notes_slow_blas_kernels(mode, noted, tmp_path, capsys, monkeypatch):
    import fixflow.runtime.dpu.blas as blas
    monkeypatch.setattr(blas, "blas_core", lambda: "Haswell")
    monkeypatch.setattr(blas, "cpu_has_avx512", lambda: True)
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    np.save(tmp_path / "x.npy", mnist_inputs().astype(np.float32) / 64)
    assert main([str(MNIST), "--input", str(tmp_path / "x.npy"), "--mode", mode, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert ("note: OPENBLAS_CORETYPE=Haswell makes numpy's OpenBLAS run its Haswell kernels" in err) == noted
    assert ("unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE" in err) == noted
