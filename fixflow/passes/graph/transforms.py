"""Graph-level passes: infer-shapes, fold-bn, remove-dropout, relu6-to-relu (and `ensure_biases`).

Each pass is a thin wrapper around a function of the same job (`infer_shapes`, `fold_batch_norm`,
`remove_dropout`, `relu6_to_relu`) that can also be called directly on a module. The local rewrites
(fold-bn, remove-dropout, relu6-to-relu) are rewrite patterns applied in one walk.
"""

from __future__ import annotations

import attrs
import numpy as np

from ...dialects.graph import (BatchNormOp, ConstantOp, Conv2dOp, ConvTranspose2dOp, DropoutOp, IdentityOp,
                              LinearOp, Relu6Op, ReluOp)
from ...ir.attributes import DenseResourceElementsAttr
from ...ir.core import IRError, Operation, Value
from ...ir.diagnostics import FixflowError
from ...ir.opdef import ConstantLike, Op, Terminator
from ...ir.passes import Pass, register_pass
from ...ir.rewrite import PatternRewriter, pattern, walk_and_apply
from ...ir.types import TensorType

#: suffix of the resource keys of weights and biases rewritten by fold-bn
FOLD_BN_SUFFIX = "_bnfold"


def _functions(module: Operation) -> list[Operation]:
    return [op for op in module.walk() if op.name == "func.func"]


# ---- infer-shapes -----------------------------------------------------------------------------
def infer_shapes(module: Operation, batch: int = 0) -> None:
    """Recompute every result type from its operand types (in program order), then the function types.

    `batch > 0` first sets dimension 0 of every tensor function argument to `batch`.
    Ops that cannot infer their types (unregistered, no shape function) keep them.
    """
    for func in _functions(module):
        if batch > 0:
            for arg in func.body.args:
                if isinstance(arg.type, TensorType) and arg.type.rank >= 1:
                    arg.type = arg.type.with_shape((batch,) + arg.type.shape[1:])
        for op in func.walk():
            if op is func or not isinstance(op, Op) or not op.results:
                continue
            if ConstantLike in op.TRAITS or Terminator in op.TRAITS:
                continue
            try:
                types = op.infer_types()
            except IRError:
                continue
            for r, t in zip(op.results, types):
                r.type = t
        if hasattr(func, "update_function_type"):
            func.update_function_type()


@register_pass
class InferShapes(Pass):
    NAME = "infer-shapes"
    SUMMARY = "Recompute result types from operand types (e.g. after changing the input shape or batch)"

    @attrs.define
    class Options:
        batch: int = attrs.field(default=0, validator=attrs.validators.ge(0),
                                 metadata={"help": "set the batch size (dimension 0) of every "
                                                   "function input first; 0 keeps it"})

    def run(self, module: Operation) -> None:
        infer_shapes(module, self.options.batch)


# ---- fold-bn ----------------------------------------------------------------------------------
def _const_array(v: Value | None) -> np.ndarray | None:
    owner = getattr(v, "op", None)
    if not isinstance(owner, ConstantOp):
        return None
    return np.asarray(owner.attributes["value"].array, dtype=np.float64)


def _resource_keys(module: Operation) -> set[str]:
    keys = set()
    for op in module.walk(ConstantOp):
        v = op.attributes["value"]
        if isinstance(v, DenseResourceElementsAttr):
            keys.add(v.key)
    return keys


def _unique_key(base: str, used: set[str]) -> str:
    key, n = base, 1
    while key in used:
        n += 1
        key = f"{base}{n}"
    used.add(key)
    return key


def resource_key(v: Value | None) -> str | None:
    """The `dense_resource` key of the constant defining `v`, or None."""
    owner = getattr(v, "op", None)
    attr = owner.attributes.get("value") if owner is not None else None
    return attr.key if isinstance(attr, DenseResourceElementsAttr) else None


