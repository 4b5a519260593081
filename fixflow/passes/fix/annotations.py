"""The annotation contract between calibration, legalization and the lowering to `fix`.

A calibrated graph module carries, as attributes (values `array<i64: bit_width, fix_pos>`):

| attribute | on | meaning |
|---|---|---|
| `fix.out` | the op whose result is a quantization point | format of that result |
| `fix.weight`, `fix.bias` | conv2d / conv_transpose2d / linear (`CONV_LIKE`) | format of the weights and the bias |
| `fix.inputs` | the function (`fixflow.ir.interpreter.find_function`: @main or the only one) | an array, one format per argument |
| `fix.bias_corrected`, `fix.calib_batches`, `fix.calib_scope`, `fix.calib_data` | the module | how calibration ran |

Quantization points: one per fused group. An op in `GROUP_JOINERS` (relu, relu6, leaky_relu,
flatten, reshape, transpose, pad, upsample, dropout, identity) joins its producer's group when it is
that producer's only user, so the group's point is the joiner's result (`quant_points`).
"""

from __future__ import annotations

from ...dialects.graph import Conv2dOp, ConvTranspose2dOp, LinearOp
from ...ir.attributes import DenseArrayAttr
from ...ir.core import Operation, Value
from ...ir.diagnostics import FixflowError
from ...ir.opdef import ConstantLike, Terminator
from ...ir.types import i64

__all__ = ["CalibrationError", "GROUP_JOINERS", "CONV_LIKE", "BIAS_CORR_SUFFIX", "fix_attr", "read_fix_attr",
           "conv_like_ops", "quant_points"]

#: ops that join their producer's quantization group (no quantization point of their own); the one set
#: calibration, legalization and the lowering share
GROUP_JOINERS = frozenset({"graph.relu", "graph.relu6", "graph.leaky_relu", "graph.flatten", "graph.reshape",
                           "graph.transpose", "graph.pad", "graph.upsample", "graph.dropout", "graph.identity"})
#: ops with weights and a bias (annotated with fix.weight / fix.bias)
CONV_LIKE = (Conv2dOp, ConvTranspose2dOp, LinearOp)
#: suffix of the resource key of a bias rewritten by bias correction
BIAS_CORR_SUFFIX = "_biascorr"


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


def conv_like_ops(func: Operation) -> list[Operation]:
    """conv2d / conv_transpose2d / linear ops of the function body, in program order."""
    return [op for op in func.regions[0].blocks[0].ops if isinstance(op, CONV_LIKE)]


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
