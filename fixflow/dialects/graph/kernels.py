"""Numpy reference semantics of the float ``graph`` dialect (PyTorch semantics, NCHW).

Every kernel is a pure function of numpy arrays and attributes, validates its operands
through the matching shape function in :mod:`fixflow.dialects.graph.shapes` (raising
:class:`~fixflow.dialects.graph.shapes.ShapeError`, a ``ValueError``) and computes in the
floating dtype of its first operand (non-float inputs are computed in float32). Weights
are cast to that dtype. Attribute conventions are those of ``shapes``: ``(h, w)`` pairs
for stride/dilation/kernel, ``(top, bottom, left, right)`` padding for conv/pool ops.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence, Union

import numpy as np

from . import shapes as S
from .shapes import IntOrPair, ShapeError, pad4, pair

__all__ = [
    "ShapeError", "conv2d", "conv2d_multi", "conv_transpose2d", "linear", "matmul", "batch_norm", "relu",
    "relu6", "leaky_relu", "prelu", "hardsigmoid", "hardswish", "sigmoid", "tanh", "silu",
    "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "add", "sub",
    "mul", "div", "concat", "reshape", "flatten", "permute", "transpose", "pad", "upsample",
    "softmax", "mean", "identity", "reduce_sum", "amax", "amin", "strided_slice", "expand", "tile", "layer_norm",
    "group_norm", "gelu", "mish", "roll", "normalize", "erfc", "KERNELS",
]

# Upper bound (in elements) of one im2col buffer; larger batches are processed in chunks.
_COLS_BUDGET = 1 << 24


def _float(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float32)


def _like(v: Optional[np.ndarray], dtype: np.dtype) -> Optional[np.ndarray]:
    return None if v is None else np.asarray(v, dtype=dtype)


def _pad_spatial(x: np.ndarray, p: Sequence[int], value: float = 0.0) -> np.ndarray:
    """Pad the last two axes by (top, bottom, left, right) >= 0 with a constant."""
    t, b, l, r = p
    if not (t or b or l or r):
        return x
    n, c, h, w = x.shape
    out = np.full((n, c, h + t + b, w + l + r), value, dtype=x.dtype)
    out[:, :, t:t + h, l:l + w] = x
    return out


def _tap(xp: np.ndarray, i0: int, j0: int, oh: int, ow: int, sh: int, sw: int) -> np.ndarray:
    """Strided view of the input pixels read by kernel tap starting at (i0, j0)."""
    return xp[:, :, i0:i0 + sh * (oh - 1) + 1:sh, j0:j0 + sw * (ow - 1) + 1:sw]


# --------------------------------------------------------------------------- convolutions

def conv2d(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray] = None, stride: IntOrPair = 1,
           padding: IntOrPair = 0, dilation: IntOrPair = 1, groups: int = 1) -> np.ndarray:
    """2-D cross-correlation as ``F.conv2d``; padding is (top, bottom, left, right).

    x (N, C, H, W), w (O, C/groups, KH, KW), b (O,) -> (N, O, OH, OW). Depthwise convs
    (one input channel per group) accumulate over kernel taps; all others run one im2col
    matmul per batch chunk.
    """
    return conv2d_multi(x, [w], [b], stride, padding, dilation, groups)[0]


def conv2d_multi(x: np.ndarray, ws: Sequence[np.ndarray], bs: Sequence[Optional[np.ndarray]],
                 stride: IntOrPair = 1, padding: IntOrPair = 0, dilation: IntOrPair = 1,
                 groups: int = 1) -> list[np.ndarray]:
    """``[conv2d(x, w, b, ...) for w, b in zip(ws, bs)]`` with one im2col of ``x`` shared by all
    weight sets (same-shaped weights); each result is identical to its own `conv2d` call."""
    x = _float(x)
    ws = [np.asarray(w, dtype=x.dtype) for w in ws]
    bs = [_like(b, x.dtype) for b in bs]
    if len(ws) != len(bs) or not ws or any(w.shape != ws[0].shape for w in ws):
        raise ShapeError("conv2d: conv2d_multi needs same-shaped weight sets, one bias (or None) each")
    for w, b in zip(ws, bs):
        n, o, oh, ow = S.conv2d_shape(x.shape, w.shape, None if b is None else b.shape,
                                      stride, padding, dilation, groups)
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    c = x.shape[1]
    _, cg, kh, kw = ws[0].shape
    if cg == 1 and groups == c and groups > 1:
        outs = [_depthwise(x, w, pad4(padding), oh, ow, sh, sw, dh, dw) for w in ws]
    else:
        outs = _im2col_conv(_pad_spatial(x, pad4(padding)), ws, groups, oh, ow, sh, sw, dh, dw)
    for out, b in zip(outs, bs):
        if b is not None:
            out += b.reshape(1, o, 1, 1)
    return outs


def _im2col_conv(xp: np.ndarray, ws: Sequence[np.ndarray], g: int, oh: int, ow: int,
                 sh: int, sw: int, dh: int, dw: int) -> list[np.ndarray]:
    n, c = xp.shape[:2]
    o, cg, kh, kw = ws[0].shape
    k = cg * kh * kw
    wms = [w.reshape(g, o // g, k) if g > 1 else w.reshape(o, k) for w in ws]
    outs = [np.empty((n, o, oh, ow), dtype=xp.dtype) for _ in ws]
    out3s = [out.reshape(n, o, oh * ow) for out in outs]
    if kh == kw == 1 and sh == sw == 1 and xp.shape[2:] == (oh, ow):
        cols_all = xp.reshape(n, c, oh * ow)  # pointwise conv: the input is the column matrix
        for wm, out3 in zip(wms, out3s):
            _gemm(wm, cols_all, g, out3)
        return outs
    chunk = max(1, _COLS_BUDGET // max(1, c * kh * kw * oh * ow))
    for n0 in range(0, n, chunk):
        xs = xp[n0:n0 + chunk]
        m = xs.shape[0]
        cols = np.empty((m, c, kh, kw, oh, ow), dtype=xp.dtype)
        for i in range(kh):
            for j in range(kw):
                cols[:, :, i, j] = _tap(xs, i * dh, j * dw, oh, ow, sh, sw)
        cols3 = cols.reshape(m, c * kh * kw, oh * ow)
        for wm, out3 in zip(wms, out3s):
            _gemm(wm, cols3, g, out3[n0:n0 + m])
    return outs


def _gemm(wm: np.ndarray, cols: np.ndarray, g: int, out3: np.ndarray) -> None:
    """out3 (N, O, P) = wm (O, K) @ cols (N, K, P), per group when g > 1."""
    n, k, p = cols.shape
    if g == 1:
        np.matmul(wm, cols, out=out3)
    else:
        np.matmul(wm, cols.reshape(n, g, k // g, p), out=out3.reshape(n, g, -1, p))


def _depthwise(x: np.ndarray, w: np.ndarray, pads: Sequence[int], oh: int, ow: int,
               sh: int, sw: int, dh: int, dw: int) -> np.ndarray:
    """Depthwise conv (groups == C, one input channel per group, multiplier m = O / C).

    Accumulates ``tap * weight`` over kernel taps on blocks of (batch, channel) rows so the
    working set stays in cache. With unit strides each tap is one contiguous slice of the
    flattened padded image ("wide" rows of the padded width, cropped at the end).
    """
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    if o != c:  # channel multiplier: output channel k reads input channel k // m
        x = np.repeat(x, o // c, axis=1)
    t, b, l, r = pads
    hp, wp = h + t + b, wd + l + r
    rows = n * o
    taps = kh * kw
    # weights as (tap, row, 1)
    wr = np.ascontiguousarray(np.broadcast_to(w.reshape(1, o, taps), (n, o, taps)).reshape(rows, taps).T)[:, :, None]
    wide = sh == 1 and sw == 1
    if wide:
        span = oh * wp
        xp = np.zeros((rows, hp * wp + dw * (kw - 1)), dtype=x.dtype)
        xp[:, :hp * wp].reshape(n, o, hp, wp)[:, :, t:t + h, l:l + wd] = x
        out = np.empty((rows, span), dtype=x.dtype)
    else:
        xp = _pad_spatial(x, pads).reshape(rows, hp, wp)
        out = np.empty((rows, oh, ow), dtype=x.dtype)
        wr = wr[..., None]
    block = max(1, min(rows, (1 << 16) // max(1, out[0].size)))
    tmp = np.empty((block,) + out.shape[1:], dtype=x.dtype)
    for r0 in range(0, rows, block):
        r1 = min(rows, r0 + block)
        acc, tb = out[r0:r1], tmp[:r1 - r0]
        for k in range(taps):
            i, j = divmod(k, kw)
            if wide:
                off = i * dh * wp + j * dw
                src = xp[r0:r1, off:off + span]
            else:
                src = xp[r0:r1, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
            if k == 0:
                np.multiply(src, wr[k, r0:r1], out=acc)
            else:
                np.multiply(src, wr[k, r0:r1], out=tb)
                acc += tb
    if wide:
        return np.ascontiguousarray(out.reshape(n, o, oh, wp)[:, :, :, :ow])
    return out.reshape(n, o, oh, ow)


def conv_transpose2d(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray] = None,
                     stride: IntOrPair = 1, padding: IntOrPair = 0, output_padding: IntOrPair = 0,
                     dilation: IntOrPair = 1, groups: int = 1) -> np.ndarray:
    """Transposed convolution as ``F.conv_transpose2d``.

    x (N, C, H, W), w (C, O/groups, KH, KW), b (O,). ``padding`` may be asymmetric
    (top, bottom, left, right); ``output_padding`` extends the bottom/right edge.
    Computed as one matmul per group (column matrix) followed by a col2im scatter-add.
    """
    x = _float(x)
    w = np.asarray(w, dtype=x.dtype)
    b = _like(b, x.dtype)
    n, o, oh, ow = S.conv_transpose2d_shape(x.shape, w.shape, None if b is None else b.shape,
                                            stride, padding, output_padding, dilation, groups)
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    pt, _, pl, _ = pad4(padding)
    _, c, h, wd = x.shape
    g = groups
    _, og, kh, kw = w.shape
    # cols[n, g, (og, kh, kw), h*w] = w_g^T @ x_g
    wt = w.reshape(g, c // g, og * kh * kw).transpose(0, 2, 1)
    cols = np.matmul(wt, x.reshape(n, g, c // g, h * wd))
    cols = cols.reshape(n, o, kh, kw, h, wd)
    hf = (h - 1) * sh + dh * (kh - 1) + 1
    wf = (wd - 1) * sw + dw * (kw - 1) + 1
    full = np.zeros((n, o, max(hf, pt + oh), max(wf, pl + ow)), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            _tap(full, i * dh, j * dw, h, wd, sh, sw)[...] += cols[:, :, i, j]
    out = np.ascontiguousarray(full[:, :, pt:pt + oh, pl:pl + ow])
    if b is not None:
        out += b.reshape(1, o, 1, 1)
    return out


def linear(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray] = None) -> np.ndarray:
    """``F.linear``: x (..., in) @ w (out, in)^T + b (out,)."""
    x = _float(x)
    w = np.asarray(w, dtype=x.dtype)
    b = _like(b, x.dtype)
    S.linear_shape(x.shape, w.shape, None if b is None else b.shape)
    y = x @ w.T
    if b is not None:
        y += b
    return y


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``torch.matmul``: batched, broadcasting, 1-D operands promoted then squeezed."""
    a = _float(a)
    b = np.asarray(b, dtype=a.dtype)
    S.matmul_shape(a.shape, b.shape)
    return np.asarray(np.matmul(a, b))


