"""The `quantize` pass (graph -> fix): integer execution equals the float simulation bit for bit,
stays close to the float graph, keeps torch's element order through flatten/reshape, falls back
to the CPU with a warning, and reports user errors with a location."""

from __future__ import annotations

import numpy as np
import pytest

from _lib.quant import GRAPHS, annotate, sqnr_db
from _lib.quant import dsl_inputs as _inputs
from _lib.quant import dsl_net as _net
from fixflow.runtime.fix_executor import run_quantized, simulate_quantized
from fixflow.frontends.dsl import import_dsl
from fixflow.ir import parse_module, print_module
from fixflow.ir.diagnostics import capture_diagnostics
from fixflow.ir.passes import PassManager
from fixflow.passes.graph.transforms import fold_batch_norm
from fixflow.passes.fix.quantize import QuantizeError, quantize_module
from fixflow.ir.interpreter import run_module


def _lower(text: str, n=4, seed=0):
    """DSL -> graph (BN folded) -> annotated -> fix. Returns (module, inputs, float outputs)."""
    m = import_dsl(text)
    fold_batch_norm(m)
    xs = _inputs(m, n, seed)
    ref = run_module(m, xs)
    annotate(m, xs)
    quantize_module(m)
    m.verify()
    return m, xs, ref


def _check(m, xs, ref, min_db=25.0):
    got = run_quantized(m, xs)
    sim = simulate_quantized(m, xs)
    for g, s, r in zip(got, sim, ref):
        assert g.shape == r.shape and g.dtype == np.float32
        np.testing.assert_array_equal(g, s)
        assert sqnr_db(r, g) > min_db, sqnr_db(r, g)
    # the text form round-trips and runs identically
    m2 = parse_module(print_module(m))
    for a, b in zip(run_quantized(m2, xs), got):
        np.testing.assert_array_equal(a, b)
    return got


def _ops(m) -> list[str]:
    return [op.name for op in next(iter(m.body.ops)).body.ops]




@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_small_graphs_bit_exact_and_close(name):
    m, xs, ref = _lower(_net(GRAPHS[name]))
    _check(m, xs, ref)


def test_fusion_and_layout():
    m, xs, ref = _lower(_net(GRAPHS["conv_bn_relu6_leaky"]))
    ops = [op for op in next(iter(m.body.ops)).body.ops]
    convs = [op for op in ops if op.name == "fix.conv2d"]
    assert [c.nonlinear for c in convs] == ["RELU6", "LEAKYRELU"]
    assert not any(op.name.startswith("graph.") for op in ops)
    data = ops[0]
    assert data.name == "fix.data" and data.layout == "NCHW" and data.results[0].type.shape == (1, 8, 8, 4)
    assert convs[0].weights.type.shape == (8, 3, 3, 4)          # [OC, KH, KW, IC]
    m, _, _ = _lower(_net(GRAPHS["add_relu"]))
    elt = [op for op in next(iter(m.body.ops)).body.ops if op.name == "fix.eltwise"]
    assert [(e.type, e.nonlinear) for e in elt] == [("ADD", "RELU"), ("MUL", "NONE")]
    m, _, _ = _lower(_net(GRAPHS["depthwise"]))
    dw = [op for op in next(iter(m.body.ops)).body.ops if op.name == "fix.depthwise_conv2d"]
    assert len(dw) == 1 and dw[0].weights.type.shape == (1, 3, 3, 4)
    m, _, _ = _lower(_net(GRAPHS["pools"]))
    pools = [op for op in next(iter(m.body.ops)).body.ops if op.name == "fix.pool"]
    assert [(p.type, p.is_global) for p in pools] == [("MAX", False), ("AVG", False), ("AVG", True)]
    assert tuple(pools[0].pad) == (1, 2, 1, 2)   # ceil_mode as extra bottom/right padding


def test_flatten_keeps_torch_order():
    # flatten feeding a linear: the permutation goes into the weights (no transpose op)
    m, xs, ref = _lower(_net(GRAPHS["flatten_linear"]))
    assert "fix.transpose" not in _ops(m)
    _check(m, xs, ref)
    # a flattened feature map as the output: transposed back to NCHW order before the reshape
    text = _net("""
  c = conv2d(x, out=6, kernel=3, stride=2, pad=1)
  f = flatten(c)
  return f""")
    m, xs, ref = _lower(text)
    assert "fix.transpose" in _ops(m)
    got = _check(m, xs, ref)[0]
    # element order: every element is close to the float one at the same (NCHW-flattened) index
    assert np.abs(got - ref[0]).max() < 0.1 * np.abs(ref[0]).max()
    # 1x1 spatial maps and single-channel maps need no transpose
    m, xs, ref = _lower(_net("""
  g = adaptive_avg_pool2d(x, size=1)
  f = flatten(g)
  l = linear(f, out=3)
  return l""", shape=(1, 5, 4, 4)))
    assert "fix.transpose" not in _ops(m)
    _check(m, xs, ref)


