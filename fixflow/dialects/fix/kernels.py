"""Integer semantics of the fix-level ops (NHWC, int8 in / int8 out), plus their float
fake-quant simulations.

Every ``*_fix`` kernel computes exactly what the DPU computes (numerics.md, "Integer
semantics on the DPU"; AMD's functional simulator vart/sim-runner/src/inst/*.cpp).
The "real division then floor(y + 0.5)" of the hardware is done exactly in integers:
every pre-rounding value is kept as ``P / 2**n`` with an integer ``P`` and ``n >= 0``,
and ``half_up(P / 2**n) = (P + 2**(n-1)) >> n`` (``>>`` is a floor shift).

Every kernel has a ``*_sim`` twin: what the quantizer's simulation computes on float
tensors (fake-quantize the inputs, float math, fake-quantize the output with the same
rounding). The invariant, tested bit for bit, is::

    kernel_sim(dequantize(inputs)) == dequantize(kernel_fix(inputs))

The simulations use float64 internally, where all the arithmetic on dequantized values
is exact; PyTorch's float32 conv can lose bits once partial sums exceed 2**24.

Layouts: feature maps NHWC; conv and transposed-conv weights ``[OC, KH, KW, IC]`` (the
DDR/XIR layout; transposed-conv weight ``w[oc, kh, kw, ic]`` is PyTorch's
``W[ic, oc, kh, kw]``); depthwise weights ``[KH, KW, C]`` or ``[1, KH, KW, C]``; dense
weights ``[OUT, IN]``. Padding is an int, ``(ph, pw)`` or ``(top, bottom, left, right)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._geometry import pad4, pair
from .numerics import (
    NumericsError,
    avgpool_multiplier,
    fake_quantize,
    qrange,
    int_dtype,
    quantize,
)

__all__ = [
    "ACTIVATIONS",
    "conv2d_fix", "conv2d_fix_sim",
    "depthwise_conv2d_fix", "depthwise_conv2d_fix_sim",
    "transposed_conv2d_fix", "transposed_conv2d_fix_sim",
    "dense_fix", "dense_fix_sim",
    "pool_fix", "pool_fix_sim",
    "elew_shifts", "elew_shift_write_field", "elew_int", "eltwise_fix", "eltwise_fix_sim",
    "concat_fix", "concat_fix_sim",
    "requantize",
    "upsample_fix", "upsample_fix_sim",
    "pad_fix", "pad_fix_sim",
    "reshape_fix", "reshape_fix_sim",
    "hard_sigmoid_fix", "hard_sigmoid_fix_sim",
    "hard_swish_fix", "hard_swish_fix_sim",
    "fix", "fix_sim",
]

ACTIVATIONS = ("NONE", "RELU", "LEAKYRELU", "RELU6")

_WEIGHT_MODE = "std_round"   # weights and bias (numerics.md)
_ACT_MODE = "half_up"        # activations: what the hardware does

# ----------------------------------------------------------------------------- exact helpers


def _int(a: np.ndarray | int) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype == object:
        return arr
    if not np.issubdtype(arr.dtype, np.integer):
        raise NumericsError(f"integer kernel got a {arr.dtype} array; quantize it first")
    return arr.astype(np.int64)


def _maxbits(p: np.ndarray) -> int:
    if p.size == 0:
        return 0
    return int(max(abs(int(p.max())), abs(int(p.min())))).bit_length()


def _lshift(p: np.ndarray, k: int) -> np.ndarray:
    """``p * 2**k`` for ``k >= 0``; switches to Python ints if int64 could overflow."""
    if k <= 0:
        return p
    if p.dtype != object and _maxbits(p) + k > 62:
        p = p.astype(object)
    return p << k


def _mul(p: np.ndarray, c: int) -> np.ndarray:
    if p.dtype != object and _maxbits(p) + int(abs(c)).bit_length() > 62:
        p = p.astype(object)
    return p * c


def _finish(p: np.ndarray, n: int, bit_width: int) -> np.ndarray:
    """``clamp(floor(P / 2**n + 1/2), qmin, qmax)`` -- DPU_ROUND then saturation."""
    if n < 0:
        p, n = _lshift(p, -n), 0
    if n > 0:
        if p.dtype != object and max(_maxbits(p), n) + 1 > 62:
            p = p.astype(object)
        p = (p + (1 << (n - 1))) >> n
    lo, hi = qrange(bit_width)
    return np.clip(p, lo, hi).astype(int_dtype(bit_width))


def _act_int(p: np.ndarray, n: int, act: str, fp_out: int) -> tuple[np.ndarray, int]:
    """Apply the activation to the exact value ``P / 2**n`` (result again ``P' / 2**n'``)."""
    act = _check_act(act)
    if act == "NONE":
        return p, n
    if act == "RELU":
        return np.maximum(p, 0), n
    if act == "LEAKYRELU":  # y < 0 ? y * 26/256 : y
        return np.where(p < 0, _mul(p, 26), _lshift(p, 8)), n + 8
    # RELU6: clamp(y, 0, 6 * 2**fp_out), compared exactly as P vs 6 * 2**(fp_out + n)
    k = fp_out + n
    if k < 0:
        p, n, k = _lshift(p, -k), n - k, 0
    return np.clip(p, 0, 6 << k), n


def _act_float(y: np.ndarray, act: str) -> np.ndarray:
    act = _check_act(act)
    if act == "RELU":
        return np.maximum(y, 0.0)
    if act == "LEAKYRELU":
        return np.where(y < 0, y * (26.0 / 256.0), y)
    if act == "RELU6":
        return np.clip(y, 0.0, 6.0)
    return y


def _check_act(act: str) -> str:
    a = str(act).upper().replace("_", "")
    if a not in ACTIVATIONS:
        raise NumericsError(f"unsupported activation {act!r}; expected one of {', '.join(ACTIVATIONS)}")
    return a


def _q_act(x: np.ndarray, fp: int, bit_width: int = 8) -> np.ndarray:
    return fake_quantize(x, bit_width, fp, _ACT_MODE).astype(np.float64)


def _q_param(x: np.ndarray, fp: int, bit_width: int = 8) -> np.ndarray:
    return fake_quantize(x, bit_width, fp, _WEIGHT_MODE).astype(np.float64)


# ----------------------------------------------------------------------------- geometry
def _windows(x: np.ndarray, kh: int, kw: int, stride, dilation, padding, pad_value=0) -> np.ndarray:
    """Sliding windows of an NHWC tensor: shape (N, OH, OW, KH, KW, C)."""
    if x.ndim != 4:
        raise NumericsError(f"expected an NHWC feature map, got shape {x.shape}")
    sh, sw = pair(stride, "stride", NumericsError)
    dh, dw = pair(dilation, "dilation", NumericsError)
    pt, pb, pl, pr = pad4(padding, "padding", NumericsError)
    if min(sh, sw, dh, dw) < 1 or min(pt, pb, pl, pr) < 0:
        raise NumericsError(f"bad stride {stride}, dilation {dilation} or padding {padding}")
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=pad_value)
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if xp.shape[1] < eh or xp.shape[2] < ew:
        raise NumericsError(f"kernel {kh}x{kw} (dilation {dh}x{dw}) larger than padded input {xp.shape[1:3]}")
    v = np.lib.stride_tricks.sliding_window_view(xp, (eh, ew), axis=(1, 2))
    v = v[:, ::sh, ::sw, :, ::dh, ::dw]          # (N, OH, OW, C, KH, KW)
    return v.transpose(0, 1, 2, 4, 5, 3)          # (N, OH, OW, KH, KW, C)


def _matmul_exact(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact ``a @ b`` of integer (or exactly-integral) arrays."""
    if a.size == 0 or b.size == 0:
        return np.zeros(a.shape[:-1] + b.shape[1:], dtype=np.int64)
    bound = a.shape[-1] * max(1, int(np.abs(a).max())) * max(1, int(np.abs(b).max()))
    if bound < 2**53:  # every partial sum is an exactly representable float64
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    if bound < 2**62:
        return a.astype(np.int64) @ b.astype(np.int64)
    return a.astype(object) @ b.astype(object)


