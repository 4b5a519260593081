"""Fast finetuning (AdaQuant): Quantizer.fast_finetune / load_ft_param, fast_finetune.npz, the streamed frontier,
determinism, calib/test/xmodel/DPU agreement, fixflow-quantize --fast-finetune, and the bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from fixflow.dialects.fix.numerics import fake_quantize
from fixflow.quantizer import Quantizer, QuantizerError
from fixflow.quantizer.fast_finetune import FT_FILE, _torch_layer, forward_annotated

RNG = np.random.default_rng(0)
X = RNG.normal(size=(96, 1, 8, 8)).astype(np.float32)
EX = (torch.from_numpy(X[:1]),)
BW = 6   # the small net is near-lossless at 8 bits: 6-bit quantization leaves the finetune work to do


class Net(nn.Module):
    """conv+bn+relu, depthwise conv+relu6, transposed conv+relu, pool, linear."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.c1 = nn.Conv2d(1, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.dw = nn.Conv2d(6, 6, 3, padding=1, groups=6)
        self.up = nn.ConvTranspose2d(6, 4, 2, stride=2)
        self.fc = nn.Linear(4 * 8 * 8, 5)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.2, 0.2)
            self.bn.running_var.uniform_(0.5, 1.5)

    def forward(self, x):
        x = torch.relu(self.bn(self.c1(x)))
        x = nn.functional.relu6(self.dw(x))
        x = torch.relu(self.up(x))
        x = nn.functional.max_pool2d(x, 2)
        return self.fc(torch.flatten(x, 1))


def _feed(q):
    def evaluate(loader):
        for xb in loader:
            q.quant_model(torch.from_numpy(xb))
    return evaluate


def _batches(x=X, n=32):
    return [x[i:i + n] for i in range(0, len(x), n)]


def _q(tmp, mode="calib"):
    return Quantizer(Net().eval(), EX, mode=mode, output_dir=tmp, log=None, progress=False, bitwidth=BW)


def _calib(tmp, ft=True, **kw):
    q = _q(tmp)
    rep = None
    if ft:
        rep = q.fast_finetune(_feed(q), (_batches(),), **{"epochs": 3, **kw})
    else:
        _feed(q)(_batches())
    q.export_quant_config()
    return q, rep


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    d = tmp_path_factory.mktemp("ft")
    q, rep = _calib(d)
    return d, q, rep


def test_files_and_test_mode_use_the_finetuned_parameters(finetuned, tmp_path):
    d, q, rep = finetuned
    info = json.loads((d / "quant_info.json").read_text())
    assert info["fast_finetuned"] is True
    with np.load(d / FT_FILE) as z:
        params = {k: z[k] for k in z.files}
    assert set(params) == set(info["param"])
    for k, v in params.items():        # stored quantized: on the [bw, fp] grid of quant_info
        bw, fp = info["param"][k][0]
        assert np.array_equal(fake_quantize(v, bw, fp, "std_round"), v)
    # test mode (no explicit load_ft_param) computes what calib mode computes after finetuning, bit for bit
    qt = _q(d, "test")
    qt.load_ft_param()                 # vai_q scripts call it: a check, nothing changes
    yt = np.asarray(qt.quant_model(X))
    yc = np.asarray(q.quant_model(X))
    np.testing.assert_array_equal(yt, yc)
    # and differs from plain calibration on the same data
    _calib(tmp_path / "plain", ft=False)
    yp = np.asarray(_q(tmp_path / "plain", "test").quant_model(X))
    assert not np.array_equal(yp, yt)


def test_layers_never_get_worse_and_the_network_gets_closer_to_float(finetuned, tmp_path):
    d, q, rep = finetuned
    assert [r.name for r in rep.layers] == ["c1", "dw", "up", "fc"]
    assert rep.samples == len(X)
    for r in rep.layers:
        assert r.loss_after <= r.loss_before and 0 <= r.best_epoch <= r.epochs == 3
    assert any(r.loss_after < 0.9 * r.loss_before for r in rep.layers)
    with torch.no_grad():
        yf = Net().eval()(torch.from_numpy(X)).numpy()
    _calib(tmp_path, ft=False)
    yp = np.asarray(_q(tmp_path, "test").quant_model(X))
    yt = np.asarray(q.quant_model(X))
    assert ((yt - yf) ** 2).mean() < ((yp - yf) ** 2).mean()


