"""Shape functions of the float ``graph`` dialect (PyTorch semantics, NCHW).

Each ``<op>_shape`` takes the input *shapes* (tuples of ints) and the op's attributes and
returns the output shape as a tuple. Invalid shapes or attributes raise :class:`ShapeError`
(a ``ValueError``) whose message starts with the op name, e.g.
``"conv2d: input has 3 channels but weight expects 4 (groups=1)"``.

Attribute conventions shared with :mod:`fixflow.dialects.graph.kernels`: ``stride``,
``dilation`` and ``kernel_size`` are ``(h, w)`` pairs (an int means both); ``padding`` of
conv/pool ops is ``(top, bottom, left, right)`` (a ``(h, w)`` pair or an int is expanded
symmetrically).
"""

from __future__ import annotations

import math
import numbers
from typing import Iterable, Optional, Sequence, Union

from .. import _geometry
from ...ir.diagnostics import FixflowError

Shape = tuple[int, ...]
IntOrPair = Union[int, Sequence[int]]

__all__ = [
    "ShapeError", "Shape", "pair", "pad4", "pool_out_len", "normalize_axis",
    "conv2d_shape", "conv_transpose2d_shape", "linear_shape", "matmul_shape",
    "batch_norm_shape", "unary_shape", "prelu_shape", "max_pool2d_shape",
    "avg_pool2d_shape", "adaptive_pool2d_shape", "adaptive_avg_pool2d_shape",
    "adaptive_max_pool2d_shape", "broadcast_shape", "concat_shape", "reshape_shape",
    "flatten_shape", "permute_shape", "transpose_shape", "pad_shape", "upsample_shape",
    "upsample_output_size", "softmax_shape", "mean_shape", "reduce_shape", "slice_shape", "slice_bounds",
    "expand_shape", "tile_shape", "layer_norm_shape", "group_norm_shape", "roll_shape", "normalize_shape", "SHAPE_FUNCTIONS",
]


class ShapeError(FixflowError, ValueError):
    """Invalid operand shapes or attributes for a graph op. A user error (a `FixflowError`);
    still a `ValueError` for callers that catch those."""

    def __str__(self) -> str:
        return self.message


def _err(op: str, msg: str) -> ShapeError:
    return ShapeError(f"{op}: {msg}")


def _shape(s: Iterable[int]) -> Shape:
    return tuple(int(d) for d in s)


def pair(v: IntOrPair, name: str = "value", op: str = "graph") -> tuple[int, int]:
    """Normalize an int or an ``(h, w)`` sequence to a pair of ints (a ShapeError naming `op` otherwise)."""
    return _geometry.pair(v, name, lambda m: _err(op, m))


def pad4(v: IntOrPair, name: str = "padding", op: str = "graph") -> tuple[int, int, int, int]:
    """Normalize padding to ``(top, bottom, left, right)`` (int, ``(h, w)`` pair or explicit 4-tuple)."""
    return _geometry.pad4(v, name, lambda m: _err(op, m))


def normalize_axis(axis: int, ndim: int, op: str = "graph", name: str = "axis") -> int:
    """Map a possibly negative axis into ``[0, ndim)``; raise ShapeError if out of range."""
    lo, hi = (-1, 0) if ndim == 0 else (-ndim, ndim - 1)
    if not lo <= axis <= hi:
        raise _err(op, f"{name} {axis} is out of range for a rank-{ndim} tensor")
    return axis % max(ndim, 1)


def _require_rank(op: str, x: Shape, rank: int, what: str = "input", layout: str = "") -> None:
    if len(x) != rank:
        lay = f" ({layout})" if layout else ""
        raise _err(op, f"{what} must be rank {rank}{lay}, got shape {x}")


def _positive(op: str, name: str, vals: Sequence[int]) -> None:
    if any(v <= 0 for v in vals):
        raise _err(op, f"{name} must be positive, got {tuple(vals)}")


def _nonneg(op: str, name: str, vals: Sequence[int]) -> None:
    if any(v < 0 for v in vals):
        raise _err(op, f"{name} must be non-negative, got {tuple(vals)}")


# --------------------------------------------------------------------------- convolutions

