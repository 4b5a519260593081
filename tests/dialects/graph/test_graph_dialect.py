"""The graph dialect's op wiring: attributes reach the kernels, inferred types match evaluate, verify
messages, text round trip (also through mlir-opt), folding and canonicalization."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _lib.graph import GraphBuilder, every_op_model, rand, transformer_op_model
from fixflow.dialects import graph as G
from fixflow.ir import Block, TensorType, VerifyError, f32, parse_module, print_module
from fixflow.ir.diagnostics import FixflowError
from fixflow.ir.interpreter import run_module

RNG = np.random.default_rng(1234)


def _pool_pad(x, p, value=0.0):
    # (top, bottom, left, right) -> F.pad order
    return F.pad(x, (p[2], p[3], p[0], p[1]), value=value)


CASES = [
    ("conv2d", G.Conv2dOp, [(2, 4, 9, 8), (6, 2, 3, 2), (6,)],
     dict(stride=(2, 1), padding=(1, 0, 2, 1), dilation=(1, 2), groups=2),
     lambda x, w, b: F.conv2d(F.pad(x, (2, 1, 1, 0)), w, b, stride=(2, 1), dilation=(1, 2), groups=2)),
    ("conv2d_nobias", G.Conv2dOp, [(1, 3, 7, 7), (5, 3, 3, 3)], dict(padding=(1, 1, 1, 1)),
     lambda x, w: F.conv2d(x, w, padding=1)),
    ("conv_transpose2d", G.ConvTranspose2dOp, [(2, 4, 5, 5), (4, 3, 3, 3), (6,)],
     dict(stride=(2, 2), padding=(1, 1, 1, 1), output_padding=(1, 1), groups=2),
     lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, groups=2)),
    ("linear", G.LinearOp, [(3, 7), (4, 7), (4,)], {}, F.linear),
    ("matmul", G.MatmulOp, [(2, 3, 4), (4, 5)], {}, torch.matmul),
    ("batch_norm", G.BatchNormOp, [(2, 3, 4, 4), (3,), "pos3", (3,), (3,)], dict(eps=1e-2),
     lambda x, m, v, g, b: F.batch_norm(x, m, v, g, b, False, 0.0, 1e-2)),
    ("relu", G.ReluOp, [(2, 3, 4, 4)], {}, F.relu),
    ("relu6", G.Relu6Op, [(2, 3, 4, 4)], {}, F.relu6),
    ("sigmoid", G.SigmoidOp, [(2, 3, 4)], {}, torch.sigmoid),
    ("tanh", G.TanhOp, [(2, 3, 4)], {}, torch.tanh),
    ("silu", G.SiluOp, [(2, 3, 4)], {}, F.silu),
    ("hardsigmoid", G.HardSigmoidOp, [(2, 3, 4)], {}, F.hardsigmoid),
    ("hardswish", G.HardSwishOp, [(2, 3, 4)], {}, F.hardswish),
    ("leaky_relu", G.LeakyReluOp, [(2, 3, 4)], dict(alpha=0.3), lambda x: F.leaky_relu(x, 0.3)),
    ("prelu", G.PreluOp, [(2, 3, 4, 4), (3,)], {}, F.prelu),
    ("max_pool2d", G.MaxPool2dOp, [(2, 3, 9, 8)],
     dict(kernel=(3, 2), stride=(2, 2), padding=(1, 1, 1, 1), dilation=(1, 2), ceil_mode=True),
     lambda x: F.max_pool2d(x, (3, 2), (2, 2), (1, 1), (1, 2), ceil_mode=True)),
    ("max_pool2d_asym", G.MaxPool2dOp, [(1, 2, 6, 6)], dict(kernel=(2, 2), stride=(2, 2), padding=(0, 1, 0, 1)),
     lambda x: F.max_pool2d(_pool_pad(x, (0, 1, 0, 1), float("-inf")), 2, 2)),
    ("avg_pool2d", G.AvgPool2dOp, [(2, 3, 9, 8)],
     dict(kernel=(3, 3), stride=(2, 1), padding=(1, 1, 1, 1), ceil_mode=True, count_include_pad=False),
     lambda x: F.avg_pool2d(x, 3, (2, 1), 1, ceil_mode=True, count_include_pad=False)),
    ("avg_pool2d_divisor", G.AvgPool2dOp, [(1, 2, 6, 6)], dict(kernel=(2, 2), divisor_override=3),
     lambda x: F.avg_pool2d(x, 2, divisor_override=3)),
    ("adaptive_avg_pool2d", G.AdaptiveAvgPool2dOp, [(2, 3, 7, 9)], dict(output_size=(3, 4)),
     lambda x: F.adaptive_avg_pool2d(x, (3, 4))),
    ("add", G.AddOp, [(2, 3, 4, 4), (3, 1, 1)], {}, torch.add),
    ("sub", G.SubOp, [(2, 3, 4, 4), (1, 3, 4, 4)], {}, torch.sub),
    ("mul", G.MulOp, [(2, 3, 4, 4), (4,)], {}, torch.mul),
    ("reshape", G.ReshapeOp, [(2, 3, 4, 4)], dict(shape=(0, 4, -1)), lambda x: x.reshape(x.shape[0], 4, -1)),
    ("flatten", G.FlattenOp, [(2, 3, 4, 4)], dict(start_dim=1, end_dim=2), lambda x: torch.flatten(x, 1, 2)),
    ("transpose", G.TransposeOp, [(2, 3, 4, 5)], dict(perm=(0, 2, 3, 1)), lambda x: x.permute(0, 2, 3, 1)),
    ("pad_constant", G.PadOp, [(2, 3, 4, 5)], dict(pads=(1, 2, 0, 3), value=1.5),
     lambda x: F.pad(x, (1, 2, 0, 3), value=1.5)),
    ("pad_reflect", G.PadOp, [(2, 3, 4, 5)], dict(pads=(1, 2, 3, 1), mode="reflect"),
     lambda x: F.pad(x, (1, 2, 3, 1), mode="reflect")),
    ("pad_replicate", G.PadOp, [(2, 3, 4, 5)], dict(pads=(2, 2, 1, 0), mode="replicate"),
     lambda x: F.pad(x, (2, 2, 1, 0), mode="replicate")),
    ("upsample_nearest", G.UpsampleOp, [(2, 3, 4, 5)], dict(size=(8, 15)),
     lambda x: F.interpolate(x, size=(8, 15), mode="nearest")),
    ("upsample_scale", G.UpsampleOp, [(2, 3, 5, 5)], dict(size=(7, 7), scale_factor=(1.5, 1.5), mode="bilinear"),
     lambda x: F.interpolate(x, scale_factor=1.5, mode="bilinear", align_corners=False)),
    ("upsample_bilinear_ac", G.UpsampleOp, [(2, 3, 4, 5)], dict(size=(7, 9), mode="bilinear", align_corners=True),
     lambda x: F.interpolate(x, size=(7, 9), mode="bilinear", align_corners=True)),
    ("softmax", G.SoftmaxOp, [(2, 3, 4)], dict(axis=1), lambda x: torch.softmax(x, 1)),
    ("mean", G.MeanOp, [(2, 3, 4, 5)], dict(axes=(2, 3), keepdim=True), lambda x: x.mean((2, 3), keepdim=True)),
    ("mean_nokeep", G.MeanOp, [(2, 3, 4, 5)], dict(axes=(-1,)), lambda x: x.mean(-1)),
    ("identity", G.IdentityOp, [(2, 3)], {}, lambda x: x),
    ("dropout", G.DropoutOp, [(2, 3)], dict(p=0.3), lambda x: x),
]


def _arrays(specs):
    out = []
    for s in specs:
        if s == "pos3":
            out.append(rand(RNG, 3, positive=True))
        else:
            out.append(rand(RNG, *s))
    return out


def _build(cls, arrays, attrs, variadic=False):
    block = Block([TensorType(a.shape, f32) for a in arrays])
    operands = [list(block.args)] if variadic else list(block.args)
    return cls.build(*operands, **attrs)


@pytest.mark.parametrize("name,cls,specs,attrs,ref", CASES, ids=[c[0] for c in CASES])
def test_op_matches_torch(name, cls, specs, attrs, ref):
    arrays = _arrays(specs)
    op = _build(cls, arrays, attrs)
    op.verify_()
    (y,) = op.evaluate(arrays)
    expected = ref(*[torch.from_numpy(a) for a in arrays]).numpy()
    assert op.output.type.shape == y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_concat_variadic():
    arrays = [rand(RNG, 2, 3, 4), rand(RNG, 2, 1, 4), rand(RNG, 2, 5, 4)]
    op = _build(G.ConcatOp, arrays, dict(axis=1), variadic=True)
    op.verify_()
    assert op.output.type.shape == (2, 9, 4)
    np.testing.assert_array_equal(op.evaluate(arrays)[0], np.concatenate(arrays, 1))


def test_evaluate_any_batch():
    """Attributes never depend on the batch: ops typed at batch 1 run at batch 3."""
    op = _build(G.ReshapeOp, [rand(RNG, 1, 2, 3, 3)], dict(shape=(0, -1)))
    assert op.evaluate([rand(RNG, 3, 2, 3, 3)])[0].shape == (3, 18)
    op = _build(G.UpsampleOp, [rand(RNG, 1, 2, 3, 3)], dict(size=(6, 6)))
    assert op.evaluate([rand(RNG, 3, 2, 3, 3)])[0].shape == (3, 2, 6, 6)


def _verify_message(cls, shapes, attrs, variadic=False):
    block = Block([TensorType(s, f32) for s in shapes])
    operands = [list(block.args)] if variadic else list(block.args)
    with pytest.raises(VerifyError) as info:
        cls.build(*operands, **attrs)
    return info.value.bare_message


@pytest.mark.parametrize("cls,shapes,attrs,message", [
    (G.Conv2dOp, [(1, 3, 8, 8), (8, 4, 3, 3)], {}, "conv2d: input has 3 channels but weight expects 4 (groups=1)"),
    (G.Conv2dOp, [(1, 3, 8, 8), (8, 3, 3, 3)], dict(stride=(1,)), "conv2d: stride must have 2 values (h, w)"),
    (G.Conv2dOp, [(1, 3, 8, 8), (8, 3, 3, 3)], dict(padding=(1, 1)), "padding must have 4 values"),
    (G.Conv2dOp, [(1, 3, 8, 8), (8, 3, 3, 3), (4,)], {}, "conv2d: bias must have shape (8,)"),
    (G.LinearOp, [(1, 10), (4, 12)], {}, "linear: input has 10 features but weight expects 12"),
    (G.AddOp, [(1, 3, 4), (1, 5, 4)], {}, "add: shapes (1, 3, 4) and (1, 5, 4) are not broadcastable"),
    (G.TransposeOp, [(1, 3, 4)], dict(perm=(0, 1, 1)), "transpose: perm (0, 1, 1) is not a permutation"),
    (G.ReshapeOp, [(2, 3, 4)], dict(shape=(0, 5)), "reshape: cannot reshape (2, 3, 4)"),
    (G.ReshapeOp, [(2, 3)], dict(shape=(0, 0, 0)), "reshape: shape entry 0 at position 2"),
    (G.BatchNormOp, [(1, 3, 4, 4), (3,), (3,), (4,), (3,)], {}, "batch_norm: gamma must have shape (3,)"),
    (G.MaxPool2dOp, [(1, 3, 4, 4)], dict(kernel=(2, 2), padding=(2, 2, 0, 0)), "max_pool2d: padding"),
    (G.UpsampleOp, [(1, 3, 4, 4)], dict(size=(9, 8), scale_factor=(2.0, 2.0)),
     "upsample: size (9, 8) does not match"),
    (G.UpsampleOp, [(1, 3, 4, 4)], dict(size=(8, 8), align_corners=True), "align_corners is only valid"),
    (G.DropoutOp, [(1, 3)], dict(p=1.5), "dropout: p must be in [0, 1]"),
    (G.PadOp, [(1, 3)], dict(pads=(1, 1, 1)), "pad: invalid F.pad padding"),
    (G.MeanOp, [(1, 3)], dict(axes=(2,)), "mean: axis 2 is out of range"),
])
def test_verify_messages(cls, shapes, attrs, message):
    assert message in _verify_message(cls, shapes, attrs)


def test_verify_result_type_and_enum():
    text = ('"builtin.module"() ({\n  "func.func"() ({\n  ^bb0(%x: tensor<1x3x4x4xf32>):\n'
            '    %p = "graph.max_pool2d"(%x) {kernel = array<i64: 2, 2>} : (tensor<1x3x4x4xf32>) -> tensor<1x3x3x3xf32>\n'
            '    "func.return"(%p) : (tensor<1x3x3x3xf32>) -> ()\n'
            '  }) {sym_name = "main", function_type = (tensor<1x3x4x4xf32>) -> tensor<1x3x3x3xf32>} : () -> ()\n'
            '}) : () -> ()\n')
    with pytest.raises(VerifyError, match="does not match the inferred type tensor<1x3x2x2xf32>") as info:
        parse_module(text, "bad.mlir").verify()
    assert info.value.render().startswith("bad.mlir:4:")  # the location of the offending op
    m, _, _ = every_op_model()
    bad = print_module(m).replace('mode = "reflect"', 'mode = "wrap"')
    with pytest.raises(VerifyError, match="expected one of constant, reflect, replicate"):
        parse_module(bad).verify()


def test_verify_float_operands():
    block = Block([TensorType((1, 3), f32)])
    from fixflow.ir import i8
    other = Block([TensorType((1, 3), i8)])
    op = G.AddOp.build(block.args[0], other.args[0], result_types=[TensorType((1, 3), f32)])
    with pytest.raises(VerifyError, match="operand #1 must be a float tensor"):
        op.verify_()


def test_round_trip_every_op():
    models = [every_op_model()[0], transformer_op_model()[0]]
    names = {op.name for m in models for op in m.walk()}
    assert set(G.graph.ops) <= names, set(G.graph.ops) - names
    for m in models:
        text = print_module(m)
        m2 = parse_module(text)
        m2.verify()
        assert print_module(m2) == text
        assert all(type(op).__module__ != "fixflow.ir.core" for op in m2.walk())  # registered classes


@pytest.mark.skipif(shutil.which("mlir-opt-22") is None, reason="mlir-opt-22 not installed")
def test_mlir_opt_accepts_text(tmp_path):
    for name, (m, _, _) in (("every", every_op_model()), ("transformer", transformer_op_model())):
        path = tmp_path / f"{name}.mlir"
        path.write_text(print_module(m))
        proc = subprocess.run(["mlir-opt-22", "--allow-unregistered-dialect", str(path)], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert "graph.conv_transpose2d" in proc.stdout or "graph.slice" in proc.stdout


# ---- folding and canonicalization -------------------------------------------------------------
def _canonicalize(module):
    from fixflow.ir.passes import get_pass
    get_pass("canonicalize")().run(module)
    module.verify()


def test_constant_folding_through_evaluate():
    g = GraphBuilder([(1, 4)])
    a = g.w("a", np.arange(4, dtype=np.float32).reshape(1, 4), dense=True)
    b = g.w("b", np.full((4,), 2.0, np.float32), dense=True)
    s = g.op(G.MulOp, a, b)
    s = g.op(G.ReluOp, g.op(G.SubOp, s, b))
    y = g.op(G.AddOp, g.args[0], s)
    m = g.ret(y)
    _canonicalize(m)
    assert [op.name for op in m.walk()][2:] == ["graph.constant", "graph.add", "func.return"]
    const = next(m.walk(G.ConstantOp))
    np.testing.assert_array_equal(const.value, [[0, 0, 2, 4]])


def test_no_folding_of_large_results():
    g = GraphBuilder([(1, 4)])
    big = g.w("big", np.ones((100, 100), np.float32))
    r = g.op(G.ReluOp, big)
    m = g.ret(g.op(G.ReshapeOp, r, shape=(-1,)))
    _canonicalize(m)
    assert any(isinstance(op, G.ReluOp) for op in m.walk())


def test_canonicalize_removes_identity_dropout_and_merges_reshapes():
    g = GraphBuilder([(1, 2, 3, 4)])
    x = g.args[0]
    y = g.op(G.DropoutOp, x)
    y = g.op(G.IdentityOp, y)
    y = g.op(G.FlattenOp, y, start_dim=2)          # (1, 2, 12)
    y = g.op(G.ReshapeOp, y, shape=(0, 0, 3, 4))   # (1, 2, 3, 4)
    y = g.op(G.FlattenOp, y, start_dim=1)          # (1, 24)
    y = g.op(G.ReshapeOp, y, shape=(0, -1))        # no-op
    t = g.op(G.TransposeOp, y, perm=(1, 0))
    t = g.op(G.TransposeOp, t, perm=(1, 0))
    m = g.ret(g.op(G.ReluOp, t))
    xs = rand(RNG, 3, 2, 3, 4)
    before = run_module(m, [xs])[0]
    _canonicalize(m)
    names = [op.name for op in m.walk()][2:]
    assert names == ["graph.reshape", "graph.relu", "func.return"]
    assert next(m.walk(G.ReshapeOp)).shape == (0, -1)
    np.testing.assert_array_equal(run_module(m, [xs])[0], before)


def test_reshape_merge_keeps_batch_semantics():
    # reshape(reshape(x, (2, -1)), (0, 6)): the outer 0 copies the *intermediate* dim, not x's
    g = GraphBuilder([(4, 3)])
    y = g.op(G.ReshapeOp, g.args[0], shape=(2, -1))
    m = g.ret(g.op(G.ReshapeOp, y, shape=(0, 3, 2)))
    _canonicalize(m)
    assert len(list(m.walk(G.ReshapeOp))) == 2
    g = GraphBuilder([(4, 3)])
    y = g.op(G.ReshapeOp, g.args[0], shape=(0, 3, 1))
    m = g.ret(g.op(G.ReshapeOp, y, shape=(0, 1, 3)))
    _canonicalize(m)
    assert [op.shape for op in m.walk(G.ReshapeOp)] == [(0, 1, 3)]


def test_ops_are_pure_and_constant_like():
    from fixflow.ir.opdef import ConstantLike, Pure
    assert all(Pure in cls.TRAITS for cls in G.graph.ops.values())
    assert ConstantLike in G.ConstantOp.TRAITS


def test_constant_missing_resource_is_a_user_error():
    text = ('"builtin.module"() ({\n  "func.func"() ({\n    %0 = "graph.constant"() {value = dense_resource<w> : '
            'tensor<2xf32>} : () -> tensor<2xf32>\n    "func.return"(%0) : (tensor<2xf32>) -> ()\n  }) '
            '{sym_name = "main", function_type = () -> tensor<2xf32>} : () -> ()\n}) : () -> ()\n')
    m = parse_module(text, "nores.mlir")
    with pytest.raises(FixflowError, match="dense_resource<w> has no data"):
        m.verify()
