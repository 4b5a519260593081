"""Fixed-point numerics of the DPU flow (pure numpy, bit-exact).

Implements the shared spec `numerics.md` (see docs/quantization.md for where fixflow departs from it): rounding modes, power-of-two quantization,
the "diffs" fix_pos search of vai_q_pytorch, modal calibration across batches, the
hardware legalization rules for fix positions and the average-pool / LeakyReLU
multipliers. Nothing here knows about the IR.

A value with format ``[bit_width, fix_pos]`` is ``q * 2**-fix_pos`` with
``q in [-2**(bw-1), 2**(bw-1) - 1]``.
"""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from ...ir.diagnostics import FixflowError

__all__ = [
    "NumericsError",
    "ROUND_MODES",
    "LEAKY_RELU_ALPHA",
    "round_mode",
    "qrange",
    "int_dtype",
    "quantize",
    "dequantize",
    "fake_quantize",
    "fix_pos_diffs",
    "fix_pos_maxmin",
    "fix_pos_cap",
    "ModalFixPos",
    "ConvFixPos",
    "legalize_conv",
    "legalize_hsigmoid",
    "legalize_hswish",
    "HSIGMOID_MIN_FP_IN",
    "HSIGMOID_MIN_FP_OUT",
    "HSWISH_MIN_FP_IN",
    "HSWISH_MAX_FP_OUT_OVER_IN",
    "legalize_passthrough",
    "conv_shifts",
    "avgpool_multiplier",
]

ROUND_MODES = ("half_up", "std_round", "half_even", "half_down", "floor", "ceil")

#: LeakyReLU slope the DPU implements (numerics.md): 26/256 = 0.1015625.
LEAKY_RELU_ALPHA = Fraction(26, 256)

_FLT_MIN = float(np.finfo(np.float32).tiny)


class NumericsError(FixflowError, ValueError):
    """A fixed-point configuration the DPU cannot represent (bad mode, shift out of range...). A user error (a `FixflowError`);
    still a `ValueError` for callers that catch those."""

    def __str__(self) -> str:
        return self.message


# ----------------------------------------------------------------------------- rounding


def round_mode(x: np.ndarray | float, mode: str) -> np.ndarray:
    """Round ``x`` to integers (as float64) with the named mode.

    half_up: ties toward +inf, ``floor(x + 0.5)`` (DPU_ROUND: -2.5 -> -2, 2.5 -> 3);
    std_round: ties away from zero (C ``round``: -2.5 -> -3); half_even: banker's;
    half_down: ties toward -inf; floor; ceil.
    """
    a = np.asarray(x, dtype=np.float64)
    if mode == "half_up":
        # floor(a + 0.5) is inexact for a = 0.49999999999999994 (a + 0.5 rounds up to 1.0);
        # decide ties on the exact fractional part instead.
        f = np.floor(a)
        return np.where(a - f >= 0.5, f + 1.0, f)
    if mode == "half_down":
        c = np.ceil(a)
        return np.where(c - a >= 0.5, c - 1.0, c)
    if mode == "std_round":
        f = np.floor(np.abs(a))
        r = np.where(np.abs(a) - f >= 0.5, f + 1.0, f)
        return np.copysign(r, a) + 0.0  # + 0.0 turns -0.0 into 0.0
    if mode == "half_even":
        return np.rint(a) + 0.0
    if mode == "floor":
        return np.floor(a)
    if mode == "ceil":
        return np.ceil(a) + 0.0
    raise NumericsError(f"unknown rounding mode {mode!r}; expected one of {', '.join(ROUND_MODES)}")


# ----------------------------------------------------------------------------- (de)quantization


def qrange(bit_width: int) -> tuple[int, int]:
    """Signed full range ``(-2**(bw-1), 2**(bw-1) - 1)``."""
    if not isinstance(bit_width, (int, np.integer)) or not 2 <= bit_width <= 32:
        raise NumericsError(f"bit_width must be an integer in [2, 32], got {bit_width!r}")
    return -(1 << (bit_width - 1)), (1 << (bit_width - 1)) - 1


def int_dtype(bit_width: int) -> np.dtype:
    """Smallest numpy signed integer dtype holding ``bit_width`` bits."""
    qrange(bit_width)
    for dt in (np.int8, np.int16, np.int32):
        if bit_width <= np.iinfo(dt).bits:
            return np.dtype(dt)
    return np.dtype(np.int64)