def _conv_acc(x: np.ndarray, w: np.ndarray, stride, padding, dilation) -> np.ndarray:
    oc, kh, kw, ic = w.shape
    if x.shape[-1] != ic:
        raise NumericsError(f"conv input has {x.shape[-1]} channels, weights expect {ic}")
    win = _windows(x, kh, kw, stride, dilation, padding)
    cols = win.reshape(-1, kh * kw * ic)
    return _matmul_exact(cols, w.reshape(oc, -1).T).reshape(win.shape[:3] + (oc,))


def _dw_weights(w: np.ndarray) -> np.ndarray:
    if w.ndim == 4 and w.shape[0] == 1:
        w = w[0]
    if w.ndim != 3:
        raise NumericsError(f"depthwise weights must be [KH, KW, C] or [1, KH, KW, C], got {w.shape}")
    return w


def _dw_acc(x: np.ndarray, w: np.ndarray, stride, padding, dilation) -> np.ndarray:
    kh, kw, c = w.shape
    if x.shape[-1] != c:
        raise NumericsError(f"depthwise input has {x.shape[-1]} channels, weights expect {c}")
    win = _windows(x, kh, kw, stride, dilation, padding)
    if x.dtype.kind == "f":
        return np.einsum("nhwijc,ijc->nhwc", win, w)
    return np.einsum("nhwijc,ijc->nhwc", win.astype(np.int64), w.astype(np.int64))


