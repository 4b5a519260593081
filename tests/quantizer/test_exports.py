"""export_torch_script() (bit-exact with test mode) and export_onnx_model() (QuantizeLinear/DequantizeLinear
pairs with power-of-two scales, checked in onnxruntime against test mode)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _quantizer_gen_lib import AllOps, quantize

from fixflow import zoo
from fixflow.quantizer import QuantizerError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    x = torch.from_numpy(zoo.sample_inputs("tiny_mobilenet", 16))
    return quantize(zoo.get_model("tiny_mobilenet"), x, out), x


def test_torch_script_is_bit_exact(tiny):
    q, x = tiny
    path = q.export_torch_script()
    assert path.name == "TinyMobileNet_int.pt"
    ts = torch.jit.load(str(path))
    assert np.array_equal(ts(x).numpy(), q.quant_model(x).numpy())          # traced at batch 1, run at 16
    assert np.array_equal(ts(x[:3]).numpy(), q.quant_model(x[:3]).numpy())


def _session(path, level):
    so = ort.SessionOptions()
    so.graph_optimization_level = level
    return ort.InferenceSession(str(path), so)


def test_onnx_has_power_of_two_qdq_pairs_and_matches_test_mode(tiny):
    q, x = tiny
    path = q.export_onnx_model(dynamic_batch=True)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    qs = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert len(qs) > 10
    for n in qs + [n for n in model.graph.node if n.op_type == "DequantizeLinear"]:
        scale = float(inits[n.input[1]])
        assert scale > 0 and np.log2(scale) == round(np.log2(scale)), scale     # 2^-fix_pos
        assert float(inits[n.input[2]]) == 0
    # weights are stored as int8 codes
    assert any(a.dtype == np.int8 and a.ndim == 4 for a in inits.values())
    want = q.quant_model(x).numpy()
    got = _session(path, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC).run(None, {"x": x.numpy()})[0]
    assert np.array_equal(got, want)                                          # bit for bit at the basic level
    # onnxruntime's default level fuses QDQ into integer kernels that round on their own: close, not equal
    got_all = _session(path, ort.GraphOptimizationLevel.ORT_ENABLE_ALL).run(None, {"x": x.numpy()})[0]
    step = np.min(np.diff(np.unique(want)))
    assert np.max(np.abs(got_all - want)) <= 2 * step


def test_every_op_in_onnx(tmp_path):
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((8, 3, 12, 12)).astype(np.float32))
    q = quantize(AllOps().eval(), x, tmp_path)
    path = q.export_onnx_model(dynamic_batch=True)
    got = _session(path, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC).run(None, {"x": x.numpy()})
    want = q.quant_model(x)
    assert np.array_equal(got[1], want[1].numpy())                 # the fixed-point output, bit for bit
    np.testing.assert_allclose(got[0], want[0].numpy(), atol=1e-6)  # sigmoid (CPU op): onnxruntime's vs numpy's
    with pytest.raises(QuantizerError, match=r"cannot be traced: graph\.sigmoid"):
        q.export_torch_script()


def test_exports_need_test_mode(tmp_path):
    from fixflow.quantizer import Quantizer
    q = Quantizer(zoo.get_model("digits_cnn"), (torch.zeros(1, 1, 28, 28),), mode="calib", output_dir=tmp_path,
                  log=None)
    with pytest.raises(QuantizerError, match=r"export_onnx_model\(\) needs mode='test'"):
        q.export_onnx_model()
    with pytest.raises(QuantizerError, match=r"export_torch_script\(\) needs mode='test'"):
        q.export_torch_script()


@pytest.mark.slow
@pytest.mark.parametrize("name,shape", [("resnet18_cifar", (3, 32, 32)), ("mobilenet_v2", (3, 64, 64))])
def test_onnx_bit_exact_on_deeper_zoo_models(tmp_path, name, shape):
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((4,) + shape).astype(np.float32))
    q = quantize(zoo.get_model(name), x, tmp_path)
    path = q.export_onnx_model(dynamic_batch=True)
    sess = _session(path, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert np.array_equal(got, q.quant_model(x).numpy())