def quantize(x: np.ndarray | float, bit_width: int, fix_pos: int, mode: str = "half_up") -> np.ndarray:
    """``clamp(round_mode(x * 2**fix_pos), qmin, qmax)`` as an integer array.

    The scaling by a power of two is exact in float64, so the result depends only on the
    real value of ``x``.
    """
    lo, hi = qrange(bit_width)
    scaled = np.asarray(x, dtype=np.float64) * math.ldexp(1.0, int(fix_pos))
    q = np.clip(round_mode(scaled, mode), lo, hi)
    return q.astype(int_dtype(bit_width))


def dequantize(q: np.ndarray | int, fix_pos: int) -> np.ndarray:
    """``q * 2**-fix_pos`` as float32 (exact for |q| < 2**24 and ordinary fix positions)."""
    return (np.asarray(q, dtype=np.float64) * math.ldexp(1.0, -int(fix_pos))).astype(np.float32)


def fake_quantize(x: np.ndarray | float, bit_width: int, fix_pos: int, mode: str = "half_up") -> np.ndarray:
    """Quantize then dequantize; float32, identical to ``dequantize(quantize(...))``."""
    if _fast_ok(x, bit_width, fix_pos, mode):
        out = _fake_quantize_f32(x, bit_width, int(fix_pos), mode)
        if not math.isnan(float(out.min())):   # NaN inputs: the reference's integer cast decides
            return out
    return dequantize(quantize(x, bit_width, fix_pos, mode), fix_pos)


# Fast float32 paths. A float32 value scaled by 2**fp (|fp| <= _FAST_FP_MAX) is exact in float64 with
# at most 24 significant bits, so ``floor(s + 0.5)`` equals round_mode's half_up and
# ``floor(|s| + 0.5)`` its std_round magnitude; the work runs in cache-sized chunks.
_FAST_MODES = ("half_up", "std_round")
_FAST_FP_MAX = 100
_CHUNK = 1 << 15


def _fast_ok(x: object, bit_width: int, fix_pos: int, mode: str) -> bool:
    return (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.size > 0 and mode in _FAST_MODES
            and isinstance(bit_width, (int, np.integer)) and 2 <= bit_width <= 24
            and isinstance(fix_pos, (int, np.integer)) and abs(int(fix_pos)) <= _FAST_FP_MAX)


def _round_chunk(a: np.ndarray, scale: float, lo: float | None, hi: float | None, mode: str, s: np.ndarray,
                 r: np.ndarray) -> None:
    """s = a * scale (float64, exact); r = clip(round_mode(s), lo, hi) (may be -0.0 for std_round);
    a None bound is not applied (the caller knows it cannot be reached)."""
    np.multiply(a, scale, out=s)
    if mode == "half_up":
        np.add(s, 0.5, out=r)
        np.floor(r, out=r)
    else:
        np.abs(s, out=r)
        r += 0.5
        np.floor(r, out=r)
        np.copysign(r, s, out=r)
    if lo is not None or hi is not None:    # (np.clip is faster than np.maximum / np.minimum)
        np.clip(r, -math.inf if lo is None else lo, math.inf if hi is None else hi, out=r)


def _fake_quantize_f32(x: np.ndarray, bit_width: int, fix_pos: int, mode: str) -> np.ndarray:
    lo, hi = qrange(bit_width)
    a = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(a.shape, np.float32)
    n = a.size
    m = min(n, _CHUNK)
    s, r = np.empty(m), np.empty(m)
    scale, inv = np.float64(math.ldexp(1.0, fix_pos)), np.float64(math.ldexp(1.0, -fix_pos))
    for i in range(0, n, _CHUNK):
        j = min(n, i + _CHUNK)
        rs, ss = r[:j - i], s[:j - i]
        _round_chunk(a[i:j], scale, lo, hi, mode, ss, rs)
        rs += 0.0                         # -0.0 -> 0.0, as the integer round trip does
        np.multiply(rs, inv, out=out[i:j])
    return out.reshape(np.shape(x))


def _sse_candidates(a: np.ndarray, bit_width: int, mode: str, fps: range, a_min: float,
                    a_max: float) -> list[float]:
    """`_sse_f32` for each fix_pos of `fps` (scratch buffers shared by the candidates).

    Both modes round s to a value >= lo when s > lo - 0.5 and <= hi when s < hi + 0.5, so a
    bound that the scaled minimum / maximum cannot reach is skipped (e.g. lo after a ReLU).
    """
    lo, hi = qrange(bit_width)
    m = min(a.size, _CHUNK)
    sq, s, r = np.empty(a.size), np.empty(m), np.empty(m)
    errs = []
    for fp in fps:
        sc = math.ldexp(1.0, fp)
        errs.append(_sse_f32(a, fp, None if a_min * sc > lo - 0.5 else lo, None if a_max * sc < hi + 0.5 else hi,
                             mode, sq, s, r))
    return errs


