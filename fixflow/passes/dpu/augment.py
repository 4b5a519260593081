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


#: the largest ICP of any ISA1 target
MAX_ICP = 16


def _plain_input(L: Layer) -> bool:
    f = getattr(L, "inp", None)
    return (isinstance(L, ConvLayer) and f.parent is None and f.alias_of is None and f.ddr is not None
            and f.ddr[0] == REG_IN)


def candidate(L: Layer) -> bool:
    """Whether conv `L` could be augmented on some target (target-independent conditions)."""
    if not _plain_input(L):
        return False
    kw, sw, (_, _, pl, pr) = L.win.kernel[1], L.win.stride[1], L.win.pad
    return 1 < kw and sw <= kw and pl < kw and pr < kw and kw * L.inp.c <= MAX_AUGMENT


def fold_candidate(L: Layer) -> bool:
    """Whether conv `L` could run column-folded on some target (target-independent conditions)."""
    if not _plain_input(L):
        return False
    kw, sw, (_, _, pl, pr) = L.win.kernel[1], L.win.stride[1], L.win.pad
    return 2 <= sw < kw and pl < kw and pr < kw and sw * L.inp.c <= MAX_ICP


def fold_layout(L: ConvLayer) -> tuple[int, int]:
    """(pixels wholly left of the map, pixels from the first one touching the map to the last) of a folded
    conv: pixel p holds input columns [p*sw - pl, p*sw - pl + sw)."""
    sw, pl = L.win.stride[1], L.win.pad[2]
    first = pl // sw
    last = -(-(L.inp.w + pl) // sw) - 1
    return first, last - first + 1


def fold_columns(L: Layer, width: int, icp: int) -> int:
    """Column folding where full augmentation does not fit (kw*IC > 2*ICP, e.g. ResNet's 7x7/2 stem over 3
    channels on ICP 8 or 10): each augmented pixel holds the stride's sw columns (sw*IC <= ICP channels, one
    line), the CONV runs ceil(kw/sw) taps across with stride 1 (the last tap's missing columns have zero
    weights). Returns sw, or 0 when `L` is not folded on a target with augmentation width `width`."""
    if not width or channels(L, width, icp) or not fold_candidate(L) or L.win.stride[1] * L.inp.c > icp:
        return 0
    kw, sw = L.win.kernel[1], L.win.stride[1]
    kw2 = -(-kw // sw)
    first, n = fold_layout(L)
    right = (L.out.w - 1 + kw2) - (first + n)        # pixels wholly right of the map the last output reads
    if first > min(kw2 - 1, 15) or right > kw2 - 1 or kw2 >= kw * math.ceil(L.inp.c / icp):
        return 0
    return sw


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
        if fold_candidate(L):               # the last pixel touching the map ends before column W + sw - 1
            head = max(head, L.win.pad[2] * L.inp.c)
            tail = max(tail, (L.win.stride[1] - 1) * L.inp.c)
    return (align(head, ALIGN) if head else 0), tail


__all__ = ["candidate", "channels", "overflow", "input_margins", "fold_candidate", "fold_columns", "fold_layout",
           "MAX_AUGMENT"]