def batch_norm(x: np.ndarray, mean: np.ndarray, var: np.ndarray, gamma: Optional[np.ndarray] = None,
               beta: Optional[np.ndarray] = None, eps: float = 1e-5) -> np.ndarray:
    """Inference ``F.batch_norm`` over channel axis 1: (x - mean) / sqrt(var + eps) * gamma + beta."""
    x = _float(x)
    S.batch_norm_shape(x.shape, np.shape(mean), np.shape(var),
                       None if gamma is None else np.shape(gamma), None if beta is None else np.shape(beta))
    mean64 = np.asarray(mean, dtype=np.float64)
    scale = 1.0 / np.sqrt(np.asarray(var, dtype=np.float64) + eps)
    if gamma is not None:
        scale = scale * np.asarray(gamma, dtype=np.float64)
    shift = -mean64 * scale
    if beta is not None:
        shift = shift + np.asarray(beta, dtype=np.float64)
    bshape = (1, -1) + (1,) * (x.ndim - 2)
    out = np.multiply(x, scale.astype(x.dtype).reshape(bshape))
    out += shift.astype(x.dtype).reshape(bshape)
    return out


# --------------------------------------------------------------------------- activations

def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0)."""
    x = _float(x)
    return np.maximum(x, x.dtype.type(0))


def relu6(x: np.ndarray) -> np.ndarray:
    """min(max(x, 0), 6)."""
    x = _float(x)
    return np.clip(x, x.dtype.type(0), x.dtype.type(6))


def leaky_relu(x: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
    """x if x > 0 else negative_slope * x."""
    x = _float(x)
    return np.where(x > 0, x, x * x.dtype.type(negative_slope))


def prelu(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``F.prelu``: weight has one element or one per channel (axis 1)."""
    x = _float(x)
    wt = np.asarray(weight, dtype=x.dtype)
    S.prelu_shape(x.shape, wt.shape)
    a = wt.reshape(()) if wt.size == 1 else wt.reshape((1, -1) + (1,) * (x.ndim - 2))
    return np.where(x > 0, x, x * a)


