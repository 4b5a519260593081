"""Shared helpers of the graph dialect / interpreter / pass tests: IR built by hand with a torch twin."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fixflow.dialects.builtin import FuncOp, ModuleOp, ReturnOp
from fixflow.dialects.graph import (AdaptiveAvgPool2dOp, AddOp, AvgPool2dOp, BatchNormOp, ConcatOp, ConstantOp,
                                    Conv2dOp, ConvTranspose2dOp, DropoutOp, FlattenOp, HardSigmoidOp, HardSwishOp,
                                    IdentityOp, LeakyReluOp, LinearOp, MatmulOp, MaxPool2dOp, MeanOp, MulOp,
                                    PadOp, PreluOp, Relu6Op, ReluOp, ReshapeOp, SigmoidOp, SiluOp, SoftmaxOp,
                                    SubOp, TanhOp, TransposeOp, UpsampleOp)
from fixflow.ir import Builder, TensorType, f32


class GraphBuilder:
    """Builds one function `@main` in a fresh module; `w(name, array)` adds a weight constant."""

    def __init__(self, input_shapes: list[tuple[int, ...]], name: str = "main"):
        self.module = ModuleOp.empty()
        self.func = FuncOp.create_function(name, [TensorType(s, f32) for s in input_shapes], [])
        self.module.body.append(self.func)
        self.b = Builder.at_end(self.func.body)
        for i, a in enumerate(self.func.args):
            a.name_hint = f"x{i}" if len(input_shapes) > 1 else "x"

    @property
    def args(self):
        return self.func.args

    def w(self, key: str, array: np.ndarray, dense: bool = False):
        op = self.b.insert(ConstantOp.from_array(array, None if dense else key))
        return op.result

    def op(self, cls, *operands, name: str | None = None, **attrs):
        op = self.b.create(cls, *operands, **attrs)
        if name:
            op.results[0].name_hint = name
        return op.results[0]

    def ret(self, *values) -> ModuleOp:
        self.b.insert(ReturnOp.build(list(values)))
        self.func.update_function_type()
        self.module.verify()
        return self.module


def rand(rng: np.random.Generator, *shape: int, positive: bool = False) -> np.ndarray:
    a = rng.standard_normal(shape).astype(np.float32)
    return np.abs(a) + 0.5 if positive else a


def every_op_model(seed: int = 0, batch: int = 1):
    """A module using every graph op, and a torch function computing the same thing.

    Returns (module, params, torch_fn) where torch_fn(x: np.ndarray) -> list[np.ndarray].
    """
    rng = np.random.default_rng(seed)
    P = {
        "conv.weight": rand(rng, 4, 3, 3, 3), "conv.bias": rand(rng, 4),
        "bn.mean": rand(rng, 4), "bn.var": rand(rng, 4, positive=True), "bn.gamma": rand(rng, 4),
        "bn.beta": rand(rng, 4), "prelu.slope": rand(rng, 4),
        "up.weight": rand(rng, 4, 2, 2, 2), "up.bias": rand(rng, 2),
        "shift": rand(rng, 6, 1, 1), "fc.weight": rand(rng, 10, 24), "fc.bias": rand(rng, 10),
        "proj": rand(rng, 10, 5),
    }
    g = GraphBuilder([(batch, 3, 8, 8)])
    x = g.args[0]
    c = {k: g.w(k, v, dense=k in ("shift", "conv.bias")) for k, v in P.items()}
    y = g.op(Conv2dOp, x, c["conv.weight"], c["conv.bias"], padding=(1, 1, 1, 1), name="conv")
    y = g.op(BatchNormOp, y, c["bn.mean"], c["bn.var"], c["bn.gamma"], c["bn.beta"], eps=1e-3, name="bn")
    y = g.op(ReluOp, y, name="relu")
    for cls in (Relu6Op, SigmoidOp, TanhOp, SiluOp, HardSigmoidOp, HardSwishOp):
        y = g.op(cls, y)
    y = g.op(LeakyReluOp, y, alpha=0.1)
    y = g.op(PreluOp, y, c["prelu.slope"])
    p = g.op(MaxPool2dOp, y, kernel=(2, 2), stride=(2, 2), name="pool")
    a = g.op(AvgPool2dOp, p, kernel=(3, 3), stride=(1, 1), padding=(1, 1, 1, 1), count_include_pad=False)
    t = g.op(ConvTranspose2dOp, a, c["up.weight"], c["up.bias"], stride=(2, 2))
    u = g.op(UpsampleOp, p, mode="nearest", size=(8, 8), scale_factor=(2.0, 2.0))
    cat = g.op(ConcatOp, [t, u], axis=1, name="cat")
    pd = g.op(PadOp, cat, pads=(1, 1, 1, 1), mode="reflect")
    ad = g.op(AdaptiveAvgPool2dOp, pd, output_size=(2, 2))
    e = g.op(AddOp, ad, c["shift"])
    e = g.op(SubOp, e, ad)
    e = g.op(MulOp, e, ad)
    tr = g.op(TransposeOp, e, perm=(0, 2, 3, 1))
    rs = g.op(ReshapeOp, tr, shape=(0, -1))
    fl = g.op(FlattenOp, ad, start_dim=1, end_dim=-1)
    s = g.op(AddOp, rs, fl)
    fc = g.op(LinearOp, s, c["fc.weight"], c["fc.bias"], name="fc")
    fc = g.op(DropoutOp, fc, p=0.2)
    fc = g.op(IdentityOp, fc)
    mm = g.op(MatmulOp, fc, c["proj"])
    sm = g.op(SoftmaxOp, mm, axis=-1, name="prob")
    mn = g.op(MeanOp, mm, axes=(1,), keepdim=True)
    bl = g.op(UpsampleOp, p, mode="bilinear", size=(6, 6), align_corners=True)
    module = g.ret(sm, mn, bl)

    T = {k: torch.from_numpy(v) for k, v in P.items()}

    def torch_fn(xn: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            x = torch.from_numpy(xn)
            y = F.conv2d(x, T["conv.weight"], T["conv.bias"], padding=1)
            y = F.batch_norm(y, T["bn.mean"], T["bn.var"], T["bn.gamma"], T["bn.beta"], False, 0.0, 1e-3)
            y = F.relu(y)
            for fn in (F.relu6, torch.sigmoid, torch.tanh, F.silu, F.hardsigmoid, F.hardswish):
                y = fn(y)
            y = F.leaky_relu(y, 0.1)
            y = F.prelu(y, T["prelu.slope"])
            p = F.max_pool2d(y, 2, 2)
            a = F.avg_pool2d(p, 3, 1, 1, count_include_pad=False)
            t = F.conv_transpose2d(a, T["up.weight"], T["up.bias"], stride=2)
            u = F.interpolate(p, scale_factor=2.0, mode="nearest")
            cat = torch.cat([t, u], 1)
            pd = F.pad(cat, (1, 1, 1, 1), mode="reflect")
            ad = F.adaptive_avg_pool2d(pd, (2, 2))
            e = ((ad + T["shift"]) - ad) * ad
            rs = e.permute(0, 2, 3, 1).reshape(e.shape[0], -1)
            s = rs + torch.flatten(ad, 1)
            fc = F.linear(s, T["fc.weight"], T["fc.bias"])
            mm = fc @ T["proj"]
            bl = F.interpolate(p, size=(6, 6), mode="bilinear", align_corners=True)
            return [torch.softmax(mm, -1).numpy(), mm.mean(1, keepdim=True).numpy(), bl.numpy()]

    return module, P, torch_fn


def conv_bn_model(seed: int = 0, kind: str = "conv2d", with_bias: bool = False, groups: int = 1):
    """x -> conv (or conv_transpose2d / linear) -> batch_norm -> relu, with random BN statistics."""
    rng = np.random.default_rng(seed)
    if kind == "linear":
        g = GraphBuilder([(1, 8)])
        w = g.w("fc.weight", rand(rng, 6, 8))
        cout = 6
    elif kind == "conv2d":
        g = GraphBuilder([(1, 4, 6, 6)])
        w = g.w("conv.weight", rand(rng, 6, 4 // groups, 3, 3))
        cout = 6
    else:
        g = GraphBuilder([(1, 4, 5, 5)])
        w = g.w("deconv.weight", rand(rng, 4, 6 // groups, 3, 3))
        cout = 6
    b = g.w("conv.bias", rand(rng, cout)) if with_bias else None
    bn = [g.w(f"bn.{k}", rand(rng, cout, positive=(k == "var"))) for k in ("mean", "var", "gamma", "beta")]
    x = g.args[0]
    if kind == "linear":
        y = g.op(LinearOp, x, w, b, name="fc")
    elif kind == "conv2d":
        y = g.op(Conv2dOp, x, w, b, padding=(1, 1, 1, 1), groups=groups, name="conv")
    else:
        y = g.op(ConvTranspose2dOp, x, w, b, stride=(2, 2), padding=(1, 1, 1, 1), output_padding=(1, 1),
                 groups=groups, name="deconv")
    y = g.op(BatchNormOp, y, *bn, eps=1e-3, name="bn")
    y = g.op(ReluOp, y, name="relu")
    return g.ret(y)


def transformer_op_model(seed: int = 0, batch: int = 2):
    """A module using the slicing, broadcasting, reduction, normalization and activation ops (graph.slice,
    expand, tile, sum, amax, amin, layer_norm, group_norm, gelu, mish, roll, normalize), and its torch twin."""
    from fixflow.dialects.graph import (SLICE_END, AmaxOp, AminOp, ExpandOp, GeluOp, GroupNormOp, LayerNormOp,
                                        MishOp, NormalizeOp, RollOp, SliceOp, SumOp, TileOp)
    rng = np.random.default_rng(seed)
    P = {"ln.weight": rand(rng, 6), "ln.bias": rand(rng, 6), "gn.weight": rand(rng, 4), "gn.bias": rand(rng, 4),
         "token": rand(rng, 1, 1, 6)}
    g = GraphBuilder([(batch, 4, 5, 6)])
    x = g.args[0]
    c = {k: g.w(k, v) for k, v in P.items()}
    y = g.op(LayerNormOp, x, c["ln.weight"], c["ln.bias"], normalized_shape=(6,), eps=1e-6, name="ln")
    y = g.op(GeluOp, y, approximate="tanh")
    y = g.op(GroupNormOp, y, c["gn.weight"], c["gn.bias"], groups=2, name="gn")
    y = g.op(GeluOp, y)
    y = g.op(MishOp, y)
    y = g.op(RollOp, y, shifts=(1, -2), axes=(2, 3))
    y = g.op(NormalizeOp, y, axis=-1)
    s = g.op(SliceOp, y, axes=(1, -1), starts=(1, -5), ends=(SLICE_END, 5), steps=(2, 1), name="sl")
    r = g.op(SumOp, s, axes=(1,), keepdim=False)                       # (N, 5, 4)
    t = g.op(TileOp, r, repeats=(1, 1, 3))                             # (N, 5, 12)
    a = g.op(AmaxOp, t, axes=(-1,), keepdim=True)                      # (N, 5, 1)
    b = g.op(AminOp, t, axes=(1, 2), keepdim=True)                     # (N, 1, 1)
    flat = g.op(ReshapeOp, y, shape=(0, -1, 6))                         # (N, 20, 6)
    e = g.op(ExpandOp, c["token"], flat, shape=(0, -1, -1), name="cls")  # (N, 1, 6)
    cat = g.op(ConcatOp, [e, flat], axis=1)
    module = g.ret(cat, g.op(AddOp, a, b))
    T = {k: torch.from_numpy(v) for k, v in P.items()}

    def torch_fn(xn: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            x = torch.from_numpy(xn)
            y = F.layer_norm(x, (6,), T["ln.weight"], T["ln.bias"], 1e-6)
            y = F.gelu(y, approximate="tanh")
            y = F.mish(F.gelu(F.group_norm(y, 2, T["gn.weight"], T["gn.bias"])))
            y = F.normalize(torch.roll(y, (1, -2), (2, 3)), dim=-1)
            t = y[:, 1::2, :, -5:5].sum(1).repeat(1, 1, 3)
            out = t.amax(-1, keepdim=True) + t.amin((1, 2), keepdim=True)
            flat = y.reshape(x.shape[0], -1, 6)
            return [torch.cat([T["token"].expand(x.shape[0], -1, -1), flat], 1).numpy(), out.numpy()]

    return module, P, torch_fn
