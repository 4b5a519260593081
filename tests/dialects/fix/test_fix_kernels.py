"""Tests for fixflow.dialects.fix.kernels.

References: slow pure-Python Fraction arithmetic (real-valued semantics), literal
transcriptions of AMD's DPU simulator formulas (vart sim-runner), and PyTorch float64 for
the geometry. The "one semantics per op" invariant ``sim(dequant(x)) == dequant(fix(x))``
is checked bit for bit on many seeded cases with ties.
"""

from __future__ import annotations

import math
from fractions import Fraction as F

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings, strategies as st

from fixflow.dialects.fix import kernels as K
from fixflow.dialects.fix.numerics import NumericsError, avgpool_multiplier, dequantize

TWO = F(2)

# ----------------------------------------------------------------------------- references


TIES: list[F] = []   # every exact .5 the Fraction references met (see test_corpus_has_ties)


def half_up_sat(v: F, bw: int = 8) -> int:
    if v - math.floor(v) == F(1, 2):
        TIES.append(v)
    lo, hi = -(1 << (bw - 1)), (1 << (bw - 1)) - 1
    return min(hi, max(lo, math.floor(v + F(1, 2))))


def ref_act(y: F, act: str, fo: int) -> F:
    if act == "RELU":
        return max(y, F(0))
    if act == "LEAKYRELU":
        return y * F(26, 256) if y < 0 else y
    if act == "RELU6":
        return min(max(y, F(0)), F(6))
    return y


def dpu_round(d: float) -> int:
    """Literal transcription of Calc::DPURound<int8> (vart sim-runner)."""
    if d > 127:
        return 127
    if d < -128:
        return -128
    if d < 0 and d - math.floor(d) == 0.5:
        return math.ceil(d)
    return int(math.copysign(math.floor(abs(d) + 0.5), d))  # C round(): half away from zero


def dr(x: float) -> float:
    """Literal transcription of the simulator's dr(): half_up, saturate to int8."""
    v = math.ceil(x) if x - math.floor(x) >= 0.5 else math.floor(x)
    return float(min(127, max(-128, v)))


def _pads(p):
    if isinstance(p, int):
        return p, p, p, p
    return (p[0], p[0], p[1], p[1]) if len(p) == 2 else tuple(p)


def ref_conv(x, w, b, fi, fw, fb, fo, stride, padding, dilation, act, bw=8, depthwise=False):
    n_, h, wd, c = x.shape
    if depthwise:
        kh, kw, oc = w.shape
    else:
        oc, kh, kw, _ = w.shape
    sh, sw = stride
    dh, dw = dilation
    pt, pb, pl, pr = _pads(padding)
    oh_n = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow_n = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n_, oh_n, ow_n, oc), dtype=np.int64)
    for n in range(n_):
        for oh in range(oh_n):
            for ow in range(ow_n):
                for o in range(oc):
                    acc = 0
                    for i in range(kh):
                        for j in range(kw):
                            ih, iw = oh * sh - pt + i * dh, ow * sw - pl + j * dw
                            if not (0 <= ih < h and 0 <= iw < wd):
                                continue
                            if depthwise:
                                acc += int(x[n, ih, iw, o]) * int(w[i, j, o])
                            else:
                                acc += sum(int(x[n, ih, iw, ci]) * int(w[o, i, j, ci]) for ci in range(c))
                    y = F(acc) * TWO ** -(fi + fw)
                    if b is not None:
                        y += F(int(b[o])) * TWO ** -fb
                    out[n, oh, ow, o] = half_up_sat(ref_act(y, act, fo) * TWO ** fo, bw)
    return out