def _tconv_acc(x, w, stride, padding, dilation, output_padding, matmul) -> np.ndarray:
    n, h, wd, ic = x.shape
    oc, kh, kw, wic = w.shape
    if wic != ic:
        raise NumericsError(f"transposed conv input has {ic} channels, weights expect {wic}")
    sh, sw = pair(stride, "stride", NumericsError)
    dh, dw = pair(dilation, "dilation", NumericsError)
    oph, opw = pair(output_padding, "output_padding", NumericsError)
    pt, pb, pl, pr = pad4(padding, "padding", NumericsError)
    fh = (h - 1) * sh + (kh - 1) * dh + 1 + oph
    fw = (wd - 1) * sw + (kw - 1) * dw + 1 + opw
    dtype = np.float64 if x.dtype.kind == "f" else np.int64
    full = np.zeros((n, fh, fw, oc), dtype=dtype)
    xs = x.reshape(-1, ic)
    for i in range(kh):
        for j in range(kw):
            part = matmul(xs, w[:, i, j, :].T).reshape(n, h, wd, oc)
            if part.dtype == object and full.dtype != object:
                full = full.astype(object)
            full[:, i * dh:i * dh + (h - 1) * sh + 1:sh, j * dw:j * dw + (wd - 1) * sw + 1:sw, :] += part
    if pt + pb >= fh or pl + pr >= fw:
        raise NumericsError("transposed conv padding removes the whole output")
    return full[:, pt:fh - pb, pl:fw - pr, :]


# ----------------------------------------------------------------------------- conv-like


def _conv_finish(acc, b, fp_in, fp_w, fp_b, fp_out, act, bit_width) -> np.ndarray:
    """y = (2*acc + 2*b*2**shift_bias) / 2**(shift_cut+1); act; half_up; saturate.

    ``shift_bias = fp_in + fp_w - fp_b`` and ``shift_cut = fp_in + fp_w - fp_out`` are the
    XIR-level values (vart cpu-runner conv2d_fix.cpp ``fix()``). The DPUCZDX8G instruction
    computes ``2*acc + b*2**field`` (vart sim-runner Conv.cpp ``Conv<DPUV2>::bias``), so its
    CONVINIT/DWINIT ``shift_bias`` field is ``shift_bias + 1``. numerics.md writes
    ``b*2**shift_bias`` with the XIR value, which would halve the bias.
    """
    sc = fp_in + fp_w - fp_out
    p, n = _int(acc), sc                       # value = (acc + b*2**sb) / 2**sc
    if b is not None:
        b = _int(b)
        if fp_b is None:
            raise NumericsError("a bias needs its fix_pos (fp_b)")
        sb = fp_in + fp_w - fp_b
        e = min(0, sb)  # negative shift_bias: scale the accumulator instead of the bias
        p = _lshift(p, -e) + _lshift(np.broadcast_to(b, p.shape[-1:]).astype(np.int64), sb - e)
        n -= e
    if n < 0:
        p, n = _lshift(p, -n), 0
    p, n = _act_int(p, n, act, fp_out)
    return _finish(p, n, bit_width)


def _conv_sim_finish(y, bf, fp_b, fp_out, act, bit_width, bw_b=None) -> np.ndarray:
    if bf is not None:
        if fp_b is None:
            raise NumericsError("a bias needs its fix_pos (fp_b)")
        y = y + _q_param(bf, fp_b, bw_b or bit_width)
    return fake_quantize(_act_float(y, act), bit_width, fp_out, _ACT_MODE)


