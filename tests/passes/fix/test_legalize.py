"""legalize-fix: DPU fix_pos rules applied to the annotations, one warning per change naming the layer."""

from __future__ import annotations

import numpy as np
import pytest

from fixflow.dialects.fix.numerics import conv_shifts
from fixflow.frontends.dsl import import_dsl
from fixflow.ir.diagnostics import capture_diagnostics
from fixflow.ir.interpreter import find_function
from fixflow.passes.fix.annotations import CalibrationError, fix_attr, read_fix_attr
from fixflow.passes.fix.calibrate import calibrate_module
from fixflow.passes.fix.legalize import legalize_fix


def _ops(m):
    return {op.results[0].name_hint: op for op in find_function(m).regions[0].blocks[0].ops
            if op.results and op.results[0].name_hint}


def _calibrated(text, shape, seed=0):
    m = import_dsl(text)
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    calibrate_module(m, [[x]], bias_correction=False)
    return m


CONV = "net C(x: f32[1, 2, 4, 4]) {\n  c = conv2d(x, out=3, kernel=3, pad=1)\n  r = relu(c)\n  return r\n}"


def test_shift_cut_too_small_lowers_output():
    m = _calibrated(CONV, (2, 2, 4, 4))
    ops = _ops(m)
    i = int(find_function(m).attributes["fix.inputs"][0][1])
    w = read_fix_attr(ops["c"], "fix.weight")[1]
    ops["r"].attributes["fix.out"] = fix_attr(8, i + w + 3)        # shift_cut = -3
    with capture_diagnostics() as diags:
        n = legalize_fix(m)
    assert n >= 1
    assert read_fix_attr(ops["r"], "fix.out")[1] == i + w
    assert any("shift_cut -3 < 0" in d.message for d in diags)
    assert all(d.location is ops["c"].location for d in diags)
    o, b = read_fix_attr(ops["r"], "fix.out")[1], read_fix_attr(ops["c"], "fix.bias")[1]
    conv_shifts(i, read_fix_attr(ops["c"], "fix.weight")[1], o, b)   # legal now (raises otherwise)


def test_shift_bias_too_big_lowers_weight():
    m = _calibrated(CONV, (2, 2, 4, 4))
    ops = _ops(m)
    i = int(find_function(m).attributes["fix.inputs"][0][1])
    ops["c"].attributes["fix.weight"] = fix_attr(8, 12)
    ops["c"].attributes["fix.bias"] = fix_attr(8, i + 12 - 20)      # shift_bias 20 > 16
    ops["r"].attributes["fix.out"] = fix_attr(8, i + 12 - 2)
    with capture_diagnostics() as diags:
        legalize_fix(m)
    assert read_fix_attr(ops["c"], "fix.weight")[1] == 8
    assert any("shift_bias 20 > 16" in d.message for d in diags)


def test_legal_annotations_are_untouched():
    m = _calibrated(CONV, (4, 2, 4, 4))
    ops = _ops(m)
    i = int(find_function(m).attributes["fix.inputs"][0][1])
    w, b, o = (read_fix_attr(ops["c"], "fix.weight")[1], read_fix_attr(ops["c"], "fix.bias")[1],
               read_fix_attr(ops["r"], "fix.out")[1])
    try:
        conv_shifts(i, w, o, b)
    except ValueError:
        pytest.skip("calibration produced an illegal combination on this data")
    with capture_diagnostics() as diags:
        assert legalize_fix(m) == 0
    assert diags == []


@pytest.mark.parametrize("calibrated_o", [2, 6])
def test_relu6_output_set_to_4(calibrated_o):
    m = _calibrated("net S(x: f32[1, 2, 4, 4]) {\n  c = conv2d(x, out=3, kernel=1)\n  r = relu6(c)\n  return r\n}",
                    (2, 2, 4, 4))
    ops = _ops(m)
    ops["r"].attributes["fix.out"] = fix_attr(8, calibrated_o)
    ops["c"].attributes["fix.weight"] = fix_attr(8, 6)
    ops["c"].attributes["fix.bias"] = fix_attr(8, 6)
    find_function(m).attributes["fix.inputs"] = type(find_function(m).attributes["fix.inputs"])([fix_attr(8, 5)])
    with capture_diagnostics() as diags:
        legalize_fix(m)
    assert read_fix_attr(ops["r"], "fix.out")[1] == 4
    assert any("ReLU6" in d.message for d in diags)


def test_hsigmoid_and_hswish_rules():
    m = _calibrated("""net H(x: f32[1, 4]) {
  a = linear(x, out=4)
  h = hardsigmoid(a)
  b = linear(h, out=4)
  s = hardswish(b)
  return s
}""", (3, 4))
    ops = _ops(m)
    ops["a"].attributes["fix.out"] = fix_attr(8, -1)
    ops["h"].attributes["fix.out"] = fix_attr(8, 5)
    ops["b"].attributes["fix.out"] = fix_attr(8, 1)
    ops["s"].attributes["fix.out"] = fix_attr(8, 10)
    with capture_diagnostics() as diags:
        legalize_fix(m)
    assert read_fix_attr(ops["h"], "fix.out")[1] == 7
    assert read_fix_attr(ops["a"], "fix.out")[1] >= 0
    assert read_fix_attr(ops["s"], "fix.out")[1] == 8
    msgs = " ".join(d.message for d in diags)
    assert "hsigmoid needs >= 7" in msgs and "must be <= input + 7" in msgs


def test_pad_passthrough():
    m = _calibrated("""net P(x: f32[1, 2, 4, 4]) {
  c = conv2d(x, out=2, kernel=1)
  a = add(c, c)
  p = pad(a, pads=[1, 1, 1, 1])
  return p, a
}""", (2, 2, 4, 4))
    ops = _ops(m)
    fa = read_fix_attr(ops["a"], "fix.out")[1]
    ops["p"].attributes["fix.out"] = fix_attr(8, fa + 2)
    with capture_diagnostics() as diags:
        legalize_fix(m)
    assert read_fix_attr(ops["p"], "fix.out")[1] == fa
    assert any("input's" in d.message and d.location is ops["p"].location for d in diags)


def test_requires_calibration():
    with pytest.raises(CalibrationError, match="run calibrate first"):
        legalize_fix(import_dsl(CONV))