def ref_tconv(x, w, b, fi, fw, fb, fo, stride, padding, dilation, output_padding, act):
    n_, h, wd, c = x.shape
    oc, kh, kw, _ = w.shape
    sh, sw = stride
    dh, dw = dilation
    pt, pb, pl, pr = _pads(padding)
    oh_n = (h - 1) * sh - pt - pb + dh * (kh - 1) + 1 + output_padding[0]
    ow_n = (wd - 1) * sw - pl - pr + dw * (kw - 1) + 1 + output_padding[1]
    acc = [[[[0] * oc for _ in range(ow_n)] for _ in range(oh_n)] for _ in range(n_)]
    for n in range(n_):
        for ih in range(h):
            for iw in range(wd):
                for i in range(kh):
                    for j in range(kw):
                        oh, ow = ih * sh - pt + i * dh, iw * sw - pl + j * dw
                        if 0 <= oh < oh_n and 0 <= ow < ow_n:
                            for o in range(oc):
                                acc[n][oh][ow][o] += sum(int(x[n, ih, iw, ci]) * int(w[o, i, j, ci])
                                                         for ci in range(c))
    out = np.zeros((n_, oh_n, ow_n, oc), dtype=np.int64)
    for n in range(n_):
        for oh in range(oh_n):
            for ow in range(ow_n):
                for o in range(oc):
                    y = F(acc[n][oh][ow][o]) * TWO ** -(fi + fw)
                    if b is not None:
                        y += F(int(b[o])) * TWO ** -fb
                    out[n, oh, ow, o] = half_up_sat(ref_act(y, act, fo) * TWO ** fo)
    return out


def rand_fixpos(rng, bias=True, raw=None, b=None):
    """Random fix positions. With ``raw`` (the exact accumulator, from a fp-0 32-bit run)
    the output fix_pos is calibrated like the quantizer's maxmin (sometimes one off, so
    saturation is exercised too); otherwise shift_cut is drawn in [0, 8]."""
    fi = int(rng.integers(-2, 8))
    fw = int(rng.integers(2, 10))
    fb = fi + fw - int(rng.integers(-6, 12)) if bias else None
    if raw is None:
        return fi, fw, fb, fi + fw - int(rng.integers(0, 9))
    real = F(int(np.abs(raw).max())) * TWO ** -(fi + fw)
    if fb is not None and b is not None:
        real += F(int(np.abs(b.astype(np.int64)).max())) * TWO ** -fb
    fo = fi + fw if real == 0 else math.floor(math.log2(F(255, 2) / real))
    fo += int(rng.choice([0, 0, 0, -1, 1]))
    return fi, fw, fb, min(fo, fi + fw)     # shift_cut >= 0


def raw_acc(kernel, x, w, **geo):
    """Exact accumulator (all fix positions 0, 32-bit output; geometry is checked vs torch)."""
    return kernel(x, w, None, fp_in=0, fp_w=0, fp_out=0, bit_width=32, **geo)


def q(rng, shape, lo=None, hi=None):
    """Random int8 codes; without bounds the magnitude is drawn too (4, 16 or 128), so that
    outputs are not all saturated and exact ties are frequent."""
    if lo is None:
        mag = int(rng.choice([4, 16, 128]))
        lo, hi = -mag, mag
    return rng.integers(lo, hi, size=shape).astype(np.int8)


# ----------------------------------------------------------------------------- conv-like vs Fraction

ACTS = ["NONE", "RELU", "LEAKYRELU", "RELU6"]


@pytest.mark.parametrize("seed", range(30))
def test_conv2d_matches_fraction_reference(seed):
    rng = np.random.default_rng(seed)
    n, h, w_, c, oc = 1 + seed % 2, int(rng.integers(3, 7)), int(rng.integers(3, 7)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    dil = (1, 1) if seed % 3 else (2, 1)
    pad = tuple(int(v) for v in rng.integers(0, 2, 4))
    if (h + pad[0] + pad[1]) < (kh - 1) * dil[0] + 1 or (w_ + pad[2] + pad[3]) < (kw - 1) * dil[1] + 1:
        pad = (2, 2, 2, 2)
    x, w, b = q(rng, (n, h, w_, c)), q(rng, (oc, kh, kw, c)), q(rng, (oc,))
    raw = raw_acc(K.conv2d_fix, x, w, stride=stride, padding=pad, dilation=dil)
    fi, fw, fb, fo = rand_fixpos(rng, seed % 4 != 0, raw, b)
    b = b if fb is not None else None
    act = ACTS[seed % 4]
    got = K.conv2d_fix(x, w, b, fp_in=fi, fp_w=fw, fp_b=fb, fp_out=fo, stride=stride, padding=pad,
                       dilation=dil, act=act)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, ref_conv(x, w, b, fi, fw, fb, fo, stride, pad, dil, act))


