"""The fix dialect: every op's integer `evaluate` against its float `simulate` (bit for bit),
verification messages, DPU constraints and the text round trip."""

from __future__ import annotations

import numpy as np
import pytest

from fixflow.dialects.builtin import FuncOp, ModuleOp, ReturnOp
from fixflow.dialects.fix import ops as Q
from fixflow.dialects.fix.ops import dpu_violation
from fixflow.runtime.fix_executor import run_quantized, simulate_quantized
from fixflow.dialects.fix.numerics import dequantize
from fixflow.ir import parse_module, print_module
from fixflow.ir.diagnostics import VerifyError
from fixflow.ir.types import TensorType, f32


def _args(*types):
    f = FuncOp.create_function("f", list(types), [])
    return f.body.args


def _verify(op):
    """Verify `op` inside the block that defines its operands."""
    if op.parent is None:
        op.operands[0].block.append(op)
    op.verify()


def _rand_ints(rng, shape, lo=-128, hi=127):
    return rng.integers(lo, hi + 1, size=shape).astype(np.int8)


def _check(op, ints, float_inputs=None):
    """evaluate(ints) dequantized == simulate(dequantized ints), bit for bit."""
    _verify(op)
    got = op.evaluate(list(ints))[0]
    if float_inputs is None:
        float_inputs = [dequantize(q, v.type.element_type.fix_pos) if Q.fixed_type(v.type) else q
                        for q, v in zip(ints, op.operands)]
    sim = op.simulate(list(float_inputs))[0]
    ft = Q.fixed_type(op.results[0].type)
    want = dequantize(got, ft.fix_pos) if ft is not None else got
    assert sim.dtype == np.float32
    np.testing.assert_array_equal(sim, want)
    assert got.shape == tuple(op.results[0].type.shape)
    return got


FT = Q.fix_tensor


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("act", ["NONE", "RELU", "LEAKYRELU", "RELU6"])
def test_conv2d_evaluate_equals_simulate(seed, act):
    rng = np.random.default_rng(seed)
    x, w, b = _args(FT((2, 7, 6, 5), 8, 4), FT((4, 3, 2, 5), 8, 7), FT((4,), 8, 6))
    op = Q.Conv2dOp.build(x, w, b, kernel=(3, 2), stride=(2, 1), pad=(1, 0, 1, 1), dilation=(1, 2),
                          nonlinear=act, result_types=[FT((2, 3, 6, 4), 8, 5)])
    _check(op, [_rand_ints(rng, (2, 7, 6, 5)), _rand_ints(rng, (4, 3, 2, 5)), _rand_ints(rng, (4,))])


def test_conv2d_without_bias_and_negative_shift_bias():
    rng = np.random.default_rng(5)
    x, w, b = _args(FT((1, 5, 5, 3), 8, 2), FT((2, 3, 3, 3), 8, 3), FT((2,), 8, 9))   # shift_bias = -4
    op = Q.Conv2dOp.build(x, w, b, kernel=(3, 3), pad=(1, 1, 1, 1), result_types=[FT((1, 5, 5, 2), 8, 0)])
    _check(op, [_rand_ints(rng, (1, 5, 5, 3)), _rand_ints(rng, (2, 3, 3, 3)), _rand_ints(rng, (2,))])
    op2 = Q.Conv2dOp.build(x, w, None, kernel=(3, 3), result_types=[FT((1, 3, 3, 2), 8, 0)])
    _check(op2, [_rand_ints(rng, (1, 5, 5, 3)), _rand_ints(rng, (2, 3, 3, 3))])