def conv2d_fix(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, fp_in: int, fp_w: int,
               fp_out: int, fp_b: int | None = None, stride=1, padding=0, dilation=1,
               act: str = "NONE", bit_width: int = 8) -> np.ndarray:
    """DPU conv (groups = 1): int NHWC ``x``, ``w`` [OC, KH, KW, IC], ``b`` [OC] -> int8 NHWC."""
    acc = _conv_acc(_int(x), _int(w), stride, padding, dilation)
    return _conv_finish(acc, b, fp_in, fp_w, fp_b, fp_out, act, bit_width)


def conv2d_fix_sim(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, fp_in: int, fp_w: int,
                   fp_out: int, fp_b: int | None = None, stride=1, padding=0, dilation=1,
                   act: str = "NONE", bit_width: int = 8,
        bw_in: int | None = None, bw_w: int | None = None, bw_b: int | None = None) -> np.ndarray:
    """Float fake-quant simulation of `conv2d_fix` (float32 result)."""
    xq, wq = _q_act(x, fp_in, bw_in or bit_width), _q_param(w, fp_w, bw_w or bit_width)
    oc, kh, kw, ic = wq.shape
    win = _windows(xq, kh, kw, stride, dilation, padding)
    y = (win.reshape(-1, kh * kw * ic) @ wq.reshape(oc, -1).T).reshape(win.shape[:3] + (oc,))
    return _conv_sim_finish(y, b, fp_b, fp_out, act, bit_width, bw_b)


def depthwise_conv2d_fix(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, fp_in: int,
                         fp_w: int, fp_out: int, fp_b: int | None = None, stride=1, padding=0,
                         dilation=1, act: str = "NONE", bit_width: int = 8) -> np.ndarray:
    """DPU depthwise conv (channel multiplier 1; ALU DWCV mode, same fixing as conv)."""
    acc = _dw_acc(_int(x), _dw_weights(_int(w)), stride, padding, dilation)
    return _conv_finish(acc, b, fp_in, fp_w, fp_b, fp_out, act, bit_width)


def depthwise_conv2d_fix_sim(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, fp_in: int,
                             fp_w: int, fp_out: int, fp_b: int | None = None, stride=1, padding=0,
                             dilation=1, act: str = "NONE", bit_width: int = 8,
        bw_in: int | None = None, bw_w: int | None = None, bw_b: int | None = None) -> np.ndarray:
    """Float fake-quant simulation of `depthwise_conv2d_fix`."""
    xq = _q_act(x, fp_in, bw_in or bit_width)
    wq = _dw_weights(_q_param(w, fp_w, bw_w or bit_width))
    y = _dw_acc(xq, wq, stride, padding, dilation)
    return _conv_sim_finish(y, b, fp_b, fp_out, act, bit_width, bw_b)


def transposed_conv2d_fix(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, fp_in: int,
                          fp_w: int, fp_out: int, fp_b: int | None = None, stride=1, padding=0,
                          dilation=1, output_padding=0, act: str = "NONE",
                          bit_width: int = 8) -> np.ndarray:
    """Transposed conv with PyTorch geometry (``out = (H-1)*s - pt - pb + d*(k-1) + 1 + op``)."""
    acc = _tconv_acc(_int(x), _int(w), stride, padding, dilation, output_padding, _matmul_exact)
    return _conv_finish(acc, b, fp_in, fp_w, fp_b, fp_out, act, bit_width)


def transposed_conv2d_fix_sim(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, fp_in: int,
                              fp_w: int, fp_out: int, fp_b: int | None = None, stride=1, padding=0,
                              dilation=1, output_padding=0, act: str = "NONE",
                              bit_width: int = 8,
        bw_in: int | None = None, bw_w: int | None = None, bw_b: int | None = None) -> np.ndarray:
    """Float fake-quant simulation of `transposed_conv2d_fix`."""
    xq, wq = _q_act(x, fp_in, bw_in or bit_width), _q_param(w, fp_w, bw_w or bit_width)
    y = _tconv_acc(xq, wq, stride, padding, dilation, output_padding, np.matmul)
    return _conv_sim_finish(y, b, fp_b, fp_out, act, bit_width, bw_b)