@pytest.mark.parametrize("seed", range(20))
def test_depthwise_matches_fraction_reference(seed):
    rng = np.random.default_rng(100 + seed)
    c, kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
    x, w, b = q(rng, (1, 5, 6, c)), q(rng, (kh, kw, c)), q(rng, (c,))
    stride, pad, dil = (1 + seed % 2, 1), (1, 1, 0, 1), (1, 1 + seed % 2)
    raw = raw_acc(K.depthwise_conv2d_fix, x, w, stride=stride, padding=pad, dilation=dil)
    fi, fw, fb, fo = rand_fixpos(rng, True, raw, b)
    act = ACTS[seed % 4]
    got = K.depthwise_conv2d_fix(x, w, b, fp_in=fi, fp_w=fw, fp_b=fb, fp_out=fo, stride=stride,
                                 padding=pad, dilation=dil, act=act)
    np.testing.assert_array_equal(got, ref_conv(x, w, b, fi, fw, fb, fo, stride, pad, dil, act, depthwise=True))
    # [1, KH, KW, C] weights (XIR layout) give the same result
    got4 = K.depthwise_conv2d_fix(x, w[None], b, fp_in=fi, fp_w=fw, fp_b=fb, fp_out=fo, stride=stride,
                                  padding=pad, dilation=dil, act=act)
    np.testing.assert_array_equal(got4, got)


@pytest.mark.parametrize("seed", range(15))
def test_transposed_conv_matches_fraction_reference(seed):
    rng = np.random.default_rng(200 + seed)
    c, oc, kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
    stride = (int(rng.integers(1, 3)), int(rng.integers(1, 4)))
    pad = (int(rng.integers(0, kh)), 0, 0, int(rng.integers(0, kw)))
    opad = (int(rng.integers(0, stride[0])), int(rng.integers(0, stride[1])))
    x, w, b = q(rng, (1, 3, 4, c)), q(rng, (oc, kh, kw, c)), q(rng, (oc,))
    raw = raw_acc(K.transposed_conv2d_fix, x, w, stride=stride, padding=pad, output_padding=opad)
    fi, fw, fb, fo = rand_fixpos(rng, True, raw, b)
    act = ACTS[seed % 4]
    got = K.transposed_conv2d_fix(x, w, b, fp_in=fi, fp_w=fw, fp_b=fb, fp_out=fo, stride=stride,
                                  padding=pad, output_padding=opad, act=act)
    np.testing.assert_array_equal(got, ref_tconv(x, w, b, fi, fw, fb, fo, stride, pad, (1, 1), opad, act))


@pytest.mark.parametrize("seed", range(15))
def test_dense_matches_fraction_reference(seed):
    rng = np.random.default_rng(300 + seed)
    x, w, b = q(rng, (3, 17)), q(rng, (5, 17)), q(rng, (5,))
    fi, fw, fb, fo = rand_fixpos(rng, True, raw_acc(K.dense_fix, x, w), b)
    act = ACTS[seed % 4]
    got = K.dense_fix(x, w, b, fp_in=fi, fp_w=fw, fp_b=fb, fp_out=fo, act=act)
    ref = ref_conv(x[:, None, None, :], w[:, None, None, :], b, fi, fw, fb, fo, (1, 1), 0, (1, 1), act)
    np.testing.assert_array_equal(got, ref[:, 0, 0, :])


def test_huge_shifts_stay_exact():
    """A very negative shift_bias forces > 63-bit intermediates (Python-int fallback)."""
    rng = np.random.default_rng(7)
    x, w, b = q(rng, (2, 64)), q(rng, (3, 64)), q(rng, (3,))
    fi, fw, fb, fo = 3, 5, 60, 2            # shift_bias = -52
    got = K.dense_fix(x, w, b, fp_in=fi, fp_w=fw, fp_b=fb, fp_out=fo, act="LEAKYRELU")
    ref = ref_conv(x[:, None, None, :], w[:, None, None, :], b, fi, fw, fb, fo, (1, 1), 0, (1, 1), "LEAKYRELU")
    np.testing.assert_array_equal(got, ref[:, 0, 0, :])
    assert K.requantize(np.array([100, -3]), 0, 70, bit_width=32).tolist() == [2**31 - 1, -(2**31)]


# ----------------------------------------------------------------------------- geometry vs torch


def _nchw(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64).transpose(0, 3, 1, 2))


def _nhwc(t):
    return t.numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize("seed", range(6))