def _sse_f32(a: np.ndarray, fix_pos: int, lo: int | None, hi: int | None, mode: str, sq: np.ndarray,
             s: np.ndarray, r: np.ndarray) -> float:
    """Sum of squared fake-quantization errors of float32 `a` (1-D), equal to the float64 reference.

    The error in units of 2**-fp, ``e = r - s``, has at most 24 significant bits, so both it and
    its square are exact in float64; ``sum(e**2) * 2**-2fp`` is the reference's pairwise sum of
    ``(fq - a)**2`` scaled by a power of two (np.sum over a same-length float64 array).
    """
    n = a.size
    scale = np.float64(math.ldexp(1.0, fix_pos))
    for i in range(0, n, _CHUNK):
        j = min(n, i + _CHUNK)
        rs, ss = r[:j - i], s[:j - i]
        _round_chunk(a[i:j], scale, lo, hi, mode, ss, rs)
        rs -= ss
        np.square(rs, out=sq[i:j])
    return math.ldexp(float(np.sum(sq)), -2 * fix_pos)


# ----------------------------------------------------------------------------- fix_pos selection


def fix_pos_cap(bit_width: int) -> int:
    """Largest fix_pos the quantizer allows: 12 for bit widths <= 8, 15 for wider ones."""
    return 12 if bit_width <= 8 else 15


def fix_pos_diffs(x: np.ndarray, bit_width: int = 8, mode: str = "half_up", scope: int = 5) -> int:
    """The vai_q_pytorch "diffs" fix_pos search (numerics.md, "Choosing fix_pos").

    ``step = max(x_min / (-2**(bw-1) - 0.5), x_max / (2**(bw-1) - 0.5))``;
    ``fp0 = floor(log2(1 / step))`` (18 when ``step <= FLT_MIN``, i.e. an all-zero tensor);
    candidates ``fp0 .. fp0 + scope - 1`` are scored by the sum of squared quantization
    errors with ``mode``; the first minimum wins; the result is capped by `fix_pos_cap`.
    Negative results are allowed.
    """
    if scope < 1:
        raise NumericsError(f"scope must be >= 1, got {scope}")
    qrange(bit_width)
    a = np.asarray(x)
    a32 = np.ascontiguousarray(a).reshape(-1) if a.dtype == np.float32 else None
    a = a32 if a32 is not None else np.asarray(a, dtype=np.float64).ravel()
    if a.size == 0:
        raise NumericsError("cannot choose a fix_pos for an empty tensor")
    lo_v, hi_v = float(a.min()), float(a.max())    # NaN propagates through min/max
    if not (math.isfinite(lo_v) and math.isfinite(hi_v)):
        raise NumericsError("cannot choose a fix_pos for a tensor with NaN or inf values")
    half = float(1 << (bit_width - 1))
    step = max(lo_v / (-half - 0.5), hi_v / (half - 0.5))
    if step <= _FLT_MIN:
        fp0 = 18
    else:
        fp0 = math.floor(math.log2(1.0 / step))
    best, best_err = fp0, math.inf
    if a32 is not None and _fast_ok(a32, bit_width, fp0, mode) and _fast_ok(a32, bit_width, fp0 + scope - 1, mode):
        errs = _sse_candidates(a32, bit_width, mode, range(fp0, fp0 + scope), lo_v, hi_v)
    else:
        a = np.asarray(a, dtype=np.float64)
        errs = (float(np.sum((fake_quantize(a, bit_width, fp, mode).astype(np.float64) - a) ** 2))
                for fp in range(fp0, fp0 + scope))
    for fp, err in zip(range(fp0, fp0 + scope), errs):
        if err < best_err:
            best, best_err = fp, err
    return min(best, fix_pos_cap(bit_width))


def fix_pos_maxmin(x: np.ndarray, bit_width: int = 8, mode: str = "half_up") -> int:
    """Mode ``maxmin``: the diffs search with scope 1 (just ``fp0``, capped)."""
    return fix_pos_diffs(x, bit_width, mode, scope=1)


class ModalFixPos:
    """Calibration across batches: the fix_pos in force is the mode of all batches so far.

    Ties go to the smaller fix_pos (numerics.md, "Calibration across batches").
    """

    def __init__(self) -> None:
        self._counts: Counter[int] = Counter()

    def update(self, fix_pos: int) -> int:
        """Record one batch's fix_pos and return the modal value now in force."""
        self._counts[int(fix_pos)] += 1
        return self.value  # type: ignore[return-value]

    @property
    def value(self) -> int | None:
        """Current modal fix_pos (None before the first batch)."""
        if not self._counts:
            return None
        top = max(self._counts.values())
        return min(fp for fp, n in self._counts.items() if n == top)

    @property
    def counts(self) -> dict[int, int]:
        """How many batches chose each fix_pos."""
        return dict(self._counts)

    def __len__(self) -> int:
        return sum(self._counts.values())


