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