def test_conv_geometry_against_torch(seed):
    rng = np.random.default_rng(400 + seed)
    x, w = q(rng, (2, 9, 8, 3)), q(rng, (4, 3, 2, 3))
    stride, dil, pad = (1 + seed % 2, 1 + seed % 3), (1 + seed % 2, 1), (1, 2, 0, 1)
    # fix positions 0 and 32-bit outputs: the kernel returns the raw accumulator
    got = K.conv2d_fix(x, w, fp_in=0, fp_w=0, fp_out=0, stride=stride, padding=pad, dilation=dil, bit_width=32)
    xt = TF.pad(_nchw(x), (pad[2], pad[3], pad[0], pad[1]))
    ref = TF.conv2d(xt, torch.from_numpy(w.astype(np.float64).transpose(0, 3, 1, 2)), stride=stride, dilation=dil)
    np.testing.assert_array_equal(got, _nhwc(ref))
    # depthwise = grouped conv
    wd = q(rng, (3, 3, 3))
    got = K.depthwise_conv2d_fix(x, wd, fp_in=0, fp_w=0, fp_out=0, stride=stride, padding=pad, dilation=dil,
                                 bit_width=32)
    ref = TF.conv2d(xt, torch.from_numpy(wd.astype(np.float64).transpose(2, 0, 1)[:, None]), stride=stride,
                    dilation=dil, groups=3)
    np.testing.assert_array_equal(got, _nhwc(ref))
    # transposed conv: PyTorch weight [IC, OC, KH, KW] = ours [OC, KH, KW, IC]
    s, p, op, d = (2, 1 + seed % 3), (1, seed % 2), (1, 0), (1, 1 + seed % 2)
    got = K.transposed_conv2d_fix(x, w, fp_in=0, fp_w=0, fp_out=0, stride=s, padding=p, output_padding=op,
                                  dilation=d, bit_width=32)
    ref = TF.conv_transpose2d(_nchw(x), torch.from_numpy(w.astype(np.float64).transpose(3, 0, 1, 2)), stride=s,
                              padding=p, output_padding=op, dilation=d)
    np.testing.assert_array_equal(got, _nhwc(ref))


def test_pool_and_upsample_geometry_against_torch():
    rng = np.random.default_rng(5)
    x = q(rng, (2, 7, 9, 3))
    got = K.pool_fix(x, (3, 2), (2, 1), (1, 1, 0, 0), pool_type="MAX", fp_in=3)
    ref = TF.max_pool2d(_nchw(x), (3, 2), (2, 1), padding=(1, 0))
    np.testing.assert_array_equal(got, _nhwc(ref))
    # 2x2 average: mult/2**shift = 1/4 exactly; fp_out = fp_in + 2 and 16 bits give the raw sum
    got = K.pool_fix(x, 2, 2, 1, pool_type="AVG", fp_in=3, fp_out=5, bit_width=16)
    ref = TF.avg_pool2d(_nchw(x), 2, 2, padding=1, count_include_pad=True) * 4
    np.testing.assert_array_equal(got, _nhwc(ref))
    up = K.upsample_fix(x, (2, 3), fp_in=4)
    np.testing.assert_array_equal(up, _nhwc(TF.interpolate(_nchw(x), scale_factor=(2, 3), mode="nearest")))


# ----------------------------------------------------------------------------- pooling vs Fraction


@pytest.mark.parametrize("kernel", [(2, 2), (3, 3), (5, 5), (7, 7), (3, 6), (4, 3)])
def test_avg_pool_matches_fraction_reference(kernel):
    rng = np.random.default_rng(sum(kernel))
    kh, kw = kernel
    x = q(rng, (1, 9, 10, 2))
    pads = (1, 0, 0, 1)
    mult, shift = avgpool_multiplier(kh, kw)
    for fi, fo in ((3, 3), (3, 5), (4, 2), (-1, 0)):
        got = K.pool_fix(x, kernel, 1, pads, pool_type="AVG", fp_in=fi, fp_out=fo)
        win = np.pad(x.astype(np.int64), ((0, 0), (1, 0), (0, 1), (0, 0)))
        oh, ow = win.shape[1] - kh + 1, win.shape[2] - kw + 1
        for i in range(oh):
            for j in range(ow):
                for ch in range(2):
                    s = int(win[0, i:i + kh, j:j + kw, ch].sum())
                    assert got[0, i, j, ch] == half_up_sat(F(s * mult, 2**shift) * TWO ** (fo - fi))


