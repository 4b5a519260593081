"""Integer arithmetic of the DPU engines, exact in int64 (no floating point except where AMD's
simulator itself rounds to float32: the ALU average pool).

AMD's simulator computes in double and rounds with ``DPURound`` (saturate to int8, ties toward +inf);
every double expression it evaluates is an exact dyadic rational here, so these integer forms give
the same bits (spec numerics.md, dpu-semantics.md C17, C20, C22, C23).
"""

from __future__ import annotations

import numpy as np

from .machine import ACT_LEAKY, ACT_NONE, ACT_RELU, ACT_RELU6
from .steps import (
    AVEPOOL,
    DWCV,
    DWCV_NB,
    HSIGMOID,
    LEAKYRELU,
    MAXPOOL,
    MAXREDUCE,
    PRELU,
    W16B0,
)


def round_shift(x: np.ndarray, s: int) -> np.ndarray:
    """floor(x / 2^s + 1/2) for int64 x with |x| < 2^61 and s >= 0 (round half up)."""
    x = np.asarray(x, dtype=np.int64)
    if s == 0:
        return x.copy()
    if s >= 62:
        return np.zeros_like(x)
    return (x + (np.int64(1) << np.int64(s - 1))) >> np.int64(s)


def scale_round(x: np.ndarray, e: int) -> np.ndarray:
    """round_half_up(x * 2^e) for integer x and any integer e."""
    x = np.asarray(x, dtype=np.int64)
    if e >= 0:
        return np.clip(x, -(1 << 40), 1 << 40) << np.int64(min(e, 20))
    return round_shift(x, -e)


def saturate(x: np.ndarray) -> np.ndarray:
    return np.clip(x, -128, 127).astype(np.int8)


def activate_round(acc2: np.ndarray, shift: int, act: int) -> np.ndarray:
    """int8 of act(acc2 / 2^shift), rounded half up and saturated (conv and ALU depthwise)."""
    if act == ACT_LEAKY:
        pos = round_shift(acc2, shift)
        neg = round_shift(acc2 * 26, shift + 8)
        return saturate(np.where(acc2 < 0, neg, pos))
    r = round_shift(acc2, shift)
    if act == ACT_RELU:
        r = np.maximum(r, 0)
    elif act == ACT_RELU6:
        r = np.clip(r, 0, 96)
    elif act != ACT_NONE:
        raise ValueError(f"activation {act} has no integer form here")
    return saturate(r)


def conv_requant(acc: np.ndarray, bias: np.ndarray, shift_cut: int, shift_bias: int, act: int) -> np.ndarray:
    """CONV: ``(2*acc + bias*2^shift_bias) / 2^(shift_cut+1)``, activation, round, saturate."""
    acc2 = 2 * np.asarray(acc, dtype=np.int64) + (np.asarray(bias, dtype=np.int64) << np.int64(shift_bias))
    return activate_round(acc2, shift_cut + 1, act)


def alu_shift(shift_cut: int) -> int:
    """The ALU's pooling exponent: shift_cut >= 8 divides by 2^(shift_cut-8), else multiplies."""
    return -(shift_cut - 8) if shift_cut >= 8 else shift_cut


def _window_dot(x: np.ndarray, w: np.ndarray, term_max: int) -> np.ndarray:
    """sum over the window axis (-2) of x * w, exactly: in int32 when win * term_max < 2^31."""
    win = x.shape[-2]
    w = np.asarray(w)
    if win * term_max < 2**31:
        return np.einsum("...wc,...wc->...c", x.astype(np.int32), w.astype(np.int32)).astype(np.int64)
    return (x.astype(np.int64) * w.astype(np.int64)).sum(axis=-2)


def _window_reduce(x: np.ndarray, ufunc: np.ufunc, dtype=None) -> np.ndarray:
    """`ufunc` reduced over the window axis (-2), one window at a time while windows are few: numpy
    reduces a middle axis of small int8 rows 2-3x slower than this loop of whole-row ufunc calls."""
    win = x.shape[-2]
    if win > 64 or win < 2:
        return ufunc.reduce(x, axis=-2, dtype=dtype)
    out = x[..., 0, :].astype(dtype or x.dtype)
    for i in range(1, win):
        ufunc(out, x[..., i, :], out=out)
    return out