def hardsigmoid(x: np.ndarray) -> np.ndarray:
    """relu6(x + 3) / 6."""
    x = _float(x)
    t = x.dtype.type
    return np.clip(x + t(3), t(0), t(6)) / t(6)


def hardswish(x: np.ndarray) -> np.ndarray:
    """x * relu6(x + 3) / 6."""
    x = _float(x)
    t = x.dtype.type
    return x * np.clip(x + t(3), t(0), t(6)) / t(6)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), evaluated without overflow."""
    x = _float(x)
    e = np.exp(-np.abs(x))
    one = x.dtype.type(1)
    return np.where(x >= 0, one / (one + e), e / (one + e))


def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent."""
    return np.tanh(_float(x))


def silu(x: np.ndarray) -> np.ndarray:
    """x * sigmoid(x)."""
    x = _float(x)
    return x * sigmoid(x)


def identity(x: np.ndarray) -> np.ndarray:
    """The input itself (no copy)."""
    return np.asarray(x)


# --------------------------------------------------------------------------- pooling

def _pool_geometry(x: np.ndarray, out_hw: tuple[int, int], kernel_size: IntOrPair,
                   stride: Optional[IntOrPair], padding: IntOrPair, dilation: IntOrPair):
    k = pair(kernel_size)
    s = k if stride is None or (not isinstance(stride, numbers.Integral) and len(stride) == 0) \
        else pair(stride)
    d = pair(dilation)
    p = pad4(padding)
    oh, ow = out_hw
    h, w = x.shape[2:]
    # extra bottom/right room for ceil-mode windows that overhang the padded input
    need_h = (oh - 1) * s[0] + d[0] * (k[0] - 1) + 1
    need_w = (ow - 1) * s[1] + d[1] * (k[1] - 1) + 1
    ext = (p[0], max(p[1], need_h - h - p[0]), p[2], max(p[3], need_w - w - p[2]))
    return k, s, d, p, ext