def test_max_pool_requantizes_between_fix_positions():
    x = np.array([[[[-7], [5]], [[3], [-128]]]], dtype=np.int8)
    assert K.pool_fix(x, 2, pool_type="MAX", fp_in=2).ravel().tolist() == [5]
    assert K.pool_fix(x, 2, pool_type="MAX", fp_in=2, fp_out=1).ravel().tolist() == [3]   # 2.5 -> 3
    assert K.pool_fix(x, 2, pool_type="MAX", fp_in=2, fp_out=7).ravel().tolist() == [127]
    with pytest.raises(NumericsError, match="pool_type"):
        K.pool_fix(x, 2, pool_type="MIN", fp_in=0)


# ----------------------------------------------------------------------------- element-wise


def ref_elew_sim(xs, fps, fo, op, act):
    """Literal transcription of vart sim-runner Elew.cpp calc() (python floats are exact here)."""
    reads, write = K.elew_shifts(fps, fo, op)
    field = K.elew_shift_write_field(write)
    factor = 1.0 / 2 ** (field - 16) if field >= 16 else float(2**field)
    out = np.zeros(np.broadcast_shapes(*[x.shape for x in xs]), dtype=np.int64)
    bx = [np.broadcast_to(x, out.shape) for x in xs]
    for idx in np.ndindex(out.shape):
        tmp = 0.0 if op == "ADD" else 1.0
        for x, r in zip(bx, reads):
            t = math.floor(float(x[idx]) * 4.0 / 2.0**r)
            tmp = tmp + t if op == "ADD" else tmp * t
        tmp *= factor
        tmp /= 4.0 if op == "ADD" else 16.0
        if act == "RELU":
            tmp = max(tmp, 0.0)
        out[idx] = dpu_round(tmp)
    return out


@pytest.mark.parametrize("seed", range(20))
def test_eltwise_matches_simulator_transcription(seed):
    rng = np.random.default_rng(500 + seed)
    op = "ADD" if seed % 3 else "MUL"
    nin = 2 if op == "MUL" else int(rng.integers(2, 5))
    fps = [int(v) for v in rng.integers(0, 8, nin)]
    if op == "ADD":
        fo = min(fps) + int(rng.integers(-3, 4))
    else:
        fo = sum(fps) - int(rng.integers(3, 10))
    xs = [q(rng, (2, 3, 4, 5)) for _ in range(nin)]
    if seed % 5 == 0:
        xs[-1] = xs[-1][:, :1, :1, :]              # broadcast (e.g. channel scaling)
    act = "RELU" if seed % 2 else "NONE"
    got = K.eltwise_fix(xs, fps_in=fps, fp_out=fo, op=op, act=act)
    np.testing.assert_array_equal(got, ref_elew_sim(xs, fps, fo, op, act))


def test_eltwise_add_is_close_to_real_sum():
    """The compiler's shift convention really computes x0 + x1 at the output fix_pos."""
    rng = np.random.default_rng(9)
    x0, x1 = q(rng, (500,), -60, 60), q(rng, (500,), -60, 60)
    real = dequantize(x0, 3).astype(np.float64) + dequantize(x1, 8)
    # output grid 2**-3 is aligned with the pre-scale grid 2**-(3+2): floor then half_up equals
    # half_up of the exact sum
    got = dequantize(K.eltwise_fix([x0, x1], fps_in=[3, 8], fp_out=3), 3)
    np.testing.assert_array_equal(got, np.floor(real * 8 + 0.5) / 8)
    # output grid 2**-6 is finer than the pre-scale grid: the floor of x1's pre-scale shows
    x0 = x0 // 10                                    # stay inside the fp 6 range (+-2)
    real = dequantize(x0, 3).astype(np.float64) + dequantize(x1, 8)
    got = dequantize(K.eltwise_fix([x0, x1], fps_in=[3, 8], fp_out=6), 6).astype(np.float64)
    assert np.max(np.abs(got - real)) <= 0.5 * 2**-6 + 2**-5
    assert np.any(got != np.floor(real * 64 + 0.5) / 64)
    np.testing.assert_array_equal(got, np.floor(np.floor(real * 32) / 32 * 64 + 0.5) / 64)


