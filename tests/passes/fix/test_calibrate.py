"""calibrate: quantization groups, diffs/modal fix positions, fake-quant forward, bias correction, the pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fixflow.dialects.fix.numerics import fake_quantize, fix_pos_diffs
from fixflow.frontends.dsl import import_dsl
from fixflow.ir import parse_module, print_module
from fixflow.ir.passes import PassManager, parse_pipeline
from fixflow.ir.interpreter import find_function
from fixflow.passes.fix.annotations import CalibrationError, quant_points, read_fix_attr
from fixflow.passes.fix.calibrate import FakeQuantRunner, calibrate_module
from fixflow.passes.graph.transforms import fold_batch_norm
from fixflow.ir.interpreter import run_module

NET = """
net N(x: f32[1, 2, 8, 8]) with seed=3 {
  c1 = conv2d(x, out=4, kernel=3, pad=1)
  r1 = relu(c1)
  p1 = max_pool2d(r1, kernel=2, stride=2)
  c2 = conv2d(p1, out=6, kernel=3, pad=1, bias=false)
  r2 = relu(c2)
  f  = flatten(r2)
  fc = linear(f, out=3)
  return fc
}
"""


def _ops(module):
    return {op.results[0].name_hint: op for op in find_function(module).regions[0].blocks[0].ops
            if op.results and op.results[0].name_hint}


def _batches(n, shape=(4, 2, 8, 8), seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return [[(rng.standard_normal(shape) * scale).astype(np.float32)] for _ in range(n)]


def test_quant_points_follow_fused_groups():
    m = import_dsl(NET)
    names = [v.name_hint for v in quant_points(find_function(m))]
    assert names == ["r1", "p1", "f", "fc"]   # conv outputs join their relu; relu2 joins flatten


def test_annotations_and_zero_bias():
    m = import_dsl(NET)
    calibrate_module(m, _batches(2))
    ops = _ops(m)
    for name in ("r1", "p1", "f", "fc"):
        assert read_fix_attr(ops[name], "fix.out")[0] == 8
    assert "fix.out" not in ops["c1"].attributes and "fix.out" not in ops["r2"].attributes
    for name in ("c1", "c2", "fc"):
        assert read_fix_attr(ops[name], "fix.weight") is not None and read_fix_attr(ops[name], "fix.bias") is not None
    assert ops["c2"].bias is not None           # a missing bias became an explicit zero bias
    assert int(m.attributes["fix.calib_batches"].value) == 2
    func = find_function(m)
    assert len(func.attributes["fix.inputs"]) == 1
    # the annotated module prints and parses back
    text = print_module(m)
    assert print_module(parse_module(text)) == text


def _reference_forward(m, x):
    """Independent fake-quant forward with torch (float64) from the annotations."""
    ops = _ops(m)
    func = find_function(m)
    fp_in = int(func.attributes["fix.inputs"][0][1])

    def q(a, fp, mode="half_up"):
        return torch.from_numpy(fake_quantize(a.numpy(), 8, fp, mode).astype(np.float64))

    def params(name):
        op = ops[name]
        w = np.asarray(op.weight.op.attributes["value"].array, np.float64)
        b = np.asarray(op.bias.op.attributes["value"].array, np.float64)
        return (q(torch.from_numpy(w), read_fix_attr(op, "fix.weight")[1], "std_round"),
                q(torch.from_numpy(b), read_fix_attr(op, "fix.bias")[1], "std_round"))

    fo = lambda n: read_fix_attr(ops[n], "fix.out")[1]  # noqa: E731
    t = q(torch.from_numpy(x.astype(np.float64)), fp_in, "std_round")
    t = q(F.relu(F.conv2d(t, *params("c1"), padding=1)), fo("r1"))
    t = q(F.max_pool2d(t, 2, 2), fo("p1"))
    t = q(torch.flatten(F.relu(F.conv2d(t, *params("c2"), padding=1)), 1), fo("f"))
    return q(F.linear(t, *params("fc")), fo("fc")).numpy()


def test_forward_matches_independent_reference():
    m = import_dsl(NET)
    runner = calibrate_module(m, _batches(3), bias_correction=False)
    x = _batches(1, seed=9)[0][0]
    got = runner.forward([x])[0]
    want = _reference_forward(m, x)
    step = 2.0 ** -read_fix_attr(_ops(m)["fc"], "fix.out")[1]
    assert np.max(np.abs(got - want)) <= step + 1e-9
    assert np.mean(got == want.astype(np.float32)) > 0.9
    # from_annotations reproduces the calibrated runner exactly
    again = FakeQuantRunner.from_annotations(m).forward([x])[0]
    np.testing.assert_array_equal(again, got)


def test_first_layer_fix_positions_are_diffs_of_the_data():
    m = import_dsl(NET)
    x = _batches(1, seed=5)[0][0]
    calibrate_module(m, [[x]], bias_correction=False)
    ops = _ops(m)
    fp_in = fix_pos_diffs(x, 8, "std_round", scope=1)
    assert int(find_function(m).attributes["fix.inputs"][0][1]) == fp_in
    w = np.asarray(ops["c1"].weight.op.attributes["value"].array)
    assert read_fix_attr(ops["c1"], "fix.weight")[1] == fix_pos_diffs(w, 8, "std_round", 5)
    w2 = np.asarray(ops["c2"].weight.op.attributes["value"].array)
    assert read_fix_attr(ops["c2"], "fix.weight")[1] == fix_pos_diffs(w2, 8, "std_round", 5)
    # r1 = relu(conv(q(x))) computed by torch
    xq = torch.from_numpy(fake_quantize(x, 8, fp_in, "std_round"))
    wq = torch.from_numpy(fake_quantize(w, 8, read_fix_attr(ops["c1"], "fix.weight")[1], "std_round"))
    b = np.asarray(ops["c1"].bias.op.attributes["value"].array)
    bq = torch.from_numpy(fake_quantize(b, 8, read_fix_attr(ops["c1"], "fix.bias")[1], "std_round"))
    r1 = F.relu(F.conv2d(xq, wq, bq, padding=1)).numpy()
    assert read_fix_attr(ops["r1"], "fix.out")[1] == fix_pos_diffs(r1, 8, "half_up", 5)


def test_modal_statistic_ties_toward_smaller():
    m = import_dsl("net R(x: f32[1, 4]) {\n  r = relu(x)\n  return r\n}")
    ones = np.full((2, 4), 0.9, np.float32)       # relu output fix_pos 7
    big = np.full((2, 4), 3.5, np.float32)        # 5
    mid = np.full((2, 4), 1.9, np.float32)        # 6
    seen = []
    runner = FakeQuantRunner(m)
    for x in (ones, big, big, ones, mid):
        runner.step([x])
        seen.append(runner.point_fix_pos(quant_points(find_function(m))[0]))
    # counts after each batch: {7}, {7,5} tie -> 5, {5:2}, {5:2,7:2} tie -> 5, still 5
    assert seen == [7, 5, 5, 5, 5]
    assert [fix_pos_diffs(a, 8, "half_up") for a in (ones, big, mid)] == [7, 5, 6]


def test_maxmin_method_is_scope_one():
    m1, m2 = import_dsl(NET), import_dsl(NET)
    b = _batches(2)
    calibrate_module(m1, b, method="maxmin", bias_correction=False)
    calibrate_module(m2, b, scope=1, bias_correction=False)
    assert print_module(m1) == print_module(m2)
    with pytest.raises(CalibrationError, match="unknown calibration method 'mse'"):
        calibrate_module(import_dsl(NET), b, method="mse")


def test_bias_correction_reduces_mean_error():
    rng = np.random.default_rng(0)
    w = (rng.random((8, 16, 1, 1)) * 0.02).astype(np.float32)
    w[0, 0, 0, 0] = 4.0                           # one outlier: the small weights round coarsely
    text = "net B(x: f32[1, 16, 4, 4]) {\n  c = conv2d(x, out=8, kernel=1)\n  return c\n}"
    weights = {"c.weight": w, "c.bias": np.zeros(8, np.float32)}
    data = [[rng.random((8, 16, 4, 4)).astype(np.float32)] for _ in range(20)]
    test = rng.random((64, 16, 4, 4)).astype(np.float32)

    def mean_err(bc):
        m = import_dsl(text, weights=weights)
        yf = run_module(m, [test])[0]
        r = calibrate_module(m, data, bias_correction=bc)
        return np.abs((r.forward([test])[0] - yf).mean(axis=(0, 2, 3))).mean(), m, r

    e0, m0, _ = mean_err(False)
    e1, m1, r1 = mean_err(True)
    assert m1.attributes["fix.bias_corrected"].value is True
    assert m0.attributes["fix.bias_corrected"].value is False
    assert e1 < 0.6 * e0
    bias = np.asarray(_ops(m1)["c"].bias.op.attributes["value"].array)
    assert np.any(bias != 0) and _ops(m1)["c"].bias.op.attributes["value"].key.endswith("_biascorr")


def test_leaky_relu_slope_forced_with_warning():
    from fixflow.ir.diagnostics import capture_diagnostics
    m = import_dsl("net L(x: f32[1, 4]) {\n  l = leaky_relu(x, alpha=0.2)\n  return l\n}")
    with capture_diagnostics() as diags:
        calibrate_module(m, [[np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)]])
    assert any("26/256" in d.message for d in diags)
    assert _ops(m)["l"].alpha == 26 / 256


def test_bad_inputs():
    m = import_dsl(NET)
    with pytest.raises(CalibrationError, match="no calibration batches"):
        calibrate_module(m, [])
    with pytest.raises(CalibrationError, match=r"expected shape \(N, 2, 8, 8\)"):
        calibrate_module(import_dsl(NET), [[np.zeros((1, 3, 8, 8), np.float32)]])


def test_calibrate_pass_on_digits(tmp_path):
    m = import_dsl("""net D(x: f32[1, 1, 8, 8]) {
  c = conv2d(x, out=4, kernel=3, pad=1)
  b = batch_norm(c)
  r = relu(b)
  f = flatten(r)
  fc = linear(f, out=10)
  return fc
}""")
    PassManager(parse_pipeline("fold-bn,equalize,calibrate{data=digits batches=2 batch_size=16},legalize-fix")).run(m)
    assert int(m.attributes["fix.calib_batches"].value) == 2
    assert read_fix_attr(_ops(m)["fc"], "fix.out") is not None
    # an npz data source
    x = np.random.default_rng(1).random((10, 1, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "cal.npz", x=x)
    m2 = import_dsl("net E(x: f32[1, 1, 8, 8]) {\n  r = relu(x)\n  return r\n}")
    PassManager(parse_pipeline(f"calibrate{{data={tmp_path / 'cal.npz'} batch_size=4}}")).run(m2)
    assert int(m2.attributes["fix.calib_batches"].value) == 3
    with pytest.raises(CalibrationError, match="does not fit the network input"):
        PassManager(parse_pipeline(f"calibrate{{data={tmp_path / 'cal.npz'}}}")).run(import_dsl(NET))
