"""The annotation contract between calibration, legalization and the lowering to `fix`.

A calibrated graph module carries, as attributes (values `array<i64: bit_width, fix_pos>`):

| attribute | on | meaning |
|---|---|---|
| `fix.out` | the op whose result is a quantization point | format of that result |
| `fix.weight`, `fix.bias` | conv2d / conv_transpose2d / linear (`CONV_LIKE`) | format of the weights and the bias |
| `fix.inputs` | the function (`fixflow.ir.interpreter.find_function`: @main or the only one) | an array, one format per argument |
| `fix.bias_corrected`, `fix.calib_batches`, `fix.calib_scope`, `fix.calib_data` | the module | how calibration ran |
| `fix.keep_float` | any op (set before calibration) | a string, why: the op stays in float (no fix.weight / fix.bias; the lowering keeps it as a float CPU op) |

Each tensor has its own bit width (the first element of its annotation): `BitWidths` tells calibration
which one (model-wide defaults per tensor type, per-op overrides); later steps read it from the annotations.

Quantization points: one per fused group. An op in `GROUP_JOINERS` (relu, relu6, leaky_relu,
flatten, reshape, transpose, pad, upsample, dropout, identity) joins its producer's group when it is
that producer's only user, so the group's point is the joiner's result (`quant_points`).
"""

from __future__ import annotations

import attrs

from ...dialects.graph import Conv2dOp, ConvTranspose2dOp, LinearOp
from ...ir.attributes import DenseArrayAttr
from ...ir.core import Operation, Value
from ...ir.diagnostics import FixflowError
from ...ir.opdef import ConstantLike, Terminator
from ...ir.types import i64

__all__ = ["CalibrationError", "GROUP_JOINERS", "CONV_LIKE", "BIAS_CORR_SUFFIX", "KEEP_FLOAT", "BitWidths", "fix_attr",
           "read_fix_attr", "conv_like_ops", "quant_points", "point_of", "keep_float_reason"]

#: ops that join their producer's quantization group (no quantization point of their own); the one set
#: calibration, legalization and the lowering share
GROUP_JOINERS = frozenset({"graph.relu", "graph.relu6", "graph.leaky_relu", "graph.flatten", "graph.reshape",
                           "graph.transpose", "graph.pad", "graph.upsample", "graph.dropout", "graph.identity"})
#: ops with weights and a bias (annotated with fix.weight / fix.bias)
CONV_LIKE = (Conv2dOp, ConvTranspose2dOp, LinearOp)
#: suffix of the resource key of a bias rewritten by bias correction
BIAS_CORR_SUFFIX = "_biascorr"
#: attribute of an op left in float (its value: the reason, shown where the op is placed on the CPU)
KEEP_FLOAT = "fix.keep_float"


@attrs.define
class BitWidths:
    """The bit width of every tensor calibration quantizes: a default per tensor type, per-op overrides
    (`weights[op]`, `bias[op]`: conv-like ops; `activation[value]`: quantization points)."""

    default_input: int = 8
    default_weights: int = 8
    default_bias: int = 8
    default_activation: int = 8
    weights: dict = attrs.field(factory=dict)
    bias: dict = attrs.field(factory=dict)
    activation: dict = attrs.field(factory=dict)

    @classmethod
    def uniform(cls, bit_width: int) -> "BitWidths":
        return cls(bit_width, bit_width, bit_width, bit_width)

    def of_weights(self, op: Operation) -> int:
        return self.weights.get(op, self.default_weights)

    def of_bias(self, op: Operation) -> int:
        return self.bias.get(op, self.default_bias)

    def of_point(self, v: Value) -> int:
        return self.activation.get(v, self.default_activation)

    def all_widths(self) -> set[int]:
        return ({self.default_input, self.default_weights, self.default_bias, self.default_activation}
                | set(self.weights.values()) | set(self.bias.values()) | set(self.activation.values()))


class CalibrationError(FixflowError):
    """Calibration cannot run, or a module lacks the annotations a later step needs."""


def fix_attr(bit_width: int, fix_pos: int) -> DenseArrayAttr:
    """`array<i64: BW, FP>`."""
    return DenseArrayAttr(i64, (int(bit_width), int(fix_pos)))


def read_fix_attr(op: Operation, name: str) -> tuple[int, int] | None:
    """`(bit_width, fix_pos)` of a `fix.*` annotation, or None."""
    a = op.attributes.get(name)
    if a is None:
        return None
    return int(a[0]), int(a[1])


def keep_float_reason(op: Operation) -> str | None:
    """Why `op` is left in float (its `fix.keep_float`), or None."""
    a = op.attributes.get(KEEP_FLOAT)
    return None if a is None else str(a.value)


def conv_like_ops(func: Operation) -> list[Operation]:
    """The quantized conv2d / conv_transpose2d / linear ops of the function body (those left in float,
    `fix.keep_float`, have no fix.weight / fix.bias and are not listed), in program order."""
    return [op for op in func.regions[0].blocks[0].ops if isinstance(op, CONV_LIKE) and KEEP_FLOAT not in op.attributes]


def quant_points(func: Operation) -> list[Value]:
    """Op results that are quantization points (one per fused group), in program order.

    A result is *not* a point when its only user is a group joiner (relu, reshape, ...) and it
    is not returned by the function; constants are never points.
    """
    block = func.regions[0].blocks[0]
    points = []
    for op in block.ops:
        if ConstantLike in op.TRAITS or Terminator in op.TRAITS:
            continue
        for r in op.results:
            users = list(r.users)
            if len(users) == 1 and r.uses.get(users[0], 0) == 1 and users[0].name in GROUP_JOINERS:
                continue
            points.append(r)
    return points


def point_of(op: Operation) -> Value | None:
    """The quantization point of the group `op`'s result belongs to (following single-use joiners), or None."""
    if not op.results or ConstantLike in op.TRAITS:
        return None
    r = op.results[0]
    seen = 0
    while seen < 10000:
        users = list(r.users)
        if len(users) == 1 and r.uses.get(users[0], 0) == 1 and users[0].name in GROUP_JOINERS:
            r = users[0].results[0]
            seen += 1
            continue
        return r
    return r