def test_elew_encodings_and_errors():
    assert K.elew_shifts([3, 6, 4], 2, "ADD") == ([0, 3, 1], -1)
    assert K.elew_shifts([3, 6], 5, "MUL") == ([0, 0], -4)
    assert [K.elew_shift_write_field(e) for e in (0, 5, 15, -1, -15)] == [0, 5, 15, 17, 31]
    with pytest.raises(NumericsError, match="shift_write"):
        K.elew_shift_write_field(16)
    with pytest.raises(NumericsError, match="shift_read"):
        K.elew_shifts([0, 20], 0, "ADD")
    with pytest.raises(NumericsError, match="exactly 2"):
        K.elew_int([np.zeros(2, np.int8)] * 3, [0, 0, 0], 0, "MUL")
    with pytest.raises(NumericsError, match="NONE or RELU"):
        K.eltwise_fix([np.zeros(2, np.int8)] * 2, fps_in=[0, 0], fp_out=0, act="RELU6")


# ----------------------------------------------------------------------------- data movement


def test_concat_requantizes_inputs():
    a = np.array([[5, -5, 127]], dtype=np.int8)    # fp 3
    b = np.array([[7, -3]], dtype=np.int8)         # fp 1
    out = K.concat_fix([a, b], fps_in=[3, 1], fp_out=2, axis=1)
    # 5/2 = 2.5 -> 3, -5/2 = -2.5 -> -2 (half_up), 127/2 = 63.5 -> 64; 7*2 = 14, -3*2 = -6
    assert out.tolist() == [[3, -2, 64, 14, -6]]
    assert K.concat_fix([b, b], fps_in=[1, 1], fp_out=7, axis=0).tolist() == [[127, -128], [127, -128]]


def test_pad_and_reshape():
    x = np.arange(12, dtype=np.int8).reshape(1, 2, 3, 2)
    p = K.pad_fix(x, (1, 0, 2, 1), value=-3)
    assert p.shape == (1, 3, 6, 2) and p[0, 0, 0, 0] == -3 and np.array_equal(p[:, 1:, 2:5], x)
    assert np.array_equal(K.pad_fix(x, 1, mode="edge")[:, 0, 1:4], x[:, 0])
    assert K.reshape_fix(x, (1, 12)).tolist() == [list(range(12))]
    with pytest.raises(NumericsError, match="pad mode"):
        K.pad_fix(x, 1, mode="wrap")


# ----------------------------------------------------------------------------- hard sigmoid / swish

ALL_INT8 = np.arange(-128, 128, dtype=np.int8).reshape(1, 1, 256, 1)


@pytest.mark.parametrize("fi", range(0, 7))
def test_hard_sigmoid_matches_dpu_formula(fi):
    for fo in (7, 8, 10):
        got = K.hard_sigmoid_fix(ALL_INT8, fp_in=fi, fp_out=fo).ravel()
        # vart sim-runner Alu.cpp HSIGMOID: no upper clamp, DPURound saturates
        ref = [dpu_round(min(2.0**32, max(0.0, x * 2731.0 + 3.0 * 2731 * 2**fi)) / 2.0 ** (14 + fi - fo))
               for x in range(-128, 128)]
        assert got.tolist() == ref


def test_hard_sigmoid_needs_legal_fix_pos():
    # with fp_out < 7 the DPU's missing clamp differs from relu6 -- hence legalize_hsigmoid
    x = np.array([127], dtype=np.int8)
    dpu = dpu_round((127 * 2731.0 + 3.0 * 2731 * 2**4) / 2.0 ** (14 + 4 - 6))
    assert K.hard_sigmoid_fix(x, fp_in=4, fp_out=6).item() == 64 != dpu
    with pytest.raises(NumericsError, match="fix_pos >= 0"):
        K.hard_sigmoid_fix(x, fp_in=-1, fp_out=7)


@pytest.mark.parametrize("fi", range(0, 7))
def test_hard_swish_matches_dpu_formula(fi):
    for fo in range(fi - 3, fi + 8):
        got = K.hard_swish_fix(ALL_INT8, fp_in=fi, fp_out=fo).ravel()
        ref = []
        for x in range(-128, 128):   # vart sim-runner Alu.cpp / conv2d-fix HSWISH
            xx = dr(float(x))
            hs = dr(min(2.0**32, max(0.0, xx * 2731 + 3 * 2731 * 2.0**fi)) * 2.0 ** -(fi + 7))
            ref.append(dpu_round(xx * hs * 2.0 ** -(fi + 7 - fo)))
        assert got.tolist() == ref