def test_deterministic_with_a_seed(finetuned, tmp_path):
    d, _, _ = finetuned
    _calib(tmp_path)
    with np.load(d / FT_FILE) as a, np.load(tmp_path / FT_FILE) as b:
        assert a.files == b.files
        for k in a.files:
            assert np.array_equal(a[k], b[k]), k


def test_memory_is_the_frontier_not_every_layer(finetuned):
    """The peak is what lives at one point of the program (two copies) plus one layer's target, not the sum
    of all activations."""
    _, _, rep = finetuned
    n, f = len(X), 4
    # per sample (float32): input 64, c1 and its relu 384 each, dw/relu6 384, up and its relu 1024 each, pool 256,
    # flatten 256, fc 5. The largest moment is the relu after `up`: its input and output, two copies each
    # (tuning `up` holds dw twice and one target of up: less).
    sizes = {"x": 64, "c1": 384, "c1.relu": 384, "dw": 384, "dw.relu6": 384, "up": 1024, "up.relu": 1024,
             "pool": 256, "flatten": 256, "fc": 5}
    expected = 2 * (sizes["up"] + sizes["up.relu"]) * n * f
    assert rep.peak_frontier_bytes == expected
    assert rep.peak_frontier_bytes < 2 * sum(sizes.values()) * n * f


def test_torch_layers_match_the_graph_kernels(finetuned):
    _, q, _ = finetuned
    from fixflow.passes.fix.annotations import conv_like_ops
    ops = conv_like_ops(q.func)
    x = torch.from_numpy(RNG.normal(size=(3, 1, 8, 8)).astype(np.float32))
    for op in ops:
        w = np.asarray(op.weight.op.attributes["value"].array)
        b = np.asarray(op.bias.op.attributes["value"].array)
        shape = (3,) + tuple(op.input.type.shape[1:])
        xi = RNG.normal(size=shape).astype(np.float32)
        ref = op.evaluate([xi, w, b])[0]
        got = _torch_layer(op, torch.from_numpy(xi), torch.from_numpy(w.copy()), torch.from_numpy(b.copy())).numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    del x


def test_vai_q_order_calibrates_inside_fast_finetune(finetuned, tmp_path):
    """No calibration before fast_finetune (the fixture): its pass over the loader calibrates (vai_q_pytorch's
    order); calibrating first and then finetuning on the same batches gives the same files."""
    d, _, _ = finetuned
    q = _q(tmp_path)
    _feed(q)(_batches())
    q.fast_finetune(_feed(q), (_batches(),), epochs=3)
    q.export_quant_config()
    assert (d / "quant_info.json").read_text() == (tmp_path / "quant_info.json").read_text()
    with np.load(d / FT_FILE) as za, np.load(tmp_path / FT_FILE) as zb:
        assert all(np.array_equal(za[k], zb[k]) for k in za.files)


def test_export_without_finetune_removes_a_stale_file(finetuned, tmp_path):
    import shutil
    d, _, _ = finetuned
    shutil.copy(d / FT_FILE, tmp_path / FT_FILE)
    _calib(tmp_path, ft=False)
    assert not (tmp_path / FT_FILE).exists()
    assert json.loads((tmp_path / "quant_info.json").read_text())["fast_finetuned"] is False


def test_forward_annotated_is_the_calib_forward(finetuned):
    _, q, _ = finetuned
    out = forward_annotated(q.func, q._ft.params, [X[:5]])[0]
    np.testing.assert_array_equal(out, np.asarray(q.quant_model(X[:5])))


# ---------------------------------------------------------------------------------------- bad input
def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_empty_loader(tmp_path):
    q = _q(tmp_path)
    with pytest.raises(QuantizerError) as e:
        q.fast_finetune(_feed(q), ([],))
    assert "never called quant_model" in _one_line(e) and "no batch" in str(e.value)


