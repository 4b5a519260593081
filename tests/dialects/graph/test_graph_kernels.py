"""graph dialect numpy kernels and shape functions vs. torch.nn.functional."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from fixflow.dialects.graph import kernels as K  # noqa: E402
from fixflow.dialects.graph import shapes as S  # noqa: E402

RNG = np.random.default_rng(0)


def rand(*shape: int, lo: float = -1.0, hi: float = 1.0) -> np.ndarray:
    return RNG.uniform(lo, hi, size=shape).astype(np.float32)


def t(a: np.ndarray) -> "torch.Tensor":
    return torch.from_numpy(np.ascontiguousarray(a))


def check(got: np.ndarray, ref: "torch.Tensor", rtol: float = 1e-5) -> None:
    ref_np = ref.detach().numpy()
    assert got.shape == ref_np.shape, (got.shape, ref_np.shape)
    assert got.dtype == np.float32
    scale = max(1.0, float(np.abs(ref_np).max(initial=0.0)))
    np.testing.assert_allclose(got, ref_np, rtol=rtol, atol=rtol * scale)


def sym4(p):
    """torch (ph, pw) symmetric padding -> (top, bottom, left, right)."""
    ph, pw = (p, p) if isinstance(p, int) else p
    return (ph, ph, pw, pw)


# ----------------------------------------------------------------------------- conv2d

CONV_CASES = [
    # n, c, h, w, o, k, stride, pad(h,w), dilation, groups
    (1, 3, 9, 9, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (2, 4, 8, 11, 6, (3, 2), (2, 1), (1, 0), (1, 1), 1),
    (2, 6, 10, 10, 4, (3, 3), (1, 2), (2, 1), (2, 1), 2),
    (1, 8, 12, 9, 8, (3, 3), (1, 1), (1, 1), (1, 1), 8),       # depthwise
    (2, 4, 11, 12, 8, (5, 3), (2, 2), (2, 1), (1, 2), 4),      # depthwise, multiplier 2
    (2, 6, 9, 10, 6, (3, 3), (1, 1), (2, 1), (2, 1), 6),       # depthwise, dilated
    (2, 3, 8, 8, 6, (3, 2), (1, 1), (1, 1), (1, 1), 3),        # depthwise, multiplier 2, unit stride
    (1, 4, 9, 9, 4, (3, 3), (2, 1), (1, 1), (1, 1), 4),        # depthwise, mixed strides
    (3, 5, 7, 7, 7, (1, 1), (1, 1), (0, 0), (1, 1), 1),        # pointwise
    (2, 5, 9, 8, 3, (1, 1), (2, 3), (0, 0), (1, 1), 1),        # strided pointwise
    (1, 3, 16, 16, 4, (7, 7), (2, 2), (3, 3), (1, 1), 1),      # resnet stem
    (1, 2, 5, 5, 3, (5, 5), (1, 1), (0, 0), (1, 1), 1),        # kernel == input
]


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d(case, bias):
    n, c, h, w, o, k, s, p, d, g = case
    x, wt = rand(n, c, h, w), rand(o, c // g, *k)
    b = rand(o) if bias else None
    ref = F.conv2d(t(x), t(wt), None if b is None else t(b), s, p, d, g)
    got = K.conv2d(x, wt, b, stride=s, padding=sym4(p), dilation=d, groups=g)
    check(got, ref)
    assert S.conv2d_shape(x.shape, wt.shape, None if b is None else b.shape, s, sym4(p), d, g) == tuple(ref.shape)


@pytest.mark.parametrize("pads", [(0, 1, 0, 1), (2, 0, 1, 3), (1, 2, 0, 0), (0, 0, 2, 1)])
@pytest.mark.parametrize("groups", [1, 4])
def test_conv2d_asymmetric_padding(pads, groups):
    x, wt, b = rand(2, 4, 9, 10), rand(8, 4 // groups, 3, 3), rand(8)
    top, bottom, left, right = pads
    ref = F.conv2d(F.pad(t(x), (left, right, top, bottom)), t(wt), t(b), (2, 1), 0, 1, groups)
    check(K.conv2d(x, wt, b, stride=(2, 1), padding=pads, groups=groups), ref)


def test_conv2d_errors():
    with pytest.raises(S.ShapeError, match=r"conv2d: input has 3 channels but weight expects 4 \(groups=1\)"):
        K.conv2d(rand(1, 3, 5, 5), rand(2, 4, 3, 3))
    with pytest.raises(ValueError, match="conv2d: .*not divisible by groups=2"):
        S.conv2d_shape((1, 3, 5, 5), (2, 1, 3, 3), groups=2)
    with pytest.raises(ValueError, match="conv2d: bias must have shape"):
        S.conv2d_shape((1, 2, 5, 5), (4, 2, 3, 3), (3,))
    with pytest.raises(ValueError, match="conv2d: kernel"):
        S.conv2d_shape((1, 2, 2, 2), (4, 2, 3, 3))
    with pytest.raises(ValueError, match="conv2d: input must be rank 4"):
        S.conv2d_shape((2, 5, 5), (4, 2, 3, 3))
    with pytest.raises(ValueError, match="conv2d: padding"):
        S.conv2d_shape((1, 2, 5, 5), (4, 2, 3, 3), padding=(1, 2, 3))


def test_conv2d_large_batch_chunks(monkeypatch):
    monkeypatch.setattr(K, "_COLS_BUDGET", 1000)
    x, wt, b = rand(5, 3, 8, 8), rand(4, 3, 3, 3), rand(4)
    check(K.conv2d(x, wt, b, padding=1), F.conv2d(t(x), t(wt), t(b), padding=1))


# ----------------------------------------------------------------------------- conv_transpose2d

TCONV_CASES = [
    # n, c, h, w, o_per_group, k, stride, pad(h,w), output_padding, dilation, groups
    (1, 4, 5, 5, 3, (3, 3), (2, 2), (1, 1), (1, 1), (1, 1), 1),
    (2, 4, 4, 6, 2, (4, 3), (2, 3), (1, 0), (0, 2), (1, 1), 2),
    (2, 6, 3, 4, 1, (3, 3), (1, 1), (0, 0), (0, 0), (2, 2), 3),
    (1, 4, 5, 4, 2, (2, 2), (3, 2), (0, 1), (2, 1), (1, 1), 4),
    (1, 2, 3, 3, 2, (3, 3), (1, 2), (2, 1), (0, 1), (2, 1), 1),
]


@pytest.mark.parametrize("case", TCONV_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv_transpose2d(case, bias):
    n, c, h, w, og, k, s, p, op, d, g = case
    x, wt = rand(n, c, h, w), rand(c, og, *k)
    b = rand(og * g) if bias else None
    ref = F.conv_transpose2d(t(x), t(wt), None if b is None else t(b), s, p, op, g, d)
    got = K.conv_transpose2d(x, wt, b, stride=s, padding=p, output_padding=op, dilation=d, groups=g)
    check(got, ref)
    got4 = K.conv_transpose2d(x, wt, b, stride=s, padding=sym4(p), output_padding=op, dilation=d, groups=g)
    check(got4, ref)
    assert S.conv_transpose2d_shape(x.shape, wt.shape, None, s, p, op, d, g) == tuple(ref.shape)


def test_conv_transpose2d_asymmetric_padding():
    x, wt = rand(1, 2, 4, 5), rand(2, 3, 3, 3)
    full = F.conv_transpose2d(t(x), t(wt), stride=2, output_padding=1)
    top, bottom, left, right = 1, 0, 0, 2
    ref = full[:, :, top:full.shape[2] - bottom, left:full.shape[3] - right]
    check(K.conv_transpose2d(x, wt, stride=2, padding=(top, bottom, left, right), output_padding=1), ref)


def test_conv_transpose2d_errors():
    with pytest.raises(ValueError, match="conv_transpose2d: output_padding"):
        S.conv_transpose2d_shape((1, 2, 4, 4), (2, 3, 3, 3), stride=2, output_padding=2)
    with pytest.raises(ValueError, match="conv_transpose2d: input has 3 channels but weight expects 2"):
        S.conv_transpose2d_shape((1, 3, 4, 4), (2, 3, 3, 3))


# ----------------------------------------------------------------------------- linear / matmul / bn

@pytest.mark.parametrize("xshape", [(5,), (3, 5), (2, 3, 5)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(xshape, bias):
    x, wt = rand(*xshape), rand(4, 5)
    b = rand(4) if bias else None
    ref = F.linear(t(x), t(wt), None if b is None else t(b))
    check(K.linear(x, wt, b), ref)
    assert S.linear_shape(x.shape, wt.shape, None if b is None else b.shape) == tuple(ref.shape)
    with pytest.raises(ValueError, match="linear: input has 5 features but weight expects 6"):
        K.linear(x, rand(4, 6))


@pytest.mark.parametrize("a,b", [((4,), (4,)), ((4,), (4, 3)), ((2, 4), (4,)), ((2, 4), (4, 3)),
                                 ((5, 2, 4), (4, 3)), ((5, 1, 2, 4), (3, 4, 6)), ((4,), (2, 4, 3)),
                                 ((2, 3, 4), (4,))])
def test_matmul(a, b):
    x, y = rand(*a), rand(*b)
    ref = torch.matmul(t(x), t(y))
    got = K.matmul(x, y)
    check(np.asarray(got, dtype=np.float32), ref)
    assert S.matmul_shape(a, b) == tuple(ref.shape)


def test_matmul_errors():
    with pytest.raises(ValueError, match="matmul: inner dimensions"):
        S.matmul_shape((2, 3), (4, 5))
    with pytest.raises(ValueError, match="matmul: .*not broadcastable"):
        S.matmul_shape((2, 2, 3), (3, 3, 5))


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 5), (2, 3, 4, 5)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm(shape, affine):
    c = shape[1]
    x, mean, var = rand(*shape), rand(c), rand(c, lo=0.1, hi=2.0)
    gamma, beta = (rand(c), rand(c)) if affine else (None, None)
    ref = F.batch_norm(t(x), t(mean), t(var), None if gamma is None else t(gamma),
                       None if beta is None else t(beta), training=False, eps=1e-3)
    check(K.batch_norm(x, mean, var, gamma, beta, eps=1e-3), ref)
    with pytest.raises(ValueError, match=r"batch_norm: mean must have shape \(3,\)"):
        S.batch_norm_shape((2, 3, 4), (4,), (3,))


# ----------------------------------------------------------------------------- activations

UNARY = [
    (K.relu, F.relu, {}), (K.relu6, F.relu6, {}),
    (K.leaky_relu, F.leaky_relu, {"negative_slope": 0.1}), (K.leaky_relu, F.leaky_relu, {}),
    (K.hardsigmoid, F.hardsigmoid, {}), (K.hardswish, F.hardswish, {}),
    (K.sigmoid, torch.sigmoid, {}), (K.tanh, torch.tanh, {}), (K.silu, F.silu, {}),
    (K.identity, lambda v: v, {}),
]


@pytest.mark.parametrize("ours,theirs,kw", UNARY, ids=lambda v: getattr(v, "__name__", None))
def test_unary(ours, theirs, kw):
    x = rand(2, 3, 4, 5, lo=-8, hi=8)
    x[0, 0, 0, :5] = [-3.0, 3.0, 0.0, 6.0, -100.0]
    x[0, 0, 1, :3] = [100.0, -6.0, 1e-3]
    ref = theirs(t(x), **kw)
    check(ours(x, **kw), ref)
    assert S.unary_shape(x.shape, **kw) == tuple(ref.shape)


def test_sigmoid_extremes_relative():
    x = np.array([-100.0, -30.0, -5.0, 0.0, 5.0, 30.0, 100.0], np.float32)
    got, ref = K.sigmoid(x), torch.sigmoid(t(x)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-38)  # torch flushes denormals
    assert np.isfinite(K.silu(x)).all()


@pytest.mark.parametrize("shape,wn", [((2, 3, 4, 4), 3), ((2, 3, 4, 4), 1), ((4, 6), 6), ((5,), 1), ((2, 3, 5), 3)])
def test_prelu(shape, wn):
    x, wt = rand(*shape), rand(wn)
    ref = F.prelu(t(x), t(wt))
    check(K.prelu(x, wt), ref)
    assert S.prelu_shape(shape, (wn,)) == tuple(ref.shape)


def test_prelu_error():
    with pytest.raises(ValueError, match=r"prelu: weight must have 1 element or one per channel \(3\)"):
        K.prelu(rand(2, 3, 4), rand(4))


# ----------------------------------------------------------------------------- pooling

MAXPOOL_CASES = [
    # h, w, kernel, stride, pad(h,w), dilation, ceil
    (8, 8, (2, 2), (2, 2), (0, 0), (1, 1), False),
    (9, 9, (3, 3), (2, 2), (1, 1), (1, 1), False),   # resnet
    (9, 9, (3, 3), (2, 2), (1, 1), (1, 1), True),
    (10, 7, (3, 2), (2, 2), (1, 1), (1, 1), True),   # ceil: last window would start in padding
    (6, 6, (2, 2), (3, 3), (1, 1), (1, 1), True),
    (5, 5, (2, 2), (2, 2), (1, 1), (1, 1), True),    # the dropped-window rule
    (11, 10, (3, 3), (2, 3), (1, 1), (2, 1), True),
    (12, 9, (2, 3), (1, 2), (0, 1), (3, 2), False),
    (7, 7, (3, 3), None, (0, 0), (1, 1), True),
]


@pytest.mark.parametrize("case", MAXPOOL_CASES)
def test_max_pool2d(case):
    h, w, k, s, p, d, ceil = case
    x = rand(2, 3, h, w)
    ref = F.max_pool2d(t(x), k, s, p, d, ceil_mode=ceil)
    check(K.max_pool2d(x, k, s, sym4(p), d, ceil), ref)
    assert S.max_pool2d_shape(x.shape, k, s, sym4(p), d, ceil) == tuple(ref.shape)


@pytest.mark.parametrize("pads", [(0, 1, 0, 1), (1, 0, 2, 0), (1, 2, 0, 1)])
def test_max_pool2d_asymmetric(pads):
    x = rand(2, 3, 9, 8, lo=-5, hi=-1)  # all negative: -inf padding must never win
    top, bottom, left, right = pads
    ref = F.max_pool2d(F.pad(t(x), (left, right, top, bottom), value=-float("inf")), 3, 2)
    check(K.max_pool2d(x, 3, 2, pads), ref)


AVGPOOL_CASES = [
    # h, w, kernel, stride, pad(h,w), ceil, count_include_pad, divisor_override
    (8, 8, (2, 2), (2, 2), (0, 0), False, True, None),
    (9, 9, (3, 3), (2, 2), (1, 1), False, True, None),
    (9, 9, (3, 3), (2, 2), (1, 1), False, False, None),
    (9, 9, (3, 3), (2, 2), (1, 1), True, True, None),
    (10, 7, (3, 2), (2, 2), (1, 1), True, True, None),
    (10, 7, (3, 2), (2, 2), (1, 1), True, False, None),
    (6, 6, (3, 3), (2, 2), (1, 1), True, True, None),     # overhang beyond input+pad
    (5, 5, (2, 2), (2, 2), (1, 1), True, True, None),
    (5, 5, (2, 2), (2, 2), (1, 1), True, False, None),
    (7, 6, (3, 3), (3, 2), (1, 0), True, True, 5),
    (7, 6, (3, 2), (1, 2), (0, 1), False, False, 3),
    (8, 8, (4, 4), None, (2, 2), True, True, None),
]


@pytest.mark.parametrize("case", AVGPOOL_CASES)
def test_avg_pool2d(case):
    h, w, k, s, p, ceil, cip, dov = case
    x = rand(2, 3, h, w)
    ref = F.avg_pool2d(t(x), k, s, p, ceil, cip, dov)
    check(K.avg_pool2d(x, k, s, sym4(p), ceil, cip, dov), ref)
    assert S.avg_pool2d_shape(x.shape, k, s, sym4(p), ceil, cip, dov) == tuple(ref.shape)


@pytest.mark.parametrize("pads", [(0, 1, 0, 1), (1, 0, 2, 0)])
def test_avg_pool2d_asymmetric(pads):
    x = rand(2, 3, 9, 8)
    top, bottom, left, right = pads
    ref = F.avg_pool2d(F.pad(t(x), (left, right, top, bottom)), 3, 2)
    check(K.avg_pool2d(x, 3, 2, pads, count_include_pad=True), ref)


def test_pool_errors():
    with pytest.raises(ValueError, match="max_pool2d: padding .* must be smaller"):
        S.max_pool2d_shape((1, 1, 8, 8), 2, 2, 2)
    with pytest.raises(ValueError, match="avg_pool2d: input must be rank 4"):
        S.avg_pool2d_shape((1, 8, 8), 2)
    with pytest.raises(ValueError, match="max_pool2d: kernel"):
        S.max_pool2d_shape((1, 1, 2, 2), 3, 1)


@pytest.mark.parametrize("hw,out", [((8, 8), 1), ((7, 9), (3, 4)), ((10, 10), (5, 5)), ((5, 7), (5, None)),
                                    ((4, 6), (6, 8)), ((13, 11), (7, 3)),
                                    # VGG's 7x7 pool below 224x224: uneven, overlapping bins
                                    ((5, 5), 7), ((6, 6), 7), ((2, 2), 7), ((3, 6), 7)])
def test_adaptive_pools(hw, out):
    x = rand(2, 3, *hw)
    ref = F.adaptive_avg_pool2d(t(x), out)
    check(K.adaptive_avg_pool2d(x, out), ref)
    assert S.adaptive_avg_pool2d_shape(x.shape, out) == tuple(ref.shape)
    ref = F.adaptive_max_pool2d(t(x), out)
    check(K.adaptive_max_pool2d(x, out), ref)
    assert S.adaptive_max_pool2d_shape(x.shape, out) == tuple(ref.shape)


# ----------------------------------------------------------------------------- binary / movement

@pytest.mark.parametrize("a,b", [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (4,)), ((2, 1, 4), (3, 1)), ((1,), (2, 3))])
def test_binary(a, b):
    x, y = rand(*a), rand(*b, lo=0.5, hi=2.0)
    for ours, theirs, name in ((K.add, torch.add, "add"), (K.sub, torch.sub, "sub"),
                               (K.mul, torch.mul, "mul"), (K.div, torch.div, "div")):
        ref = theirs(t(x), t(y))
        check(ours(x, y), ref)
        assert S.SHAPE_FUNCTIONS[name](a, b) == tuple(ref.shape)
    with pytest.raises(ValueError, match="add: shapes .* are not broadcastable"):
        K.add(rand(2, 3), rand(4))


@pytest.mark.parametrize("axis", [0, 1, -1, 2])
def test_concat(axis):
    base = [2, 3, 4]
    xs = []
    for n in (1, 2, 3):
        s = list(base)
        s[axis] = n
        xs.append(rand(*s))
    ref = torch.cat([t(v) for v in xs], dim=axis)
    check(K.concat(xs, axis=axis), ref)
    check(K.concat(*xs, axis=axis), ref)
    assert S.concat_shape([v.shape for v in xs], axis) == tuple(ref.shape)
    with pytest.raises(ValueError, match="concat: input 1 has shape"):
        S.concat_shape([(2, 3, 4), (2, 5, 5)], 0)


@pytest.mark.parametrize("shape,new", [((2, 3, 4), (6, 4)), ((2, 3, 4), (-1,)), ((2, 3, 4), (4, -1, 2)),
                                       ((2, 3, 4), (1, 24, 1))])
def test_reshape(shape, new):
    x = rand(*shape)
    ref = torch.reshape(t(x), new)
    check(K.reshape(x, new), ref)
    assert S.reshape_shape(shape, new) == tuple(ref.shape)


def test_reshape_errors():
    with pytest.raises(ValueError, match="reshape: cannot reshape"):
        S.reshape_shape((2, 3), (4, -1))
    with pytest.raises(ValueError, match="reshape: only one dimension can be -1"):
        S.reshape_shape((2, 3), (-1, -1))
    with pytest.raises(ValueError, match="reshape: cannot reshape"):
        S.reshape_shape((2, 3), (5,))


@pytest.mark.parametrize("shape,sd,ed", [((2, 3, 4, 5), 1, -1), ((2, 3, 4, 5), 0, -1), ((2, 3, 4, 5), 1, 2),
                                         ((2, 3, 4, 5), -2, -1), ((2, 3), 1, 1), ((), 0, -1)])
def test_flatten(shape, sd, ed):
    x = rand(*shape) if shape else np.float32(RNG.uniform()).reshape(())
    ref = torch.flatten(t(x), sd, ed)
    check(K.flatten(x, sd, ed), ref)
    assert S.flatten_shape(shape, sd, ed) == tuple(ref.shape)
    with pytest.raises(ValueError, match="flatten: start_dim"):
        S.flatten_shape((2, 3, 4), 2, 1)


@pytest.mark.parametrize("perm", [(0, 2, 3, 1), (3, 2, 1, 0), (0, 1, 2, 3), (-1, 0, 1, 2)])
def test_permute(perm):
    x = rand(2, 3, 4, 5)
    ref = t(x).permute(*perm)
    check(K.permute(x, perm), ref)
    assert S.permute_shape(x.shape, perm) == tuple(ref.shape)
    with pytest.raises(ValueError, match="permute: perm .* is not a permutation"):
        S.permute_shape((2, 3, 4), (0, 0, 1))


def test_transpose():
    x = rand(2, 3, 4)
    check(K.transpose(x, 0, -1), torch.transpose(t(x), 0, -1))
    assert S.transpose_shape(x.shape, 1, 2) == (2, 4, 3)
    with pytest.raises(ValueError, match="transpose: dim1 3 is out of range"):
        S.transpose_shape((2, 3, 4), 0, 3)


@pytest.mark.parametrize("mode,tpad", [("constant", (1, 2)), ("constant", (1, 0, 2, 3)), ("constant", (-1, 2, 0, -2)),
                                       ("constant", (1, 1, 1, 1, 1, 1)), ("reflect", (1, 2, 3, 0)),
                                       ("replicate", (2, 1, 0, 3)), ("reflect", (3, 3, 1, 2))])
def test_pad(mode, tpad):
    x = rand(2, 3, 4, 5)
    kw = {"value": 1.5} if mode == "constant" else {}
    ref = F.pad(t(x), tpad, mode=mode, **kw)
    pairs = K.torch_pad_to_pairs(tpad, x.ndim)
    check(K.pad(x, pairs, mode, **kw), ref)
    assert S.pad_shape(x.shape, pairs, mode) == tuple(ref.shape)
    # fewer pairs than dims pad the trailing dims
    check(K.pad(x, pairs[-(len(tpad) // 2):], mode, **kw), ref)


def test_pad_errors():
    with pytest.raises(ValueError, match="pad: reflect padding"):
        S.pad_shape((1, 3), [(0, 0), (3, 0)], "reflect")
    with pytest.raises(ValueError, match="pad: mode must be one of"):
        S.pad_shape((1, 3), [(1, 1)], "wrap")


UPSAMPLE_CASES = [
    # hw, size, scale_factor, mode, align_corners
    ((4, 5), None, 2.0, "nearest", None),
    ((4, 5), None, (2.0, 3.0), "nearest", None),
    ((5, 7), None, 1.7, "nearest", None),
    ((3, 3), None, 2.1, "nearest", None),     # out == 2*in special case
    ((5, 4), None, 1.2, "nearest", None),     # out == in special case
    ((7, 9), None, 0.6, "nearest", None),
    ((4, 5), (7, 11), None, "nearest", None),
    ((9, 9), (4, 6), None, "nearest", None),
    ((5, 7), None, 1.7, "nearest-exact", None),
    ((4, 5), (7, 11), None, "nearest-exact", None),
    ((4, 5), None, 2.0, "bilinear", False),
    ((4, 5), None, 2.0, "bilinear", True),
    ((5, 7), None, 1.7, "bilinear", False),
    ((5, 7), None, (1.3, 2.6), "bilinear", True),
    ((5, 7), None, 0.55, "bilinear", False),
    ((4, 5), (7, 11), None, "bilinear", False),
    ((4, 5), (7, 11), None, "bilinear", True),
    ((4, 5), (1, 3), None, "bilinear", True),
    ((5, 4), None, 1.2, "bilinear", False),
]


@pytest.mark.parametrize("case", UPSAMPLE_CASES)
def test_upsample(case):
    hw, size, sf, mode, ac = case
    x = rand(2, 3, *hw)
    ref = F.interpolate(t(x), size=size, scale_factor=sf, mode=mode, align_corners=ac)
    check(K.upsample(x, size, sf, mode, ac), ref)
    assert S.upsample_shape(x.shape, size, sf, mode, ac) == tuple(ref.shape)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_upsample_recompute_scale_factor(mode):
    x = rand(1, 2, 5, 7)
    ref = F.interpolate(t(x), scale_factor=1.7, mode=mode, recompute_scale_factor=True)
    check(K.upsample(x, None, 1.7, mode, recompute_scale_factor=True), ref)


def test_upsample_other_ranks():
    x = rand(2, 3, 7)
    check(K.upsample(x, None, 1.6, "linear", False), F.interpolate(t(x), scale_factor=1.6, mode="linear"))
    check(K.upsample(x, 11, None, "nearest"), F.interpolate(t(x), size=11, mode="nearest"))
    x = rand(1, 2, 3, 4, 5)
    check(K.upsample(x, None, 1.5, "trilinear", True),
          F.interpolate(t(x), scale_factor=1.5, mode="trilinear", align_corners=True))


def test_upsample_errors():
    with pytest.raises(ValueError, match="upsample: exactly one of size and scale_factor"):
        S.upsample_shape((1, 1, 4, 4), None, None)
    with pytest.raises(ValueError, match="upsample: mode 'bilinear' needs a rank-4 input"):
        S.upsample_shape((1, 1, 4), 8, None, "bilinear")
    with pytest.raises(ValueError, match="upsample: align_corners is only valid"):
        S.upsample_shape((1, 1, 4, 4), 8, None, "nearest", True)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax(axis):
    x = rand(3, 4, 5, lo=-20, hi=20)
    ref = torch.softmax(t(x), dim=axis)
    check(K.softmax(x, axis), ref)
    assert S.softmax_shape(x.shape, axis) == tuple(ref.shape)
    with pytest.raises(ValueError, match="softmax: axis 3 is out of range"):
        S.softmax_shape(x.shape, 3)


@pytest.mark.parametrize("axes,keep", [(None, False), ((2, 3), True), ((2, 3), False), (1, False), ((-1, 0), True)])
def test_mean(axes, keep):
    x = rand(2, 3, 4, 5)
    ref = torch.mean(t(x)) if axes is None else torch.mean(t(x), dim=axes, keepdim=keep)
    got = K.mean(x, axes, keep)
    check(np.asarray(got), ref.reshape(S.mean_shape(x.shape, axes, keep)))
    if axes is not None:
        assert S.mean_shape(x.shape, axes, keep) == tuple(ref.shape)
    with pytest.raises(ValueError, match="mean: axes .* repeated"):
        S.mean_shape(x.shape, (1, -3))


def test_registries_cover_same_ops():
    assert set(K.KERNELS) == set(S.SHAPE_FUNCTIONS)


def test_non_float_input_computes_float32():
    x = np.arange(2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    got = K.conv2d(x, np.ones((1, 3, 1, 1), np.float32))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got[:, 0], x.sum(axis=1))


# ----------------------------------------------------------------------------- randomized (hypothesis)

from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.data())
def test_conv2d_random(data):
    g = data.draw(st.sampled_from([1, 2, 3]))
    cg, og = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    kh, kw = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    sh, sw, dh, dw = (data.draw(st.integers(1, 3)) for _ in range(4))
    pads = tuple(data.draw(st.integers(0, 3)) for _ in range(4))
    h, w = data.draw(st.integers(1, 10)), data.draw(st.integers(1, 10))
    n = data.draw(st.integers(1, 2))
    assume(h + pads[0] + pads[1] >= dh * (kh - 1) + 1 and w + pads[2] + pads[3] >= dw * (kw - 1) + 1)
    x, wt, b = rand(n, cg * g, h, w), rand(og * g, cg, kh, kw), rand(og * g)
    ref = F.conv2d(F.pad(t(x), (pads[2], pads[3], pads[0], pads[1])), t(wt), t(b), (sh, sw), 0, (dh, dw), g)
    check(K.conv2d(x, wt, b, (sh, sw), pads, (dh, dw), g), ref)


@FAST
@given(st.data())
def test_pools_random(data):
    kh, kw = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    sh, sw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    ph, pw = data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))
    dh, dw = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))
    h, w = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9))
    ceil, cip = data.draw(st.booleans()), data.draw(st.booleans())
    x = rand(2, 2, h, w)
    try:
        ref = F.max_pool2d(t(x), (kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil_mode=ceil)
    except RuntimeError:
        ref = None
    if ref is not None:
        check(K.max_pool2d(x, (kh, kw), (sh, sw), sym4((ph, pw)), (dh, dw), ceil), ref)
    try:
        ref = F.avg_pool2d(t(x), (kh, kw), (sh, sw), (ph, pw), ceil, cip)
    except RuntimeError:
        ref = None
    if ref is not None:
        check(K.avg_pool2d(x, (kh, kw), (sh, sw), sym4((ph, pw)), ceil, cip), ref)


@FAST
@given(st.data())
def test_upsample_random(data):
    h, w = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9))
    mode = data.draw(st.sampled_from(["nearest", "nearest-exact", "bilinear"]))
    ac = data.draw(st.booleans()) if mode == "bilinear" else None
    x = rand(1, 2, h, w)
    if data.draw(st.booleans()):
        sf = (data.draw(st.floats(0.3, 4.0)), data.draw(st.floats(0.3, 4.0)))
        assume(int(h * sf[0]) > 0 and int(w * sf[1]) > 0)
        ref = F.interpolate(t(x), scale_factor=sf, mode=mode, align_corners=ac)
        check(K.upsample(x, None, sf, mode, ac), ref)
    else:
        size = (data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12)))
        ref = F.interpolate(t(x), size=size, mode=mode, align_corners=ac)
        check(K.upsample(x, size, None, mode, ac), ref)


@FAST
@given(st.data())
def test_conv_transpose2d_random(data):
    g = data.draw(st.sampled_from([1, 2]))
    cg, og = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    kh, kw = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    sh, sw, dh, dw = (data.draw(st.integers(1, 3)) for _ in range(4))
    oph, opw = data.draw(st.integers(0, max(sh, dh) - 1)), data.draw(st.integers(0, max(sw, dw) - 1))
    ph, pw = data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))
    h, w = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
    oh = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    ow = (w - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    assume(oh > 0 and ow > 0)
    x, wt, b = rand(2, cg * g, h, w), rand(cg * g, og, kh, kw), rand(og * g)
    ref = F.conv_transpose2d(t(x), t(wt), t(b), (sh, sw), (ph, pw), (oph, opw), g, (dh, dw))
    check(K.conv_transpose2d(x, wt, b, (sh, sw), (ph, pw), (oph, opw), (dh, dw), g), ref)
