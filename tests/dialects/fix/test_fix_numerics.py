"""Tests for fixflow.dialects.fix.numerics against independent Fraction / brute-force references."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fixflow.dialects.fix import numerics as nu
from fixflow.dialects.fix.numerics import ConvFixPos, NumericsError

# ----------------------------------------------------------------------------- rounding

TIES = [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5]
EXPECTED_TIES = {
    "half_up": [-2, -1, 0, 1, 2, 3],
    "std_round": [-3, -2, -1, 1, 2, 3],
    "half_even": [-2, -2, 0, 0, 2, 2],
    "half_down": [-3, -2, -1, 0, 1, 2],
    "floor": [-3, -2, -1, 0, 1, 2],
    "ceil": [-2, -1, 0, 1, 2, 3],
}


@pytest.mark.parametrize("mode", nu.ROUND_MODES)
def test_rounding_ties(mode):
    assert nu.round_mode(np.array(TIES), mode).tolist() == EXPECTED_TIES[mode]


def test_documented_tie_examples():
    assert nu.round_mode(-2.5, "half_up") == -2 and nu.round_mode(2.5, "half_up") == 3
    assert nu.round_mode(-2.5, "std_round") == -3 and nu.round_mode(2.5, "std_round") == 3


def _ref_round(v: Fraction, mode: str) -> int:
    """Independent exact rounding of a rational."""
    fl = math.floor(v)
    frac = v - fl
    if mode == "floor":
        return fl
    if mode == "ceil":
        return math.ceil(v)
    if frac != Fraction(1, 2):
        return fl + (1 if frac > Fraction(1, 2) else 0)
    return {"half_up": fl + 1, "half_down": fl, "half_even": fl + (fl % 2),
            "std_round": fl + 1 if v > 0 else fl}[mode]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(-1000, 1000).map(lambda i: i / 2),
                          st.floats(-1e6, 1e6, allow_nan=False)), min_size=1, max_size=20),
       st.sampled_from(nu.ROUND_MODES))
def test_round_mode_matches_exact_reference(values, mode):
    got = nu.round_mode(np.array(values), mode)
    assert got.tolist() == [_ref_round(Fraction(v), mode) for v in values]


def test_half_up_near_half_is_exact():
    below = np.nextafter(0.5, 0.0)  # 0.49999999999999994: naive floor(x + 0.5) gives 1
    assert nu.round_mode(below, "half_up") == 0
    assert nu.round_mode(-below, "std_round") == 0


def test_unknown_mode_is_a_clear_error():
    with pytest.raises(NumericsError, match="unknown rounding mode 'nearest'"):
        nu.round_mode(1.0, "nearest")


# ----------------------------------------------------------------------------- quantize

def test_quantize_examples():
    x = np.array([0.0, 0.03125, -0.046875, 1.0, -1.0, 0.99, 100.0, -100.0])
    q = nu.quantize(x, 8, 7, "half_up")
    assert q.dtype == np.int8
    # 0.03125*128 = 4; -0.046875*128 = -6; 1.0*128 saturates to 127; 0.99*128 = 126.72 -> 127
    assert q.tolist() == [0, 4, -6, 127, -128, 127, 127, -128]


def test_quantize_negative_fix_pos_and_widths():
    assert nu.quantize(np.array([1000.0, -12.0, 20.0]), 8, -3).tolist() == [125, -1, 3]  # 20/8 = 2.5 -> 3
    assert nu.quantize(np.array([1000.0, -12.0, 20.0]), 8, -3, "std_round").tolist() == [125, -2, 3]
    assert nu.quantize(np.array([9.0, -9.0]), 4, 0).tolist() == [7, -8]
    q16 = nu.quantize(np.array([1.0, -2.0]), 16, 14)
    assert q16.dtype == np.int16 and q16.tolist() == [16384, -32768]
    assert nu.qrange(8) == (-128, 127) and nu.qrange(16) == (-32768, 32767)


def test_quantize_rejects_bad_bit_width():
    with pytest.raises(NumericsError, match="bit_width"):
        nu.quantize(np.zeros(2), 1, 0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-300, 300, allow_nan=False, width=32), min_size=1, max_size=30),
       st.sampled_from([4, 8, 16]), st.integers(-6, 14), st.sampled_from(nu.ROUND_MODES))
def test_fake_quantize_is_dequantize_of_quantize(values, bw, fp, mode):
    x = np.array(values, dtype=np.float32)
    fq = nu.fake_quantize(x, bw, fp, mode)
    assert fq.dtype == np.float32
    np.testing.assert_array_equal(fq, nu.dequantize(nu.quantize(x, bw, fp, mode), fp))
    # exact against the rational reference, and idempotent
    lo, hi = nu.qrange(bw)
    ref = [Fraction(min(hi, max(lo, _ref_round(Fraction(float(v)) * Fraction(2) ** fp, mode))))
           * Fraction(2) ** -fp for v in x]
    assert [Fraction(float(v)) for v in fq] == ref
    np.testing.assert_array_equal(nu.fake_quantize(fq, bw, fp, mode), fq)


# ----------------------------------------------------------------------------- fix_pos_diffs

def _brute_fix_pos(x: np.ndarray, bw: int, mode: str, scope: int) -> int:
    """Independent exact implementation of numerics.md "Choosing fix_pos"."""
    vals = [Fraction(float(v)) for v in x.ravel()]
    half = 2 ** (bw - 1)
    step = max(min(vals) / (Fraction(-2 * half - 1, 2)), max(vals) / Fraction(2 * half - 1, 2))
    if step <= Fraction(float(np.finfo(np.float32).tiny)):
        fp0 = 18
    else:  # largest fp with 2**fp <= 1/step, exactly
        inv = 1 / step
        fp0 = inv.numerator.bit_length() - inv.denominator.bit_length()
        while Fraction(2) ** (fp0 + 1) <= inv:
            fp0 += 1
        while Fraction(2) ** fp0 > inv:
            fp0 -= 1
    best, best_err = None, None
    for fp in range(fp0, fp0 + scope):
        sc = Fraction(2) ** fp
        err = sum((Fraction(min(half - 1, max(-half, _ref_round(v * sc, mode)))) / sc - v) ** 2 for v in vals)
        if best_err is None or err < best_err:
            best, best_err = fp, err
    return min(best, 12 if bw <= 8 else 15)


@pytest.mark.parametrize("seed", range(25))
def test_fix_pos_diffs_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.uniform(-3, 3)
    x = (rng.standard_normal(24) * scale).astype(np.float32)
    if seed % 3 == 0:
        x = np.abs(x)            # one-sided tensors (post-ReLU)
    for bw in (8, 4):
        for mode in ("half_up", "std_round"):
            for scope in (1, 5):
                assert nu.fix_pos_diffs(x, bw, mode, scope) == _brute_fix_pos(x, bw, mode, scope)


def test_fix_pos_documented_examples():
    # [1.0] + ten 0.01: fp0 = floor(log2(127.5)) = 6; at 6 the SSE is 10*(1/64-0.01)^2 = 3.2e-4,
    # at 7 it is (1-127/128)^2 + 10*(0.01-1/128)^2 = 1.1e-4; at 8, 1.0 saturates badly -> 7.
    x = np.array([1.0] + [0.01] * 10, dtype=np.float32)
    assert nu.fix_pos_diffs(x, 8, "half_up") == 7
    assert nu.fix_pos_maxmin(x, 8, "half_up") == 6
    # negative fix_pos: step = 1000/127.5, fp0 = floor(log2(0.1275)) = -3
    assert nu.fix_pos_diffs(np.array([1000.0, -3.0]), 8) == -3
    # all-zero tensors get 18, capped to 12 (8 bit) / 15 (wider)
    assert nu.fix_pos_diffs(np.zeros(7), 8) == 12
    assert nu.fix_pos_diffs(np.zeros(7), 16) == 15
    # tiny tensors are capped too
    assert nu.fix_pos_diffs(np.full(3, 1e-5), 8) == 12
    assert nu.fix_pos_diffs(np.full(3, 1e-5), 16) == 15


def test_fix_pos_diffs_errors():
    with pytest.raises(NumericsError, match="empty"):
        nu.fix_pos_diffs(np.array([]))
    with pytest.raises(NumericsError, match="NaN"):
        nu.fix_pos_diffs(np.array([1.0, np.nan]))


def test_modal_fix_pos():
    m = nu.ModalFixPos()
    assert m.value is None
    assert [m.update(v) for v in (5, 6, 6, 5, 4, 4)] == [5, 5, 6, 5, 5, 4]
    assert m.counts == {5: 2, 6: 2, 4: 2} and len(m) == 6
    # ties toward the smaller value
    m2 = nu.ModalFixPos()
    for v in (9, 3):
        m2.update(v)
    assert m2.value == 3


# ----------------------------------------------------------------------------- legalization

def test_legalize_conv_examples():
    # shift_cut = 7 + 4 - 13 = -2 -> output lowered to 11
    pos, why = nu.legalize_conv(ConvFixPos(i=4, w=7, b=None, o=13), "conv1")
    assert pos == ConvFixPos(4, 7, None, 11) and len(why) == 1 and "conv1" in why[0] and "output" in why[0]
    # shift_cut = 14 + 6 - 2 = 18 -> weights lowered to 12
    pos, why = nu.legalize_conv(ConvFixPos(i=6, w=14, b=None, o=2), "fc")
    assert pos == ConvFixPos(6, 12, None, 2) and "weight" in why[0]
    # shift_bias = 7 + 4 - (-10) = 21 > 16 -> weights lowered by 5 (shift_cut 11 -> 6, still legal)
    pos, why = nu.legalize_conv(ConvFixPos(i=4, w=7, b=-10, o=0))
    assert pos == ConvFixPos(4, 2, -10, 0)
    # shift_cut = 11 + 4 - 5 = 10, bias bound min(0, 10 - 16) = -6; shift_bias = 15 - 24 = -9 -> b = 21
    pos, why = nu.legalize_conv(ConvFixPos(i=4, w=11, b=24, o=5))
    assert pos == ConvFixPos(4, 11, 21, 5) and "bias" in why[0]
    # already legal: untouched, no reasons
    assert nu.legalize_conv(ConvFixPos(4, 7, 6, 3)) == (ConvFixPos(4, 7, 6, 3), [])


@settings(max_examples=300, deadline=None)
@given(st.integers(-8, 16), st.integers(-8, 20), st.one_of(st.none(), st.integers(-20, 30)),
       st.integers(-10, 20))
def test_legalize_conv_always_legal(i, w, b, o):
    (i2, w2, b2, o2), why = nu.legalize_conv(ConvFixPos(i, w, b, o))
    nu.conv_shifts(i2, w2, o2, b2, check=True)           # does not raise
    assert i2 == i and w2 <= w and o2 <= o and (b is None or b2 <= b)
    assert (len(why) == 0) == ((i2, w2, b2, o2) == (i, w, b, o))


def test_conv_shifts_checks():
    assert nu.conv_shifts(4, 7, 3, 6) == (8, 5)
    with pytest.raises(NumericsError, match=r"shift_cut = 4 \+ 7 - 12 = -1"):
        nu.conv_shifts(4, 7, 12)
    with pytest.raises(NumericsError, match="shift_bias"):
        nu.conv_shifts(4, 7, 3, -9)


def test_legalize_activation_rules():
    assert nu.legalize_hsigmoid(-1, 5)[:2] == (0, 7)
    assert nu.legalize_hsigmoid(3, 8) == (3, 8, [])
    assert nu.legalize_hswish(-2, 9)[:2] == (0, 7)
    assert nu.legalize_hswish(2, 9)[:2] == (2, 9)
    assert nu.legalize_hswish(2, 10)[:2] == (2, 9)
    assert nu.legalize_passthrough(5, 3, "pad1") == (5, ["pad1: output fix_pos set from 3 to the input's 5"])
    assert nu.legalize_passthrough(5, 5) == (5, [])


# ----------------------------------------------------------------------------- multipliers

def test_avgpool_table():
    assert nu.avgpool_multiplier(3, 3) == (7, 6)
    assert nu.avgpool_multiplier(5, 5) == (10, 8)
    assert nu.avgpool_multiplier(6, 6) == (7, 8)
    assert nu.avgpool_multiplier(7, 7) == (21, 10)
    assert nu.avgpool_multiplier(14, 14) == (21, 12)


def _brute_avg(rec: int) -> tuple[int, int]:
    best = None
    for s in range(math.ceil(math.log2(rec * 128))):
        m = round(Fraction(2**s, rec))          # Python round (ties to even), as vai_q_pytorch
        d = abs(Fraction(m, 2**s) - Fraction(1, rec))
        if best is None or d < best[0]:
            best = (d, m, s)
    return best[1], best[2]


@pytest.mark.parametrize("kh", range(1, 17))
def test_avgpool_search_matches_exact_search(kh):
    for kw in range(1, 17):
        if (kh, kw) in {(3, 3), (5, 5), (6, 6), (3, 6), (6, 3), (7, 7), (14, 14)}:
            continue
        m, s = nu.avgpool_multiplier(kh, kw)
        assert (m, s) == _brute_avg(kh * kw)
        assert 1 <= m <= 255  # 8-bit ALU multi_factor field
    assert nu.avgpool_multiplier(2, 2) == (1, 2) and nu.avgpool_multiplier(8, 8) == (1, 6)


def test_leaky_alpha():
    assert nu.LEAKY_RELU_ALPHA == Fraction(26, 256) and float(nu.LEAKY_RELU_ALPHA) == 0.1015625
