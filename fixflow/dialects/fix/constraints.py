"""DPU (DPUCZDX8G ISA1, B4096) limits for `fix` ops (spec/dpu-isa.md, "Engine limits").

`dpu_violation(op)` returns the first broken constraint as a sentence (None when the DPU can run
the op). Ops that break one stay in the quantized module with `device = "CPU"` and
`fix.reason = <sentence>` (the integer kernel then runs on the CPU).
"""

from __future__ import annotations

import math

from ...ir.core import Operation
from .ops import (ConcatOp, ConstOp, Conv2dOp, DataOp, DenseOp, DepthwiseConv2dOp, EltwiseOp, FixOp, FixFixOp,
                  FloatOp, HardSigmoidOp, HardSwishOp, PadOp, PoolOp, ReshapeOp, ConvTranspose2dOp, TransposeOp,
                  UpsampleOp, fixed_type)

CONV_KERNEL = (1, 16)
CONV_STRIDE = (1, 8)
ALU_KERNEL = (1, 256)
ALU_STRIDE = (1, 256)
PAD_TOP_LEFT = (0, 15)
PAD_BOTTOM_RIGHT = (0, 255)
CONV_KERNEL_LIMIT = 2048      # kernel_w * kernel_h * ceil(in_channels / 16)
CHANNEL_PARALLEL = 16


def _range(what: str, values, lo_hi) -> str | None:
    lo, hi = lo_hi
    for v in values:
        if not lo <= v <= hi:
            return f"{what} {tuple(values)} is outside the DPU range [{lo}, {hi}]"
    return None


def _pads(pad) -> str | None:
    pt, pb, pl, pr = pad
    return (_range("pad (top, left)", (pt, pl), PAD_TOP_LEFT)
            or _range("pad (bottom, right)", (pb, pr), PAD_BOTTOM_RIGHT))


def dpu_violation(op: Operation) -> str | None:
    """The DPU constraint `op` breaks, as a sentence, or None."""
    if not isinstance(op, FixOp):
        return f"'{op.name}' has no DPU implementation"
    if isinstance(op, (DataOp, ConstOp, FloatOp, FixFixOp)):
        return None
    for v in list(op.operands) + list(op.results):
        ft = fixed_type(v.type)
        if ft is not None and ft.bit_width != 8:
            return f"bit width {ft.bit_width} (the DPU computes on 8 bits)"
    if isinstance(op, (Conv2dOp, ConvTranspose2dOp)):
        kh, kw = op.kernel
        ic = op.input.type.shape[3]
        return (_range("kernel", op.kernel, CONV_KERNEL) or _range("stride", op.stride, CONV_STRIDE)
                or _pads(op.pad)
                or (f"kernel {kh}x{kw} with {ic} input channels exceeds the weight bank "
                    f"(kernel_w * kernel_h * ceil(ic / 16) = {kw * kh * math.ceil(ic / CHANNEL_PARALLEL)} > "
                    f"{CONV_KERNEL_LIMIT})" if kw * kh * math.ceil(ic / CHANNEL_PARALLEL) > CONV_KERNEL_LIMIT
                    else None))
    if isinstance(op, DepthwiseConv2dOp):
        return _range("kernel", op.kernel, CONV_KERNEL) or _range("stride", op.stride, CONV_STRIDE) or _pads(op.pad)
    if isinstance(op, DenseOp):
        n_in = op.input.type.shape[-1]
        if math.ceil(n_in / CHANNEL_PARALLEL) > CONV_KERNEL_LIMIT:
            return f"inner product with {n_in} inputs exceeds the weight bank"
        return None
    if isinstance(op, PoolOp):
        return _range("kernel", op.kernel, ALU_KERNEL) or _range("stride", op.stride, ALU_STRIDE) or _pads(op.pad)
    if isinstance(op, TransposeOp):
        return "a transpose of a feature map is a CPU op"
    if isinstance(op, (EltwiseOp, ConcatOp, ReshapeOp, UpsampleOp, PadOp, HardSigmoidOp, HardSwishOp)):
        return None
    return None


__all__ = ["dpu_violation", "CONV_KERNEL", "CONV_STRIDE", "ALU_KERNEL", "ALU_STRIDE", "CONV_KERNEL_LIMIT"]
