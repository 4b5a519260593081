"""equalize (CLE): per-channel ranges balanced as numerics.md says, float function unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from fixflow.frontends.dsl import import_dsl
from fixflow.ir.passes import PassManager, parse_pipeline
from fixflow.passes.graph.equalize import equalization_pairs, equalize
from fixflow.ir.interpreter import run_module

CHAIN = """
net C(x: f32[1, 4, 8, 8]) with seed=2 {
  a = conv2d(x, out=8, kernel=3, pad=1)
  ra = relu(a)
  d = depthwise_conv2d(ra, kernel=3, pad=1)
  rd = relu(d)
  p = conv2d(rd, out=6, kernel=1)
  q = conv2d(p, out=5, kernel=1)
  rq = relu6(q)
  f = flatten(rq)
  l1 = linear(f, out=7)
  r1 = relu(l1)
  l2 = linear(r1, out=3)
  return l2
}
"""


def _w(op, i=1):
    return np.asarray(op.operands[i].op.attributes["value"].array, np.float64)


def test_pairs_found():
    m = import_dsl(CHAIN)
    pairs = [(a.results[0].name_hint, b.results[0].name_hint) for a, b in equalization_pairs(m)]
    assert pairs == [("a", "d"), ("d", "p"), ("p", "q"), ("l1", "l2")]


def test_function_unchanged_and_ranges_balanced():
    rng = np.random.default_rng(0)
    m = import_dsl(CHAIN.replace("relu6(q)", "relu(q)"))
    x = rng.standard_normal((5, 4, 8, 8)).astype(np.float32)
    before = run_module(m, [x])[0]
    pairs = equalization_pairs(m)
    names = [(a.results[0].name_hint, b.results[0].name_hint) for a, b in pairs]
    ra_before = {n: np.abs(_w(a)).reshape(_w(a).shape[0], -1).max(1) for (n, _), (a, _) in zip(names, pairs)}
    assert equalize(m) == 4
    after = run_module(m, [x])[0]
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-5 * np.abs(before).max())
    # after one pair is equalized, r_a == r_b per channel (s = sqrt(r_a / r_b)); check the last pair,
    # whose weights are not touched again
    ops = {op.results[0].name_hint: op for op in m.walk() if op.results and op.results[0].name_hint}
    wa, wb = _w(ops["l1"]), _w(ops["l2"])
    np.testing.assert_allclose(np.abs(wa).max(1), np.abs(wb).max(0), rtol=1e-5)
    # and the scale followed the formula
    s = np.abs(wa).max(1)
    assert not np.allclose(s, ra_before["l1"])


def test_depthwise_scale_matches_formula():
    m = import_dsl("""net D(x: f32[1, 3, 6, 6]) with seed=4 {
  d = depthwise_conv2d(x, kernel=3, pad=1)
  r = relu(d)
  p = conv2d(r, out=4, kernel=1)
  return p
}""")
    (a, b), = equalization_pairs(m)
    wa, wb, ba = _w(a), _w(b), _w(a, 2)
    ra = np.abs(wa).reshape(3, -1).max(1)
    rb = np.abs(wb).max(axis=(0, 2, 3))
    s = ra / np.sqrt(ra * rb)
    s = np.where(ra + rb < 0.5, 1.0, s)
    equalize(m)
    np.testing.assert_allclose(_w(a), wa / s[:, None, None, None], rtol=1e-6)
    np.testing.assert_allclose(_w(a, 2), ba / s, rtol=1e-6)
    np.testing.assert_allclose(_w(b), wb * s[None, :, None, None], rtol=1e-6)


def test_small_ranges_are_left_alone():
    w1 = np.full((2, 2, 1, 1), 0.1, np.float32)
    w2 = np.full((2, 2, 1, 1), 0.1, np.float32)
    m = import_dsl("net S(x: f32[1, 2, 2, 2]) {\n  a = conv2d(x, out=2, kernel=1, bias=false)\n  r = relu(a)\n"
                   "  b = conv2d(r, out=2, kernel=1, bias=false)\n  return b\n}", weights={"a.weight": w1, "b.weight": w2})
    assert equalize(m) == 0   # r_a + r_b = 0.2 < 0.5: s = 1


def test_no_chain_through_other_users():
    m = import_dsl("""net U(x: f32[1, 2, 4, 4]) {
  a = conv2d(x, out=2, kernel=1)
  r = relu(a)
  b = conv2d(r, out=2, kernel=1)
  s = add(b, r)
  return s
}""")
    assert equalization_pairs(m) == []


@pytest.mark.slow
def test_imbalanced_mobilenet_recovers_function():
    import torch
    from fixflow import zoo
    from fixflow.frontends.torch import import_module
    model = zoo.get_model("tiny_mobilenet_imbalanced")
    x = zoo.sample_inputs("tiny_mobilenet_imbalanced", 16)
    m = import_module(model, (torch.from_numpy(x[:1]),))
    PassManager(parse_pipeline("fold-bn")).run(m)
    before = run_module(m, [x])[0]
    PassManager(parse_pipeline("equalize")).run(m)
    np.testing.assert_allclose(run_module(m, [x])[0], before, rtol=1e-3, atol=1e-4 * np.abs(before).max())