def conv2d_shape(x: Shape, w: Shape, b: Optional[Shape] = None, stride: IntOrPair = 1,
                 padding: IntOrPair = 0, dilation: IntOrPair = 1, groups: int = 1) -> Shape:
    """Output shape of ``conv2d``: x (N, C, H, W), w (O, C/groups, KH, KW), b (O,)."""
    op = "conv2d"
    x, w = _shape(x), _shape(w)
    _require_rank(op, x, 4, "input", "N, C, H, W")
    _require_rank(op, w, 4, "weight", "O, C/groups, KH, KW")
    s, d, p = pair(stride, "stride", op), pair(dilation, "dilation", op), pad4(padding, op=op)
    _positive(op, "stride", s)
    _positive(op, "dilation", d)
    _nonneg(op, "padding", p)
    if groups <= 0:
        raise _err(op, f"groups must be positive, got {groups}")
    n, c, h, wd = x
    o, cg, kh, kw = w
    _positive(op, "kernel size", (kh, kw))
    if c % groups:
        raise _err(op, f"input channels {c} are not divisible by groups={groups}")
    if o % groups:
        raise _err(op, f"output channels {o} are not divisible by groups={groups}")
    if c != cg * groups:
        raise _err(op, f"input has {c} channels but weight expects {cg * groups} (groups={groups})")
    if b is not None and _shape(b) != (o,):
        raise _err(op, f"bias must have shape ({o},), got {_shape(b)}")
    oh = _geometry.conv_out_size(h, kh, s[0], p[0], p[1], d[0])
    ow = _geometry.conv_out_size(wd, kw, s[1], p[2], p[3], d[1])
    if oh <= 0 or ow <= 0:
        raise _err(op, f"kernel ({kh}, {kw}) with dilation {d} is larger than the padded input "
                       f"({h + p[0] + p[1]}, {wd + p[2] + p[3]})")
    return (n, o, oh, ow)


def conv_transpose2d_shape(x: Shape, w: Shape, b: Optional[Shape] = None, stride: IntOrPair = 1,
                           padding: IntOrPair = 0, output_padding: IntOrPair = 0,
                           dilation: IntOrPair = 1, groups: int = 1) -> Shape:
    """Output shape of ``conv_transpose2d``: x (N, C, H, W), w (C, O/groups, KH, KW)."""
    op = "conv_transpose2d"
    x, w = _shape(x), _shape(w)
    _require_rank(op, x, 4, "input", "N, C, H, W")
    _require_rank(op, w, 4, "weight", "C, O/groups, KH, KW")
    s, d, p = pair(stride, "stride", op), pair(dilation, "dilation", op), pad4(padding, op=op)
    op_ = pair(output_padding, "output_padding", op)
    _positive(op, "stride", s)
    _positive(op, "dilation", d)
    _nonneg(op, "padding", p)
    _nonneg(op, "output_padding", op_)
    if groups <= 0:
        raise _err(op, f"groups must be positive, got {groups}")
    n, c, h, wd = x
    cw, og, kh, kw = w
    _positive(op, "kernel size", (kh, kw))
    if c % groups:
        raise _err(op, f"input channels {c} are not divisible by groups={groups}")
    if c != cw:
        raise _err(op, f"input has {c} channels but weight expects {cw} (groups={groups})")
    for i, ax in enumerate("hw"):
        if op_[i] >= max(s[i], d[i]):
            raise _err(op, f"output_padding {op_} must be smaller than stride {s} or dilation {d} "
                           f"(axis {ax})")
    o = og * groups
    if b is not None and _shape(b) != (o,):
        raise _err(op, f"bias must have shape ({o},), got {_shape(b)}")
    oh = (h - 1) * s[0] - p[0] - p[1] + d[0] * (kh - 1) + op_[0] + 1
    ow = (wd - 1) * s[1] - p[2] - p[3] + d[1] * (kw - 1) + op_[1] + 1
    if oh <= 0 or ow <= 0:
        raise _err(op, f"padding {p} leaves an empty output ({oh}, {ow})")
    return (n, o, oh, ow)


def linear_shape(x: Shape, w: Shape, b: Optional[Shape] = None) -> Shape:
    """Output shape of ``linear``: x (..., in), w (out, in), b (out,) -> (..., out)."""
    op = "linear"
    x, w = _shape(x), _shape(w)
    if len(x) < 1:
        raise _err(op, "input must have at least one dimension")
    _require_rank(op, w, 2, "weight", "out_features, in_features")
    if x[-1] != w[1]:
        raise _err(op, f"input has {x[-1]} features but weight expects {w[1]}")
    if b is not None and _shape(b) != (w[0],):
        raise _err(op, f"bias must have shape ({w[0]},), got {_shape(b)}")
    return x[:-1] + (w[0],)