def test_cpu_fallback_is_marked_and_warned():
    text = _net("""
  c = conv2d(x, out=4, kernel=3, pad=1)
  s = sigmoid(c)
  d = conv2d(s, out=4, kernel=1)
  e = softmax(d, axis=1)
  return e""")
    with capture_diagnostics() as diags:
        m, xs, ref = _lower(text)
    msgs = [d.message for d in diags]
    assert any("sigmoid is not supported by the DPU" in s for s in msgs)
    assert any("softmax" in s for s in msgs)
    cpu = [op for op in next(iter(m.body.ops)).body.ops if op.attributes.get("device") is not None]
    assert [op.name for op in cpu] == ["graph.sigmoid", "graph.softmax"]
    assert all("fix.reason" in op.attributes for op in cpu)
    _check(m, xs, ref, min_db=20.0)


def test_dpu_limit_keeps_fix_op_on_cpu():
    text = _net("""
  c = conv2d(x, out=4, kernel=3, stride=9, pad=1)
  return c""", shape=(1, 3, 20, 20))
    with capture_diagnostics() as diags:
        m, xs, ref = _lower(text)
    conv = next(op for op in next(iter(m.body.ops)).body.ops if op.name == "fix.conv2d")
    assert conv.attributes["device"].value == "CPU" and "stride" in conv.attributes["fix.reason"].value
    assert any("stride (9, 9) is outside the DPU range" in d.message for d in diags)
    _check(m, xs, ref)


def test_errors_name_the_op():
    m = import_dsl(_net("""
  c = conv2d(x, out=4, kernel=3, pad=1, bias=false)
  b = batch_norm(c)
  return b"""), filename="bn.ffn")
    xs = _inputs(m)
    annotate(m, xs)
    with pytest.raises(QuantizeError, match="batch_norm must be folded.*fold-bn") as e:
        quantize_module(m)
    assert "bn.ffn:4:3: error" in e.value.render() and "b = batch_norm(c)" in e.value.render()
    m = import_dsl(_net("""
  c = conv2d(x, out=4, kernel=3, pad=1)
  return c"""), filename="noann.ffn")
    with pytest.raises(QuantizeError, match=r"no fix\.weight annotation.*calibrate"):
        quantize_module(m)
    xs = _inputs(m)
    annotate(m, xs)
    del next(iter(m.body.ops)).attributes["fix.inputs"]
    with pytest.raises(QuantizeError, match=r"input #0 has no fix\.out annotation"):
        quantize_module(m)


def test_pass_registered_and_pipeline():
    m = import_dsl(_net(GRAPHS["conv_relu"]))
    xs = _inputs(m)
    ref = run_module(m, xs)
    annotate(m, xs)
    PassManager.parse("builtin.module(quantize)").run(m)
    _check(m, xs, ref)


def test_any_batch_size():
    m, xs, ref = _lower(_net(GRAPHS["flatten_linear"]), n=1)
    x7 = _inputs(m, n=7, seed=3)
    np.testing.assert_array_equal(run_quantized(m, x7)[0], simulate_quantized(m, x7)[0])


def _zoo(name: str, n: int):
    torch = pytest.importorskip("torch")
    from fixflow.frontends.torch import import_module
    from fixflow.zoo.registry import get_model, sample_inputs
    model = get_model(name)
    x = sample_inputs(name, n)
    m = import_module(model, (torch.from_numpy(x[:1]),))
    fold_batch_norm(m)
    ref = run_module(m, [x])
    with torch.no_grad():
        np.testing.assert_allclose(ref[0], model(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-4)
    annotate(m, [x])
    quantize_module(m)
    m.verify()
    return m, [x], ref


@pytest.mark.parametrize("name", ["digits_cnn", "tiny_mobilenet"])
def test_zoo_models(name):
    m, xs, ref = _zoo(name, 16)
    got = _check(m, xs, ref, min_db=15.0)[0]
    assert not any(op.startswith("graph.") for op in _ops(m))
    # the quantized model classifies like the float one on most of the digits
    assert np.mean(got.argmax(1) == ref[0].argmax(1)) >= 0.8


def test_fix_module_text_accepted_by_mlir_opt(tmp_path):
    import shutil
    import subprocess
    exe = shutil.which("mlir-opt-22") or shutil.which("mlir-opt")
    if exe is None:
        pytest.skip("mlir-opt is not installed")
    m, _, _ = _lower(_net(GRAPHS["flatten_linear"]))
    path = tmp_path / "q.mlir"
    path.write_text(print_module(m))
    r = subprocess.run([exe, "--allow-unregistered-dialect", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