def dense_fix(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, fp_in: int, fp_w: int,
              fp_out: int, fp_b: int | None = None, act: str = "NONE", bit_width: int = 8) -> np.ndarray:
    """Inner product: ``x`` [..., IN], ``w`` [OUT, IN], ``b`` [OUT] -> [..., OUT]."""
    xi, wi = _int(x), _int(w)
    if xi.shape[-1] != wi.shape[1]:
        raise NumericsError(f"dense input has {xi.shape[-1]} features, weights expect {wi.shape[1]}")
    acc = _matmul_exact(xi.reshape(-1, xi.shape[-1]), wi.T).reshape(xi.shape[:-1] + (wi.shape[0],))
    return _conv_finish(acc, b, fp_in, fp_w, fp_b, fp_out, act, bit_width)


def dense_fix_sim(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, fp_in: int, fp_w: int,
                  fp_out: int, fp_b: int | None = None, act: str = "NONE", bit_width: int = 8,
        bw_in: int | None = None, bw_w: int | None = None, bw_b: int | None = None) -> np.ndarray:
    """Float fake-quant simulation of `dense_fix`."""
    y = _q_act(x, fp_in, bw_in or bit_width) @ _q_param(w, fp_w, bw_w or bit_width).T
    return _conv_sim_finish(y, b, fp_b, fp_out, act, bit_width, bw_b)


# ----------------------------------------------------------------------------- pooling


def _pool_args(pool_type, kernel, stride):
    pt = str(pool_type).upper()
    if pt not in ("MAX", "AVG"):
        raise NumericsError(f"pool_type must be MAX or AVG, got {pool_type!r}")
    kh, kw = pair(kernel, "kernel", NumericsError)
    return pt, kh, kw, (kh, kw) if stride is None else stride


def pool_fix(x: np.ndarray, kernel, stride=None, padding=0, *, pool_type: str = "MAX", fp_in: int,
             fp_out: int | None = None, bit_width: int = 8) -> np.ndarray:
    """DPU pooling on int NHWC.

    MAX pads with the most negative integer and is exact; AVG pads with zeros (the divisor
    is always ``kh * kw``, as ``count_include_pad=True``) and computes
    ``half_up(sum * mult / 2**(shift + fp_in - fp_out))`` with `avgpool_multiplier`; the
    fix_pos difference is folded into the shift as the simulator's pool ``shift_cut``
    does (vart sim-runner Alu.cpp ``avepool_one``/``maxpool_one``, Pool.cpp ``pool_one``).
    """
    pt, kh, kw, stride = _pool_args(pool_type, kernel, stride)
    fp_out = fp_in if fp_out is None else fp_out
    xi = _int(x)
    if pt == "MAX":
        lo = min(qrange(bit_width)[0], int(xi.min()) if xi.size else 0)
        p = _windows(xi, kh, kw, stride, 1, padding, pad_value=lo).max(axis=(3, 4))
        return _finish(p, fp_in - fp_out, bit_width)
    mult, shift = avgpool_multiplier(kh, kw)
    s = _windows(xi, kh, kw, stride, 1, padding).sum(axis=(3, 4), dtype=np.int64)
    return _finish(_mul(s, mult), shift + fp_in - fp_out, bit_width)


def pool_fix_sim(x: np.ndarray, kernel, stride=None, padding=0, *, pool_type: str = "MAX", fp_in: int,
                 fp_out: int | None = None, bit_width: int = 8,
        bw_in: int | None = None) -> np.ndarray:
    """Float fake-quant simulation of `pool_fix` (AVG: window sum times ``mult / 2**shift``)."""
    pt, kh, kw, stride = _pool_args(pool_type, kernel, stride)
    fp_out = fp_in if fp_out is None else fp_out
    xq = _q_act(x, fp_in, bw_in or bit_width)
    if pt == "MAX":
        y = _windows(xq, kh, kw, stride, 1, padding, pad_value=-np.inf).max(axis=(3, 4))
    else:
        mult, shift = avgpool_multiplier(kh, kw)
        y = _windows(xq, kh, kw, stride, 1, padding).sum(axis=(3, 4)) * (mult / 2.0**shift)
    return fake_quantize(y, bit_width, fp_out, _ACT_MODE)


# ----------------------------------------------------------------------------- element-wise

_ELEW_OPS = {"ADD": "ADD", "MUL": "MUL", "MULT": "MUL"}


def _elew_op(op: str) -> str:
    try:
        return _ELEW_OPS[str(op).upper()]
    except KeyError:
        raise NumericsError(f"eltwise op must be ADD or MUL, got {op!r}") from None