def max_pool2d(x: np.ndarray, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None,
               padding: IntOrPair = 0, dilation: IntOrPair = 1, ceil_mode: bool = False) -> np.ndarray:
    """``F.max_pool2d`` with (top, bottom, left, right) padding (padding is -inf)."""
    x = _float(x)
    shp = S.max_pool2d_shape(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    oh, ow = shp[2:]
    k, s, d, _, ext = _pool_geometry(x, (oh, ow), kernel_size, stride, padding, dilation)
    xp = _pad_spatial(x, ext, -np.inf)
    out = np.empty(shp, dtype=x.dtype)
    for i in range(k[0]):
        for j in range(k[1]):
            tap = _tap(xp, i * d[0], j * d[1], oh, ow, s[0], s[1])
            if i == 0 and j == 0:
                out[...] = tap
            else:
                np.maximum(out, tap, out=out)
    return out


def _avg_counts(size: int, out: int, k: int, s: int, pad_lo: int, pad_hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-output window lengths along one axis: (including padding, inside the input)."""
    start = np.arange(out) * s - pad_lo
    end = np.minimum(start + k, size + pad_hi)
    with_pad = end - start
    inside = np.minimum(end, size) - np.maximum(start, 0)
    return with_pad, inside


def avg_pool2d(x: np.ndarray, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None,
               padding: IntOrPair = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: Optional[int] = None) -> np.ndarray:
    """``F.avg_pool2d`` with (top, bottom, left, right) padding.

    With count_include_pad the divisor counts the window part inside input + padding (not
    the ceil-mode overhang); without it, only the part inside the input.
    """
    x = _float(x)
    shp = S.avg_pool2d_shape(x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                             divisor_override)
    oh, ow = shp[2:]
    k, s, _, p, ext = _pool_geometry(x, (oh, ow), kernel_size, stride, padding, 1)
    xp = _pad_spatial(x, ext, 0.0)
    acc = np.zeros(shp, dtype=x.dtype)
    for i in range(k[0]):
        for j in range(k[1]):
            acc += _tap(xp, i, j, oh, ow, s[0], s[1])
    if divisor_override is not None:
        return acc / x.dtype.type(divisor_override)
    h, w = x.shape[2:]
    ph, ih = _avg_counts(h, oh, k[0], s[0], p[0], p[1])
    pw, iw = _avg_counts(w, ow, k[1], s[1], p[2], p[3])
    div = np.outer(ph, pw) if count_include_pad else np.outer(ih, iw)
    return acc / div.astype(x.dtype)


def _adaptive_bounds(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    i = np.arange(out)
    return (i * size) // out, -((-(i + 1) * size) // out)


def _adaptive(x: np.ndarray, shp: tuple[int, ...], reduce) -> np.ndarray:
    n, c, oh, ow = shp
    h, w = x.shape[2:]
    hs, he = _adaptive_bounds(h, oh)
    ws, we = _adaptive_bounds(w, ow)
    if (oh, ow) == (h, w):
        return x.copy()
    tmp = np.empty((n, c, oh, w), dtype=x.dtype)
    for i in range(oh):
        tmp[:, :, i] = reduce(x[:, :, hs[i]:he[i]], axis=2)
    out = np.empty(shp, dtype=x.dtype)
    for j in range(ow):
        out[:, :, :, j] = reduce(tmp[:, :, :, ws[j]:we[j]], axis=3)
    return out


def adaptive_avg_pool2d(x: np.ndarray, output_size: Union[int, Sequence[Optional[int]]]) -> np.ndarray:
    """``F.adaptive_avg_pool2d``: window [floor(i*H/OH), ceil((i+1)*H/OH)) per output."""
    x = _float(x)
    shp = S.adaptive_avg_pool2d_shape(x.shape, output_size)
    if shp[2:] == (1, 1):
        return x.mean(axis=(2, 3), keepdims=True)
    return _adaptive(x, shp, np.mean)


def adaptive_max_pool2d(x: np.ndarray, output_size: Union[int, Sequence[Optional[int]]]) -> np.ndarray:
    """``F.adaptive_max_pool2d`` (values only)."""
    x = _float(x)
    shp = S.adaptive_max_pool2d_shape(x.shape, output_size)
    return _adaptive(x, shp, np.max)


# --------------------------------------------------------------------------- elementwise binary

def _binary(name: str, ufunc: np.ufunc):
    shape_fn = S.SHAPE_FUNCTIONS[name]

    def f(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a = _float(a)
        b = np.asarray(b)
        if b.dtype != a.dtype:
            b = b.astype(a.dtype)
        shape_fn(a.shape, b.shape)
        return ufunc(a, b)
    f.__name__ = name
    f.__doc__ = f"Elementwise ``{name}`` with numpy broadcasting."
    return f


add = _binary("add", np.add)
sub = _binary("sub", np.subtract)
mul = _binary("mul", np.multiply)
div = _binary("div", np.divide)


# --------------------------------------------------------------------------- data movement

def concat(*xs: Union[np.ndarray, Sequence[np.ndarray]], axis: int = 0) -> np.ndarray:
    """``torch.cat`` along ``axis``: ``concat(a, b, c, axis=1)`` or ``concat([a, b, c], axis=1)``."""
    if len(xs) == 1 and isinstance(xs[0], (list, tuple)):
        xs = tuple(xs[0])
    arrs = [np.asarray(v) for v in xs]
    S.concat_shape([a.shape for a in arrs], axis)
    return np.concatenate(arrs, axis=axis)


def reshape(x: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Reshape (row-major, like ``torch.reshape``); one ``-1`` is inferred."""
    x = np.asarray(x)
    return x.reshape(S.reshape_shape(x.shape, shape))


def flatten(x: np.ndarray, start_dim: int = 0, end_dim: int = -1) -> np.ndarray:
    """``torch.flatten(x, start_dim, end_dim)``."""
    x = np.asarray(x)
    return x.reshape(S.flatten_shape(x.shape, start_dim, end_dim))


def permute(x: np.ndarray, perm: Sequence[int]) -> np.ndarray:
    """``x.permute(perm)`` (returns a contiguous array)."""
    x = np.asarray(x)
    S.permute_shape(x.shape, perm)
    return np.ascontiguousarray(np.transpose(x, [int(p) for p in perm]))


def transpose(x: np.ndarray, dim0: int, dim1: int) -> np.ndarray:
    """``torch.transpose(x, dim0, dim1)`` (returns a contiguous array)."""
    x = np.asarray(x)
    S.transpose_shape(x.shape, dim0, dim1)
    return np.ascontiguousarray(np.swapaxes(x, dim0, dim1))


_NP_PAD_MODE = {"reflect": "reflect", "replicate": "edge"}


def pad(x: np.ndarray, pads: Sequence[Sequence[int]], mode: str = "constant", value: float = 0.0) -> np.ndarray:
    """Pad with one ``(before, after)`` pair per dimension (trailing dims if fewer).

    Modes: constant (negative amounts crop), reflect (no edge repeat), replicate.
    Use :func:`torch_pad_to_pairs` to convert ``F.pad``'s last-dim-first flat list.
    """
    x = np.asarray(x)
    S.pad_shape(x.shape, pads, mode, value)
    pp = [(0, 0)] * (x.ndim - len(pads)) + [(int(a), int(b)) for a, b in pads]
    crop = tuple(slice(max(0, -a), d - max(0, -b)) for (a, b), d in zip(pp, x.shape))
    x = x[crop]
    pos = [(max(0, a), max(0, b)) for a, b in pp]
    if mode == "constant":
        return np.pad(x, pos, mode="constant", constant_values=value)
    return np.pad(x, pos, mode=_NP_PAD_MODE[mode])


def torch_pad_to_pairs(torch_pad: Sequence[int], ndim: int) -> list[tuple[int, int]]:
    """Convert ``F.pad``'s flat (last_lo, last_hi, prev_lo, prev_hi, ...) to per-dim pairs."""
    if len(torch_pad) % 2 or len(torch_pad) // 2 > ndim:
        raise ShapeError(f"pad: invalid F.pad padding {tuple(torch_pad)} for a rank-{ndim} input")
    pairs = [(int(torch_pad[i]), int(torch_pad[i + 1])) for i in range(0, len(torch_pad), 2)]
    return [(0, 0)] * (ndim - len(pairs)) + pairs[::-1]


def _nearest_index(in_size: int, out_size: int, scale: Optional[float], exact: bool) -> np.ndarray:
    """Source indices of PyTorch's nearest / nearest-exact (float32 arithmetic as in ATen)."""
    dst = np.arange(out_size)
    if not exact:
        if out_size == in_size:
            return dst
        if out_size == 2 * in_size:
            return dst >> 1
    sc = np.float32(1.0 / scale) if scale is not None and scale > 0 else \
        np.float32(in_size) / np.float32(out_size)
    if exact:
        src = np.floor(((dst + 0.5) * np.float64(sc)).astype(np.float32))
    else:
        src = np.floor(dst.astype(np.float32) * sc)
    return np.minimum(src.astype(np.int64), in_size - 1)


def _linear_weights(in_size: int, out_size: int, scale: Optional[float], align_corners: bool):
    """(i0, i1, l0, l1) of PyTorch's linear interpolation along one axis (float32 math)."""
    dst = np.arange(out_size)
    if out_size == in_size:
        one = np.ones(out_size, np.float32)
        return dst, dst, one, np.zeros(out_size, np.float32)
    f32 = np.float32
    if align_corners:
        sc = f32(in_size - 1) / f32(out_size - 1) if out_size > 1 else f32(0)
        real = sc * dst.astype(f32)
    else:
        sc = f32(1.0 / scale) if scale is not None and scale > 0 else f32(in_size) / f32(out_size)
        real = sc * (dst.astype(f32) + f32(0.5)) - f32(0.5)
        real = np.maximum(real, f32(0))
    i0 = np.minimum(np.floor(real).astype(np.int64), in_size - 1)
    l1 = np.clip(real - i0.astype(f32), f32(0), f32(1)).astype(f32)
    i1 = i0 + (i0 < in_size - 1)
    return i0, i1, (f32(1) - l1).astype(f32), l1


def upsample(x: np.ndarray, size: Union[None, int, Sequence[int]] = None,
             scale_factor: Union[None, float, Sequence[float]] = None, mode: str = "nearest",
             align_corners: Optional[bool] = None, recompute_scale_factor: bool = False) -> np.ndarray:
    """``F.interpolate`` for modes nearest, nearest-exact, linear, bilinear, trilinear.

    Output size is ``floor(in * scale_factor)`` or ``size``; source coordinates use the
    given scale factor (unless ``recompute_scale_factor``) exactly as PyTorch does.
    """
    x = _float(x)
    shp = S.upsample_shape(x.shape, size, scale_factor, mode, align_corners, recompute_scale_factor)
    _, sf = S.upsample_output_size(x.shape, size, scale_factor)
    if recompute_scale_factor:
        sf = None
    if mode in ("nearest", "nearest-exact"):
        idxs = [_nearest_index(x.shape[ax], shp[ax], None if sf is None else sf[ax - 2],
                               mode == "nearest-exact") for ax in range(2, x.ndim)]
        reps = [shp[ax] // x.shape[ax] for ax in range(2, x.ndim)]
        if all(r >= 1 and np.array_equal(i, np.arange(len(i)) // r) for i, r in zip(idxs, reps)):
            # integer replication (e.g. 2x): one broadcast copy instead of gathers
            ex = x.reshape(sum(((d, 1) for d in x.shape[2:]), x.shape[:2]))
            full = sum(((d, r) for d, r in zip(x.shape[2:], reps)), x.shape[:2])
            return np.broadcast_to(ex, full).reshape(shp)
        out = x
        for ax, idx in zip(range(2, x.ndim), idxs):
            out = np.take(out, idx, axis=ax)
        return out
    out = x
    for ax in range(2, x.ndim):
        scale = None if sf is None else sf[ax - 2]
        i0, i1, l0, l1 = _linear_weights(x.shape[ax], shp[ax], scale, bool(align_corners))
        bshape = (shp[ax],) + (1,) * (x.ndim - 1 - ax)
        out = np.take(out, i0, axis=ax) * l0.astype(x.dtype).reshape(bshape) + \
            np.take(out, i1, axis=ax) * l1.astype(x.dtype).reshape(bshape)
    return out


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis``."""
    x = _float(x)
    S.softmax_shape(x.shape, axis)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def mean(x: np.ndarray, axes: Union[None, int, Sequence[int]] = None, keepdim: bool = False) -> np.ndarray:
    """Mean over ``axes`` (None: all), as ``torch.mean(x, dim, keepdim)``."""
    x = _float(x)
    S.mean_shape(x.shape, axes, keepdim)
    ax = None if axes is None else (int(axes) if isinstance(axes, numbers.Integral) else tuple(int(a) for a in axes))
    acc = np.float64 if x.dtype.itemsize < 8 else None  # accumulate float32 in float64
    return np.asarray(np.mean(x, axis=ax, keepdims=keepdim, dtype=acc), dtype=x.dtype)


def _axes(axes: Union[None, int, Sequence[int]]) -> Union[None, int, tuple[int, ...]]:
    return None if axes is None else (int(axes) if isinstance(axes, numbers.Integral) else tuple(int(a) for a in axes))


def reduce_sum(x: np.ndarray, axes: Union[None, int, Sequence[int]] = None, keepdim: bool = False) -> np.ndarray:
    """Sum over ``axes`` (None: all), as ``torch.sum(x, dim, keepdim)`` (float64 accumulation)."""
    x = _float(x)
    S.sum_shape(x.shape, axes, keepdim)
    acc = np.float64 if x.dtype.itemsize < 8 else None
    return np.asarray(np.sum(x, axis=_axes(axes), keepdims=keepdim, dtype=acc), dtype=x.dtype)


def amax(x: np.ndarray, axes: Union[None, int, Sequence[int]] = None, keepdim: bool = False) -> np.ndarray:
    """Maximum over ``axes`` (None: all), as ``torch.amax(x, dim, keepdim)``."""
    x = _float(x)
    S.amax_shape(x.shape, axes, keepdim)
    return np.asarray(np.max(x, axis=_axes(axes), keepdims=keepdim), dtype=x.dtype)


def amin(x: np.ndarray, axes: Union[None, int, Sequence[int]] = None, keepdim: bool = False) -> np.ndarray:
    """Minimum over ``axes`` (None: all), as ``torch.amin(x, dim, keepdim)``."""
    x = _float(x)
    S.amin_shape(x.shape, axes, keepdim)
    return np.asarray(np.min(x, axis=_axes(axes), keepdims=keepdim), dtype=x.dtype)


def strided_slice(x: np.ndarray, axes: Sequence[int] = (), starts: Sequence[int] = (), ends: Sequence[int] = (),
                  steps: Optional[Sequence[int]] = None) -> np.ndarray:
    """Strided slice ``x[..., start:end:step, ...]`` on ``axes`` (Python index rules; a contiguous copy)."""
    x = np.asarray(x)
    return np.ascontiguousarray(x[tuple(S.slice_bounds(x.shape, axes, starts, ends, steps))])


def expand(x: np.ndarray, like: Optional[np.ndarray] = None, shape: Sequence[int] = ()) -> np.ndarray:
    """``x.expand(shape)``: -1 keeps a dimension, 0 takes ``like``'s dimension there (a contiguous copy)."""
    x = np.asarray(x)
    out = S.expand_shape(x.shape, None if like is None else np.shape(like), shape)
    return np.ascontiguousarray(np.broadcast_to(x, out))


def tile(x: np.ndarray, repeats: Sequence[int] = ()) -> np.ndarray:
    """``x.repeat(repeats)`` (numpy ``tile``)."""
    x = np.asarray(x)
    S.tile_shape(x.shape, repeats)
    return np.tile(x, tuple(int(r) for r in repeats))


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, normalized_shape: Sequence[int] = (),
               eps: float = 1e-5) -> np.ndarray:
    """``F.layer_norm``: normalize over the trailing ``normalized_shape`` dims (biased variance), then
    ``* weight + bias``; statistics in float64."""
    x = _float(x)
    S.layer_norm_shape(x.shape, np.shape(weight), np.shape(bias), normalized_shape)
    ax = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    x64 = x.astype(np.float64)
    mu = x64.mean(axis=ax, keepdims=True)
    d = x64 - mu
    var = np.mean(d * d, axis=ax, keepdims=True)
    y = d / np.sqrt(var + eps) * np.asarray(weight, np.float64) + np.asarray(bias, np.float64)
    return y.astype(x.dtype)


def group_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, groups: int = 1, eps: float = 1e-5) -> np.ndarray:
    """``F.group_norm``: normalize each of ``groups`` channel groups over its channels and all spatial
    positions (biased variance), then a per-channel ``* weight + bias``; statistics in float64."""
    x = _float(x)
    S.group_norm_shape(x.shape, np.shape(weight), np.shape(bias), groups)
    n, c = x.shape[:2]
    g = x.astype(np.float64).reshape(n, groups, -1)
    mu = g.mean(axis=2, keepdims=True)
    d = g - mu
    var = np.mean(d * d, axis=2, keepdims=True)
    y = (d / np.sqrt(var + eps)).reshape(x.shape)
    cshape = (1, c) + (1,) * (x.ndim - 2)
    y = y * np.asarray(weight, np.float64).reshape(cshape) + np.asarray(bias, np.float64).reshape(cshape)
    return y.astype(x.dtype)


def erfc(x: np.ndarray) -> np.ndarray:
    """The complementary error function, fractional error below 1.2e-7 everywhere (Numerical Recipes'
    Chebyshev-fitted ``erfcc``), computed in float64."""
    x = np.asarray(x, dtype=np.float64)
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    r = t * np.exp(-z * z + poly)
    return np.where(x >= 0, r, 2.0 - r)


def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """``F.gelu``: ``x * Phi(x)`` (exact, via erfc) or the tanh approximation (``approximate="tanh"``)."""
    x = _float(x)
    x64 = x.astype(np.float64)
    if approximate == "tanh":
        y = 0.5 * x64 * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x64 + 0.044715 * x64 ** 3)))
    elif approximate == "none":
        y = 0.5 * x64 * erfc(-x64 / math.sqrt(2.0))
    else:
        raise ShapeError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return y.astype(x.dtype)