@pytest.mark.parametrize("seed", range(3))
def test_depthwise_transposed_dense(seed):
    rng = np.random.default_rng(seed)
    x, w, b = _args(FT((2, 6, 6, 4), 8, 5), FT((1, 3, 3, 4), 8, 6), FT((4,), 8, 7))
    dw = Q.DepthwiseConv2dOp.build(x, w, b, kernel=(3, 3), stride=(2, 2), pad=(1, 1, 1, 1), nonlinear="RELU6",
                                   result_types=[FT((2, 3, 3, 4), 8, 4)])
    _check(dw, [_rand_ints(rng, (2, 6, 6, 4)), _rand_ints(rng, (1, 3, 3, 4)), _rand_ints(rng, (4,))])

    x, w, b = _args(FT((1, 3, 4, 2), 8, 4), FT((3, 3, 3, 2), 8, 6), FT((3,), 8, 5))
    tc = Q.ConvTranspose2dOp.build(x, w, b, kernel=(3, 3), stride=(2, 2), pad=(1, 1, 1, 1),
                                    output_padding=(1, 0), nonlinear="RELU", result_types=[FT((1, 6, 7, 3), 8, 3)])
    _check(tc, [_rand_ints(rng, (1, 3, 4, 2)), _rand_ints(rng, (3, 3, 3, 2)), _rand_ints(rng, (3,))])

    x, w, b = _args(FT((5, 40), 8, 3), FT((7, 40), 8, 8), FT((7,), 8, 6))
    de = Q.DenseOp.build(x, w, b, nonlinear="LEAKYRELU", result_types=[FT((5, 7), 8, 2)])
    _check(de, [_rand_ints(rng, (5, 40)), _rand_ints(rng, (7, 40)), _rand_ints(rng, (7,))])


@pytest.mark.parametrize("ptype,kernel,stride,pad,fps", [
    ("MAX", (2, 2), (2, 2), (0, 0, 0, 0), (4, 4)),
    ("MAX", (3, 3), (2, 2), (1, 1, 1, 1), (4, 3)),
    ("AVG", (3, 3), (1, 1), (1, 1, 1, 1), (5, 5)),
    ("AVG", (7, 7), (7, 7), (0, 0, 0, 0), (4, 6)),
    ("AVG", (2, 3), (2, 3), (0, 0, 0, 0), (3, 4)),
])
def test_pool(ptype, kernel, stride, pad, fps):
    rng = np.random.default_rng(1)
    (x,) = _args(FT((2, 7, 9, 3), 8, fps[0]))
    oh = (7 + pad[0] + pad[1] - kernel[0]) // stride[0] + 1
    ow = (9 + pad[2] + pad[3] - kernel[1]) // stride[1] + 1
    op = Q.PoolOp.build(x, type=ptype, kernel=kernel, stride=stride, pad=pad,
                        result_types=[FT((2, oh, ow, 3), 8, fps[1])])
    _check(op, [_rand_ints(rng, (2, 7, 9, 3))])


@pytest.mark.parametrize("typ,fps,act", [("ADD", (4, 6), "NONE"), ("ADD", (5, 5, 3), "RELU"), ("ADD", (2,), "RELU"),
                                         ("MUL", (4, 6), "NONE"), ("MUL", (7, 7), "RELU")])
def test_eltwise(typ, fps, act):
    rng = np.random.default_rng(2)
    xs = _args(*[FT((2, 4, 4, 3), 8, f) for f in fps])
    op = Q.EltwiseOp.build(list(xs), type=typ, nonlinear=act, result_types=[FT((2, 4, 4, 3), 8, 5)])
    _check(op, [_rand_ints(rng, (2, 4, 4, 3)) for _ in fps])


def test_eltwise_broadcast():
    rng = np.random.default_rng(3)
    a, b = _args(FT((2, 4, 4, 3), 8, 4), FT((1, 1, 1, 3), 8, 6))
    op = Q.EltwiseOp.build([a, b], type="MUL", result_types=[FT((2, 4, 4, 3), 8, 4)])
    _check(op, [_rand_ints(rng, (2, 4, 4, 3)), _rand_ints(rng, (1, 1, 1, 3))])


