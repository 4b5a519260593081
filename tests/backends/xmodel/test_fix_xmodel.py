"""The `_int.xmodel`: fix module -> XGraph (XIR conventions) -> file -> module, bit-identical
integer execution, Netron-clean files, and one clear XModelError for bad files."""

from __future__ import annotations

import numpy as np
import pytest

from _lib.quant import GRAPHS, annotate
from _lib.quant import dsl_inputs as _inputs
from _lib.quant import dsl_net as _net
from fixflow.backends.xmodel import XModelError, netron_problems, read_xmodel
from fixflow.backends.xmodel.fix_xmodel import module_to_xgraph, read_int_xmodel, write_int_xmodel, xgraph_to_module
from fixflow.runtime.fix_executor import run_quantized
from fixflow.frontends.dsl import import_dsl
from fixflow.passes.graph.transforms import fold_batch_norm
from fixflow.passes.fix.quantize import quantize_module

NET = _net("""
  c = conv2d(x, out=8, kernel=3, stride=[2, 1], pad=[1, 0, 1, 1])
  r = relu(c)
  d = depthwise_conv2d(r, kernel=[3, 1], pad=[1, 1, 0, 0])
  p = max_pool2d(d, kernel=2)
  s = sigmoid(p)
  f = flatten(s)
  l = linear(f, out=5)
  return l, p""", shape=(1, 3, 8, 6), name="Net")


def _quantized(text: str):
    m = import_dsl(text)
    fold_batch_norm(m)
    xs = _inputs(m, 3)
    annotate(m, xs)
    quantize_module(m)
    return m, xs


def test_xir_conventions():
    m, _ = _quantized(NET)
    g = module_to_xgraph(m)
    g.validate()
    by = {o.name: o for o in g.ops}
    types = [o.type for o in g.ops]
    assert types[0] == "data-fix" and "conv2d-fix" in types and "depthwise-conv2d-fix" in types
    assert {"pool-fix", "matmul-fix", "fix2float", "fix", "sigmoid", "const-fix"} <= set(types)
    fc = next(o for o in g.ops if o.type == "matmul-fix")   # XIR has no inner-product-fix
    assert fc.attr("transpose_a") is False and fc.attr("transpose_b") is True
    assert sorted(fc.inputs) == ["bias", "input", "weights"] and by[fc.inputs["weights"][0]].output.shape == [5, 48]
    conv = next(o for o in g.ops if o.type == "conv2d-fix")
    assert conv.attr("kernel") == [3, 3] and conv.attr("stride") == [1, 2]   # width first
    assert conv.attr("pad") == [1, 1, 1, 0] and conv.attr("nonlinear") == "RELU"   # left, right, top, bottom
    dw = next(o for o in g.ops if o.type == "depthwise-conv2d-fix")
    assert dw.attr("kernel") == [1, 3]
    w = by[conv.inputs["weights"][0]]
    assert w.output.shape == [8, 3, 3, 3] and w.output.data_type == "XINT8"
    assert len(w.attr("data")) == 8 * 3 * 3 * 3
    assert w.output.attr("round_mode") == "STD_ROUND" and w.output.attr("if_signed") is True
    data = g.ops[0]
    assert data.attr("shape") == [1, 8, 6, 3] and data.output.attr("fix_point") == data.output.attr("fix_point")
    assert conv.output.shape == [1, 4, 6, 8] and conv.output.has_attr("fix_point")
    sig = next(o for o in g.ops if o.type == "sigmoid")
    assert sig.attr("device") == "CPU" and "sigmoid" in sig.attr("fix.reason")
    assert sig.output.data_type == "FLOAT32"


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_round_trip_bit_identical(name, tmp_path):
    m, xs = _quantized(_net(GRAPHS[name]))
    path = tmp_path / "T_int.xmodel"
    write_int_xmodel(m, path)
    assert netron_problems(path) == []
    m2 = read_int_xmodel(path)
    for a, b in zip(run_quantized(m, xs), run_quantized(m2, xs)):
        np.testing.assert_array_equal(a, b)
    # and again: the graph written from the read module is the same graph
    g1, g2 = module_to_xgraph(m), module_to_xgraph(m2)
    assert [o.type for o in g1.ops] == [o.type for o in g2.ops]
    assert [o.output for o in g1.ops] == [o.output for o in g2.ops]


def test_round_trip_net_with_cpu_op_and_two_outputs(tmp_path):
    m, xs = _quantized(NET)
    path = tmp_path / "Net_int.xmodel"
    write_int_xmodel(m, path)
    assert netron_problems(path) == []
    m2 = read_int_xmodel(path)
    f2 = next(iter(m2.body.ops))
    assert f2.attributes["sym_name"].value == "Net"
    assert [a.type.shape for a in f2.body.args] == [(1, 3, 8, 6)]
    out1, out2 = run_quantized(m, xs), run_quantized(m2, xs)
    assert len(out1) == len(out2) == 2
    for a, b in zip(out1, out2):
        np.testing.assert_array_equal(a, b)


def test_transposed_conv_round_trip(tmp_path):
    m, xs = _quantized(_net("""
  t = conv_transpose2d(x, out=3, kernel=3, stride=2, pad=1, output_pad=1)
  r = relu(t)
  return r""", shape=(1, 2, 4, 5)))
    g = module_to_xgraph(m)
    tc = next(o for o in g.ops if o.type == "transposed-conv2d-fix")
    assert tc.attr("pad") == [1, 0, 1, 0]   # XIR: kernel - 1 - actual padding (left, right, top, bottom)
    path = tmp_path / "t.xmodel"
    write_int_xmodel(m, path)
    m2 = read_int_xmodel(path)
    np.testing.assert_array_equal(run_quantized(m, xs)[0], run_quantized(m2, xs)[0])


def test_zoo_digits_cnn_file(tmp_path):
    torch = pytest.importorskip("torch")
    from fixflow.frontends.torch import import_module
    from fixflow.zoo.registry import get_model, sample_inputs
    x = sample_inputs("digits_cnn", 8)
    m = import_module(get_model("digits_cnn"), (torch.from_numpy(x[:1]),))
    fold_batch_norm(m)
    annotate(m, [x])
    quantize_module(m)
    path = tmp_path / "DigitsCNN_int.xmodel"
    write_int_xmodel(m, path)
    assert netron_problems(path) == []
    g = read_xmodel(path)
    assert [o.type for o in g.ops].count("conv2d-fix") == 3
    np.testing.assert_array_equal(run_quantized(m, [x])[0], run_quantized(read_int_xmodel(path), [x])[0])


def test_bad_files(tmp_path):
    m, _ = _quantized(_net(GRAPHS["conv_relu"]))
    path = tmp_path / "a.xmodel"
    write_int_xmodel(m, path)
    data = path.read_bytes()
    cut = tmp_path / "cut.xmodel"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(XModelError, match="cut.xmodel"):
        read_int_xmodel(cut)
    with pytest.raises(XModelError, match="missing.xmodel"):
        read_int_xmodel(tmp_path / "missing.xmodel")
    # a well-formed graph with an op the reader does not know
    g = read_xmodel(path)
    g.ops[-1].type = "frobnicate"
    with pytest.raises(XModelError, match="frobnicate"):
        xgraph_to_module(g)
    # const data of the wrong size
    g = read_xmodel(path)
    w = next(o for o in g.ops if o.type == "const-fix")
    w.set_attr("data", b"\x01\x02")
    with pytest.raises(XModelError, match="bytes"):
        xgraph_to_module(g)
