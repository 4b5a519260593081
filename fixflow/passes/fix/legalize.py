"""`legalize-fix`: make the calibrated fix positions (the `fix.*` annotations) legal for the DPU.

Rules (numerics.md, "Legalizing fix_pos after calibration", via fixflow.dialects.fix.numerics):
conv-like ops (conv2d, conv_transpose2d, linear): ``shift_cut = w + i - o`` in [0, 16] and
``shift_bias = w + i - b`` in its range (`legalize_conv`); a conv + ReLU6 group's output fix_pos
is set to 4 (the DPU clamps ReLU6 at the constant 96, which is 6.0 only at fix_pos 4); hardsigmoid: output >= 7,
input >= 0; hardswish: input >= 0, output <= input + 7; pad and nearest upsample whose input is a
quantization point keep the input's fix_pos; leaky_relu slope 26/256. Every adjustment is one
warning naming the layer (its location).
"""

from __future__ import annotations

from ...dialects.fix.numerics import (LEAKY_RELU_ALPHA, ConvFixPos, legalize_conv, legalize_hsigmoid,
                                      legalize_hswish, legalize_passthrough)
from ...dialects.graph import LeakyReluOp
from ...ir.core import Operation, Value
from ...ir.diagnostics import emit_warning
from ...ir.interpreter import find_function
from ...ir.passes import Pass, register_pass
from .annotations import CalibrationError, GROUP_JOINERS, conv_like_ops, fix_attr, keep_float_reason, read_fix_attr

__all__ = ["legalize_fix", "legalize_leaky_relu", "LegalizeFix", "RELU6_MIN_FIX_POS", "group_end", "value_fix_pos"]

RELU6_MIN_FIX_POS = 4


def legalize_leaky_relu(func: Operation) -> int:
    """Force every leaky_relu slope to the DPU's 26/256 with a warning naming the layer."""
    n = 0
    alpha = float(LEAKY_RELU_ALPHA)
    for op in func.walk(LeakyReluOp):
        if op.alpha != alpha:
            emit_warning(f"leaky_relu slope {op.alpha:g} changed to 26/256 = {alpha} (the DPU's only "
                         "LeakyReLU slope)", op.location)
            op.alpha = alpha
            n += 1
    return n


def _layer(op: Operation) -> str:
    return op.results[0].name_hint or op.name if op.results else op.name


def group_end(v: Value) -> tuple[Operation, list[Operation]]:
    """The op carrying the quantization point of the group that starts at value `v`, and the
    joiner ops on the way."""
    chain = []
    op = v.op
    while read_fix_attr(op, "fix.out") is None:
        users = list(op.results[0].users)
        if len(users) != 1 or users[0].name not in GROUP_JOINERS:
            raise CalibrationError(f"'{op.name}' output has no fix.out annotation: run calibrate first",
                                   op.location)
        op = users[0]
        chain.append(op)
    return op, chain


def _source(v: Value, func: Operation) -> tuple[str, object]:
    """Where the fix_pos of value `v` lives: ("arg", index) or ("op", op)."""
    if getattr(v, "op", None) is None:
        return "arg", list(func.regions[0].blocks[0].args).index(v)
    return "op", v.op


def value_fix_pos(v: Value, func: Operation) -> int:
    """The fix_pos of a quantized value (a function input or a quantization point)."""
    kind, where = _source(v, func)
    if kind == "arg":
        return int(func.attributes["fix.inputs"][where][1])
    fa = read_fix_attr(where, "fix.out")
    if fa is None:
        raise CalibrationError(f"the input of this op comes from '{where.name}', which is not a quantization "
                               "point", where.location)
    return fa[1]


def _set_value_fix_pos(v: Value, func: Operation, fp: int) -> None:
    kind, where = _source(v, func)
    if kind == "arg":
        ins = list(func.attributes["fix.inputs"])
        bw = int(ins[where][0])
        ins[where] = fix_attr(bw, fp)
        from ...ir.attributes import ArrayAttr
        func.attributes["fix.inputs"] = ArrayAttr(ins)
    else:
        bw = read_fix_attr(where, "fix.out")[0]
        where.attributes["fix.out"] = fix_attr(bw, fp)


