"""Dependency flags (`dpdon`/`dpdby`) and the checker that proves a schedule safe.

Protocol (decoupled access/execute, as TVM's VTA; spec dpu-isa.md "Dependencies"): the four units
LOAD, SAVE, CONV, MISC each execute their own instructions in program order. An instruction whose
`dpdby` has the bit of another unit U pushes one token to U when it completes; an instruction whose
`dpdon` has the bit of unit U pops one token from U before it starts (tokens of a unit pair are a FIFO).
fixflow never sets a unit's own bit.

`schedule` sets the flags: every instruction waits, through one token, for the last earlier
instruction of another unit that touches a bank line or DDR block it touches (read-after-write,
write-after-read, write-after-write), unless an earlier token already orders them. Tokens are always
produced earlier in program order than they are consumed, so program order is a valid execution.

`check` proves, independently of how the flags were chosen: tokens balance; the units reach the end
(one complete run of this monotone token system proves no interleaving deadlocks); every pair of
conflicting instructions on different units is ordered by program order within units plus tokens
(vector clocks), i.e. no read-before-write or write-after-read hazard on any bank line or DDR block.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from dataclasses import dataclass

from ...dialects.dpu.isa import Instruction
from ...ir.diagnostics import FixflowError

LOAD_U, SAVE_U, CONV_U, MISC_U = 0, 1, 2, 3
UNIT_NAMES = ("LOAD", "SAVE", "CONV", "MISC")
UNIT_OF = {"LOAD": LOAD_U, "SAVE": SAVE_U, "END": SAVE_U, "CONVINIT": CONV_U, "CONV": CONV_U}
#: DDR footprints are tracked in blocks of this many bytes (conservative: a block is one resource)
DDR_BLOCK = 16


class ScheduleError(FixflowError):
    """A schedule that can deadlock or race (names the instruction index)."""


def unit(ins: Instruction) -> int:
    return UNIT_OF.get(ins.name, MISC_U)


@dataclass(frozen=True)
class Geometry:
    """The bank geometry footprints need: line width (ICP bytes), PP, ALU PP, OCP, bank ids."""

    width: int
    pp: int
    ocp: int
    depth: int
    convw: int
    dwconvw: int
    bias: int

    @classmethod
    def of(cls, arch) -> "Geometry":
        return cls(arch.icp, arch.pp, arch.ocp, arch.depth, arch.convw, arch.dwconvw, arch.bias)


def _lines(bank: int, start: int, n: int, depth: int) -> list[tuple]:
    return [("b", bank, (start + k) % depth) for k in range(n)]


def _ddr(reg: int, start: int, n: int) -> list[tuple]:
    return [("d", reg, b) for b in range(start // DDR_BLOCK, (start + n - 1) // DDR_BLOCK + 1)] if n > 0 else []


def _rows_in(ins: dict, init: dict, g: Geometry, real_h: int, src_w: int, lines_px: int) -> list[tuple]:
    """Bank lines of the input rows 0..real_h-1 of a CONV/ALU (dpu-semantics.md (2).3)."""
    out = []
    base = ins["bank_id_in"] - ins["bank_id_in"] % g.pp
    bank = ins["bank_id_in"]
    so = init["stride_offset_in"]
    group = 0
    addrs = (ins["bank_addr_in"], ins["bank_addr_in_1"], ins["bank_addr_in_2"], ins["bank_addr_in_3"])
    for _ in range(real_h):
        a = addrs[min(group, 3)] + so * init["jump_read_endl"]
        for w in range(src_w):
            out += _lines(bank, a + w * init["jump_read"], lines_px, g.depth)
        so += 1
        if so == init["stride_h"]:
            so = 0
            bank += 1
            if bank == base + g.pp:
                bank, group = base, group + 1
    return out


def _rows_out(ins: dict, init: dict, g: Geometry, vpp: int, length: int, lines_px: int) -> list[tuple]:
    out = []
    base = ins["bank_id_out"] - ins["bank_id_out"] % g.pp
    o = ins["bank_id_out"] % g.pp
    so, s = init["stride_offset_out"], init["stride_out"]
    for h in range(vpp):
        boff = (h + so) // s
        bank = base + (o + boff) % g.pp
        a = ins["bank_addr_out"] + ((o + boff) // g.pp) * s * init["jump_write_endl"] + ((h + so) % s) * init["jump_write_endl"]
        for w in range(length):
            out += _lines(bank, a + w * init["jump_write"], lines_px, g.depth)
    return out


def footprints(instrs: list[Instruction], g: Geometry) -> list[tuple[list[tuple], list[tuple]]]:
    """(reads, writes) of every instruction: ("b", bank, line) and ("d", reg, block) resources."""
    res = []
    convinit: dict = {}
    aluinit: dict = {}
    elewinit: deque = deque()
    for ins in instrs:
        f = ins.fields
        r: list[tuple] = []
        w: list[tuple] = []
        if ins.name == "LOAD":
            n = math.ceil(f["channel"] / g.width)
            for l in range(f["length"]):
                w += _lines(f["bank_id"], f["bank_addr"] + l * f["jump_write"], n, g.depth)
                r += _ddr(f["reg_id"], f["ddr_addr"] + l * f["jump_read"], f["channel"])
        elif ins.name == "SAVE":
            n = math.ceil(f["channel"] / g.width)
            for l in range(f["length"]):
                r += _lines(f["bank_id"], f["bank_addr"] + l * f["jump_read"], n, g.depth)
                w += _ddr(f["reg_id"], f["ddr_addr"] + l * f["jump_write"], f["channel"])
        elif ins.name == "CONVINIT":
            convinit = dict(f)
        elif ins.name == "ALUINIT":
            aluinit = dict(f)
        elif ins.name == "CONV":
            c = convinit
            cg = f["channel_group"]
            real_h = (c["valid_pixel_parallel"] - 1) * c["stride_h"] + c["kernel_h"]
            src_w = (f["length"] - 1) * c["stride_w"] + c["kernel_w"]
            r += _rows_in(f, c, g, real_h, src_w, cg)
            taps = c["kernel_h"] * c["kernel_w"] * cg
            for b in range(g.ocp):
                r += _lines(g.convw + b, f["bank_addr_weights"], taps, g.depth)
            r += _lines(g.bias, f["bank_addr_bias"], 1, g.depth)
            w += _rows_out(f, c, g, c["valid_pixel_parallel"], f["length"], 1)
        elif ins.name == "ALU":
            c = aluinit
            cg = c["channel_group"]
            real_h = (f["valid_pixel_parallel"] - 1) * c["stride_h"] + c["kernel_h"]
            src_w = (c["length"] - 1) * c["stride_w"] + c["kernel_w"]
            r += _rows_in(f, c, g, real_h, src_w, cg)
            if c["exec_mode"] in (0, 6, 8):
                for t in range(c["kernel_h"] * c["kernel_w"]):
                    r += _lines(g.dwconvw, f["bank_addr_weights"] + t * c["jump_read_weights"], cg, g.depth)
            if c["exec_mode"] == 0:
                r += _lines(g.bias, f["bank_addr_bias"], cg, g.depth)
            w += _rows_out(f, c, g, f["valid_pixel_parallel"], c["length"], cg)
        elif ins.name == "ELEWINIT":
            elewinit.append(dict(f))
        elif ins.name == "ELEW":
            cg = f["channel_group"]
            for _ in range(f["num"]):
                e = elewinit.popleft() if elewinit else None
                if e is None:
                    raise ScheduleError("an ELEW has fewer queued ELEWINITs than inputs")
                base = e["bank_id_in"] - e["bank_id_in"] % g.pp
                for k in range(f["valid_pixel_parallel"]):
                    off = e["bank_id_in"] - base + k * e["jump_bank"]
                    bank = e["bank_id_in"] if e["share_pp"] else base + off % g.pp
                    line = e["bank_addr_in"] + (0 if e["share_pp"] else off // g.pp) * e["jump_read_endl"]
                    for j in range(f["length"]):
                        r += _lines(bank, line + j * e["jump_read"], cg, g.depth)
            base = f["bank_id_out"] - f["bank_id_out"] % g.pp
            for k in range(f["valid_pixel_parallel"]):
                off = f["bank_id_out"] - base + k
                line = f["bank_addr_out"] + (off // g.pp) * f["jump_write_endl"]
                for j in range(f["length"]):
                    w += _lines(base + off % g.pp, line + j * f["jump_write"], cg, g.depth)
        elif ins.name != "END":
            raise ScheduleError(f"no footprint model for {ins.name}")
        res.append((r, w))
    return res


def schedule(instrs: list[Instruction], g: Geometry | None = None, fps=None) -> None:
    """Set `dpdon`/`dpdby` of `instrs` in place (see the module docstring). Clears existing flags."""
    if fps is None:
        if g is None:
            raise ValueError("schedule needs the bank geometry or the footprints")
        fps = footprints(instrs, g)
    for ins in instrs:
        ins.dpdon = ins.dpdby = 0
    last_writer: dict[tuple, int] = {}
    readers: dict[tuple, list[int]] = defaultdict(list)
    last_of_unit = [-1, -1, -1, -1]
    covered = [[-1] * 4 for _ in range(4)]    # covered[A][B]: B has waited on A's instruction index
    for j, ins in enumerate(instrs):
        u = unit(ins)
        need = [-1, -1, -1, -1]
        reads, writes = fps[j]
        if ins.name == "END":
            need = list(last_of_unit)
        for res in reads:
            i = last_writer.get(res, -1)
            if i >= 0:
                need[unit(instrs[i])] = max(need[unit(instrs[i])], i)
        for res in writes:
            i = last_writer.get(res, -1)
            if i >= 0:
                need[unit(instrs[i])] = max(need[unit(instrs[i])], i)
            for i in readers.get(res, ()):
                need[unit(instrs[i])] = max(need[unit(instrs[i])], i)
        for a in range(4):
            if a == u or need[a] < 0 or need[a] <= covered[a][u]:
                continue
            p = last_of_unit[a]          # >= need[a], and never yet a token source for u
            instrs[p].dpdby |= 1 << u
            ins.dpdon |= 1 << a
            covered[a][u] = p
        # transitivity: waiting on A's p also orders us after everything p waited on (not tracked; safe)
        for res in reads:
            readers[res].append(j)
        for res in writes:
            last_writer[res] = j
            readers[res] = []
        last_of_unit[u] = j


def check(instrs: list[Instruction], g: Geometry | None = None, fps=None) -> dict[str, int]:
    """Prove the flags safe (module docstring); raise `ScheduleError` naming the first problem.

    Returns counts: instructions per unit and tokens per unit pair.
    """
    if fps is None:
        fps = footprints(instrs, g)
    n = len(instrs)
    per_unit: list[list[int]] = [[], [], [], []]
    for j, ins in enumerate(instrs):
        per_unit[unit(ins)].append(j)
    for j, ins in enumerate(instrs):
        if ins.dpdon >> unit(ins) & 1 or ins.dpdby >> unit(ins) & 1:
            raise ScheduleError(f"instruction {j} ({ins.name}) waits on or signals its own unit")
    # abstract run of the token protocol; vector clocks for happens-before
    queues: dict[tuple[int, int], deque] = defaultdict(deque)
    head = [0, 0, 0, 0]
    unit_clock = [[0] * 4 for _ in range(4)]
    clock: list[list[int] | None] = [None] * n
    done = 0
    while done < n:
        progressed = False
        for u in range(4):
            while head[u] < len(per_unit[u]):
                j = per_unit[u][head[u]]
                ins = instrs[j]
                waits = [a for a in range(4) if ins.dpdon >> a & 1]
                if any(not queues[(a, u)] for a in waits):
                    break
                vc = list(unit_clock[u])
                for a in waits:
                    src = queues[(a, u)].popleft()
                    vc = [max(x, y) for x, y in zip(vc, clock[src])]
                vc[u] = head[u] + 1
                clock[j] = vc
                unit_clock[u] = vc
                for b in range(4):
                    if ins.dpdby >> b & 1:
                        queues[(u, b)].append(j)
                head[u] += 1
                done += 1
                progressed = True
        if not progressed:
            stuck = [f"{UNIT_NAMES[u]} at instruction {per_unit[u][head[u]]} ({instrs[per_unit[u][head[u]]].name})"
                     for u in range(4) if head[u] < len(per_unit[u])]
            raise ScheduleError("deadlock: " + "; ".join(stuck) + " wait for tokens never sent")
    left = [(a, b, len(q)) for (a, b), q in queues.items() if q]
    if left:
        a, b, k = left[0]
        raise ScheduleError(f"{k} token(s) from {UNIT_NAMES[a]} to {UNIT_NAMES[b]} are never consumed "
                            f"(first sent by instruction {queues[(a, b)][0]})")

    def before(i: int, j: int) -> bool:
        ui = unit(instrs[i])
        return clock[j][ui] >= clock[i][ui]

    last_writer: dict[tuple, int] = {}
    readers: dict[tuple, list[int]] = defaultdict(list)
    for j in range(n):
        reads, writes = fps[j]
        for res in reads:
            i = last_writer.get(res)
            if i is not None and not before(i, j):
                raise ScheduleError(_race("read-after-write", i, j, res, instrs))
        for res in writes:
            i = last_writer.get(res)
            if i is not None and not before(i, j):
                raise ScheduleError(_race("write-after-write", i, j, res, instrs))
            for i in readers.get(res, ()):
                if not before(i, j):
                    raise ScheduleError(_race("write-after-read", i, j, res, instrs))
        for res in reads:
            readers[res].append(j)
        for res in writes:
            last_writer[res] = j
            readers[res] = []
    stats = {f"{UNIT_NAMES[u]} instructions": len(per_unit[u]) for u in range(4)}
    return stats


def _race(kind: str, i: int, j: int, res: tuple, instrs: list[Instruction]) -> str:
    where = (f"bank {res[1]} line {res[2]}" if res[0] == "b"
             else f"REG_{res[1]} bytes {res[2] * DDR_BLOCK}-{res[2] * DDR_BLOCK + DDR_BLOCK - 1}")
    return (f"{kind} hazard on {where}: instruction {j} ({instrs[j].name}) is not ordered after "
            f"instruction {i} ({instrs[i].name})")


__all__ = ["schedule", "check", "footprints", "Geometry", "ScheduleError", "unit", "UNIT_NAMES"]
