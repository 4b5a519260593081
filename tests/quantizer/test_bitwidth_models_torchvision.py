"""Bit widths and per-layer overrides on torchvision architectures (seeded random weights, 64x64, nothing
downloaded): the widths reach quant_info.json and the `_int.xmodel`, the compiled model runs on the DPU interpreter
exactly as test mode computes (float layers: to float rounding), and what the DPU cannot run is refused with its
reason."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _lib.torchvision_lib import build, needs_torchvision  # noqa: E402

pytestmark = needs_torchvision()

G = torch.Generator().manual_seed(7)
X = torch.rand((16, 3, 64, 64), generator=G)
XT = torch.rand((4, 3, 64, 64), generator=G)


def _calib_test(name, out, config):
    from fixflow.quantizer import Quantizer
    model = build(name)
    q = Quantizer(model, (X[:1],), mode="calib", output_dir=out, log=None, progress=False, config=config)
    q.quant_model(X[:8])
    q.quant_model(X[8:])
    q.export_quant_config()
    info = json.loads((out / "quant_info.json").read_text())
    return model, info, Quantizer(model, (X[:1],), mode="test", output_dir=out, log=None, progress=False,
                                  config=config)


def _compile(xmodel, tmp_path, capsys=None):
    from fixflow.tools import compile as compile_tool
    return compile_tool.main(["-x", str(xmodel), "-a", "kv260", "-o", str(tmp_path / "c"), "-n", "net"])


def _run(tmp_path):
    from fixflow.tools import run as run_tool
    np.save(tmp_path / "x.npy", XT.numpy())
    assert run_tool.main([str(tmp_path / "c" / "net.xmodel"), "--input", str(tmp_path / "x.npy"), "--no-progress",
                          "-o", str(tmp_path / "dpu.npz")]) == 0
    with np.load(tmp_path / "dpu.npz") as z:
        return z[z.files[0]]


def _weight_types(xmodel):
    from fixflow.backends.xmodel import read_xmodel
    g = read_xmodel(xmodel)
    by_name = {o.name: o for o in g.ops}
    return {o.name: by_name[o.inputs["weights"][0]].output.data_type for o in g.ops if "weights" in o.inputs}


def test_squeezenet_w4a8_with_an_8_bit_layer_runs_bit_exact(tmp_path):
    cfg = {"tensor_quantize_config": {"weights": {"bit_width": 4}}, "layer_quantize_config": [
        {"layer_type": None, "layer_name": "features.3.squeeze", "quantizable_data_type": ["weights", "bias",
                                                                                          "activation"],
         "tensor_quantize_config": {"weights": {"bit_width": 8}}}]}
    _, info, qt = _calib_test("squeezenet1_1", tmp_path / "q", cfg)
    assert info["param"]["SqueezeNet::features.3.squeeze.weight"][0][0] == 8
    assert info["param"]["SqueezeNet::features.3.expand1x1.weight"][0][0] == 4
    yt = np.asarray(qt.quant_model(XT))
    xmodel = qt.export_xmodel()
    types = _weight_types(xmodel)
    assert sorted(types.values()).count("XINT8") == 1 and len(types) == 26
    assert _compile(xmodel, tmp_path) == 0
    np.testing.assert_array_equal(_run(tmp_path), yt)


@pytest.mark.slow
def test_resnet18_w6a8_with_a_float_classifier(tmp_path):
    from fixflow.quantizer.inspector import Inspector
    cfg = {"tensor_quantize_config": {"weights": {"bit_width": 6}},
           "layer_quantize_config": [{"layer_type": None, "layer_name": "fc", "quantizable_data_type": []}]}
    model, info, qt = _calib_test("resnet18", tmp_path / "q", cfg)
    assert list(info["float_layers"]) == ["ResNet::fc"]
    assert {v[0][0] for k, v in info["param"].items() if k.endswith(".weight")} == {6}
    yt = np.asarray(qt.quant_model(XT))
    xmodel = qt.export_xmodel()
    assert set(_weight_types(xmodel).values()) == {"XINT6"}
    assert _compile(xmodel, tmp_path) == 0
    yd = _run(tmp_path)
    np.testing.assert_allclose(yd, yt, rtol=1e-5, atol=1e-5)   # the float fc: float32 sums in BLAS order
    r = Inspector("DPUCZDX8G_ISA1_B4096").inspect(model, (X[:1],), config=cfg)
    fc = next(o for o in r.ops if o.kind == "graph.linear")
    assert fc.device == "CPU" and "left in float by the quant config (layer_quantize_config[0]: layer 'ResNet::fc')" \
        in fc.reason


@pytest.mark.slow
@pytest.mark.parametrize("name", ["shufflenet_v2_x0_5", "mnasnet0_5"])
def test_w6a8_runs_bit_exact(name, tmp_path):
    _, _, qt = _calib_test(name, tmp_path / "q", {"tensor_quantize_config": {"weights": {"bit_width": 6}}})
    yt = np.asarray(qt.quant_model(XT))
    xmodel = qt.export_xmodel()
    assert set(_weight_types(xmodel).values()) == {"XINT6"}
    assert _compile(xmodel, tmp_path) == 0
    np.testing.assert_array_equal(_run(tmp_path), yt)


@pytest.mark.slow
def test_mobilenet_v2_w8a4_is_refused_by_the_compiler_with_the_reason(tmp_path, capsys):
    from fixflow.runtime import GraphRunner
    _, info, qt = _calib_test("mobilenet_v2", tmp_path / "q", {"tensor_quantize_config": {"activation":
                                                                                          {"bit_width": 4}}})
    assert {v[0][0] for v in info["output"].values()} == {4}
    yt = np.asarray(qt.quant_model(XT))
    xmodel = qt.export_xmodel()
    np.testing.assert_array_equal(GraphRunner.from_xmodel(xmodel).run([XT.numpy()])[0], yt)
    capsys.readouterr()
    assert _compile(xmodel, tmp_path) == 1
    err = capsys.readouterr().err
    assert "error: nothing runs on the DPU: every layer was placed on the CPU" in err and "Traceback" not in err
    assert "runs on the CPU: a 4-bit output (the DPU computes 8-bit feature maps" in err


def test_layer_name_that_names_no_layer_of_resnet18(tmp_path):
    from fixflow.quantizer import Quantizer, QuantizerError
    cfg = {"layer_quantize_config": [{"layer_type": None, "layer_name": "layer1.0.conv3", "quantizable_data_type": []}]}
    with pytest.raises(QuantizerError, match=r"'layer_quantize_config\[0\].layer_name' 'layer1.0.conv3' names no layer "
                                             r"of ResNet; did you mean ResNet::layer1.0.conv1, ResNet::layer1.0.conv2"):
        Quantizer(build("resnet18"), (X[:1],), mode="calib", output_dir=tmp_path, log=None, progress=False, config=cfg)
