"""DDR allocation of one DPU subgraph.

- REG_0 CONST: every conv/dense weight tensor [OC][KH][KW][IC] and depthwise weight [KH][KW][C], in
  layer order, then every bias; each constant starts on an `ALIGN`-byte boundary (gaps are zero).
- REG_1 WORKSPACE: intermediate feature maps; live range = producer layer to last consumer layer (the
  inputs of a conv that an ELEW right after it may be fused with: to the ELEW);
  largest first, each at the lowest address not used by a map live at the same time (greedy by size),
  so maps that are never live together share bytes.
- REG_2: the subgraph's inputs (interface), REG_3: its outputs (interface).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .layers import AluLayer, ConvLayer, EltwiseLayer, FillLayer, FMap, Layer

ALIGN = 16
REG_CONST, REG_WORK, REG_IN, REG_OUT = 0, 1, 2, 3


def align(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


@dataclass
class DdrPlan:
    """Where everything lives: constants by (layer, "weights"|"bias"), feature maps in `FMap.ddr`."""

    const: dict[tuple[int, str], int] = field(default_factory=dict)
    const_bytes: bytearray = field(default_factory=bytearray)
    sizes: dict[int, int] = field(default_factory=dict)
    intervals: list[tuple[FMap, int, int]] = field(default_factory=list)   # workspace maps, live [first, last]
    naive_workspace: int = 0

    @property
    def peak_workspace(self) -> int:
        return self.sizes.get(REG_WORK, 0)


def _place_const(plan: DdrPlan, key: tuple[int, str], data: np.ndarray) -> None:
    off = align(len(plan.const_bytes))
    plan.const_bytes.extend(b"\0" * (off - len(plan.const_bytes)))
    plan.const[key] = off
    plan.const_bytes.extend(np.ascontiguousarray(data, dtype=np.int8).tobytes())


def allocate(layers: list[Layer], inputs: list[FMap], outputs: list[FMap]) -> DdrPlan:
    """Assign REG_0 offsets to constants and (reg, addr) to every feature map of `layers`."""
    plan = DdrPlan()
    for i, L in enumerate(layers):
        if isinstance(L, (ConvLayer, FillLayer)) or (isinstance(L, AluLayer) and L.weights is not None):
            _place_const(plan, (i, "weights"), L.weights)
    for i, L in enumerate(layers):
        if isinstance(L, ConvLayer) or (isinstance(L, AluLayer) and L.bias is not None):
            _place_const(plan, (i, "bias"), L.bias)
    plan.const_bytes.extend(b"\0" * (align(len(plan.const_bytes)) - len(plan.const_bytes)))
    plan.sizes[REG_CONST] = len(plan.const_bytes)

    roots_in = {f.root() for f in inputs}
    roots_out = {f.root() for f in outputs}
    off = 0
    for f in inputs:
        r = f.root()
        if r.ddr is None:
            r.ddr = (REG_IN, off)
            off = align(off + r.nbytes)
    plan.sizes[REG_IN] = off
    off = 0
    for f in outputs:
        r = f.root()
        if r.ddr is None:
            r.ddr = (REG_OUT, off)
            off = align(off + r.nbytes)
    plan.sizes[REG_OUT] = off

    # live ranges of workspace maps (by root), in layer indices
    first: dict[FMap, int] = {}
    last: dict[FMap, int] = {}
    for i, L in enumerate(layers):
        # a conv whose output an ELEW right after it reads may run fused with it, band by band (codegen's
        # `fusable_eltwise`): the ELEW's SAVEs then come before the conv's last LOADs, so the conv's inputs
        # stay live through the ELEW
        upto = i + 1 if (isinstance(L, ConvLayer) and i + 1 < len(layers) and isinstance(layers[i + 1], EltwiseLayer)
                         and any(x is L.out for x in layers[i + 1].ins)) else i
        for f in [*L.inputs, L.out]:
            r = f.root()
            if r in roots_in or r in roots_out:
                continue
            first.setdefault(r, i)
            last[r] = max(last.get(r, i), upto if f is not L.out else i)
    live: list[tuple[int, int, int, int]] = []   # (first, last, addr, size)
    # greedy by size: the largest tensors first, each at the lowest address free over its live range
    for r in sorted(first, key=lambda m: (-align(m.nbytes), first[m])):
        a, b, size = first[r], last[r], align(r.nbytes)
        plan.naive_workspace += size
        busy = sorted((x[2], x[2] + x[3]) for x in live if not (x[1] < a or b < x[0]))
        addr = 0
        for lo, hi in busy:
            if addr + size <= lo:
                break
            addr = max(addr, hi)
        r.ddr = (REG_WORK, addr)
        live.append((a, b, addr, size))
        plan.intervals.append((r, a, b))
    plan.intervals.sort(key=lambda x: x[1])
    plan.sizes[REG_WORK] = max((x[2] + x[3] for x in live), default=0)
    for L in layers:
        for f in [*L.inputs, L.out]:
            if f.ddr is None:
                f.ddr = f.addr()
    return plan


__all__ = ["DdrPlan", "allocate", "align", "ALIGN", "REG_CONST", "REG_WORK", "REG_IN", "REG_OUT"]
