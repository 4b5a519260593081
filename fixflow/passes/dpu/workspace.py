"""REG_1 (the workspace) laid out again from the instructions, after instruction selection.

`allocate-ddr` places the workspace before `lower-to-dpu` knows which maps stay on chip (conv + ELEW
fusion, on-chip chains) and with live ranges counted in layers. Once the program exists,
`reallocate_workspace` knows exactly which LOADs and SAVEs touch each workspace map:

- a map that no instruction reads or writes in DDR (it stays in the banks) gets no bytes: its address
  becomes `ON_CHIP` (-1);
- every other map is placed, largest first, at the lowest address (0, or a start or end of a map live at
  the same time) where none of its 16-byte blocks is in use while a block of another map at the same
  address is; a block is in use from the first to the last LOAD/SAVE touching it (instruction indices).
  Maps never live together share bytes, and so do maps live together that use the shared bytes at
  different times (a max pool's output over the input rows its earlier bands have read: ResNet-18's
  stem output and pool output need 802,816 bytes instead of 1,003,520);
- every REG_1 LOAD and SAVE is moved by the same amount as the map it touches, so the program computes
  exactly what it computed before.

A layer's LOADs read only its inputs and its SAVEs write only its output. `allocate-ddr` keeps a layer's
inputs apart (they are live together), so each REG_1 access belongs to exactly one map. This layout keeps
apart any two blocks in use at the same time, which is enough for `lower-to-dpu` to run again on it
(same program); only inputs of one layer sharing a block that the layer does not read would make an
access ambiguous, and that is reported, never guessed. The scheduler (`schedule-dpu`, run after) orders
a SAVE into reused bytes after the last LOAD of their previous map, and `verify-dpu-schedule` proves it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .ddr import ALIGN, REG_WORK, align
from .layers import FMap

#: the address of a workspace map that stays on chip (no DDR bytes)
ON_CHIP = -1


@dataclass
class WorkspaceLayout:
    """The result of `reallocate_workspace`: REG_1 bytes after and before, the naive sum of every
    workspace map, and the maps by fate."""

    peak: int
    before: int
    naive: int
    live: dict[FMap, tuple[int, int]] = field(default_factory=dict)    # root -> (first, last) instruction
    on_chip: list[FMap] = field(default_factory=list)


def _extent(ins) -> tuple[int, int]:
    """[first, last + 1) DDR bytes of a LOAD or SAVE."""
    f = ins.fields
    jump = f["jump_read"] if ins.name == "LOAD" else f["jump_write"]
    return f["ddr_addr"], f["ddr_addr"] + (f["length"] - 1) * jump + f["channel"]


def _roots(maps) -> list[FMap]:
    """The distinct workspace owners of `maps`."""
    seen: list[FMap] = []
    for f in maps:
        r = f.root()
        if r.ddr is not None and r.ddr[0] == REG_WORK and all(r is not s for s in seen):
            seen.append(r)
    return seen


def _block_lives(r: FMap, spans: list[tuple[int, int, int]]):
    """Per 16-byte block of map `r`: (first, last) instruction touching it (blocks never touched:
    (+big, -1), free at any time)."""
    import numpy as np
    n = align(r.nbytes) // ALIGN
    lo = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    hi = np.full(n, -1, dtype=np.int64)
    for b0, b1, k in spans:
        np.minimum(lo[b0:b1], k, out=lo[b0:b1])
        np.maximum(hi[b0:b1], k, out=hi[b0:b1])
    return lo, hi


def _lowest_fit(r: FMap, blocks, near: list[tuple[FMap, int]]) -> int:
    """The lowest address (0, or a start or end of a map live at the same time) where no 16-byte block of
    `r` is in use while a block of a placed map at the same address is: two maps may share bytes when
    one's last access to them comes before the other's first (a max pool's output over the input rows
    it has read)."""
    size = align(r.nbytes)
    lo_r, hi_r = blocks[r]
    cands = sorted({0, *(a for _, a in near), *(a + align(p.nbytes) for p, a in near)})
    for c in cands:
        ok = True
        for p, a in near:
            s0, s1 = max(c, a), min(c + size, a + align(p.nbytes))
            if s0 >= s1:
                continue
            i0, i1 = (s0 - c) // ALIGN, (s1 - c) // ALIGN
            j0, j1 = (s0 - a) // ALIGN, (s1 - a) // ALIGN
            lo_p, hi_p = blocks[p]
            if ((lo_r[i0:i1] <= hi_p[j0:j1]) & (lo_p[j0:j1] <= hi_r[i0:i1])).any():
                ok = False
                break
        if ok:
            return c
    raise AssertionError("no address fits")   # the end of the highest map always fits


def reallocate_workspace(prog) -> WorkspaceLayout:
    """Lay REG_1 of `prog` (a `program.DpuProgram` with `layer_of`, straight from `compile_annotated`)
    out again from its instructions; rewrites the REG_1 LOADs/SAVEs, the maps' `ddr` and
    `prog.ddr.sizes`. Raises ValueError when an instruction touches workspace bytes outside its layer's
    maps (the program and the layout disagree)."""
    layers = prog.layers
    if len(prog.layer_of) != len(prog.instructions):
        raise ValueError("the program has no layer of each instruction (compile it with compile_annotated)")
    roots = _roots(f for L in layers for f in [*L.inputs, L.out])
    before = prog.ddr.sizes.get(REG_WORK, 0)
    naive = sum(align(r.nbytes) for r in roots)
    # a layer LOADs its inputs and SAVEs its output: those are live together, hence apart in REG_1
    reads = [[r for r in _roots(L.inputs) if r.ddr[1] != ON_CHIP] for L in layers]
    writes = [[r for r in _roots([L.out]) if r.ddr[1] != ON_CHIP] for L in layers]
    first: dict[FMap, int] = {}
    last: dict[FMap, int] = {}
    owner: list[tuple[object, FMap]] = []             # (instruction, its map)
    spans: dict[FMap, list[tuple[int, int, int]]] = {}   # map -> (first block, end block, instruction)
    for k, (ins, li) in enumerate(zip(prog.instructions, prog.layer_of)):
        if ins.name not in ("LOAD", "SAVE") or ins.fields["reg_id"] != REG_WORK:
            continue
        lo, hi = _extent(ins)
        cands = (reads if ins.name == "LOAD" else writes)[li] if 0 <= li < len(layers) else []
        hits = [r for r in cands if r.ddr[1] <= lo and hi <= r.ddr[1] + r.nbytes]
        if len(hits) != 1:
            what = "no workspace map" if not hits else "two workspace maps (" + ", ".join(r.name for r in hits) + ")"
            where = layers[li].name if 0 <= li < len(layers) else "?"
            raise ValueError(f"instruction {k} ({ins.name} of layer {where}) touches REG_1 bytes [{lo}, {hi}) "
                             f"of {what}")
        r = hits[0]
        first.setdefault(r, k)
        last[r] = k
        owner.append((ins, r))
        spans.setdefault(r, []).append(((lo - r.ddr[1]) // ALIGN, -(-(hi - r.ddr[1]) // ALIGN), k))
    out = WorkspaceLayout(0, before, naive)
    blocks = {r: _block_lives(r, spans[r]) for r in first}
    placed: list[tuple[FMap, int]] = []               # (map, address)
    new: dict[FMap, int] = {}
    for r in sorted(first, key=lambda m: (-align(m.nbytes), first[m])):
        a, b = first[r], last[r]
        near = [(p, addr) for p, addr in placed if not (last[p] < a or b < first[p])]   # live together
        new[r] = _lowest_fit(r, blocks, near)
        placed.append((r, new[r]))
        out.live[r] = (a, b)
    for ins, r in owner:
        ins.fields["ddr_addr"] += new[r] - r.ddr[1]
    for r in roots:
        if r in new:
            r.ddr = (REG_WORK, new[r])
        else:
            r.ddr = (REG_WORK, ON_CHIP)
            out.on_chip.append(r)
    out.peak = max((addr + align(r.nbytes) for r, addr in placed), default=0)
    assert out.peak % ALIGN == 0
    prog.ddr.sizes[REG_WORK] = out.peak
    prog.ddr.naive_workspace = naive
    return out




def annotate_workspace(func, sg, prog, layout: WorkspaceLayout) -> None:
    """Record `layout` on the IR: `dpu.ddr` of every workspace map's producer (`[1, -1]` for a map that
    stays on chip), `dpu.scratch` of compiler-owned maps, and the subgraph's entries of the function's
    `dpu.ddr_sizes` (REG_1) and `dpu.workspace` ([peak, naive sum, allocate-ddr's peak])."""
    from ...ir.attributes import DenseArrayAttr, DictionaryAttr
    from ...ir.types import i64
    from .program import _scratch
    inside = set(sg.ops)
    for L in prog.layers:
        for f in [*L.inputs, L.out]:
            r = f.root()
            op = getattr(f.value, "op", None) if f.value is not None else None
            if op is None or op not in inside or r.ddr is None or r.ddr[0] != REG_WORK:
                continue
            op.attributes["dpu.ddr"] = DenseArrayAttr(i64, [REG_WORK, ON_CHIP] if r.ddr[1] == ON_CHIP
                                                      else list(f.addr()))
    for op, maps in _scratch(prog.layers).items():
        op.attributes["dpu.scratch"] = DenseArrayAttr(i64, [x for f in maps for x in f.ddr])
    sizes = dict(func.attributes["dpu.ddr_sizes"].value) if "dpu.ddr_sizes" in func.attributes else {}
    sizes[sg.name] = DenseArrayAttr(i64, [prog.ddr.sizes.get(r, 0) for r in range(4)])
    func.attributes["dpu.ddr_sizes"] = DictionaryAttr(sizes)
    work = dict(func.attributes["dpu.workspace"].value) if "dpu.workspace" in func.attributes else {}
    work[sg.name] = DenseArrayAttr(i64, [layout.peak, layout.naive, layout.before])
    func.attributes["dpu.workspace"] = DictionaryAttr(work)


def chained_operands(prog) -> dict[object, int]:
    """Per consumer op of an on-chip chain (`codegen.chains`), the index of the operand it reads from the
    banks (the producer's output, possibly through a reshape)."""
    res = {}
    for i in prog.emitter.chain:
        P, C = prog.layers[i], prog.layers[i + 1]
        if not P.ops or not C.ops:
            continue
        op = C.ops[-1]
        for k, v in enumerate(op.operands):
            while getattr(v, "op", None) is not None and v.op.name == "fix.reshape" and v is not P.out.value:
                v = v.op.operands[0]
            if v is P.out.value:
                res[op] = k
                break
    return res


__all__ = ["ON_CHIP", "WorkspaceLayout", "annotate_workspace", "chained_operands", "reallocate_workspace"]