def test_inf_loss(tmp_path):
    """Finetune data far outside the calibrated range: the quantized layer saturates, the float one does not,
    and the squared error overflows float32."""
    q = _q(tmp_path)
    _feed(q)(_batches())
    x = X.copy()
    x[3] *= np.float32(1e25)
    with pytest.raises(QuantizerError) as e:
        q.fast_finetune(_feed(q), (_batches(x),), epochs=1)
    msg = _one_line(e)
    assert "layer 'c1': the loss is inf at epoch 1, step 1" in msg and "NaN or inf values" in msg


def test_nan_in_the_finetune_data(tmp_path):
    q = _q(tmp_path)
    _feed(q)(_batches())
    x = X.copy()
    x[40, 0, 2, 3] = np.nan
    with pytest.raises(QuantizerError) as e:
        q.fast_finetune(_feed(q), (_batches(x),), epochs=1)
    assert "batch 2 (call 2 of quant_model), input #0 holds NaN or inf values" in _one_line(e)


def test_fast_finetune_in_test_mode_and_load_in_calib_mode(finetuned):
    d, _, _ = finetuned
    qt = _q(d, "test")
    with pytest.raises(QuantizerError) as e:
        qt.fast_finetune(lambda: None, ())
    assert "fast_finetune() needs mode='calib'" in _one_line(e) and "load_ft_param()" in str(e.value)
    qc = _q(d / "other")
    with pytest.raises(QuantizerError) as e:
        qc.load_ft_param()
    assert "load_ft_param() needs mode='test'" in _one_line(e)


def test_twice(tmp_path):
    q = _q(tmp_path)
    q.fast_finetune(_feed(q), (_batches(),), epochs=1)
    with pytest.raises(QuantizerError) as e:
        q.fast_finetune(_feed(q), (_batches(),), epochs=1)
    assert "already run" in _one_line(e)


def test_load_ft_param_without_a_finetune(tmp_path):
    _calib(tmp_path, ft=False)
    qt = _q(tmp_path, "test")
    with pytest.raises(QuantizerError) as e:
        qt.load_ft_param()
    assert '"fast_finetuned": false' in _one_line(e) and "run fast_finetune() in calib mode" in str(e.value)


@pytest.mark.parametrize("edit, words", [
    ("missing", "is missing, but quant_info.json says fast_finetuned"),
    ("off_grid", "is not a value of the parameter's format"),
    ("shape", "but the parameter has shape"),
    ("drop", "has no entry"),
    ("extra", "is not a parameter of this model's graph"),
    ("nan", "must be finite"),
    ("garbage", "not a readable .npz archive"),
])
def test_bad_finetune_file(finetuned, tmp_path, edit, words):
    import shutil
    d, _, _ = finetuned
    for f in d.iterdir():
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    path = tmp_path / FT_FILE
    with np.load(path) as z:
        arrs = {k: z[k] for k in z.files}
    key = "Net::c1.weight"
    if edit == "missing":
        path.unlink()
    elif edit == "garbage":
        path.write_bytes(b"not a zip")
    else:
        if edit == "off_grid":
            arrs[key] = arrs[key] + np.float32(1e-3)
        elif edit == "shape":
            arrs[key] = arrs[key][:1]
        elif edit == "drop":
            del arrs[key]
        elif edit == "extra":
            arrs["Net::nothing.weight"] = arrs[key]
        elif edit == "nan":
            arrs[key] = arrs[key].copy()
            arrs[key].flat[0] = np.nan
        np.savez(path, **arrs)
    with pytest.raises(QuantizerError) as e:
        _q(tmp_path, "test")
    msg = _one_line(e)
    assert words in msg and str(path) in msg


def test_bad_options(tmp_path):
    q = _q(tmp_path)
    for kw, words in (({"epochs": 0}, "epochs must be an integer >= 1"), ({"lr": float("nan")}, "lr must be"),
                      ({"batch_size": 1.5}, "batch_size must be")):
        with pytest.raises(QuantizerError) as e:
            q.fast_finetune(_feed(q), (_batches(),), **kw)
        assert words in _one_line(e)


