"""Test helpers for the fix dialect: annotate a graph module as calibration would (contract
annotations from interpreter outputs with numerics.fix_pos_diffs, then the legalization rules).

Not a calibration pass: one batch, no modal statistics, no bias correction.
"""

from __future__ import annotations

import numpy as np

from fixflow.dialects.fix.numerics import (ConvFixPos, fix_pos_diffs, legalize_conv, legalize_hsigmoid,
                                             legalize_hswish)
from fixflow.ir.attributes import ArrayAttr, DenseArrayAttr
from fixflow.ir.core import BlockArgument, OpResult
from fixflow.ir.types import i64
from fixflow.passes.fix.annotations import GROUP_JOINERS
from fixflow.ir.interpreter import run_module

CONV_LIKE = ("graph.conv2d", "graph.conv_transpose2d", "graph.linear")


def _arr(bw: int, fp: int) -> DenseArrayAttr:
    return DenseArrayAttr(i64, [bw, fp])


def _point_op(v):
    """The op carrying the quantization point of value `v` (None for a function argument)."""
    while isinstance(v, OpResult):
        users = v.users
        if len(users) == 1 and v.num_uses == 1 and users[0].name in GROUP_JOINERS:
            v = users[0].results[0]
        else:
            return v.op
    return None


def _func(module):
    return next(op for op in module.regions[0].blocks[0].ops if op.name == "func.func")


def annotate(module, inputs, scope: int = 5) -> dict:
    """Write fix.inputs / fix.out / fix.weight / fix.bias on `module` (legalized); returns the
    float outputs of every op (by result value)."""
    outs = {}

    def observer(op, ys):
        for r, y in zip(op.results, ys):
            outs[r] = np.asarray(y)

    run_module(module, inputs, observer=observer)
    func = _func(module)
    func.attributes["fix.inputs"] = ArrayAttr(
        [_arr(8, fix_pos_diffs(x, 8, "std_round", scope=1)) for x in inputs])
    in_fp = {a: fix_pos_diffs(x, 8, "std_round", scope=1) for a, x in zip(func.body.args, inputs)}
    for op in func.body.ops:
        if op.name in ("graph.constant", "func.return") or not op.results:
            continue
        if _point_op(op.results[0]) is op:
            op.attributes["fix.out"] = _arr(8, fix_pos_diffs(outs[op.results[0]], 8, "half_up", scope))
        if op.name in CONV_LIKE:
            w = op.weight.op.attributes["value"].array
            op.attributes["fix.weight"] = _arr(8, fix_pos_diffs(w, 8, "std_round", scope))
            if op.bias is not None:
                op.attributes["fix.bias"] = _arr(8, fix_pos_diffs(op.bias.op.attributes["value"].array, 8,
                                                                  "std_round", scope))

    def fp_of(v):
        if isinstance(v, BlockArgument):
            return in_fp[v]
        p = _point_op(v)
        return p.attributes["fix.out"].value[1]

    for op in func.body.ops:   # legalize (producers come first)
        if op.name in CONV_LIKE:
            p = _point_op(op.results[0])
            b = op.attributes["fix.bias"].value[1] if "fix.bias" in op.attributes else None
            pos, _ = legalize_conv(ConvFixPos(fp_of(op.input), op.attributes["fix.weight"].value[1], b,
                                              p.attributes["fix.out"].value[1]))
            op.attributes["fix.weight"] = _arr(8, pos.w)
            if b is not None:
                op.attributes["fix.bias"] = _arr(8, pos.b)
            p.attributes["fix.out"] = _arr(8, pos.o)
        elif op.name in ("graph.hardsigmoid", "graph.hardswish"):
            fi, fo = fp_of(op.input), op.attributes["fix.out"].value[1]
            rule = legalize_hsigmoid if op.name == "graph.hardsigmoid" else legalize_hswish
            fi2, fo2, _ = rule(fi, fo)
            assert fi2 == fi, "test graphs keep hard-sigmoid/swish inputs at fix_pos >= 0"
            op.attributes["fix.out"] = _arr(8, fo2)
    return outs


def sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    ref = np.asarray(ref, dtype=np.float64)
    err = ref - np.asarray(got, dtype=np.float64)
    return float(10 * np.log10(np.sum(ref ** 2) / max(np.sum(err ** 2), 1e-30)))


# ---- small DSL graphs shared by the quantize-lowering and fix-xmodel tests ----------------------------
def dsl_net(body: str, shape=(1, 4, 8, 8), name="T") -> str:
    """A DSL program `net <name>(x: f32[shape])` around `body`."""
    dims = ", ".join(map(str, shape))
    return f"net {name}(x: f32[{dims}]) with seed=3 {{\n{body}\n}}"


def dsl_inputs(module, n=4, seed=0, scale=1.0):
    """`n` seeded random batches for every argument of the module's first function."""
    func = next(iter(module.body.ops))
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((n,) + a.type.shape[1:]) * scale).astype(np.float32) for a in func.body.args]


GRAPHS = {
    "conv_relu": """
  c = conv2d(x, out=8, kernel=3, stride=2, pad=1)
  r = relu(c)
  return r""",
    "conv_bn_relu6_leaky": """
  c = conv2d(x, out=8, kernel=3, pad=1, bias=false)
  b = batch_norm(c)
  r = relu6(b)
  d = conv2d(r, out=6, kernel=1)
  l = leaky_relu(d, alpha=0.1015625)
  return l""",
    "depthwise": """
  d = depthwise_conv2d(x, kernel=3, pad=1)
  r = relu(d)
  p = conv2d(r, out=8, kernel=1)
  return p""",
    "pools": """
  c = conv2d(x, out=8, kernel=3, pad=1)
  m = max_pool2d(c, kernel=3, stride=2, pad=1, ceil_mode=true)
  a = avg_pool2d(m, kernel=2)
  g = adaptive_avg_pool2d(c, size=1)
  return a, g""",
    "add_relu": """
  c = conv2d(x, out=4, kernel=3, pad=1)
  s = add(c, x)
  r = relu(s)
  m = mul(r, c)
  return m""",
    "concat": """
  a = conv2d(x, out=3, kernel=1)
  b = conv2d(x, out=5, kernel=3, pad=1)
  c = concat(a, b, x, axis=1)
  return c""",
    "flatten_linear": """
  c = conv2d(x, out=6, kernel=3, stride=2, pad=1)
  r = relu(c)
  f = flatten(r)
  l = linear(f, out=10)
  return l""",
    "upsample_pad_hswish": """
  c = conv2d(x, out=4, kernel=3, pad=1)
  u = upsample(c, scale=2)
  p = pad(u, pads=[1, 1, 2, 0])
  h = hardswish(p)
  s = hardsigmoid(h)
  return s""",
    "transpose_reshape": """
  c = conv2d(x, out=4, kernel=1)
  t = transpose(c, perm=[0, 1, 3, 2])
  r = reshape(t, shape=[0, 8, 4, 8])
  d = conv2d(r, out=2, kernel=3, pad=1)
  return d""",
}