def alu_compute(p: dict, x: np.ndarray, w: np.ndarray | None, b: np.ndarray | None) -> np.ndarray:
    """One ALU tile. x: (..., npix, win, C) int8; w: (win, C); b: (C,). Returns (..., npix, C) int8."""
    mode = p["mode"]
    if mode in (MAXPOOL, MAXREDUCE):
        if alu_shift(p["shift_cut"]) == 0:
            return _window_reduce(x, np.maximum)
        mx = _window_reduce(x, np.maximum).astype(np.int64)
        return saturate(scale_round(mx, alu_shift(p["shift_cut"])))
    if mode == AVEPOOL:
        s = _window_reduce(x, np.add, np.int32).astype(np.int64)        # |sum| <= 128 * 65536 windows
        prod = s.astype(np.float32) * np.float32(p["multi_factor"])      # float32 rounding, as the sim
        return saturate(scale_round(prod.astype(np.int64), alu_shift(p["shift_cut"])))
    if mode in (LEAKYRELU, PRELU):
        v = x[..., 0, :].astype(np.int64)
        slope = p["multi_factor"] if mode == LEAKYRELU else np.asarray(b, dtype=np.int64)
        t = np.where(v < 0, v * slope, v)
        pos = scale_round(t, -p["shift_p_p"])
        neg = scale_round(t, -p["shift_p_n"])
        return saturate(np.where(t < 0, neg, pos))
    if mode == HSIGMOID:
        v = x[..., 0, :].astype(np.int64)
        h = np.clip(v * 2731 + (3 * 2731 << p["shift_bias"]), 0, 1 << 32)
        return saturate(round_shift(h, p["shift_cut"]))
    if mode == W16B0:
        # 16-bit weights: channel c's two bytes are (lo, hi) at 2c, 2c+1; every channel uses the weight
        # of the first channel of its group of ICP channels; no bias: acc / 2^shift_cut
        w = np.asarray(w)
        lo = w[..., 0::2].astype(np.uint8).astype(np.int64)
        hi = w[..., 1::2].astype(np.int8).astype(np.int64)
        w16 = hi * 256 + lo
        c = w16.shape[-1]
        w16 = w16[..., (np.arange(c) // p["cp"]) * p["cp"]]
        acc = _window_dot(x, w16, 128 * 32768)
        return activate_round(acc, p["shift_cut"], p["act"])
    if mode in (DWCV, DWCV_NB):
        acc = _window_dot(x, w, 128 * 128)
        if mode == DWCV:
            acc2 = 2 * acc + (np.asarray(b, dtype=np.int64) << np.int64(p["shift_bias"]))
            return activate_round(acc2, p["shift_cut"] + 1, p["act"])
        return activate_round(acc, p["shift_cut"], p["act"])
    raise ValueError(f"ALU mode {mode}")


def elew_compute(p: dict, xs) -> np.ndarray:
    """ELEW: xs (num, ..., C) int8 (an array or a sequence of equal-shape arrays) -> int8. t_k = floor(4*x_k / 2^shift_read_k); ADD sums, MULT
    multiplies; times 2^shift_write (>= 16: 2^-(sw-16)); / 4 (ADD) or / 16 (MULT); act; round."""
    sw = p["shift_write"]
    e = (sw if sw < 16 else -(sw - 16)) - (2 if p["type"] == 0 else 4)
    fast = _elew_int32(p, xs, e)
    if fast is not None:
        return fast
    ts = [(xs[k].astype(np.int64) * 4) >> np.int64(s) for k, s in enumerate(p["shift_read"])]
    v = sum(ts[1:], ts[0]) if p["type"] == 0 else ts[0] * ts[1]
    r = scale_round(v, e)
    if p["act"] == ACT_RELU:
        r = np.maximum(r, 0)
    return saturate(r)


def _elew_int32(p: dict, xs, e: int) -> np.ndarray | None:
    """`elew_compute` in int16 or int32 when every intermediate provably fits (|t_k| <= 512), else None."""
    reads = p["shift_read"]
    vmax = 512 * len(reads) if p["type"] == 0 else 512 * 512
    if not (all(0 <= s < 31 for s in reads) and -31 < e <= 20 and vmax << max(e, 0) < 2**31):
        return None
    # |v| <= vmax << max(e, 0), and the rounding term 2^(-e-1) <= 2^29 only matters while it fits too
    small = vmax << max(e, 0) < 2**14 and -e - 1 < 14
    dt = np.int16 if small else np.int32
    v = xs[0].astype(dt)
    v <<= 2
    v >>= reads[0]
    for k in range(1, len(reads) if p["type"] == 0 else 2):
        t = xs[k].astype(dt)
        t <<= 2
        t >>= reads[k]
        if p["type"] == 0:
            v += t
        else:
            v *= t
    if e > 0:
        v <<= e
    elif e < 0:
        v += dt(1 << (-e - 1))
        v >>= -e
    np.clip(v, 0 if p["act"] == ACT_RELU else -128, 127, out=v)
    return v.astype(np.int8)