def elew_shifts(fps_in: Sequence[int], fp_out: int, op: str = "ADD",
                check: bool = True) -> tuple[list[int], int]:
    """How the compiler picks ELEW shifts from fix positions (XIR eltwise-fix convention,
    vart cpu-runner eltwise_fix.cpp): ADD ``shift_read_k = fp_k - min(fp)``,
    ``shift_write = fp_out - min(fp)``; MUL ``shift_read_k = 0``,
    ``shift_write = fp_out - sum(fp)``. ``shift_write`` is the logical exponent (the
    result is multiplied by ``2**shift_write``); see `elew_shift_write_field`.
    """
    op = _elew_op(op)
    fps = [int(f) for f in fps_in]
    if op == "ADD":
        m = min(fps)
        reads, write = [f - m for f in fps], fp_out - m
    else:
        reads, write = [0] * len(fps), fp_out - sum(fps)
    if check:
        for k, r in enumerate(reads):
            if not 0 <= r <= 15:
                raise NumericsError(f"eltwise shift_read of input {k} is {r}, outside [0, 15]")
        elew_shift_write_field(write)
    return reads, write


def elew_shift_write_field(shift_write: int) -> int:
    """ISA1 5-bit encoding: ``e >= 0`` -> ``e``; ``e < 0`` -> ``16 + |e|`` (a field value
    >= 16 means ``2**-(field - 16)``; vart sim-runner Elew.cpp, shift_write_bit_width 5)."""
    if 0 <= shift_write <= 15:
        return shift_write
    if -15 <= shift_write < 0:
        return 16 - shift_write
    raise NumericsError(f"eltwise shift_write {shift_write} is outside [-15, 15]")


def elew_int(inputs: Sequence[np.ndarray], shift_reads: Sequence[int], shift_write: int,
             op: str = "ADD", act: str = "NONE", bit_width: int = 8) -> np.ndarray:
    """ELEW instruction semantics (vart sim-runner Elew.cpp ``calc``):
    ``t_k = floor(x_k * 4 / 2**shift_read_k)``; ADD sums, MUL multiplies (2 inputs);
    times ``2**shift_write``; divided by 4 (ADD) or 16 (MUL); RELU; half_up; saturate."""
    op = _elew_op(op)
    if len(inputs) != len(shift_reads):
        raise NumericsError("eltwise needs one shift_read per input")
    if op == "MUL" and len(inputs) != 2:
        raise NumericsError(f"eltwise MUL takes exactly 2 inputs, got {len(inputs)}")
    if not 1 <= len(inputs) <= 4:
        raise NumericsError(f"eltwise ADD takes 1 to 4 inputs, got {len(inputs)}")
    if _check_act(act) not in ("NONE", "RELU"):
        raise NumericsError(f"ELEW supports NONE or RELU activations, got {act!r}")
    ts = [(_int(x) << 2) >> int(r) for x, r in zip(inputs, shift_reads)]  # floor(x*4/2**r)
    if op == "ADD":
        p, n = ts[0], 2
        for t in ts[1:]:
            p = p + t
    else:
        p, n = ts[0] * ts[1], 4
    p = np.asarray(p)
    if shift_write >= 0:
        p = _lshift(p, shift_write)
    else:
        n -= shift_write
    p, n = _act_int(p, n, act, 0)
    return _finish(p, n, bit_width)


def eltwise_fix(inputs: Sequence[np.ndarray], *, fps_in: Sequence[int], fp_out: int, op: str = "ADD",
                act: str = "NONE", bit_width: int = 8) -> np.ndarray:
    """Element-wise ADD/MUL of int tensors (numpy broadcasting) with the compiler's shifts."""
    reads, write = elew_shifts(fps_in, fp_out, op)
    return elew_int(inputs, reads, write, op, act, bit_width)


def eltwise_fix_sim(inputs: Sequence[np.ndarray], *, fps_in: Sequence[int], fp_out: int,
                    op: str = "ADD", act: str = "NONE", bit_width: int = 8,
        bws_in: Sequence[int] | None = None) -> np.ndarray:
    """Float simulation of `eltwise_fix`, including the floor of the ELEW pre-scale."""
    op = _elew_op(op)
    reads, _ = elew_shifts(fps_in, fp_out, op)
    # t_k = floor(x_k * 2**(fp_k + 2 - shift_read_k)), then back to real units.
    ts = [np.floor(_q_act(x, f, bw) * 2.0 ** (f + 2 - r)) * 2.0 ** -(f + 2 - r)
          for x, f, r, bw in zip(inputs, fps_in, reads, bws_in or [bit_width] * len(inputs))]
    if op == "ADD":
        y = ts[0]
        for t in ts[1:]:
            y = y + t
    else:
        y = ts[0] * ts[1]
    return fake_quantize(_act_float(y, act), bit_width, fp_out, _ACT_MODE)