def broadcast_shape(a: Shape, b: Shape, op: str = "broadcast") -> Shape:
    """Numpy/PyTorch broadcast of two shapes."""
    a, b = _shape(a), _shape(b)
    n = max(len(a), len(b))
    pa, pb = (1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b
    out = []
    for i, (da, db) in enumerate(zip(pa, pb)):
        if da != db and da != 1 and db != 1:
            raise _err(op, f"shapes {a} and {b} are not broadcastable (dimension {i - n}: {da} vs {db})")
        out.append(db if da == 1 else da)
    return tuple(out)


def matmul_shape(a: Shape, b: Shape) -> Shape:
    """Output shape of ``matmul`` (torch.matmul: 1-D promotion, batched broadcasting)."""
    op = "matmul"
    a, b = _shape(a), _shape(b)
    if not a or not b:
        raise _err(op, f"both operands must be at least 1-D, got {a} and {b}")
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise _err(op, f"inner dimensions do not match: {a} @ {b} ({a2[-1]} vs {b2[-2]})")
    batch = broadcast_shape(a2[:-2], b2[:-2], op)
    out = batch + (a2[-2], b2[-1])
    if len(b) == 1:
        out = out[:-1]
    if len(a) == 1:
        out = out[:-2] + out[-1:] if len(b) > 1 else out[:-1]
    return out


def batch_norm_shape(x: Shape, mean: Shape, var: Shape, gamma: Optional[Shape] = None,
                     beta: Optional[Shape] = None) -> Shape:
    """Output shape of inference ``batch_norm``: x (N, C, ...), per-channel params (C,)."""
    op = "batch_norm"
    x = _shape(x)
    if len(x) < 2:
        raise _err(op, f"input must be at least rank 2 (N, C, ...), got shape {x}")
    c = x[1]
    for name, s in (("mean", mean), ("var", var), ("gamma", gamma), ("beta", beta)):
        if s is not None and _shape(s) != (c,):
            raise _err(op, f"{name} must have shape ({c},) for {c} channels, got {_shape(s)}")
    return x


def unary_shape(x: Shape, **attrs: object) -> Shape:
    """Output shape of an elementwise unary op (relu, leaky_relu, sigmoid, identity, ...).

    Scalar attributes such as ``negative_slope`` do not affect the shape and are ignored.
    """
    return _shape(x)


def prelu_shape(x: Shape, weight: Shape) -> Shape:
    """Output shape of ``prelu``: weight has 1 element or one per channel (axis 1)."""
    op = "prelu"
    x, wt = _shape(x), _shape(weight)
    n = math.prod(wt)
    if n != 1:
        c = x[1] if len(x) >= 2 else 1
        if len(wt) != 1 or wt[0] != c:
            raise _err(op, f"weight must have 1 element or one per channel ({c}), got shape {wt}")
    return x


# --------------------------------------------------------------------------- pooling

def pool_out_len(size: int, k: int, s: int, pad_lo: int, pad_hi: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output length, generalized to asymmetric padding.

    In ceil mode the last window is dropped if it would start beyond input + low padding.
    """
    eff = d * (k - 1) + 1
    num = size + pad_lo + pad_hi - eff + ((s - 1) if ceil_mode else 0)
    out = num // s + 1
    if ceil_mode and (out - 1) * s >= size + pad_lo:
        out -= 1
    return out


def _pool_common(op: str, x: Shape, kernel_size: IntOrPair, stride: Optional[IntOrPair],
                 padding: IntOrPair, dilation: IntOrPair, ceil_mode: bool) -> Shape:
    x = _shape(x)
    if len(x) != 4:
        raise _err(op, f"input must be rank 4 (N, C, H, W), got shape {x}")
    k = pair(kernel_size, "kernel_size", op)
    s = k if stride is None or (not isinstance(stride, numbers.Integral) and len(stride) == 0) else pair(stride, "stride", op)
    d, p = pair(dilation, "dilation", op), pad4(padding, op=op)
    _positive(op, "kernel_size", k)
    _positive(op, "stride", s)
    _positive(op, "dilation", d)
    _nonneg(op, "padding", p)
    eff = (d[0] * (k[0] - 1) + 1, d[1] * (k[1] - 1) + 1)
    if max(p[0], p[1]) >= eff[0] or max(p[2], p[3]) >= eff[1]:
        raise _err(op, f"padding {p} must be smaller than the effective kernel size {eff} "
                       "(a window would lie entirely in the padding)")
    oh = pool_out_len(x[2], k[0], s[0], p[0], p[1], d[0], ceil_mode)
    ow = pool_out_len(x[3], k[1], s[1], p[2], p[3], d[1], ceil_mode)
    if oh <= 0 or ow <= 0:
        raise _err(op, f"kernel {k} (dilation {d}) is larger than the padded input "
                       f"({x[2] + p[0] + p[1]}, {x[3] + p[2] + p[3]})")
    return (x[0], x[1], oh, ow)


def max_pool2d_shape(x: Shape, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None,
                     padding: IntOrPair = 0, dilation: IntOrPair = 1, ceil_mode: bool = False) -> Shape:
    """Output shape of ``max_pool2d`` (stride defaults to kernel_size, as in PyTorch)."""
    return _pool_common("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)


def avg_pool2d_shape(x: Shape, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None,
                     padding: IntOrPair = 0, ceil_mode: bool = False, count_include_pad: bool = True,
                     divisor_override: Optional[int] = None) -> Shape:
    """Output shape of ``avg_pool2d`` (stride defaults to kernel_size, as in PyTorch)."""
    if divisor_override is not None and divisor_override == 0:
        raise _err("avg_pool2d", "divisor_override must be non-zero")
    return _pool_common("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)


def adaptive_pool2d_shape(x: Shape, output_size: Union[int, Sequence[Optional[int]]],
                          op: str = "adaptive_avg_pool2d") -> Shape:
    """Output shape of adaptive pooling; ``None`` in output_size keeps that input size."""
    x = _shape(x)
    if len(x) != 4:
        raise _err(op, f"input must be rank 4 (N, C, H, W), got shape {x}")
    if isinstance(output_size, numbers.Integral):
        osz: tuple = (output_size, output_size)
    else:
        osz = tuple(output_size)
        if len(osz) != 2:
            raise _err(op, f"output_size must be an int or an (h, w) pair, got {osz}")
    oh = x[2] if osz[0] is None else int(osz[0])
    ow = x[3] if osz[1] is None else int(osz[1])
    if oh <= 0 or ow <= 0:
        raise _err(op, f"output_size must be positive, got {(oh, ow)}")
    if x[2] <= 0 or x[3] <= 0:
        raise _err(op, f"input spatial size must be positive, got {x[2:]}")
    return (x[0], x[1], oh, ow)


def adaptive_avg_pool2d_shape(x: Shape, output_size: Union[int, Sequence[Optional[int]]]) -> Shape:
    """Output shape of ``adaptive_avg_pool2d``."""
    return adaptive_pool2d_shape(x, output_size, "adaptive_avg_pool2d")


def adaptive_max_pool2d_shape(x: Shape, output_size: Union[int, Sequence[Optional[int]]]) -> Shape:
    """Output shape of ``adaptive_max_pool2d``."""
    return adaptive_pool2d_shape(x, output_size, "adaptive_max_pool2d")


# --------------------------------------------------------------------------- data movement

def concat_shape(shapes: Sequence[Shape], axis: int = 0) -> Shape:
    """Output shape of ``concat`` along ``axis``; all other dims must agree."""
    op = "concat"
    shapes = [_shape(s) for s in shapes]
    if not shapes:
        raise _err(op, "needs at least one input")
    r = len(shapes[0])
    if r == 0:
        raise _err(op, "cannot concatenate rank-0 tensors")
    ax = normalize_axis(axis, r, op)
    for i, s in enumerate(shapes[1:], 1):
        if len(s) != r:
            raise _err(op, f"input {i} has rank {len(s)} but input 0 has rank {r}")
        for j in range(r):
            if j != ax and s[j] != shapes[0][j]:
                raise _err(op, f"input {i} has shape {s}, incompatible with input 0 {shapes[0]} "
                               f"in dimension {j} (concat axis {ax})")
    out = list(shapes[0])
    out[ax] = sum(s[ax] for s in shapes)
    return tuple(out)


def reshape_shape(x: Shape, shape: Sequence[int]) -> Shape:
    """Output shape of ``reshape``; at most one ``-1`` is inferred."""
    op = "reshape"
    x, tgt = _shape(x), _shape(shape)
    n = math.prod(x)
    neg = [i for i, d in enumerate(tgt) if d == -1]
    if len(neg) > 1:
        raise _err(op, f"only one dimension can be -1, got {tgt}")
    if any(d < -1 for d in tgt):
        raise _err(op, f"invalid target shape {tgt}")
    if neg:
        rest = math.prod(d for d in tgt if d != -1)
        if rest == 0 or n % rest:
            raise _err(op, f"cannot reshape {x} ({n} elements) into {tgt}")
        tgt = tgt[:neg[0]] + (n // rest,) + tgt[neg[0] + 1:]
    if math.prod(tgt) != n:
        raise _err(op, f"cannot reshape {x} ({n} elements) into {tgt} ({math.prod(tgt)} elements)")
    return tgt


def flatten_shape(x: Shape, start_dim: int = 0, end_dim: int = -1) -> Shape:
    """Output shape of ``flatten`` (torch.flatten semantics; rank 0 gives (1,))."""
    op = "flatten"
    x = _shape(x)
    if not x:
        normalize_axis(start_dim, 0, op, "start_dim")
        normalize_axis(end_dim, 0, op, "end_dim")
        return (1,)
    s = normalize_axis(start_dim, len(x), op, "start_dim")
    e = normalize_axis(end_dim, len(x), op, "end_dim")
    if s > e:
        raise _err(op, f"start_dim {start_dim} comes after end_dim {end_dim} for rank {len(x)}")
    return x[:s] + (math.prod(x[s:e + 1]),) + x[e + 1:]


def permute_shape(x: Shape, perm: Sequence[int]) -> Shape:
    """Output shape of ``permute``/``transpose`` with a full permutation ``perm``."""
    op = "permute"
    x = _shape(x)
    if len(perm) != len(x):
        raise _err(op, f"perm {tuple(perm)} has {len(perm)} entries but the input has rank {len(x)}")
    p = [normalize_axis(int(a), len(x), op, "perm entry") for a in perm]
    if sorted(p) != list(range(len(x))):
        raise _err(op, f"perm {tuple(perm)} is not a permutation of the {len(x)} dimensions")
    return tuple(x[i] for i in p)


def transpose_shape(x: Shape, dim0: int, dim1: int) -> Shape:
    """Output shape of ``transpose`` swapping two dimensions (torch.transpose)."""
    x = _shape(x)
    a = normalize_axis(dim0, len(x), "transpose", "dim0")
    b = normalize_axis(dim1, len(x), "transpose", "dim1")
    out = list(x)
    out[a], out[b] = out[b], out[a]
    return tuple(out)


_PAD_MODES = ("constant", "reflect", "replicate")


def pad_shape(x: Shape, pads: Sequence[Sequence[int]], mode: str = "constant", value: float = 0.0) -> Shape:
    """Output shape of ``pad``; ``pads`` is one ``(before, after)`` pair per dimension.

    Fewer pairs than dimensions pad the trailing dimensions. Negative amounts crop
    (constant mode only).
    """
    op = "pad"
    x = _shape(x)
    if mode not in _PAD_MODES:
        raise _err(op, f"mode must be one of {_PAD_MODES}, got {mode!r}")
    pp = [tuple(int(v) for v in p) for p in pads]
    if any(len(p) != 2 for p in pp):
        raise _err(op, f"pads must be (before, after) pairs, got {pads}")
    if len(pp) > len(x):
        raise _err(op, f"{len(pp)} pad pairs given for a rank-{len(x)} input")
    pp = [(0, 0)] * (len(x) - len(pp)) + pp
    out = []
    for i, (d, (lo, hi)) in enumerate(zip(x, pp)):
        if mode != "constant":
            if lo < 0 or hi < 0:
                raise _err(op, f"negative padding is only allowed in constant mode (dimension {i})")
            if mode == "reflect" and (lo >= d or hi >= d) and (lo or hi):
                raise _err(op, f"reflect padding ({lo}, {hi}) must be smaller than dimension {i} of size {d}")
            if mode == "replicate" and d == 0 and (lo or hi):
                raise _err(op, f"replicate padding of the empty dimension {i}")
        n = d + lo + hi
        if n < 0:
            raise _err(op, f"padding ({lo}, {hi}) makes dimension {i} of size {d} negative")
        out.append(n)
    return tuple(out)


_UPSAMPLE_MODES = {"nearest": None, "nearest-exact": None, "linear": 3, "bilinear": 4, "trilinear": 5}


def upsample_output_size(x: Shape, size: Union[None, int, Sequence[int]] = None,
                         scale_factor: Union[None, float, Sequence[float]] = None,
                         op: str = "upsample") -> tuple[tuple[int, ...], Optional[tuple[float, ...]]]:
    """Spatial output size and per-axis scale factors (or None) as in ``F.interpolate``."""
    x = _shape(x)
    nsp = len(x) - 2
    if nsp < 1:
        raise _err(op, f"input must be at least rank 3 (N, C, spatial...), got shape {x}")
    if (size is None) == (scale_factor is None):
        raise _err(op, "exactly one of size and scale_factor must be given")
    if size is not None:
        sz = (int(size),) * nsp if isinstance(size, numbers.Integral) else tuple(int(v) for v in size)
        if len(sz) != nsp:
            raise _err(op, f"size {sz} must have {nsp} entries for input shape {x}")
        if any(v <= 0 for v in sz):
            raise _err(op, f"size must be positive, got {sz}")
        return sz, None
    sf = (float(scale_factor),) * nsp if isinstance(scale_factor, numbers.Real) \
        else tuple(float(v) for v in scale_factor)  # type: ignore[union-attr]
    if len(sf) != nsp:
        raise _err(op, f"scale_factor {sf} must have {nsp} entries for input shape {x}")
    if any(not v > 0 for v in sf):
        raise _err(op, f"scale_factor must be positive, got {sf}")
    sz = tuple(int(math.floor(d * f)) for d, f in zip(x[2:], sf))
    if any(v <= 0 for v in sz):
        raise _err(op, f"scale_factor {sf} gives an empty output {sz} for input shape {x}")
    return sz, sf


def upsample_shape(x: Shape, size: Union[None, int, Sequence[int]] = None,
                   scale_factor: Union[None, float, Sequence[float]] = None, mode: str = "nearest",
                   align_corners: Optional[bool] = None, recompute_scale_factor: bool = False) -> Shape:
    """Output shape of ``upsample`` (F.interpolate: nearest, nearest-exact, (bi/tri)linear)."""
    op = "upsample"
    x = _shape(x)
    if mode not in _UPSAMPLE_MODES:
        raise _err(op, f"mode must be one of {tuple(_UPSAMPLE_MODES)}, got {mode!r}")
    rank = _UPSAMPLE_MODES[mode]
    if rank is not None and len(x) != rank:
        raise _err(op, f"mode {mode!r} needs a rank-{rank} input, got shape {x}")
    if align_corners and mode.startswith("nearest"):
        raise _err(op, f"align_corners is only valid for linear modes, not {mode!r}")
    sz, _ = upsample_output_size(x, size, scale_factor, op)
    return x[:2] + sz


def softmax_shape(x: Shape, axis: int = -1) -> Shape:
    """Output shape of ``softmax`` along ``axis``."""
    x = _shape(x)
    normalize_axis(axis, len(x), "softmax")
    return x


def mean_shape(x: Shape, axes: Union[None, int, Sequence[int]] = None, keepdim: bool = False) -> Shape:
    """Output shape of ``mean`` over ``axes`` (None: all axes)."""
    op = "mean"
    x = _shape(x)
    if axes is None:
        ax = set(range(len(x)))
    else:
        seq = (int(axes),) if isinstance(axes, numbers.Integral) else tuple(axes)
        ax = {normalize_axis(int(a), len(x), op) for a in seq}
        if len(ax) != len(seq):
            raise _err(op, f"axes {seq} contain a repeated dimension")
    if keepdim:
        return tuple(1 if i in ax else d for i, d in enumerate(x))
    return tuple(d for i, d in enumerate(x) if i not in ax)


def reduce_shape(x: Shape, axes: Union[None, int, Sequence[int]] = None, keepdim: bool = False,
                 op: str = "mean") -> Shape:
    """Output shape of a reduction (mean, sum, amax, amin) over ``axes`` (None: all axes)."""
    x = _shape(x)
    if axes is None:
        ax = set(range(len(x)))
    else:
        seq = (int(axes),) if isinstance(axes, numbers.Integral) else tuple(axes)
        ax = {normalize_axis(int(a), len(x), op) for a in seq}
        if len(ax) != len(seq):
            raise _err(op, f"axes {seq} contain a repeated dimension")
    if op in ("amax", "amin") and any(x[i] == 0 for i in ax):
        raise _err(op, f"cannot reduce the empty dimension of shape {x}")
    if keepdim:
        return tuple(1 if i in ax else d for i, d in enumerate(x))
    return tuple(d for i, d in enumerate(x) if i not in ax)


def _reduction(op: str):
    def f(x: Shape, axes: Union[None, int, Sequence[int]] = None, keepdim: bool = False) -> Shape:
        return reduce_shape(x, axes, keepdim, op)
    f.__name__ = f"{op}_shape"
    f.__doc__ = f"Output shape of ``{op}`` over ``axes`` (None: all axes)."
    return f


sum_shape = _reduction("sum")
amax_shape = _reduction("amax")
amin_shape = _reduction("amin")


def slice_bounds(x: Shape, axes: Sequence[int], starts: Sequence[int], ends: Sequence[int],
                 steps: Optional[Sequence[int]] = None) -> list[slice]:
    """One Python ``slice`` per dimension of ``x`` for a strided slice (Python/numpy index rules:
    negative starts/ends count from the end, out-of-range bounds are clamped; steps are positive)."""
    op = "slice"
    x = _shape(x)
    steps = (1,) * len(axes) if steps is None else tuple(steps)
    if not len(axes) == len(starts) == len(ends) == len(steps):
        raise _err(op, f"axes, starts, ends and steps must have the same length, got {len(axes)}, {len(starts)}, "
                       f"{len(ends)} and {len(steps)}")
    out = [slice(None)] * len(x)
    seen = set()
    for a, s, e, st in zip(axes, starts, ends, steps):
        ax = normalize_axis(int(a), len(x), op)
        if ax in seen:
            raise _err(op, f"axis {a} is sliced twice")
        seen.add(ax)
        if st < 1:
            raise _err(op, f"steps must be positive, got {tuple(steps)}")
        out[ax] = slice(int(s), int(e), int(st))
    return out


def slice_shape(x: Shape, axes: Sequence[int], starts: Sequence[int], ends: Sequence[int],
                steps: Optional[Sequence[int]] = None) -> Shape:
    """Output shape of a strided ``slice`` (``x[..., start:end:step, ...]`` on the listed axes)."""
    x = _shape(x)
    sl = slice_bounds(x, axes, starts, ends, steps)
    return tuple(len(range(*s.indices(d))) for s, d in zip(sl, x))


def expand_shape(x: Shape, like: Optional[Shape] = None, shape: Sequence[int] = ()) -> Shape:
    """Output shape of ``expand`` (torch ``Tensor.expand``): -1 keeps the input's dimension, 0 takes the
    ``like`` operand's dimension at the same position (a batch known only at run time); new dimensions
    may be added in front; only size-1 dimensions grow."""
    op = "expand"
    x, tgt = _shape(x), _shape(shape)
    if len(tgt) < len(x):
        raise _err(op, f"the target shape {tgt} has fewer dimensions than the input {x}")
    lead = len(tgt) - len(x)
    out = []
    for i, d in enumerate(tgt):
        src = x[i - lead] if i >= lead else None
        if d == 0:
            if like is None or i >= len(like):
                raise _err(op, f"shape entry 0 at position {i} needs a 'like' operand of rank > {i}")
            d = like[i]
        elif d == -1:
            if src is None:
                raise _err(op, f"-1 at position {i} is not allowed for a new leading dimension")
            d = src
        elif d < 0:
            raise _err(op, f"invalid target shape {tgt}")
        if src is not None and src != d and src != 1:
            raise _err(op, f"cannot expand {x} to {tgt}: dimension {i} has size {src}, not 1")
        out.append(int(d))
    return tuple(out)


def tile_shape(x: Shape, repeats: Sequence[int]) -> Shape:
    """Output shape of ``tile`` (torch ``Tensor.repeat``): at least one repeat per dimension."""
    op = "tile"
    x, r = _shape(x), _shape(repeats)
    if len(r) < len(x):
        raise _err(op, f"repeats {r} must have at least as many entries as the input has dimensions ({len(x)})")
    _nonneg(op, "repeats", r)
    x = (1,) * (len(r) - len(x)) + x
    return tuple(d * k for d, k in zip(x, r))


def layer_norm_shape(x: Shape, weight: Shape, bias: Shape, normalized_shape: Sequence[int] = (),
                     eps: float = 1e-5) -> Shape:
    """Output shape of ``layer_norm`` over the trailing ``normalized_shape`` dimensions."""
    op = "layer_norm"
    x, ns = _shape(x), _shape(normalized_shape)
    if not ns or len(ns) > len(x) or x[len(x) - len(ns):] != ns:
        raise _err(op, f"normalized_shape {ns} must be the trailing dimensions of the input {x}")
    for name, s in (("weight", weight), ("bias", bias)):
        if _shape(s) != ns:
            raise _err(op, f"{name} must have shape {ns}, got {_shape(s)}")
    return x


def group_norm_shape(x: Shape, weight: Shape, bias: Shape, groups: int = 1, eps: float = 1e-5) -> Shape:
    """Output shape of ``group_norm``: x (N, C, ...), C divisible by ``groups``, weight/bias (C,)."""
    op = "group_norm"
    x = _shape(x)
    if len(x) < 2:
        raise _err(op, f"input must be at least rank 2 (N, C, ...), got shape {x}")
    if groups < 1 or x[1] % groups:
        raise _err(op, f"groups={groups} must be positive and divide the {x[1]} channels")
    for name, s in (("weight", weight), ("bias", bias)):
        if _shape(s) != (x[1],):
            raise _err(op, f"{name} must have shape ({x[1]},), got {_shape(s)}")
    return x


def roll_shape(x: Shape, shifts: Sequence[int] = (), axes: Sequence[int] = ()) -> Shape:
    """Output shape of ``roll`` (torch.roll with explicit dims): the input's."""
    op = "roll"
    x = _shape(x)
    if len(shifts) != len(axes) or not axes:
        raise _err(op, f"shifts {tuple(shifts)} and axes {tuple(axes)} must be non-empty and of the same length")
    for a in axes:
        normalize_axis(int(a), len(x), op)
    return x


def normalize_shape(x: Shape, axis: int = 1, p: float = 2.0, eps: float = 1e-12) -> Shape:
    """Output shape of ``normalize`` (F.normalize along ``axis``): the input's."""
    x = _shape(x)
    normalize_axis(axis, len(x), "normalize")
    if not p > 0:
        raise _err("normalize", f"p must be positive, got {p}")
    if not eps >= 0:
        raise _err("normalize", f"eps must be non-negative, got {eps}")
    return x


def _binary(op: str):
    def f(a: Shape, b: Shape) -> Shape:
        return broadcast_shape(a, b, op)
    f.__name__ = f"{op}_shape"
    f.__doc__ = f"Output shape of elementwise ``{op}`` (numpy broadcasting)."
    return f


add_shape = _binary("add")
sub_shape = _binary("sub")
mul_shape = _binary("mul")
div_shape = _binary("div")
__all__ += ["add_shape", "sub_shape", "mul_shape", "div_shape", "sum_shape", "amax_shape", "amin_shape"]

#: op name -> shape function (operand shapes positionally, attributes as keywords).
SHAPE_FUNCTIONS = {
    "conv2d": conv2d_shape,
    "conv_transpose2d": conv_transpose2d_shape,
    "linear": linear_shape,
    "matmul": matmul_shape,
    "batch_norm": batch_norm_shape,
    "relu": unary_shape, "relu6": unary_shape, "leaky_relu": unary_shape,
    "hardsigmoid": unary_shape, "hardswish": unary_shape, "sigmoid": unary_shape,
    "tanh": unary_shape, "silu": unary_shape, "identity": unary_shape,
    "prelu": prelu_shape,
    "max_pool2d": max_pool2d_shape,
    "avg_pool2d": avg_pool2d_shape,
    "adaptive_avg_pool2d": adaptive_avg_pool2d_shape,
    "adaptive_max_pool2d": adaptive_max_pool2d_shape,
    "add": add_shape, "sub": sub_shape, "mul": mul_shape, "div": div_shape,
    "concat": concat_shape,
    "reshape": reshape_shape,
    "flatten": flatten_shape,
    "permute": permute_shape,
    "transpose": transpose_shape,
    "pad": pad_shape,
    "upsample": upsample_shape,
    "softmax": softmax_shape,
    "mean": mean_shape,
    "sum": sum_shape, "amax": amax_shape, "amin": amin_shape,
    "slice": slice_shape, "expand": expand_shape, "tile": tile_shape,
    "layer_norm": layer_norm_shape, "group_norm": group_norm_shape,
    "gelu": unary_shape, "mish": unary_shape, "roll": roll_shape, "normalize": normalize_shape,
}