def mish(x: np.ndarray) -> np.ndarray:
    """``F.mish``: ``x * tanh(softplus(x))``."""
    x = _float(x)
    x64 = x.astype(np.float64)
    return (x64 * np.tanh(np.logaddexp(0.0, x64))).astype(x.dtype)


def roll(x: np.ndarray, shifts: Sequence[int] = (), axes: Sequence[int] = ()) -> np.ndarray:
    """``torch.roll(x, shifts, dims)``."""
    x = np.asarray(x)
    S.roll_shape(x.shape, shifts, axes)
    return np.roll(x, tuple(int(s) for s in shifts), tuple(int(a) for a in axes))



def normalize(x: np.ndarray, axis: int = 1, p: float = 2.0, eps: float = 1e-12) -> np.ndarray:
    """``F.normalize``: ``x / max(||x||_p, eps)`` along ``axis`` (the norm in float64)."""
    x = _float(x)
    S.normalize_shape(x.shape, axis, p, eps)
    x64 = x.astype(np.float64)
    if p == 2.0:
        norm = np.sqrt(np.sum(x64 * x64, axis=axis, keepdims=True))
    else:
        norm = np.sum(np.abs(x64) ** p, axis=axis, keepdims=True) ** (1.0 / p)
    return (x64 / np.maximum(norm, eps)).astype(x.dtype)


#: op name -> kernel (operands positionally, attributes as keywords).
KERNELS = {
    "conv2d": conv2d, "conv_transpose2d": conv_transpose2d, "linear": linear, "matmul": matmul,
    "batch_norm": batch_norm, "relu": relu, "relu6": relu6, "leaky_relu": leaky_relu,
    "prelu": prelu, "hardsigmoid": hardsigmoid, "hardswish": hardswish, "sigmoid": sigmoid,
    "tanh": tanh, "silu": silu, "identity": identity, "max_pool2d": max_pool2d,
    "avg_pool2d": avg_pool2d, "adaptive_avg_pool2d": adaptive_avg_pool2d,
    "adaptive_max_pool2d": adaptive_max_pool2d, "add": add, "sub": sub, "mul": mul, "div": div,
    "concat": concat, "reshape": reshape, "flatten": flatten, "permute": permute,
    "transpose": transpose, "pad": pad, "upsample": upsample, "softmax": softmax, "mean": mean,
    "sum": reduce_sum, "amax": amax, "amin": amin, "slice": strided_slice, "expand": expand, "tile": tile,
    "layer_norm": layer_norm, "group_norm": group_norm, "gelu": gelu, "mish": mish, "roll": roll,
    "normalize": normalize,
}
