"""Fast finetune's channel rescaling (grid fill): which layer pairs it takes, that the rescaled parameters are
the same float function, and that on real data it brings the quantized network nearer to float."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fixflow import zoo
from fixflow.quantizer import Quantizer
from fixflow.quantizer import fast_finetune as FT
from fixflow.passes.fix.annotations import conv_like_ops

RNG = np.random.default_rng(3)
X = RNG.normal(size=(48, 3, 8, 8)).astype(np.float32)


class Pairs(nn.Module):
    """conv+relu -> grouped conv; conv+leaky -> maxpool -> depthwise conv; conv+relu -> flatten (C x H x W)
    -> linear; plus layers that must not be rescaled: an output read twice (residual), a relu6."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.c = nn.Conv2d(8, 8, 1)
        self.d = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.e = nn.Conv2d(8, 8, 3, padding=1)       # read by f and by the add
        self.f = nn.Conv2d(8, 8, 3, padding=1)
        self.g = nn.Conv2d(8, 4, 1)                  # relu6 after it
        self.h = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.fc = nn.Linear(4 * 2 * 2, 5)

    def forward(self, x):
        x = torch.relu(self.a(x))
        x = torch.relu(self.b(x))
        x = nn.functional.leaky_relu(self.c(x), 0.1)
        x = torch.relu(self.d(nn.functional.max_pool2d(x, 2)))
        y = torch.relu(self.e(x))
        x = torch.relu(self.f(y) + y)
        x = nn.functional.relu6(self.g(x))
        x = torch.relu(self.h(x))
        return self.fc(torch.flatten(x, 1))


def _frozen(model, x, tmp_path):
    q = Quantizer(model.eval(), (torch.from_numpy(x[:1]),), mode="calib", output_dir=tmp_path, log=None,
                  progress=False)
    q.quant_model(torch.from_numpy(x))
    q._freeze_calibration()
    return q


@pytest.fixture(scope="module")
def frozen(tmp_path_factory):
    q = _frozen(Pairs(), X, tmp_path_factory.mktemp("rescale"))
    names = FT._names(q)
    return q, {names[op]: op for op in conv_like_ops(q.func)}


def test_the_pairs_it_takes_and_the_ones_it_leaves(frozen):
    q, ops = frozen
    pairs = {name: FT._scale_pair(op) for name, op in ops.items()}
    names = FT._names(q)
    taken = {name: (names[p.consumer], p.columns) for name, p in pairs.items() if p is not None}
    assert taken == {"a": ("b", 1), "b": ("c", 1), "c": ("d", 1), "d": ("e", 1), "h": ("fc", 4)}
    # e: its output is read by f and by the add; f: it ends in the add; g: relu6 does not commute with a scale


@pytest.mark.parametrize("producer", ["a", "b", "c", "h"])
def test_rescaling_keeps_the_float_function(frozen, producer):
    q, ops = frozen
    pair = FT._scale_pair(ops[producer])
    p, c = pair.producer, pair.consumer
    ev = FT._Evaluator({}, 16)
    x = np.abs(RNG.normal(size=(8,) + tuple(p.operands[0].type.shape[1:]))).astype(np.float32)

    def path(params):
        y = x
        for o in pair.path:
            y = ev.float_op(o, [y], params.get(o))
        return y

    before = {p: (FT._array(p.weight), FT._array(p.bias)), c: (FT._array(c.weight), FT._array(c.bias))}
    s = np.exp(RNG.uniform(-1, 2, size=p.results[0].type.shape[1])).astype(np.float32)
    wp, bp, wc = FT._scaled(pair, *before[p], before[c][0], s)
    after = {p: (wp, bp), c: (wc, before[c][1])}
    ref = path(before)
    np.testing.assert_allclose(path(after), ref, rtol=1e-4, atol=1e-5 * float(np.abs(ref).max()))
    # and the producer's own output really changed (channel c times s)
    y0 = ev.float_op(p, [x], before[p])
    y1 = ev.float_op(p, [x], after[p])
    np.testing.assert_allclose(y1, y0 * s.reshape((1, -1) + (1,) * (y0.ndim - 2)), rtol=1e-4, atol=1e-5)


def test_rescaled_layers_are_reported_and_stay_on_their_grids(tmp_path):
    q2 = Quantizer(Pairs().eval(), (torch.from_numpy(X[:1]),), mode="calib", output_dir=tmp_path, log=None,
                   progress=False)

    def evaluate(batches):
        for xb in batches:
            q2.quant_model(torch.from_numpy(xb))
    rep = q2.fast_finetune(evaluate, ([X[:24], X[24:]],), epochs=2)
    fills = {r.name: r.fill for r in rep.layers}
    assert set(fills) == {"a", "b", "c", "d", "e", "f", "g", "h", "fc"}
    assert all(fills[n] is None for n in ("e", "f", "g", "fc"))   # no pair: never rescaled
    assert any(fills[n] is not None for n in ("a", "b", "c", "d", "h"))
    for op, (w, b) in q2._ft.params.items():
        for arr, role in ((w, "fix.weight"), (b, "fix.bias")):
            bw, fp = FT._fmt(op, role)
            ints = arr * 2.0 ** fp
            assert np.array_equal(ints, np.round(ints)) and np.abs(ints).max() <= 2 ** (bw - 1)


def test_off_changes_nothing_but_the_fills(tmp_path):
    reps = []
    for rescale in (True, False):
        q = Quantizer(Pairs().eval(), (torch.from_numpy(X[:1]),), mode="calib", output_dir=tmp_path / str(rescale),
                      log=None, progress=False)

        def evaluate(batches, q=q):
            for xb in batches:
                q.quant_model(torch.from_numpy(xb))
        reps.append(q.fast_finetune(evaluate, ([X],), epochs=1, rescale=rescale))
    assert all(r.fill is None for r in reps[1].layers)
    assert any(r.fill is not None for r in reps[0].layers)


@pytest.mark.slow   # two fast finetunes of tiny_mobilenet on 320 digits images (~20 s CPU)
def test_rescaling_brings_tiny_mobilenet_nearer_to_float(tmp_path):
    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    import quant_baselines as qb
    model = zoo.get_model("tiny_mobilenet")
    xtr, _ = zoo.load_data("tiny_mobilenet", "train")
    xte, yte = zoo.load_data("tiny_mobilenet", "test")
    calib = qb.calibration_batches(xtr)
    yf = qb.float_logits(model, xte)
    sqnr = {}
    for rescale in (False, True):
        d = tmp_path / str(rescale)
        q = Quantizer(model, (torch.from_numpy(calib[0][:1]),), mode="calib", output_dir=d, log=None, progress=False)

        def evaluate(batches, q=q):
            for xb in batches:
                q.quant_model(torch.from_numpy(xb))
        q.fast_finetune(evaluate, (calib,), epochs=3, rescale=rescale)
        q.export_quant_config()
        qt = Quantizer(model, (torch.from_numpy(calib[0][:1]),), mode="test", output_dir=d, log=None, progress=False)
        sqnr[rescale] = qb.quality(yf, np.asarray(qt.quant_model(torch.from_numpy(xte))), yte).sqnr_db
    assert sqnr[True] > sqnr[False] + 0.3, sqnr
