"""Fast finetuning on architectures fixflow did not write: torchvision's ResNet-18, MobileNetV2, SqueezeNet 1.1,
ShuffleNetV2 x0.5, MnasNet 0.5, EfficientNet-B0 and
MobileNetV3-Small (seeded random weights, 64x64 inputs, nothing downloaded).

For each: `fast_finetune` in calib mode, `load_ft_param` in test mode; test mode computes what calib mode computes
after finetuning, the `_int.xmodel` (GraphRunner) and the compiled xmodel on the DPU interpreter compute exactly
what test mode computes, and no layer gets worse on the finetune data."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _lib.torchvision_lib import build, needs_torchvision  # noqa: E402

pytestmark = needs_torchvision()

SIZE = 64


def _finetune_compile_run(name: str, tmp_path, config=None, epochs: int = 1):
    """(model, test-mode outputs, report, calib-mode outputs, int.xmodel outputs, compiled outputs, test inputs)."""
    from fixflow.quantizer import Quantizer
    from fixflow.runtime import GraphRunner
    from fixflow.tools import compile as compile_tool
    from fixflow.tools import run as run_tool

    model = build(name)
    g = torch.Generator().manual_seed(3)
    xs = torch.rand((16, 3, SIZE, SIZE), generator=g)
    ex = (xs[:1],)
    out = tmp_path / "q"
    q = Quantizer(model, ex, mode="calib", output_dir=out, log=None, progress=False, config=config)

    def evaluate(loader):
        for xb in loader:
            q.quant_model(xb)
    rep = q.fast_finetune(evaluate, ([xs[:8], xs[8:]],), epochs=epochs, seed=0)
    q.export_quant_config()
    assert json.loads((out / "quant_info.json").read_text())["fast_finetuned"] is True
    qt = Quantizer(model, ex, mode="test", output_dir=out, log=None, progress=False, config=config)
    qt.load_ft_param()
    xt = torch.rand((4, 3, SIZE, SIZE), generator=g)
    yt = np.asarray(qt.quant_model(xt))
    yc = np.asarray(q.quant_model(xt))
    xmodel = qt.export_xmodel()
    yi = GraphRunner.from_xmodel(xmodel).run([xt.numpy()])[0]
    np.save(tmp_path / "x.npy", xt.numpy())
    assert compile_tool.main(["-x", str(xmodel), "-a", "kv260", "-o", str(tmp_path / "c"), "-n", "net"]) == 0
    assert run_tool.main([str(tmp_path / "c" / "net.xmodel"), "--input", str(tmp_path / "x.npy"), "--no-progress",
                          "-o", str(tmp_path / "dpu.npz")]) == 0
    with np.load(tmp_path / "dpu.npz") as z:
        yd = z[z.files[0]]
    return model, yt, rep, yc, yi, yd, xt


def _check(name, tmp_path, calib_exact=True):
    from fixflow.passes.fix.annotations import conv_like_ops
    model, yt, rep, yc, yi, yd, xt = _finetune_compile_run(name, tmp_path)
    if calib_exact:
        np.testing.assert_array_equal(yt, yc)     # test mode == calib mode after finetuning
    np.testing.assert_array_equal(yi, yt)     # the _int.xmodel
    np.testing.assert_array_equal(yd, yt)     # the compiled model on the DPU interpreter
    assert rep.samples == 16 and rep.layers
    for r in rep.layers:
        assert r.loss_after <= r.loss_before, r.name
    assert any(r.loss_after < r.loss_before for r in rep.layers)
    with torch.no_grad():
        ref = model(xt).numpy()
    assert float(np.linalg.norm(yt - ref) / np.linalg.norm(ref)) < 0.1
    return rep, conv_like_ops


def test_squeezenet_finetunes_and_runs_bit_exact_on_the_dpu(tmp_path):
    rep, _ = _check("squeezenet1_1", tmp_path)
    assert len(rep.layers) == 26     # every conv of SqueezeNet 1.1 (fire modules' squeeze and both expands)


@pytest.mark.slow   # 20-60 s CPU each: finetune, compile and run at 64x64
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "shufflenet_v2_x0_5", "mnasnet0_5", "efficientnet_b0"])
def test_torchvision_model_finetunes_and_runs_bit_exact_on_the_dpu(name, tmp_path):
    _check(name, tmp_path)


@pytest.mark.slow
def test_mobilenet_v3_small_finetunes_and_runs_bit_exact_on_the_dpu(tmp_path):
    """Hard swish and SE hard sigmoids: calib mode after finetuning, test mode, the _int.xmodel and the DPU agree."""
    _check("mobilenet_v3_small", tmp_path)


@pytest.mark.slow
def test_w4a8_finetune_on_mobilenet_v2_runs_bit_exact_on_the_dpu(tmp_path):
    """4-bit weights (depthwise included) after fast finetuning: still whole on the DPU, and exact."""
    cfg = {"tensor_quantize_config": {"weights": {"bit_width": 4}}}
    _, yt, _, yc, yi, yd, _ = _finetune_compile_run("mobilenet_v2", tmp_path, config=cfg)
    np.testing.assert_array_equal(yt, yc)
    np.testing.assert_array_equal(yi, yt)
    np.testing.assert_array_equal(yd, yt)
    with np.load(tmp_path / "q" / "fast_finetune.npz") as z:
        w = z["MobileNetV2::features.1.conv.0.0.weight"]
    info = json.loads((tmp_path / "q" / "quant_info.json").read_text())
    bw, fp = info["param"]["MobileNetV2::features.1.conv.0.0.weight"][0]
    assert bw == 4 and len(np.unique(w)) <= 16
    ints = w * 2.0 ** fp
    assert ints.min() >= -8 and ints.max() <= 7 and np.array_equal(ints, np.round(ints))
