"""Graph-level passes: fold-bn (function preserved, batch norms gone, resource keys), infer-shapes,
remove-dropout, and running them through the pass manager."""

from __future__ import annotations

import numpy as np
import pytest

from _lib.graph import GraphBuilder, conv_bn_model, every_op_model, rand
from fixflow.dialects import graph as G
from fixflow.ir import TensorType, f32, parse_module, print_module
from fixflow.ir.diagnostics import FixflowError, VerifyError
from fixflow.ir.interpreter import run_module
from fixflow.ir.passes import PassManager
from fixflow.passes.graph.transforms import fold_batch_norm, infer_shapes, remove_dropout


def _input_for(m, batch, seed=0):
    shape = m.functions()[0].args[0].type.shape
    return rand(np.random.default_rng(seed), batch, *shape[1:])


def _run_pipeline(m, pipeline):
    PassManager.parse(pipeline).run(m)
    m.verify()


@pytest.mark.parametrize("kind,with_bias,groups", [
    ("conv2d", False, 1), ("conv2d", True, 1), ("conv2d", False, 2),
    ("conv_transpose2d", True, 1), ("conv_transpose2d", False, 2),
    ("linear", True, 1), ("linear", False, 1),
])
def test_fold_bn_preserves_function(kind, with_bias, groups):
    m = conv_bn_model(seed=7, kind=kind, with_bias=with_bias, groups=groups)
    x = _input_for(m, 3)
    before = run_module(m, [x])[0]
    _run_pipeline(m, "builtin.module(fold-bn)")
    assert not list(m.walk(G.BatchNormOp))
    conv = next(op for op in m.walk() if isinstance(op, (G.Conv2dOp, G.ConvTranspose2dOp, G.LinearOp)))
    assert conv.bias is not None
    assert conv.output.name_hint in ("conv", "deconv", "fc")
    np.testing.assert_allclose(run_module(m, [x])[0], before, rtol=1e-5, atol=1e-5)
    # the old weights and the BN parameters are gone; new weights are keyed like the originals
    keys = sorted(op.attributes["value"].key for op in m.walk(G.ConstantOp))
    wkey = {"conv2d": "conv.weight", "conv_transpose2d": "deconv.weight", "linear": "fc.weight"}[kind]
    bkey = "conv.bias" if with_bias else wkey[:-len("weight")] + "bias"
    assert keys == sorted([wkey + "_bnfold", bkey + "_bnfold"])
    text = print_module(m)
    assert print_module(parse_module(text)) == text


def test_fold_bn_in_every_op_model_and_batches():
    m, _, torch_fn = every_op_model(seed=11)
    x = _input_for(m, 5, seed=2)
    fold_batch_norm(m)
    m.verify()
    assert not list(m.walk(G.BatchNormOp))
    for y, r in zip(run_module(m, [x]), torch_fn(x)):
        np.testing.assert_allclose(y, r, rtol=1e-4, atol=1e-5)


def test_fold_bn_skips_conv_with_other_users_and_non_constant_params():
    rng = np.random.default_rng(0)
    g = GraphBuilder([(1, 2, 4, 4), (2,)])
    x, mean = g.args
    w = g.w("w", rand(rng, 2, 2, 1, 1))
    params = [g.w(k, rand(rng, 2, positive=True)) for k in ("var", "gamma", "beta", "mean")]
    c1 = g.op(G.Conv2dOp, x, w)
    bn1 = g.op(G.BatchNormOp, c1, params[3], *params[:3])
    c2 = g.op(G.Conv2dOp, x, w)
    bn2 = g.op(G.BatchNormOp, c2, mean, *params[:3])  # mean is a function argument
    m = g.ret(g.op(G.AddOp, bn1, c1), bn2)
    assert fold_batch_norm(m) == 0
    assert len(list(m.walk(G.BatchNormOp))) == 2
    with pytest.raises(FixflowError, match="fold-bn: this graph.batch_norm cannot be folded"):
        _run_pipeline(m, "fold-bn{strict=true}")


def test_fold_bn_resource_keys_stay_unique():
    g = GraphBuilder([(1, 4, 6, 6)])
    rng = np.random.default_rng(0)
    w = g.w("conv.weight", rand(rng, 6, 4, 3, 3))
    taken = g.w("conv.weight_bnfold", rand(rng, 6, 1, 1))  # an unrelated constant already has the key
    bn = [g.w(f"p{i}", rand(rng, 6, positive=True)) for i in range(4)]
    y = g.op(G.Conv2dOp, g.args[0], w, padding=(1, 1, 1, 1))
    m = g.ret(g.op(G.AddOp, g.op(G.BatchNormOp, y, *bn), taken))
    fold_batch_norm(m)
    keys = {op.attributes["value"].key for op in m.walk(G.ConstantOp)}
    assert keys == {"conv.weight_bnfold", "conv.weight_bnfold2", "conv.bias_bnfold"}
    text = print_module(m)
    assert print_module(parse_module(text)) == text


def test_remove_dropout_and_identity():
    g = GraphBuilder([(2, 3)])
    y = g.op(G.DropoutOp, g.args[0], p=0.1)
    y = g.op(G.IdentityOp, g.op(G.ReluOp, y))
    m = g.ret(g.op(G.DropoutOp, y))
    x = rand(np.random.default_rng(0), 2, 3)
    before = run_module(m, [x])[0]
    assert remove_dropout(m) == 3
    m.verify()
    assert [op.name for op in m.walk()][2:] == ["graph.relu", "func.return"]
    np.testing.assert_array_equal(run_module(m, [x])[0], before)


def test_remove_dropout_pass_and_canonicalize():
    for pipeline in ("remove-dropout", "canonicalize"):
        m, _, _ = every_op_model()
        _run_pipeline(m, f"builtin.module({pipeline})")
        assert not list(m.walk((G.DropoutOp, G.IdentityOp)))


def test_infer_shapes_after_changing_batch():
    m, _, _ = every_op_model()
    _run_pipeline(m, "builtin.module(infer-shapes{batch=4})")
    func = m.functions()[0]
    assert func.args[0].type == TensorType((4, 3, 8, 8), f32)
    assert [t.shape for t in func.function_type.results] == [(4, 5), (4, 1), (4, 4, 6, 6)]
    conv = next(m.walk(G.Conv2dOp))
    assert conv.output.type.shape == (4, 4, 8, 8)
    out = run_module(m, [_input_for(m, 4)])
    assert out[0].shape == (4, 5)


def test_infer_shapes_after_changing_an_input_type():
    g = GraphBuilder([(1, 3, 8, 8)])
    w = g.w("w", rand(np.random.default_rng(0), 4, 3, 3, 3))
    y = g.op(G.Conv2dOp, g.args[0], w, stride=(2, 2))
    m = g.ret(g.op(G.FlattenOp, g.op(G.ReluOp, y)))
    arg = m.functions()[0].args[0]
    arg.type = TensorType((2, 3, 16, 10), f32)
    infer_shapes(m)
    m.verify()
    assert m.functions()[0].function_type.results[0].shape == (2, 4 * 7 * 4)
    arg.type = TensorType((2, 5, 16, 10), f32)
    with pytest.raises(VerifyError, match="conv2d: input has 5 channels but weight expects 3"):
        infer_shapes(m)