def legalize_fix(module: Operation, function: str | None = None) -> int:
    """Apply the hardware rules to the annotations; returns the number of adjustments (warnings)."""
    func = find_function(module, function)
    if "fix.inputs" not in func.attributes:
        raise CalibrationError("legalize-fix needs a calibrated module (no fix.inputs): run calibrate first",
                               func.location)
    n = legalize_leaky_relu(func)
    block = func.regions[0].blocks[0]
    conv_like = set(conv_like_ops(func))
    for op in list(block.ops):
        if keep_float_reason(op) is not None:
            continue   # left in float: runs on the CPU, no hardware rule applies
        if op in conv_like:
            n += _legalize_conv(op, func)
        elif op.name in ("graph.hardsigmoid", "graph.hardswish"):
            fp_in = value_fix_pos(op.operands[0], func)
            end, _ = group_end(op.results[0])
            bw, fp_out = read_fix_attr(end, "fix.out")
            rule = legalize_hsigmoid if op.name == "graph.hardsigmoid" else legalize_hswish
            new_in, new_out, reasons = rule(fp_in, fp_out, _layer(op))
            for r in reasons:
                emit_warning(f"legalize-fix: {r}", op.location)
            if new_in != fp_in:
                _set_value_fix_pos(op.operands[0], func, new_in)
            if new_out != fp_out:
                end.attributes["fix.out"] = fix_attr(bw, new_out)
            n += len(reasons)
        elif op.name in ("graph.pad", "graph.upsample"):
            if op.name == "graph.upsample" and str(op.mode) != "nearest":
                continue
            fa = read_fix_attr(op, "fix.out")
            src = op.operands[0]
            if fa is None or (getattr(src, "op", None) is not None and read_fix_attr(src.op, "fix.out") is None):
                continue   # inside a fused group: no point of its own
            fp_in = value_fix_pos(src, func)
            new, reasons = legalize_passthrough(fp_in, fa[1], _layer(op))
            for r in reasons:
                emit_warning(f"legalize-fix: {r}", op.location)
            if new != fa[1]:
                op.attributes["fix.out"] = fix_attr(fa[0], new)
            n += len(reasons)
    return n


def _legalize_conv(op: Operation, func: Operation) -> int:
    w, b = read_fix_attr(op, "fix.weight"), read_fix_attr(op, "fix.bias")
    if w is None or b is None:
        raise CalibrationError(f"'{op.name}' has no fix.weight/fix.bias: run calibrate first", op.location)
    i = value_fix_pos(op.operands[0], func)
    end, chain = group_end(op.results[0])
    bw_o, o = read_fix_attr(end, "fix.out")
    n = 0
    if any(c.name == "graph.relu6" for c in chain) and o != RELU6_MIN_FIX_POS:
        emit_warning(f"legalize-fix: {_layer(op)}: output fix_pos set from {o} to {RELU6_MIN_FIX_POS} "
                     f"(the DPU clamps ReLU6 at the constant 96 = 6 * 2^{RELU6_MIN_FIX_POS}, which is 6.0 "
                     f"only at fix_pos {RELU6_MIN_FIX_POS})", op.location)
        o = RELU6_MIN_FIX_POS
        n += 1
    new, reasons = legalize_conv(ConvFixPos(i, w[1], b[1], o), _layer(op))
    for r in reasons:
        emit_warning(f"legalize-fix: {r}", op.location)
    op.attributes["fix.weight"] = fix_attr(w[0], new.w)
    op.attributes["fix.bias"] = fix_attr(b[0], new.b)
    end.attributes["fix.out"] = fix_attr(bw_o, new.o)
    return n + len(reasons)


@register_pass
class LegalizeFix(Pass):
    NAME = "legalize-fix"
    SUMMARY = "Adjust calibrated fix positions to the DPU's shift/activation rules (one warning per change)"

    def run(self, module: Operation) -> None:
        legalize_fix(module)
