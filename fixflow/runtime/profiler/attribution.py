"""Which super-layer each instruction of a DPU subgraph's program belongs to.

A compiled xmodel written in release mode keeps one program per DPU subgraph and only the op names of
each super-layer child, so the profiler finds the layers in the stream from the data:

1. a LOAD from a CONST region reads the bytes of one child's ``const-fix`` tensors (their
   ``reg_id``/``ddr_addr``): it belongs to that child, and so do the weight and bias bank lines it writes;
2. a CONV, or a depthwise ALU, belongs to the child whose weights it reads (the child that last loaded
   the first weight line it reads);
3. an ALU without weights (pooling) or an ELEW belongs to the current child if that child holds an op of
   its kind (``pool-fix``, ``eltwise-fix``, ...), else to the next child in topological order that does;
4. a feature-map LOAD and an INIT belong to the next compute instruction of the stream, a SAVE to the
   previous one, END to the last.

Checked on AMD's compiled MNIST: the work the attributed instructions do equals every child's
``workload_on_arch`` attribute (tests/runtime/profiler).
"""

from __future__ import annotations

import bisect
import math
from typing import Any, Sequence

_WEIGHT_KINDS = {"conv2d-fix", "depthwise-conv2d-fix", "transposed-conv2d-fix", "conv2d", "depthwise-conv2d"}
_ALU_POOL_TYPES = {"pool-fix", "maxpool2d", "avgpool2d", "reduction_max-fix", "hard-sigmoid-fix",
                   "leaky-relu-fix", "prelu-fix"}
_ELEW_TYPES = {"eltwise-fix", "eltwise", "add", "mul"}
_COMPUTE = ("CONV", "ALU", "ELEW")


def attribute(instrs: Sequence[Any], model: Any, sg: Any, target: Any) -> tuple[list[str], list[int]]:
    """(group names, group index of every instruction) for DPU subgraph ``sg`` of compiled ``model``.

    Groups are the code children in ``children_topological_sort`` order; a subgraph whose children hold
    no constants gets one group named after the subgraph.
    """
    children = sg.code_children or [c for c in sg.children if c.kind == "code"]
    names = [c.name for c in children]
    const_ranges: list[tuple[int, int, int, int]] = []     # reg, start, end, child index
    types: list[set[str]] = []
    for k, c in enumerate(children):
        ts: set[str] = set()
        for n in c.op_names:
            try:
                o = model.op(n)
            except Exception:
                continue
            ts.add(o.type)
            t = o.output
            if o.type == "const-fix" and "reg_id" in t.attrs and "ddr_addr" in t.attrs:
                size = math.prod(int(d) for d in t.shape) if t.shape else 1
                start = t.attrs["ddr_addr"].value
                const_ranges.append((t.attrs["reg_id"].value, start, start + max(size, 1), k))
        types.append(ts)
    if not const_ranges:
        return [sg.name], [0] * len(instrs)
    const_regs = {r.reg_id for r in sg.regions if r.context_type == "CONST"}
    convw = target.bank_group_named("CONVW").first_id
    dwconvw = target.bank_group_named("DWCONVW").first_id
    depth = target.bank_group_named("CONVW").depth
    loaded: dict[int, list[tuple[int, int, int]]] = {}       # bank -> [(first line, lines, child)]
    label: list[int | None] = [None] * len(instrs)
    current = 0
    aluinit: dict = {}

    const_ranges.sort()
    starts = [(r, s) for r, s, _, _ in const_ranges]

    def owner(reg: int, addr: int) -> int | None:
        i = bisect.bisect_right(starts, (reg, addr)) - 1      # constant tensors do not overlap
        if i >= 0:
            r, s, e, k = const_ranges[i]
            if r == reg and s <= addr < e:
                return k
        return None

    def weights_of(bank: int, line: int) -> int | None:
        for first, n, k in reversed(loaded.get(bank, ())):
            if (line - first) % depth < n:
                return k
        return None

    def by_kind(kinds: set[str]) -> int:
        if types[current] & kinds:
            return current
        for k in range(current + 1, len(children)):
            if types[k] & kinds:
                return k
        return current

    for i, ins in enumerate(instrs):
        f = ins.fields
        if ins.name == "LOAD" and f["reg_id"] in const_regs:
            k = owner(f["reg_id"], f["ddr_addr"])
            if k is not None:
                label[i] = k
                lines = (f["length"] - 1) * f["jump_write"] + math.ceil(f["channel"] / target.icp)
                loaded.setdefault(f["bank_id"], []).append((f["bank_addr"], lines, k))
                if len(loaded[f["bank_id"]]) > 64:
                    del loaded[f["bank_id"]][0]
        elif ins.name == "ALUINIT":
            aluinit = dict(f)
        elif ins.name == "CONV":
            k = weights_of(convw, f["bank_addr_weights"])
            current = k if k is not None else current
            label[i] = current
        elif ins.name == "ALU":
            if aluinit.get("exec_mode") in (0, 6, 8):
                k = weights_of(dwconvw, f["bank_addr_weights"])
                current = k if k is not None else by_kind({"depthwise-conv2d-fix"})
            else:
                current = by_kind(_ALU_POOL_TYPES)
            label[i] = current
        elif ins.name == "ELEW":
            current = by_kind(_ELEW_TYPES)
            label[i] = current
    # the rest: forward to the next compute (LOAD, INIT), backward for SAVE/END
    nxt = None
    for i in range(len(instrs) - 1, -1, -1):
        if instrs[i].name in _COMPUTE:
            nxt = label[i]
        elif label[i] is None and instrs[i].name not in ("SAVE", "END"):
            label[i] = nxt
    prev = 0
    for i, ins in enumerate(instrs):
        if label[i] is None:
            label[i] = prev
        prev = label[i]  # type: ignore[assignment]
    return names, [int(x) for x in label]  # type: ignore[arg-type]


__all__ = ["attribute"]
