"""Channel augmentation of a first conv (few input channels): the LOAD engine folds the kernel's width into
the channels, as AMD's compiler does (fingerprint bit 26, at most 2 * ICP channels; spec
compiled-xmodel.md: AMD's MNIST runs its 1-channel 3x3 conv as `kernel_w 1` over LOADs of `channel 3`).

Output column x of the conv reads input columns [x*sw - pl, x*sw - pl + kw), which in an NHWC row are the
kw*IC contiguous bytes starting at byte (x*sw - pl)*IC. One LOAD per input row reads those bytes for every
output column of a band (`channel` = kw*IC, DDR `jump_read` = sw*IC) into one "augmented pixel" per output
column (ceil(kw*IC / ICP) lines). The CONV then runs with `kernel_w` 1, `stride_w` 1 and no column
padding; rows are loaded and padded as for any conv. The weights are the same REG_0 bytes: per output
channel and kernel row, the kw*IC bytes [KW][IC] are the augmented pixel's channels in order.

Column padding is the LOAD's pad mask (dpu-semantics.md A27): `pad_start` zeroes the first bytes of the
first pixels (the columns left of the map, fewer by sw*IC per pixel), `pad_idx`/`pad_end` the last bytes
of the last pixels (right of the map, more by sw*IC per pixel). The masked bytes are still addressed, so
the input needs bytes before and after it in its region (AMD's compiled YOLOX starts its input at byte
1264): `input_margins` gives them, `program` shifts the REG_2 inputs and grows the region.

Augmented: a conv whose input is a plain map of the subgraph's input region (REG_2) with kernel_w > 1,
kernel_w >= stride_w, both column paddings below kernel_w, kw*IC within the target's augmentation width,
and fewer weight lines per kernel row than without (ceil(kw*IC/ICP) < kw*ceil(IC/ICP)).
"""

from __future__ import annotations

import math

from .ddr import ALIGN, REG_IN, align
from .layers import ConvLayer, Layer

#: the widest augmentation of any ISA1 target (2 * ICP, ICP <= 16): the input margins do not depend on the target
MAX_AUGMENT = 32


def candidate(L: Layer) -> bool:
    """Whether conv `L` could be augmented on some target (target-independent conditions)."""
    if not isinstance(L, ConvLayer):
        return False
    f = L.inp
    if f.parent is not None or f.alias_of is not None or f.ddr is None or f.ddr[0] != REG_IN:
        return False
    kw, sw, (_, _, pl, pr) = L.win.kernel[1], L.win.stride[1], L.win.pad
    return 1 < kw and sw <= kw and pl < kw and pr < kw and kw * f.c <= MAX_AUGMENT


def channels(L: Layer, width: int, icp: int) -> int:
    """The augmented channel count kw*IC of conv `L` on a target with augmentation width `width` (0: none)
    and ICP `icp`, or 0 when `L` is not augmented there."""
    if not width or not candidate(L):
        return 0
    kw, c = L.win.kernel[1], L.inp.c
    if kw * c > width or math.ceil(kw * c / icp) >= kw * math.ceil(c / icp):
        return 0
    return kw * c


def overflow(L: ConvLayer, x: int) -> tuple[int, int]:
    """(columns left of the map, columns right of it) of output column x's window."""
    kw, sw, pl = L.win.kernel[1], L.win.stride[1], L.win.pad[2]
    x0 = x * sw - pl
    return max(0, -x0), max(0, x0 + kw - L.inp.w)


def input_margins(layers: list[Layer]) -> tuple[int, int]:
    """(bytes before, bytes after) the REG_2 inputs that augmented LOADs may address (masked)."""
    head = tail = 0
    for L in layers:
        if candidate(L):
            c = L.inp.c
            head = max(head, L.win.pad[2] * c)
            tail = max(tail, overflow(L, L.out.w - 1)[1] * c)
    return (align(head, ALIGN) if head else 0), tail


__all__ = ["candidate", "channels", "overflow", "input_margins", "MAX_AUGMENT"]