# ----------------------------------------------------------------------------- legalization


class ConvFixPos(NamedTuple):
    """Fix positions of a conv-like op: input, weights, bias (None = no bias), output."""

    i: int
    w: int
    b: int | None
    o: int


SHIFT_CUT_RANGE = (0, 16)
SHIFT_BIAS_MAX = 16


def _shift_bias_min(shift_cut: int) -> int:
    return min(0, -(24 - (8 + shift_cut)))


def legalize_conv(pos: ConvFixPos, name: str = "conv") -> tuple[ConvFixPos, list[str]]:
    """Make ``shift_cut = w + i - o`` and ``shift_bias = w + i - b`` legal for the DPU.

    Rules (vai_q_pytorch ``FixPosChecker.shift_cut_bias``, nndct_shared/quantization):
    shift_cut < 0 -> lower o; shift_cut > 16 -> lower w;
    shift_bias < min(0, -(24 - (8 + shift_cut))) -> lower b; shift_bias > 16 -> lower w.
    Unlike vai_q_pytorch (one pass, bias bound from the unadjusted shift_cut) the rules
    are applied until none fires, so the result is always legal. The input fix_pos
    belongs to the producer and is never changed. Returns the new positions and one
    human-readable reason per adjustment.
    """
    i, w, b, o = int(pos.i), int(pos.w), pos.b, int(pos.o)
    reasons: list[str] = []
    for _ in range(8):
        changed = False
        sc = w + i - o
        if sc < SHIFT_CUT_RANGE[0]:
            reasons.append(f"{name}: shift_cut {sc} < 0, output fix_pos lowered from {o} to {o + sc}")
            o += sc
            changed = True
        elif sc > SHIFT_CUT_RANGE[1]:
            new_w = w - (sc - SHIFT_CUT_RANGE[1])
            reasons.append(f"{name}: shift_cut {sc} > 16, weight fix_pos lowered from {w} to {new_w}")
            w = new_w
            changed = True
        if b is not None:
            sc = w + i - o
            sb = w + i - b
            lo = _shift_bias_min(sc)
            if sb < lo:
                new_b = b + sb - lo
                reasons.append(f"{name}: shift_bias {sb} < {lo}, bias fix_pos lowered from {b} to {new_b}")
                b = new_b
                changed = True
            elif sb > SHIFT_BIAS_MAX:
                new_w = w - (sb - SHIFT_BIAS_MAX)
                reasons.append(f"{name}: shift_bias {sb} > 16, weight fix_pos lowered from {w} to {new_w}")
                w = new_w
                changed = True
        if not changed:
            return ConvFixPos(i, w, b, o), reasons
    raise AssertionError("legalize_conv did not converge")  # each rule only lowers; unreachable


#: the DPU's hard-sigmoid / hard-swish fix_pos rules (the one place they are written down)
HSIGMOID_MIN_FP_IN = 0
HSIGMOID_MIN_FP_OUT = 7
HSWISH_MIN_FP_IN = 0
HSWISH_MAX_FP_OUT_OVER_IN = 7


def legalize_hsigmoid(fp_in: int, fp_out: int, name: str = "hsigmoid") -> tuple[int, int, list[str]]:
    """Hard-sigmoid: output fix_pos >= 7, input fix_pos >= 0 (vai_q_pytorch FixPosChecker).

    With ``fp_out >= 7`` the DPU's missing upper clamp is done by saturation, so the
    hardware formula equals ``relu6(x + 3) * 2731 / 16384``. Returns the legal pair and one reason
    per change (none: the pair is legal, which is what `fix.hard_sigmoid` verifies).
    """
    reasons = []
    if fp_out < HSIGMOID_MIN_FP_OUT:
        reasons.append(f"{name}: output fix_pos raised from {fp_out} to {HSIGMOID_MIN_FP_OUT} "
                       f"(DPU hsigmoid needs >= {HSIGMOID_MIN_FP_OUT})")
        fp_out = HSIGMOID_MIN_FP_OUT
    if fp_in < HSIGMOID_MIN_FP_IN:
        reasons.append(f"{name}: input fix_pos raised from {fp_in} to {HSIGMOID_MIN_FP_IN} "
                       f"(DPU hsigmoid needs >= {HSIGMOID_MIN_FP_IN})")
        fp_in = HSIGMOID_MIN_FP_IN
    return fp_in, fp_out, reasons