# ----------------------------------------------------------------------------- data movement


def requantize(q: np.ndarray, fp_in: int, fp_out: int, bit_width: int = 8) -> np.ndarray:
    """``half_up(q * 2**(fp_out - fp_in))``, saturated (identity when the positions agree)."""
    return _finish(_int(q), fp_in - fp_out, bit_width)


def concat_fix(inputs: Sequence[np.ndarray], *, fps_in: Sequence[int], fp_out: int, axis: int = -1,
               bit_width: int = 8) -> np.ndarray:
    """Concatenate; an input at another fix_pos is first requantized to ``fp_out`` with
    half_up and saturation (vart cpu-runner concat_fix.cpp: ``x * 2**(fp_out - fp_in)``)."""
    if len(inputs) != len(fps_in):
        raise NumericsError("concat needs one fix_pos per input")
    return np.concatenate([requantize(x, f, fp_out, bit_width) for x, f in zip(inputs, fps_in)], axis=axis)


def concat_fix_sim(inputs: Sequence[np.ndarray], *, fps_in: Sequence[int], fp_out: int, axis: int = -1,
                   bit_width: int = 8,
        bws_in: Sequence[int] | None = None) -> np.ndarray:
    """Float simulation of `concat_fix`."""
    parts = [fake_quantize(_q_act(x, f, bw), bit_width, fp_out, _ACT_MODE)
             for x, f, bw in zip(inputs, fps_in, bws_in or [bit_width] * len(inputs))]
    return np.concatenate(parts, axis=axis)


def upsample_fix(x: np.ndarray, scale, *, fp_in: int, fp_out: int | None = None,
                 bit_width: int = 8) -> np.ndarray:
    """Nearest-neighbour upsampling of NHWC by integer factors ``(sh, sw)``."""
    sh, sw = pair(scale, "scale", NumericsError)
    y = np.repeat(np.repeat(_int(x), sh, axis=1), sw, axis=2)
    return requantize(y, fp_in, fp_in if fp_out is None else fp_out, bit_width)


def upsample_fix_sim(x: np.ndarray, scale, *, fp_in: int, fp_out: int | None = None,
                     bit_width: int = 8,
        bw_in: int | None = None) -> np.ndarray:
    """Float simulation of `upsample_fix`."""
    sh, sw = pair(scale, "scale", NumericsError)
    y = np.repeat(np.repeat(_q_act(x, fp_in, bw_in or bit_width), sh, axis=1), sw, axis=2)
    return fake_quantize(y, bit_width, fp_in if fp_out is None else fp_out, _ACT_MODE)


def pad_fix(x: np.ndarray, padding, value: int = 0, mode: str = "constant") -> np.ndarray:
    """Pad H and W of NHWC (output fix_pos = input fix_pos); ``value`` is an integer code."""
    pt, pb, pl, pr = pad4(padding, "padding", NumericsError)
    xi = np.asarray(x)
    width = ((0, 0), (pt, pb), (pl, pr), (0, 0))
    if mode == "constant":
        return np.pad(xi, width, mode="constant", constant_values=value)
    if mode in ("edge", "reflect", "symmetric"):
        return np.pad(xi, width, mode=mode)
    raise NumericsError(f"pad mode must be constant, edge, reflect or symmetric, got {mode!r}")


def pad_fix_sim(x: np.ndarray, padding, *, fp: int, value: int = 0, mode: str = "constant",
                bit_width: int = 8,
        bw_in: int | None = None) -> np.ndarray:
    """Float simulation of `pad_fix` (``value`` is the same integer code)."""
    xq = _q_act(x, fp, bw_in or bit_width)
    pt, pb, pl, pr = pad4(padding, "padding", NumericsError)
    width = ((0, 0), (pt, pb), (pl, pr), (0, 0))
    if mode == "constant":
        y = np.pad(xq, width, mode="constant", constant_values=value * 2.0**-fp)
    else:
        y = pad_fix(xq, padding, mode=mode)
    return fake_quantize(y, bit_width, fp, _ACT_MODE)