# ---------------------------------------------------------------------------- tool and DPU flow
def test_fixflow_quantize_fast_finetune(tmp_path, capsys):
    from fixflow.tools import quantize as tool
    out = tmp_path / "q"
    args = ["--model", "digits_cnn", "--data", "digits", "--calib-batches", "2", "--batch-size", "16",
            "--output-dir", str(out), "--fast-finetune"]
    assert tool.main(args + ["--mode", "calib"]) == 0
    assert json.loads((out / "quant_info.json").read_text())["fast_finetuned"] is True
    calib_line = [ln for ln in capsys.readouterr().out.splitlines() if "quantized accuracy" in ln]
    assert tool.main(args + ["--mode", "test"]) == 0
    text = capsys.readouterr().out
    assert "Finetuned parameters in use" in text
    test_line = [ln for ln in text.splitlines() if "quantized accuracy" in ln]
    assert calib_line == test_line and len(test_line) == 1     # calib mode reports the finetuned model too
    assert (out / "DigitsCNN_int.xmodel").exists()


def test_fixflow_quantize_fast_finetune_options(tmp_path, capsys):
    """--ft-epochs/--ft-lr/--ft-seed/--ft-no-rescale reach fast_finetune: the files equal the API's with the same
    options, and a bad value is one message."""
    import subprocess
    import sys
    from fixflow import zoo
    from fixflow.tools import quantize as tool
    out = tmp_path / "cli"
    opts = ["--ft-epochs", "1", "--ft-lr", "0.003", "--ft-seed", "2", "--ft-no-rescale"]
    assert tool.main(["--model", "digits_cnn", "--data", "digits", "--calib-batches", "2", "--batch-size", "16",
                      "--output-dir", str(out), "--fast-finetune", "--mode", "calib", *opts]) == 0
    model = zoo.get_model("digits_cnn")
    xtr, _ = zoo.load_data("digits_cnn", "train")
    q = Quantizer(model, (torch.from_numpy(xtr[:1]),), mode="calib", output_dir=tmp_path / "api", log=None,
                  progress=False)
    q.fast_finetune(_feed(q), ([xtr[:16], xtr[16:32]],), epochs=1, batch_size=16, lr=0.003, seed=2, rescale=False)
    q.export_quant_config()
    with np.load(out / FT_FILE) as a, np.load(tmp_path / "api" / FT_FILE) as b:
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k])
    r = subprocess.run([sys.executable, "-m", "fixflow.tools.quantize", "--model", "digits_cnn", "--fast-finetune",
                        "--ft-epochs", "0", "--output-dir", str(tmp_path / "bad")], capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" not in r.stderr and "epochs must be an integer >= 1" in r.stderr


@pytest.mark.slow   # quantizes, finetunes, compiles and runs digits_cnn on the DPU interpreter
def test_finetuned_model_compiles_and_runs_bit_exact(tmp_path, capsys):
    from fixflow import zoo
    from fixflow.tools import compile as compile_tool
    from fixflow.tools import run as run_tool
    model = zoo.get_model("digits_cnn")
    xtr, _ = zoo.load_data("digits_cnn", "train")
    xte, _ = zoo.load_data("digits_cnn", "test")
    ex = (torch.from_numpy(xtr[:1]),)
    q = Quantizer(model, ex, mode="calib", output_dir=tmp_path / "q", log=None, progress=False)
    q.fast_finetune(_feed(q), ([xtr[i:i + 32] for i in range(0, 128, 32)],), epochs=2)
    q.export_quant_config()
    qt = Quantizer(model, ex, mode="test", output_dir=tmp_path / "q", log=None)
    yq = np.asarray(qt.quant_model(xte))
    np.testing.assert_array_equal(yq, np.asarray(q.quant_model(xte)))
    xmodel = qt.export_xmodel()
    assert compile_tool.main(["-x", str(xmodel), "-a", "kv260", "-o", str(tmp_path / "c"), "-n", "net"]) == 0
    for path, name in ((xmodel, "int"), (tmp_path / "c" / "net.xmodel", "dpu")):
        assert run_tool.main([str(path), "--data", "digits", "--no-progress", "-o", str(tmp_path / f"{name}.npz")]) == 0
        with np.load(tmp_path / f"{name}.npz") as z:
            np.testing.assert_array_equal(z[z.files[0]], yq)