# ----------------------------------------------------------------------------- ties


def test_conv_ties_round_half_up():
    x = np.arange(-7, 8, dtype=np.int8).reshape(1, 1, 15, 1)
    w = np.ones((1, 1, 1, 1), dtype=np.int8)
    y = K.conv2d_fix(x, w, fp_in=1, fp_w=0, fp_out=0).ravel().tolist()     # y = x / 2
    assert y == [math.floor(v / 2 + 0.5) for v in range(-7, 8)]
    assert y[2] == -2 and y[12] == 3                                        # -2.5 -> -2, 2.5 -> 3
    # LeakyReLU: -64 * 26/256 = -6.5 -> -6
    assert K.conv2d_fix(np.array([[[[-64]]]], np.int8), w, fp_in=0, fp_w=0, fp_out=0, act="leaky_relu").item() == -6
    # RELU6 clamps at 6 * 2**fp_out
    assert K.conv2d_fix(np.array([[[[100]]]], np.int8), w, fp_in=0, fp_w=0, fp_out=4, act="relu6").item() == 96


def test_corpus_has_ties():
    """The seeded conv cases really exercise exact .5 ties (positive and negative)."""
    TIES.clear()
    for seed in range(30):
        test_conv2d_matches_fraction_reference(seed)
    inside = [t for t in TIES if -128 <= t <= 127]     # ties that survive saturation
    assert sum(t > 0 for t in inside) > 40 and sum(t < 0 for t in inside) > 10


def test_fix_kernel():
    x = np.array([-0.3125, 0.3125, 2.0], dtype=np.float32)  # *8 = -2.5, 2.5, 16
    assert K.fix(x, fp_out=3).tolist() == [-2, 3, 16]
    assert K.fix(x, fp_out=3, mode="std_round").tolist() == [-3, 3, 16]
    np.testing.assert_array_equal(K.fix_sim(x, fp_out=3), dequantize(K.fix(x, fp_out=3), 3))


def test_bad_arguments_are_clear_errors():
    x, w = np.zeros((1, 4, 4, 2), np.int8), np.zeros((1, 3, 3, 3), np.int8)
    with pytest.raises(NumericsError, match="2 channels, weights expect 3"):
        K.conv2d_fix(x, w, fp_in=0, fp_w=0, fp_out=0)
    with pytest.raises(NumericsError, match="unsupported activation"):
        K.conv2d_fix(x, w[..., :2], fp_in=0, fp_w=0, fp_out=0, act="gelu")
    with pytest.raises(NumericsError, match="quantize it first"):
        K.conv2d_fix(x.astype(np.float32), w[..., :2], fp_in=0, fp_w=0, fp_out=0)
    with pytest.raises(NumericsError, match="fp_b"):
        K.conv2d_fix(x, w[..., :2], np.zeros(1, np.int8), fp_in=0, fp_w=0, fp_out=0)


# ----------------------------------------------------------------------------- one semantics per op


def _same(sim, q_out, fp_out):
    assert sim.dtype == np.float32
    np.testing.assert_array_equal(sim, dequantize(q_out, fp_out))


@pytest.mark.parametrize("seed", range(40))
def test_sim_equals_int_conv_like(seed):
    rng = np.random.default_rng(600 + seed)
    act = ACTS[seed % 4]
    c, oc = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    x, w, b = q(rng, (2, 6, 5, c)), q(rng, (oc, 3, 2, c)), q(rng, (oc,))
    fi, fw, fb, fo = rand_fixpos(rng, seed % 5 != 0, raw_acc(K.conv2d_fix, x, w, padding=(1, 0, 1, 1)), b)
    b = b if fb is not None else None
    fx, fwt = dequantize(x, fi), dequantize(w, fw)
    fbias = None if b is None else dequantize(b, fb)
    kw = dict(fp_in=fi, fp_w=fw, fp_b=fb, fp_out=fo, act=act)
    geo = dict(stride=(1 + seed % 2, 1), padding=(1, 0, 1, 1), dilation=(1, 1 + seed % 2))
    _same(K.conv2d_fix_sim(fx, fwt, fbias, **kw, **geo), K.conv2d_fix(x, w, b, **kw, **geo), fo)
    wd = q(rng, (3, 2, c))
    bd = None if b is None else q(rng, (c,))
    fbd = None if bd is None else dequantize(bd, fb)
    _same(K.depthwise_conv2d_fix_sim(fx, dequantize(wd, fw), fbd, **kw, **geo),
          K.depthwise_conv2d_fix(x, wd, bd, **kw, **geo), fo)
    tgeo = dict(stride=(2, 1 + seed % 3), padding=(1, 0, 0, 1), output_padding=(1, 0))
    _same(K.transposed_conv2d_fix_sim(fx, fwt, fbias, **kw, **tgeo), K.transposed_conv2d_fix(x, w, b, **kw, **tgeo), fo)
    xd, wdn = x.reshape(2, -1), q(rng, (oc, 6 * 5 * c))
    _same(K.dense_fix_sim(dequantize(xd, fi), dequantize(wdn, fw), fbias, **kw), K.dense_fix(xd, wdn, b, **kw), fo)