def reshape_fix(x: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Reshape (row-major; the fix_pos is unchanged)."""
    return np.asarray(x).reshape(tuple(shape))


def reshape_fix_sim(x: np.ndarray, shape: Sequence[int], *, fp: int, bit_width: int = 8) -> np.ndarray:
    """Float simulation of `reshape_fix`."""
    return fake_quantize(np.asarray(x).reshape(tuple(shape)), bit_width, fp, _ACT_MODE)


# ----------------------------------------------------------------------------- hard sigmoid / swish

_HS_MULT, _HS_SHIFT = 2731, 14   # 1/6 ~= 2731 / 2**14 (DPU; vai_q_pytorch hardsigmoid.py)


def _hsigmoid_p(xi: np.ndarray, fp_in: int) -> np.ndarray:
    if fp_in < 0:
        raise NumericsError(f"hard sigmoid/swish needs input fix_pos >= 0, got {fp_in} (see legalize_hsigmoid)")
    return np.clip(xi + (3 << fp_in), 0, 6 << fp_in) * _HS_MULT   # value P / 2**(14 + fp_in)


def hard_sigmoid_fix(x: np.ndarray, *, fp_in: int, fp_out: int, bit_width: int = 8) -> np.ndarray:
    """``relu6(x + 3) * 2731 / 2**14``, half_up, saturated.

    The DPU (ALU HSIGMOID; vart sim-runner Alu.cpp) computes
    ``max(0, x*2731 + 3*2731*2**fp_in) / 2**(14 + fp_in - fp_out)`` without the upper
    clamp; with ``fp_out >= 7`` (legalize_hsigmoid) saturation makes them identical.
    """
    p = _hsigmoid_p(_int(x), fp_in)
    return _finish(p, _HS_SHIFT + fp_in - fp_out, bit_width)


def hard_sigmoid_fix_sim(x: np.ndarray, *, fp_in: int, fp_out: int, bit_width: int = 8,
        bw_in: int | None = None) -> np.ndarray:
    """vai_q_pytorch hardsigmoid.py: ``relu6(q(x) + 3) * 2731/16384`` then quantize."""
    y = np.clip(_q_act(x, fp_in, bw_in or bit_width) + 3.0, 0.0, 6.0) * (_HS_MULT / 2.0**_HS_SHIFT)
    return fake_quantize(y, bit_width, fp_out, _ACT_MODE)


def hard_swish_fix(x: np.ndarray, *, fp_in: int, fp_out: int, bit_width: int = 8) -> np.ndarray:
    """``x * hsig(x)`` with ``hsig`` first rounded to fix_pos 7 (half_up, saturated), then
    ``x * hsig / 2**(fp_in + 7 - fp_out)`` half_up, saturated (DPU HSWISH: shift_hsigmoid
    = fp_in + 7, shift_hswish = fp_in + 7 - fp_out; vart sim-runner Alu.cpp)."""
    xi = _int(x)
    hs = _finish(_hsigmoid_p(xi, fp_in), _HS_SHIFT + fp_in - 7, 8).astype(np.int64)
    return _finish(xi * hs, fp_in + 7 - fp_out, bit_width)


def hard_swish_fix_sim(x: np.ndarray, *, fp_in: int, fp_out: int, bit_width: int = 8,
        bw_in: int | None = None) -> np.ndarray:
    """vai_q_pytorch hardswish.py: hsig fake-quantized at scale 128, times q(x), quantize."""
    xq = _q_act(x, fp_in, bw_in or bit_width)
    hs = fake_quantize(np.clip(xq + 3.0, 0.0, 6.0) * (_HS_MULT / 2.0**_HS_SHIFT), 8, 7, _ACT_MODE)
    return fake_quantize(xq * hs.astype(np.float64), bit_width, fp_out, _ACT_MODE)


# ----------------------------------------------------------------------------- fix


def fix(x: np.ndarray, *, fp_out: int, mode: str = "half_up", bit_width: int = 8) -> np.ndarray:
    """Float -> int: ``clamp(round_mode(x * 2**fp_out))`` (the data-fix / fix op)."""
    return quantize(x, bit_width, fp_out, mode)


def fix_sim(x: np.ndarray, *, fp_out: int, mode: str = "half_up", bit_width: int = 8) -> np.ndarray:
    """Float simulation of `fix`: fake quantization."""
    return fake_quantize(x, bit_width, fp_out, mode)