def _scaled_weight(conv: Operation, w: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The weight with output channel o multiplied by s[o]."""
    if isinstance(conv, ConvTranspose2dOp):
        g = conv.groups
        cin, og = w.shape[0], w.shape[1]
        return (w.reshape(g, cin // g, og, *w.shape[2:]) * s.reshape(g, 1, og, 1, 1)).reshape(w.shape)
    return w * s.reshape((-1,) + (1,) * (w.ndim - 1))


def _foldable(bn: BatchNormOp) -> tuple[Operation, list[np.ndarray]] | None:
    conv = getattr(bn.input, "op", None)
    if not isinstance(conv, (Conv2dOp, ConvTranspose2dOp, LinearOp)):
        return None
    if conv.output.num_uses != 1:
        return None
    if isinstance(conv, LinearOp) and conv.output.type.rank != 2:
        return None  # batch_norm's channel axis 1 is not linear's feature axis
    params = [_const_array(v) for v in (bn.mean, bn.var, bn.gamma, bn.beta, conv.weight)]
    if any(p is None for p in params):
        return None
    if conv.bias is not None and _const_array(conv.bias) is None:
        return None
    return conv, params


def fold_batch_norm(module: Operation) -> int:
    """Fold each graph.batch_norm into the conv2d / conv_transpose2d / linear that feeds only it.

    s = gamma / sqrt(var + eps); W' = W * s per output channel; b' = b * s + beta - mean * s (a
    conv without bias gets one). The new weights are `dense_resource`s keyed like the originals plus
    `_bnfold`. Returns the number of folded batch norms; others (non-constant parameters, a conv
    with other users) are left alone.
    """
    used = _resource_keys(module)
    folded = []

    @pattern(BatchNormOp)
    def fold_bn(bn: Operation, rewriter: PatternRewriter) -> bool:
        found = _foldable(bn)
        if found is None:
            return False
        conv, (mean, var, gamma, beta, w) = found
        s = gamma / np.sqrt(var + bn.eps)
        b = _const_array(conv.bias) if conv.bias is not None else np.zeros_like(mean)
        new_w = _scaled_weight(conv, w, s).astype(np.float32)
        new_b = (b * s + beta - mean * s).astype(np.float32)
        hint = conv.output.name_hint or bn.output.name_hint or "conv"
        w_key = resource_key(conv.weight) or f"{hint}.weight"
        if resource_key(conv.bias):
            b_key = resource_key(conv.bias)
        elif w_key.endswith("weight"):
            b_key = w_key[: -len("weight")] + "bias"
        else:
            b_key = f"{w_key}.bias"
        rewriter.set_insertion_point_before(conv)
        w_op = rewriter.insert(ConstantOp.from_array(new_w, _unique_key(w_key + FOLD_BN_SUFFIX, used),
                                                     conv.weight.op.location))
        b_op = rewriter.insert(ConstantOp.from_array(new_b, _unique_key(b_key + FOLD_BN_SUFFIX, used), bn.location))
        new_conv = rewriter.create(type(conv), conv.input, w_op.result, b_op.result, attributes=dict(conv.attributes),
                                   result_types=[bn.output.type], location=conv.location)
        new_conv.result.name_hint = conv.output.name_hint or bn.output.name_hint
        old_inputs = [conv.weight, conv.bias, bn.mean, bn.var, bn.gamma, bn.beta]
        rewriter.replace_op(bn, new_conv)
        rewriter.erase_op(conv)
        for v in old_inputs:
            owner = getattr(v, "op", None)
            if isinstance(owner, ConstantOp) and owner.parent is not None and not owner.output.uses:
                rewriter.erase_op(owner)
        folded.append(bn)
        return True

    walk_and_apply(module, [fold_bn])
    return len(folded)


@register_pass
class FoldBatchNorm(Pass):
    NAME = "fold-bn"
    SUMMARY = "Fold graph.batch_norm into the preceding conv2d / conv_transpose2d / linear"

    @attrs.define
    class Options:
        strict: bool = attrs.field(default=False, metadata={"help": "fail if a batch_norm cannot be folded"})

    def run(self, module: Operation) -> None:
        fold_batch_norm(module)
        if self.options.strict:
            for bn in module.walk(BatchNormOp):
                raise FixflowError("fold-bn: this graph.batch_norm cannot be folded (its input is not a conv2d, "
                                   "conv_transpose2d or rank-2 linear used only by it, or a parameter is not "
                                   "a constant)", bn.location)


# ---- remove-dropout ---------------------------------------------------------------------------
@pattern(DropoutOp)
def _drop_dropout(op: Operation, rewriter: PatternRewriter) -> bool:
    rewriter.replace_op(op, [op.input])
    return True


@pattern(IdentityOp)
def _drop_identity(op: Operation, rewriter: PatternRewriter) -> bool:
    rewriter.replace_op(op, [op.input])
    return True


def remove_dropout(module: Operation) -> int:
    """Replace every graph.dropout and graph.identity by its input; returns how many were removed."""
    n = sum(1 for _ in module.walk((DropoutOp, IdentityOp)))
    walk_and_apply(module, [_drop_dropout, _drop_identity])
    return n


@register_pass
class RemoveDropout(Pass):
    NAME = "remove-dropout"
    SUMMARY = "Remove graph.dropout and graph.identity (inference)"

    def run(self, module: Operation) -> None:
        remove_dropout(module)


# ---- relu6-to-relu -----------------------------------------------------------------------------
@pattern(Relu6Op)
def _relu6_to_relu(op: Operation, rewriter: PatternRewriter) -> bool:
    new = rewriter.create(ReluOp, op.input)
    new.result.name_hint = op.output.name_hint
    rewriter.replace_op(op, new)
    return True


def relu6_to_relu(module: Operation) -> int:
    """Replace every graph.relu6 by graph.relu (vai_q's convert_relu6_to_relu); returns how many."""
    n = sum(1 for _ in module.walk(Relu6Op))
    walk_and_apply(module, [_relu6_to_relu])
    return n


@register_pass
class Relu6ToRelu(Pass):
    NAME = "relu6-to-relu"
    SUMMARY = "Replace graph.relu6 by graph.relu (the quantizer's convert_relu6_to_relu)"

    def run(self, module: Operation) -> None:
        relu6_to_relu(module)


# ---- ensure-biases ------------------------------------------------------------------------------
def _out_channels(op: Operation) -> int:
    w = op.weight.type.shape
    if isinstance(op, ConvTranspose2dOp):
        return w[1] * op.groups
    return w[0]


def ensure_biases(func: Operation) -> int:
    """Give every conv2d / conv_transpose2d / linear without bias a zero bias constant (keyed after its
    weight); returns how many were added."""
    n = 0
    for op in [op for op in func.regions[0].blocks[0].ops if isinstance(op, (Conv2dOp, ConvTranspose2dOp, LinearOp))]:
        if op.bias is not None:
            continue
        key = resource_key(op.weight)
        key = (key[: -len("weight")] + "bias" if key and key.endswith("weight")
               else f"{key or op.output.name_hint or 'conv'}.bias")
        b = ConstantOp.from_array(np.zeros(_out_channels(op), np.float32), key, op.location)
        op.parent.insert_before(op, b)
        new = type(op).build(op.input, op.weight, b.result, attributes=dict(op.attributes),
                             result_types=[op.output.type], location=op.location)
        new.result.name_hint = op.output.name_hint
        op.parent.insert_before(op, new)
        op.output.replace_all_uses_with(new.result)
        op.erase()
        n += 1
    return n


@register_pass
class EnsureBiases(Pass):
    NAME = "ensure-biases"
    SUMMARY = "Give every conv2d / conv_transpose2d / linear without bias a zero bias (as calibration needs)"

    def run(self, module: Operation) -> None:
        for func in _functions(module):
            if func.regions and func.regions[0].blocks:
                ensure_biases(func)


__all__ = ["infer_shapes", "fold_batch_norm", "remove_dropout", "relu6_to_relu", "ensure_biases", "InferShapes",
           "FoldBatchNorm", "RemoveDropout", "Relu6ToRelu", "EnsureBiases", "FOLD_BN_SUFFIX"]