def legalize_hswish(fp_in: int, fp_out: int, name: str = "hswish") -> tuple[int, int, list[str]]:
    """Hard-swish: input fix_pos >= 0, output fix_pos <= input fix_pos + 7 (no reasons: legal)."""
    reasons = []
    if fp_in < HSWISH_MIN_FP_IN:
        reasons.append(f"{name}: input fix_pos raised from {fp_in} to {HSWISH_MIN_FP_IN} "
                       f"(DPU hswish needs >= {HSWISH_MIN_FP_IN})")
        fp_in = HSWISH_MIN_FP_IN
    if fp_out > fp_in + HSWISH_MAX_FP_OUT_OVER_IN:
        reasons.append(f"{name}: output fix_pos lowered from {fp_out} to {fp_in + HSWISH_MAX_FP_OUT_OVER_IN} "
                       f"(must be <= input + {HSWISH_MAX_FP_OUT_OVER_IN})")
        fp_out = fp_in + HSWISH_MAX_FP_OUT_OVER_IN
    return fp_in, fp_out, reasons


def legalize_passthrough(fp_in: int, fp_out: int, name: str = "op") -> tuple[int, list[str]]:
    """Pad, nearest resize, strided slice: the output takes the input's fix_pos."""
    if fp_out == fp_in:
        return fp_out, []
    return fp_in, [f"{name}: output fix_pos set from {fp_out} to the input's {fp_in}"]


def conv_shifts(fp_in: int, fp_w: int, fp_out: int, fp_b: int | None = None,
                check: bool = True) -> tuple[int, int | None]:
    """``(shift_cut, shift_bias)`` of a conv-like op; with ``check``, raise if not legal.

    These are the XIR-level values (y = (acc + b * 2**shift_bias) / 2**shift_cut). The
    DPUCZDX8G CONVINIT/DWINIT instruction computes ``(2*acc + b*2**field) / 2**(shift_cut+1)``
    (vart sim-runner Conv.cpp ``Conv<DPUV2>::bias``), so its ``shift_bias`` field is
    ``shift_bias + 1``.
    """
    sc = fp_in + fp_w - fp_out
    sb = None if fp_b is None else fp_in + fp_w - fp_b
    if check:
        if not SHIFT_CUT_RANGE[0] <= sc <= SHIFT_CUT_RANGE[1]:
            raise NumericsError(f"shift_cut = {fp_in} + {fp_w} - {fp_out} = {sc} is outside [0, 16]")
        if sb is not None and not _shift_bias_min(sc) <= sb <= SHIFT_BIAS_MAX:
            raise NumericsError(
                f"shift_bias = {fp_in} + {fp_w} - {fp_b} = {sb} is outside [{_shift_bias_min(sc)}, 16]")
    return sc, sb


# ----------------------------------------------------------------------------- multipliers

# vai_q_pytorch pytorch_nndct/nn/modules/avgpool.py (and the DPU simulator's Pool.cpp:
# kernel 3 -> 28/256 = 7/64, 5 -> 10/256, 6 -> 7/256, 7 -> 21/1024).
_AVGPOOL_TABLE = {
    (3, 3): (7, 6),
    (5, 5): (10, 8),
    (6, 6): (7, 8),
    (3, 6): (7, 8),
    (6, 3): (7, 8),
    (7, 7): (21, 10),
    (14, 14): (21, 12),
}


def avgpool_multiplier(kernel_h: int, kernel_w: int) -> tuple[int, int]:
    """``(mult, shift)`` with ``1 / (kh * kw) ~= mult / 2**shift`` as the DPU computes it.

    Table entries first; otherwise the search of vai_q_pytorch avgpool.py: for
    ``s in range(ceil(log2(kh * kw * 128)))`` take ``m = round(2**s / (kh*kw))`` (Python
    round) and keep the first ``s`` with the strictly smallest ``|m / 2**s - 1/(kh*kw)|``.
    """
    if kernel_h < 1 or kernel_w < 1:
        raise NumericsError(f"pool kernel must be positive, got {kernel_h}x{kernel_w}")
    if (kernel_h, kernel_w) in _AVGPOOL_TABLE:
        return _AVGPOOL_TABLE[(kernel_h, kernel_w)]
    rec = kernel_h * kernel_w
    diff, mult, shift = 1.0, 0, 0
    for s in range(math.ceil(math.log2(rec * 128))):
        m = round((2**s) / rec)
        d = abs(m / (2**s) - 1 / rec)
        if d < diff:
            diff, mult, shift = d, m, s
    return mult, shift
