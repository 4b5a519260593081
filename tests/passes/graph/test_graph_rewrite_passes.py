"""relu6-to-relu, remove-dropout and ensure-biases from a pipeline string (as fixflow-opt runs them)."""

from __future__ import annotations

import numpy as np

from fixflow.frontends.dsl import import_dsl
from fixflow.ir import print_module
from fixflow.ir.interpreter import run_module
from fixflow.ir.passes import PassManager

NET = """
net N(x: f32[1, 2, 6, 6]) {
  c = conv2d(x, out=3, kernel=3, pad=1, bias=false)
  r = relu6(c)
  d = dropout(r)
  f = flatten(d)
  y = linear(f, out=4)
  return y
}
"""


def test_pipeline_rewrites_keep_the_numbers():
    m = import_dsl(NET)
    x = np.random.default_rng(0).normal(0, 2, (3, 2, 6, 6)).astype(np.float32)
    before = run_module(m, [x])[0]
    PassManager.parse("remove-dropout,ensure-biases").run(m)
    text = print_module(m)
    assert "graph.dropout" not in text
    conv = next(op for op in m.walk() if op.name == "graph.conv2d")
    assert conv.bias is not None and not np.any(conv.bias.op.attributes["value"].array)
    np.testing.assert_array_equal(run_module(m, [x])[0], before)
    PassManager.parse("relu6-to-relu").run(m)
    names = [op.name for op in m.walk()]
    assert "graph.relu6" not in names and "graph.relu" in names
    relu = next(op for op in m.walk() if op.name == "graph.relu")
    assert relu.output.name_hint == "r"
    small = x * np.float32(1e-3)   # conv outputs far below 6: relu6 and relu agree
    np.testing.assert_array_equal(run_module(m, [small])[0], run_module(import_dsl(NET), [small])[0])
