"""GraphRunner: AMD's compiled MNIST end to end (DPU outputs = AMD's simulator, CPU subgraph = dequantize +
softmax), fixflow's digits _int.xmodel (= the quantizer's test mode, bit for bit), input checks."""

from __future__ import annotations

import numpy as np
import pytest

from _runtime_testlib import MNIST, mnist_expected, mnist_inputs, quantize_digits
from fixflow.runtime import GraphRunner, RuntimeRunError


def _one_blas_thread():
    """Small products are far slower with several BLAS threads on a busy machine (speed only)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


@pytest.fixture(scope="module")
def mnist():
    return GraphRunner.from_xmodel(MNIST)


@pytest.fixture(scope="module")
def digits_int(tmp_path_factory):
    return quantize_digits(tmp_path_factory.mktemp("q"))


def test_mnist_structure(mnist):
    assert mnist.compiled
    assert [(s.name, s.shape, s.layout, s.fix_point) for s in mnist.inputs] == \
        [("quant_input_1", (1, 28, 28, 1), "NHWC", 6)]
    assert [(s.name, s.fix_point) for s in mnist.outputs] == [("quant_dense_1_softmax", None)]
    assert [s.name for s in mnist.dpu_steps] == ["subgraph_quant_conv2d"]


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_mnist_end_to_end(mnist, mode):
    q = mnist_inputs()
    x = q.astype(np.float32) / 64           # the inputs' real values: quantizing gives q back
    res = mnist.run_tensors([x], mode=mode)
    assert np.array_equal(res["quant_input_1"], q)
    dpu_out = res["quant_dense_1_softmax_fix"]
    assert dpu_out.dtype == np.int8 and np.array_equal(dpu_out, mnist_expected())
    # CPU subgraph: fix2float at fix_point 2, then softmax over the last axis (computed here in float64)
    z = mnist_expected().astype(np.float64) / 4
    want = np.exp(z - z.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    probs, = mnist.run([x], mode=mode)
    assert probs.dtype == np.float32 and probs.shape == (5, 10)
    np.testing.assert_allclose(probs, want, rtol=1e-6, atol=1e-7)
    assert np.array_equal(probs.argmax(1), want.argmax(1))


def test_mnist_fix_mode_equals_the_interpreter(mnist):
    """Mode "fix" runs the DPU subgraph's ops (AMD's conv2d-fix with channel augmentation, max pool, the
    13x13 dense-as-conv, weights read from REG_0) on the fix semantics instead of the machine code: an
    independent reference for AMD's compiled program."""
    from fixflow.zoo.data import load_digits
    q = mnist.run_tensors([mnist_inputs().astype(np.float32) / 64], mode="fix")
    assert np.array_equal(q["quant_dense_1_softmax_fix"], mnist_expected())
    x, _ = load_digits("test", size=28)
    x = np.concatenate([x[:150].transpose(0, 2, 3, 1),
                        np.random.default_rng(0).uniform(-2, 2, (50, 28, 28, 1)).astype(np.float32)])
    with _one_blas_thread():
        a = mnist.run_tensors([x], mode="fix")["quant_dense_1_softmax_fix"]
        b = mnist.run_tensors([x], mode="fast")["quant_dense_1_softmax_fix"]
    assert np.array_equal(a, b) and len(np.unique(a)) > 50


def test_mnist_input_quantization_rounds_and_saturates(mnist):
    # DPU_ROUND (half up) at fix_point 6, saturating to int8
    x = np.zeros((1, 28, 28, 1), np.float32)
    x[0, 0, :5, 0] = [0.5 / 64, -0.5 / 64, 1.49 / 64, 10.0, -10.0]
    q = mnist.run_tensors([x])["quant_input_1"]
    assert q[0, 0, :5, 0].tolist() == [1, 0, 1, 127, -128]


def test_mnist_batch_equals_one_by_one(mnist):
    x = np.random.default_rng(0).uniform(-2, 2, (7, 28, 28, 1)).astype(np.float32)
    whole, = mnist.run([x])
    for i in range(7):
        assert np.array_equal(mnist.run([x[i:i + 1]])[0][0], whole[i])


@pytest.mark.slow   # quantizes digits_cnn (calib + test) first
def test_int_xmodel_equals_quantizer_test_mode(digits_int):
    import torch
    from fixflow.quantizer import Quantizer
    from fixflow.zoo import get_model, load_data
    path, printed_acc = digits_int
    g = GraphRunner.from_xmodel(path)
    assert not g.compiled and g.inputs[0].layout == "NCHW" and g.inputs[0].shape == (1, 1, 28, 28)
    x, y = load_data("digits_cnn", "test")
    out, = g.run([x])
    acc = float((out.argmax(1) == y).mean())
    assert f"{100 * acc:.2f}" == f"{100 * printed_acc:.2f}"
    q = Quantizer(get_model("digits_cnn"), (torch.zeros(1, 1, 28, 28),), mode="test", output_dir=str(path.parent))
    want = np.concatenate([q.quant_model(x[i:i + 256]) for i in range(0, len(x), 256)])
    assert np.array_equal(out, want)             # bit for bit
    assert acc == float((want.argmax(1) == y).mean())


def test_input_errors(mnist):
    with pytest.raises(RuntimeRunError, match=r"input 'quant_input_1' has shape \(2, 28, 28\), expected \(N, 28, 28, 1\)"):
        mnist.run([np.zeros((2, 28, 28), np.float32)])
    with pytest.raises(RuntimeRunError, match="2 input"):
        mnist.run([np.zeros((1, 28, 28, 1))] * 2)
    with pytest.raises(RuntimeRunError, match="missing input 'quant_input_1'"):
        mnist.run({"x": np.zeros((1, 28, 28, 1))})
    x = np.zeros((1, 28, 28, 1), np.float32)
    x[0, 3, 3, 0] = np.nan
    with pytest.raises(RuntimeRunError, match="NaN"):
        mnist.run([x])
    with pytest.raises(RuntimeRunError, match="unknown mode"):
        mnist.run([np.zeros((1, 28, 28, 1))], mode="turbo")


def test_not_an_xmodel(tmp_path):
    from fixflow.ir.diagnostics import FixflowError
    bad = tmp_path / "bad.xmodel"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(FixflowError, match="bad.xmodel"):
        GraphRunner.from_xmodel(bad)
