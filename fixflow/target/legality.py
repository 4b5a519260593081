"""Which layers a DPUCZDX8G target runs (spec/dpu-isa.md, "Engine limits"), as numbers only.

Each rule returns the first broken constraint as a sentence, or None when the target can run the
layer; it knows nothing about ops (the fix dialect's ops say which rule applies to them, see
`FixOp.dpu_violation`). The limits come from a `Target` (default: DPUCZDX8G_ISA1_B4096), so the
quantizer's legalization, the partition pass and the compiler read the same description.
"""

from __future__ import annotations

from typing import Sequence

from .dpuczdx8g import Range, Target

DEFAULT_TARGET = "DPUCZDX8G_ISA1_B4096"
#: the DPU computes on 8-bit fixed point
BIT_WIDTH = 8

_default: Target | None = None


def default_target() -> Target:
    """The target the quantizer legalizes for unless told otherwise."""
    global _default
    if _default is None:
        from .registry import get_target
        _default = get_target(DEFAULT_TARGET)
    return _default


def _range(what: str, values: Sequence[int], r: Range) -> str | None:
    for v in values:
        if not r.lo <= v <= r.hi:
            return f"{what} {tuple(values)} is outside the DPU range [{r.lo}, {r.hi}]"
    return None


def _pads(pad: Sequence[int], t: Target) -> str | None:
    """`pad` is (top, bottom, left, right); the engines take pads as the ALU's ranges."""
    pt, pb, pl, pr = pad
    a = t.alu
    return (_range("pad (top, left)", (pt, pl), Range(0, max(a.pad_top.hi, a.pad_left.hi)))
            or _range("pad (bottom, right)", (pb, pr), Range(0, max(a.pad_bottom.hi, a.pad_right.hi))))


#: tensor roles whose values the DPU holds in its 8-bit datapath unchanged when they are narrower (a
#: 4-bit weight `q * 2^-fp` is the 8-bit weight `q` at the same fix_pos): weights and biases
WIDENABLE = ("weights", "bias")


def bit_width_violation(bit_width: int, role: str = "feature map") -> str | None:
    """Whether the DPU computes a `role` tensor ("feature map", "weights" or "bias") of `bit_width` bits:
    feature maps must be exactly 8 bits (the engines saturate to [-128, 127]); weights and biases at
    most 8 (narrower ones are the same integers in 8 bits)."""
    if bit_width == BIT_WIDTH or (role in WIDENABLE and bit_width < BIT_WIDTH):
        return None
    if role in WIDENABLE:
        return f"{bit_width}-bit {role} (the DPU holds {role} in at most {BIT_WIDTH} bits)"
    if role == "output":
        return (f"a {bit_width}-bit output (the DPU computes {BIT_WIDTH}-bit feature maps: it saturates to "
                f"[-{2 ** (BIT_WIDTH - 1)}, {2 ** (BIT_WIDTH - 1) - 1}], not to the {bit_width}-bit range)")
    return f"a {bit_width}-bit {role} (the DPU reads {BIT_WIDTH}-bit feature maps)"


def conv_violation(kernel: Sequence[int], stride: Sequence[int], pad: Sequence[int], in_channels: int,
                   target: Target | None = None) -> str | None:
    """A (transposed) convolution: kernel (kh, kw), stride, pad (top, bottom, left, right)."""
    t = target or default_target()
    kh, kw = kernel
    bad = _range("kernel", kernel, t.conv.kernel) or _range("stride", stride, t.conv.stride) or _pads(pad, t)
    if bad is None and not t.fits_weight_bank(kw, kh, in_channels):
        depth = t.bank_group_named("CONVW").depth
        bad = (f"kernel {kh}x{kw} with {in_channels} input channels exceeds the weight bank "
               f"(kernel_w * kernel_h * ceil(ic / {t.icp}) = {t.conv_weight_lines(kw, kh, in_channels)} > {depth})")
    return bad


def depthwise_violation(kernel: Sequence[int], stride: Sequence[int], pad: Sequence[int],
                        target: Target | None = None) -> str | None:
    t = target or default_target()
    return _range("kernel", kernel, t.conv.kernel) or _range("stride", stride, t.conv.stride) or _pads(pad, t)


def dense_violation(in_features: int, target: Target | None = None) -> str | None:
    """An inner product runs as a 1x1 conv over `in_features` channels."""
    t = target or default_target()
    if not t.fits_weight_bank(1, 1, in_features):
        return f"inner product with {in_features} inputs exceeds the weight bank"
    return None


def pool_violation(kernel: Sequence[int], stride: Sequence[int], pad: Sequence[int],
                   target: Target | None = None) -> str | None:
    t = target or default_target()
    return _range("kernel", kernel, t.alu.kernel) or _range("stride", stride, t.alu.stride) or _pads(pad, t)


__all__ = ["DEFAULT_TARGET", "BIT_WIDTH", "WIDENABLE", "default_target", "bit_width_violation", "conv_violation",
           "depthwise_violation", "dense_violation", "pool_violation"]