@pytest.mark.parametrize("seed", range(40))
def test_sim_equals_int_other_ops(seed):
    rng = np.random.default_rng(700 + seed)
    fi = int(rng.integers(-2, 8))
    fo = fi + int(rng.integers(-3, 4))
    x = q(rng, (2, 6, 7, 3))
    fx = dequantize(x, fi)
    for pt in ("MAX", "AVG"):
        kern = [(2, 2), (3, 3), (3, 2), (5, 5), (6, 6), (7, 7)][seed % 6]
        pad = (1, 1, 2, 2) if kern[0] > 4 else (0, 1, 1, 0)
        _same(K.pool_fix_sim(fx, kern, 1, pad, pool_type=pt, fp_in=fi, fp_out=fo),
              K.pool_fix(x, kern, 1, pad, pool_type=pt, fp_in=fi, fp_out=fo), fo)
    fps = [fi, int(rng.integers(-2, 8))]
    xs = [x, q(rng, (2, 6, 7, 3))]
    fxs = [dequantize(a, f) for a, f in zip(xs, fps)]
    for op, out_fp in (("ADD", min(fps) + int(rng.integers(-2, 3))), ("MUL", sum(fps) - int(rng.integers(2, 9)))):
        for act in ("NONE", "RELU"):
            _same(K.eltwise_fix_sim(fxs, fps_in=fps, fp_out=out_fp, op=op, act=act),
                  K.eltwise_fix(xs, fps_in=fps, fp_out=out_fp, op=op, act=act), out_fp)
    _same(K.concat_fix_sim(fxs, fps_in=fps, fp_out=fo), K.concat_fix(xs, fps_in=fps, fp_out=fo), fo)
    _same(K.upsample_fix_sim(fx, 2, fp_in=fi, fp_out=fo), K.upsample_fix(x, 2, fp_in=fi, fp_out=fo), fo)
    _same(K.pad_fix_sim(fx, (1, 0, 0, 2), fp=fi, value=-5), K.pad_fix(x, (1, 0, 0, 2), value=-5), fi)
    _same(K.reshape_fix_sim(fx, (2, -1), fp=fi), K.reshape_fix(x, (2, -1)), fi)
    hi = max(fi, 0)
    fxh = dequantize(x, hi)
    _same(K.hard_sigmoid_fix_sim(fxh, fp_in=hi, fp_out=7 + seed % 3), K.hard_sigmoid_fix(x, fp_in=hi, fp_out=7 + seed % 3), 7 + seed % 3)
    hfo = hi + 7 - seed % 8
    _same(K.hard_swish_fix_sim(fxh, fp_in=hi, fp_out=hfo), K.hard_swish_fix(x, fp_in=hi, fp_out=hfo), hfo)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(-3, 8), st.integers(1, 12), st.integers(0, 10),
       st.integers(-8, 16), st.sampled_from(ACTS))
def test_sim_equals_int_conv_hypothesis(seed, fi, fw, sc, sb, act):
    rng = np.random.default_rng(seed)
    x, w, b = q(rng, (1, 4, 4, 2)), q(rng, (2, 2, 2, 2)), q(rng, (2,))
    fo, fb = fi + fw - sc, fi + fw - sb
    kw = dict(fp_in=fi, fp_w=fw, fp_b=fb, fp_out=fo, act=act, padding=1)
    _same(K.conv2d_fix_sim(dequantize(x, fi), dequantize(w, fw), dequantize(b, fb), **kw),
          K.conv2d_fix(x, w, b, **kw), fo)