def test_concat_reshape_transpose_upsample_pad():
    rng = np.random.default_rng(4)
    a, b = _args(FT((2, 3, 3, 2), 8, 5), FT((2, 3, 3, 4), 8, 3))
    _check(Q.ConcatOp.build([a, b], axis=3, result_types=[FT((2, 3, 3, 6), 8, 4)]),
           [_rand_ints(rng, (2, 3, 3, 2)), _rand_ints(rng, (2, 3, 3, 4))])
    (x,) = _args(FT((2, 3, 4, 5), 8, 3))
    xi = _rand_ints(rng, (2, 3, 4, 5))
    assert _check(Q.ReshapeOp.build(x, shape=(0, -1)), [xi]).shape == (2, 60)
    np.testing.assert_array_equal(_check(Q.TransposeOp.build(x, perm=(0, 3, 1, 2)), [xi]), xi.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(_check(Q.UpsampleOp.build(x, scale=(2, 3)), [xi]),
                                  xi.repeat(2, axis=1).repeat(3, axis=2))
    for mode, value in (("constant", -7), ("reflect", 0), ("edge", 0), ("symmetric", 0)):
        y = _check(Q.PadOp.build(x, pad=(1, 2, 2, 1), mode=mode, value=value), [xi])
        assert y.shape == (2, 6, 7, 5)
        np.testing.assert_array_equal(y[:, 1:4, 2:6], xi)
    assert _check(Q.PadOp.build(x, pad=(1, 0, 0, 0), value=-7), [xi])[0, 0, 0, 0] == -7


@pytest.mark.parametrize("fps", [(4, 7), (0, 7), (6, 8)])
def test_hard_sigmoid_swish(fps):
    rng = np.random.default_rng(5)
    (x,) = _args(FT((3, 4, 4, 2), 8, fps[0]))
    xi = _rand_ints(rng, (3, 4, 4, 2))
    _check(Q.HardSigmoidOp.build(x, result_types=[FT((3, 4, 4, 2), 8, fps[1])]), [xi])
    _check(Q.HardSwishOp.build(x, result_types=[FT((3, 4, 4, 2), 8, min(fps[0] + 7, fps[0] + 1))]), [xi])


def test_interface_ops():
    rng = np.random.default_rng(6)
    (xf,) = _args(TensorType((2, 3, 4, 5), f32))
    xv = (rng.standard_normal((2, 3, 4, 5)) * 3).astype(np.float32)
    xv[0, 0, 0, :3] = [2.5 / 16, -2.5 / 16, 100.0]   # ties and saturation
    data = Q.DataOp.build(xf, layout="NCHW", result_types=[FT((2, 4, 5, 3), 8, 4)])
    q = _check(data, [xv], [xv])
    assert q[0, 0, 0, 0] == 3 and q[0, 0, 1, 0] == -3 and q[0, 0, 2, 0] == 127   # std_round, saturation
    fq = Q.FixFixOp.build(xf, layout="NCHW", result_types=[FT((2, 4, 5, 3), 8, 4)])
    assert _check(fq, [xv], [xv])[0, 0, 1, 0] == -2   # half_up
    (xq,) = _args(FT((2, 4, 5, 3), 8, 4))
    _check(Q.FixFixOp.build(xq, result_types=[FT((2, 4, 5, 3), 8, 2)]), [q])
    back = Q.FloatOp.build(xq, layout="NCHW")
    assert back.results[0].type == TensorType((2, 3, 4, 5), f32)
    np.testing.assert_array_equal(back.evaluate([q])[0], dequantize(q, 4).transpose(0, 3, 1, 2))


def _module_with(build):
    """A module whose function quantizes input x [1, 6, 6, 3] (fp 5) and returns `build(x)` dequantized."""
    m = ModuleOp.empty()
    f = FuncOp.create_function("main", [TensorType((1, 6, 6, 3), f32)], [])
    m.body.append(f)
    x = Q.DataOp.build(f.args[0], result_types=[FT((1, 6, 6, 3), 8, 5)])
    f.body.append(x)
    ops = build(x.results[0])
    for o in ops:
        f.body.append(o)
    fl = Q.FloatOp.build(ops[-1].results[0])
    f.body.append(fl)
    f.body.append(ReturnOp.build([fl.results[0]]))
    f.update_function_type()
    return m


def _conv_module(x):
    rng = np.random.default_rng(0)
    w = Q.ConstOp.from_ints(_rand_ints(rng, (4, 3, 3, 3)), 8, 7, key="w")
    b = Q.ConstOp.from_ints(_rand_ints(rng, (4,)), 8, 6)
    c = Q.Conv2dOp.build(x, w.results[0], b.results[0], kernel=(3, 3), pad=(1, 1, 1, 1), nonlinear="RELU",
                         result_types=[FT((1, 6, 6, 4), 8, 4)])
    p = Q.PoolOp.build(c.results[0], type="AVG", kernel=(6, 6), stride=(6, 6), is_global=True,
                       result_types=[FT((1, 1, 1, 4), 8, 6)])
    return [w, b, c, p]


def test_module_text_round_trip_and_execution():
    m = _module_with(_conv_module)
    m.verify()
    text = print_module(m)
    m2 = parse_module(text)
    assert print_module(m2) == text
    x = np.random.default_rng(1).standard_normal((3, 6, 6, 3)).astype(np.float32)
    a = run_quantized(m2, [x])[0]
    np.testing.assert_array_equal(a, simulate_quantized(m2, [x])[0])
    np.testing.assert_array_equal(a, run_quantized(m, [x])[0])
    assert a.shape == (3, 1, 1, 4) and a.dtype == np.float32


def test_verify_messages():
    x, w, b = _args(FT((1, 5, 5, 3), 8, 2), FT((2, 3, 3, 3), 8, 3), FT((2,), 8, 4))
    op = Q.Conv2dOp.build(x, w, b, kernel=(3, 3), result_types=[FT((1, 3, 3, 2), 8, 7)])   # shift_cut = -2
    with pytest.raises(VerifyError, match="shift_cut.*legalize-fix"):
        _verify(op)
    op = Q.Conv2dOp.build(x, w, b, kernel=(3, 3), result_types=[FT((1, 5, 5, 2), 8, 1)])
    with pytest.raises(VerifyError, match="result shape"):
        _verify(op)
    op = Q.Conv2dOp.build(x, w, b, kernel=(2, 3), result_types=[FT((1, 4, 3, 2), 8, 1)])
    with pytest.raises(VerifyError, match="kernel"):
        _verify(op)
    (a,) = _args(FT((1, 4, 4, 3), 8, -2))
    with pytest.raises(VerifyError, match="hard sigmoid needs input fix_pos >= 0"):
        _verify(Q.HardSigmoidOp.build(a, result_types=[FT((1, 4, 4, 3), 8, 7)]))
    with pytest.raises(VerifyError, match="must equal the input format"):
        _verify(Q.ReshapeOp.build(a, shape=(0, -1), result_types=[FT((1, 48), 8, 3)]))
    a, b = _args(FT((1, 4), 8, 0), FT((1, 4), 8, 16))
    with pytest.raises(VerifyError, match="shift_read"):
        _verify(Q.EltwiseOp.build([a, b], result_types=[FT((1, 4), 8, 0)]))


def test_dpu_constraints():
    x, w = _args(FT((1, 40, 40, 3), 8, 2), FT((2, 17, 3, 3), 8, 3))
    op = Q.Conv2dOp.build(x, w, None, kernel=(17, 3), result_types=[FT((1, 24, 38, 2), 8, 1)])
    assert "kernel (17, 3) is outside the DPU range [1, 16]" in dpu_violation(op)
    x, w = _args(FT((1, 40, 40, 3), 8, 2), FT((2, 3, 3, 3), 8, 3))
    op = Q.Conv2dOp.build(x, w, None, kernel=(3, 3), stride=(9, 1), result_types=[FT((1, 5, 38, 2), 8, 1)])
    assert "stride" in dpu_violation(op)
    op = Q.Conv2dOp.build(x, w, None, kernel=(3, 3), result_types=[FT((1, 38, 38, 2), 8, 1)])
    assert dpu_violation(op) is None
    x, w = _args(FT((1, 40, 40, 3), 8, 2), FT((2, 16, 16, 3000), 8, 3))
    (y,) = _args(FT((1, 300, 300, 3), 8, 2))
    assert "ceil(ic / 16)" in dpu_violation(Q.Conv2dOp.build(
        *_args(FT((1, 20, 20, 3000), 8, 2), FT((2, 16, 16, 3000), 8, 3)), None, kernel=(16, 16),
        result_types=[FT((1, 5, 5, 2), 8, 1)]))
    assert dpu_violation(Q.PoolOp.build(y, kernel=(300, 300), stride=(1, 1),
                                        result_types=[FT((1, 1, 1, 3), 8, 2)])) is not None
