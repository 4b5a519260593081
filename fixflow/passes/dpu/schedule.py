"""Dependency flags (`dpdon`/`dpdby`) and the checker that proves a schedule safe.

Protocol (decoupled access/execute, as TVM's VTA; spec dpu-isa.md "Dependencies"): the four units
LOAD, SAVE, CONV, MISC each execute their own instructions in program order. An instruction whose
`dpdby` has the bit of another unit U pushes one token to U when it completes; an instruction whose
`dpdon` has the bit of unit U pops one token from U before it starts (tokens of a unit pair are a FIFO).
A unit's own bit is AMD's convention: in AMD-compiled streams every instruction carries its own unit's
bit in both masks (the MNIST reference: all 230 instructions), while the cross-unit tokens balance
exactly. `schedule` follows it by default (`own_unit_bits`); `check` accepts a stream where every
instruction or none carries them, and reasons about the cross-unit tokens only (AMD's MNIST program
passes it).

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

import numpy as np

from ...dialects.dpu.isa import Instruction
from ...dialects.dpu.tokens import CONV_U, LOAD_U, MISC_U, SAVE_U, UNIT_NAMES, run_tokens, unit_of
from ...ir.diagnostics import FixflowError

#: DDR footprints are tracked in blocks of this many bytes (conservative: a block is one resource)
DDR_BLOCK = 16


class ScheduleError(FixflowError):
    """A schedule that can deadlock or race (names the instruction index)."""


def unit(ins: Instruction) -> int:
    """The unit index (0 LOAD, 1 SAVE, 2 CONV, 3 MISC) of an instruction."""
    return unit_of(ins.name)


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


def _lines(bank: int, start: int, n: int, depth: int) -> np.ndarray:
    return bank * depth + (start + np.arange(n)) % depth


def _pixel_lines(bank: int, base: int, count: int, stride: int, lines_px: int, depth: int) -> np.ndarray:
    """Lines of `count` pixels `stride` lines apart, `lines_px` lines each, from line `base`."""
    a = base + np.add.outer(np.arange(count) * stride, np.arange(lines_px)).reshape(-1)
    return bank * depth + a % depth


def _pixels(bank_starts: list[tuple[int, int]], count: int, stride: int, lines_px: int, depth: int) -> np.ndarray:
    """Lines of `count` pixels (`stride` lines apart, `lines_px` lines each) from each (bank, first line)."""
    bs = np.array(bank_starts, dtype=np.int64).reshape(-1, 2)
    px = np.add.outer(np.arange(count, dtype=np.int64) * stride, np.arange(lines_px, dtype=np.int64)).reshape(-1)
    return (bs[:, :1] * depth + (bs[:, 1:] + px[None, :]) % depth).reshape(-1)


def _rows_in(ins: dict, init: dict, g: Geometry, real_h: int, src_w: int, lines_px: int) -> np.ndarray:
    """Bank lines of the input rows 0..real_h-1 of a CONV/ALU (dpu-semantics.md (2).3)."""
    starts = []
    base = ins["bank_id_in"] - ins["bank_id_in"] % g.pp
    bank = ins["bank_id_in"]
    so = init["stride_offset_in"]
    group = 0
    addrs = (ins["bank_addr_in"], ins["bank_addr_in_1"], ins["bank_addr_in_2"], ins["bank_addr_in_3"])
    for _ in range(real_h):
        starts.append((bank, addrs[min(group, 3)] + so * init["jump_read_endl"]))
        so += 1
        if so == init["stride_h"]:
            so = 0
            bank += 1
            if bank == base + g.pp:
                bank, group = base, group + 1
    return _pixels(starts, src_w, init["jump_read"], lines_px, g.depth)


def _rows_out(ins: dict, init: dict, g: Geometry, vpp: int, length: int, lines_px: int) -> np.ndarray:
    starts = []
    base = ins["bank_id_out"] - ins["bank_id_out"] % g.pp
    o = ins["bank_id_out"] % g.pp
    so, s = init["stride_offset_out"], init["stride_out"]
    for h in range(vpp):
        boff = (h + so) // s
        starts.append((base + (o + boff) % g.pp, ins["bank_addr_out"] + ((o + boff) // g.pp) * s * init["jump_write_endl"]
                       + ((h + so) % s) * init["jump_write_endl"]))
    return _pixels(starts, length, init["jump_write"], lines_px, g.depth)


def _ddr_blocks(start: int, count: int, stride: int, nbytes: int) -> np.ndarray:
    """DDR blocks touched by `count` runs of `nbytes` bytes, `stride` bytes apart (may repeat a block)."""
    if nbytes <= 0 or count <= 0:
        return np.zeros(0, dtype=np.int64)
    starts = start + np.arange(count) * stride
    first = starts // DDR_BLOCK
    span = (start + nbytes - 1) // DDR_BLOCK - start // DDR_BLOCK + 2     # an upper bound
    blocks = first[:, None] + np.arange(span)[None, :]
    return blocks[blocks <= ((starts + nbytes - 1) // DDR_BLOCK)[:, None]]


@dataclass
class Footprints:
    """Per instruction, the resources it reads and writes, as indices into one space: bank lines
    (`bank * depth + line`) first, then each DDR region's blocks of DDR_BLOCK bytes."""

    reads: list[np.ndarray]
    writes: list[np.ndarray]
    size: int
    bank_lines: int
    reg_base: dict[int, int]

    def describe(self, res: int, depth: int) -> str:
        if res < self.bank_lines:
            return f"bank {res // depth} line {res % depth}"
        reg = max((r for r, b in self.reg_base.items() if b <= res), key=lambda r: self.reg_base[r])
        blk = res - self.reg_base[reg]
        return f"REG_{reg} bytes {blk * DDR_BLOCK}-{blk * DDR_BLOCK + DDR_BLOCK - 1}"


def footprints(instrs: list[Instruction], g: Geometry) -> Footprints:
    """What every instruction reads and writes (bank lines and DDR blocks).

    Every CONV reads the same lines of all OCP conv-weight banks, so those banks are one resource
    (bank `g.convw`): exact for ordering, and OCP times fewer lines to track."""
    num_banks = g.bias + 1
    bank_lines = num_banks * g.depth
    # a region no SAVE writes (constants, inputs) cannot take part in a hazard: it is not tracked
    written = {ins.fields["reg_id"] for ins in instrs if ins.name == "SAVE"}
    extent: dict[int, int] = defaultdict(int)           # DDR blocks of each written region LOAD/SAVE touch
    for ins in instrs:
        if ins.name in ("LOAD", "SAVE") and ins.fields["reg_id"] in written:
            f = ins.fields
            if f["length"] > 0 and f["channel"] > 0:
                jump = f["jump_read"] if ins.name == "LOAD" else f["jump_write"]
                last = (f["ddr_addr"] + (f["length"] - 1) * jump + f["channel"] - 1) // DDR_BLOCK
                extent[f["reg_id"]] = max(extent[f["reg_id"]], last + 1)
    reg_base, pos = {}, bank_lines
    for reg in sorted(extent):
        reg_base[reg] = pos
        pos += extent[reg]
    if pos >= 2**31:
        raise ScheduleError(f"{pos} bank lines and DDR blocks to track exceed the int32 footprint index")
    convw = range(g.convw, g.convw + g.ocp)
    reads: list[np.ndarray] = []
    writes: list[np.ndarray] = []
    empty = np.zeros(0, dtype=np.int64)
    convinit: dict = {}
    aluinit: dict = {}
    elewinit: deque = deque()
    weight_lines: dict[tuple[int, int], np.ndarray] = {}
    for ins in instrs:
        f = ins.fields
        r: list[np.ndarray] = []
        w: list[np.ndarray] = []
        if ins.name == "LOAD":
            n = math.ceil(f["channel"] / g.width)
            bank = g.convw if f["bank_id"] in convw else f["bank_id"]
            w.append(_pixel_lines(bank, f["bank_addr"], f["length"], f["jump_write"], n, g.depth))
            if f["reg_id"] in written:
                r.append(reg_base[f["reg_id"]] + _ddr_blocks(f["ddr_addr"], f["length"], f["jump_read"], f["channel"]))
        elif ins.name == "SAVE":
            n = math.ceil(f["channel"] / g.width)
            r.append(_pixel_lines(f["bank_id"], f["bank_addr"], f["length"], f["jump_read"], n, g.depth))
            w.append(reg_base[f["reg_id"]] + _ddr_blocks(f["ddr_addr"], f["length"], f["jump_write"], f["channel"]))
        elif ins.name == "CONVINIT":
            convinit = dict(f)
        elif ins.name == "ALUINIT":
            aluinit = dict(f)
        elif ins.name == "CONV":
            c = convinit
            cg = f["channel_group"]
            real_h = (c["valid_pixel_parallel"] - 1) * c["stride_h"] + c["kernel_h"]
            src_w = (f["length"] - 1) * c["stride_w"] + c["kernel_w"]
            r.append(_rows_in(f, c, g, real_h, src_w, cg))
            taps = c["kernel_h"] * c["kernel_w"] * cg
            key = (f["bank_addr_weights"], taps)
            wl = weight_lines.get(key)
            if wl is None:
                wl = weight_lines[key] = _lines(g.convw, f["bank_addr_weights"], taps, g.depth)
            r.append(wl)
            r.append(_lines(g.bias, f["bank_addr_bias"], 1, g.depth))
            w.append(_rows_out(f, c, g, c["valid_pixel_parallel"], f["length"], 1))
        elif ins.name == "ALU":
            c = aluinit
            cg = c["channel_group"]
            real_h = (f["valid_pixel_parallel"] - 1) * c["stride_h"] + c["kernel_h"]
            src_w = (c["length"] - 1) * c["stride_w"] + c["kernel_w"]
            r.append(_rows_in(f, c, g, real_h, src_w, cg))
            if c["exec_mode"] in (0, 6, 8):
                r.append(_pixel_lines(g.dwconvw, f["bank_addr_weights"], c["kernel_h"] * c["kernel_w"],
                                      c["jump_read_weights"], cg, g.depth))
            if c["exec_mode"] == 0:
                r.append(_lines(g.bias, f["bank_addr_bias"], cg, g.depth))
            w.append(_rows_out(f, c, g, f["valid_pixel_parallel"], c["length"], cg))
        elif ins.name == "ELEWINIT":
            elewinit.append(dict(f))
        elif ins.name == "ELEW":
            cg = f["channel_group"]
            for _ in range(f["num"]):
                if not elewinit:
                    raise ScheduleError("an ELEW has fewer queued ELEWINITs than inputs")
                e = elewinit.popleft()
                base = e["bank_id_in"] - e["bank_id_in"] % g.pp
                starts = []
                for k in range(f["valid_pixel_parallel"]):
                    off = e["bank_id_in"] - base + k * e["jump_bank"]
                    bank = e["bank_id_in"] if e["share_pp"] else base + off % g.pp
                    starts.append((bank, e["bank_addr_in"] + (0 if e["share_pp"] else off // g.pp) * e["jump_read_endl"]))
                r.append(_pixels(starts, f["length"], e["jump_read"], cg, g.depth))
            base = f["bank_id_out"] - f["bank_id_out"] % g.pp
            starts = []
            for k in range(f["valid_pixel_parallel"]):
                off = f["bank_id_out"] - base + k
                starts.append((base + off % g.pp, f["bank_addr_out"] + (off // g.pp) * f["jump_write_endl"]))
            w.append(_pixels(starts, f["length"], f["jump_write"], cg, g.depth))
        elif ins.name != "END":
            raise ScheduleError(f"no footprint model for {ins.name}")
        # int32 halves the memory of the footprints (ResNet-50 on B1024: 35k instructions)
        reads.append((r[0] if len(r) == 1 else np.concatenate(r) if r else empty).astype(np.int32))
        writes.append((w[0] if len(w) == 1 else np.concatenate(w) if w else empty).astype(np.int32))
    return Footprints(reads, writes, pos, bank_lines, reg_base)


_UNITS = np.arange(4, dtype=np.int64)[:, None]
_NONE = np.full(4, -1, dtype=np.int64)


def _conflicts(last_writer: np.ndarray, writer_unit: np.ndarray, last_reader: np.ndarray, reads: np.ndarray,
               writes: np.ndarray) -> np.ndarray:
    """Per unit, the newest earlier instruction of that unit an access conflicts with (-1: none): the
    newest writer of anything read or written, and readers of what is written newer than its writer."""
    res = _NONE
    if writes.size:
        lw = last_writer[writes]
        lr = last_reader[:, writes]
        res = np.where(lr > lw[None, :], lr, -1).max(axis=1, initial=-1)
    acc = np.concatenate([reads, writes]) if reads.size and writes.size else (reads if reads.size else writes)
    if acc.size:
        w = np.where(writer_unit[acc][None, :] == _UNITS, last_writer[acc][None, :], -1).max(axis=1, initial=-1)
        res = np.maximum(res, w)
    return res


def schedule(instrs: list[Instruction], g: Geometry | None = None, fps: Footprints | None = None,
             own_unit_bits: bool = True) -> None:
    """Set `dpdon`/`dpdby` of `instrs` in place (see the module docstring). Clears existing flags."""
    if fps is None:
        if g is None:
            raise ValueError("schedule needs the bank geometry or the footprints")
        fps = footprints(instrs, g)
    units = np.array([unit(i) for i in instrs], dtype=np.int64)
    for ins in instrs:
        ins.dpdon = ins.dpdby = 0
    last_writer = np.full(fps.size, -1, dtype=np.int64)
    writer_unit = np.full(fps.size, -1, dtype=np.int64)
    last_reader = np.full((4, fps.size), -1, dtype=np.int64)   # newest reader of each unit
    last_of_unit = [-1, -1, -1, -1]
    covered = [[-1] * 4 for _ in range(4)]    # covered[A][B]: B has waited on A's instruction index
    for j, ins in enumerate(instrs):
        u = int(units[j])
        need = [-1, -1, -1, -1]
        reads, writes = fps.reads[j], fps.writes[j]
        if ins.name == "END":
            need = list(last_of_unit)
        if reads.size or writes.size:
            c = _conflicts(last_writer, writer_unit, last_reader, reads, writes)
            need = [max(int(x), y) for x, y in zip(c, need)]
        for a in range(4):
            if a == u or need[a] < 0 or need[a] <= covered[a][u]:
                continue
            # the token comes from the newest conflicting instruction itself (not the unit's newest), so
            # an instruction waits only for what it touches: later instructions of unit a may still run.
            # Tokens a -> u stay in FIFO order: every earlier one came from an instruction <= covered[a][u]
            p = need[a]
            instrs[p].dpdby |= 1 << u
            ins.dpdon |= 1 << a
            covered[a][u] = p
        if reads.size:
            last_reader[u, reads] = j
        if writes.size:
            last_writer[writes] = j
            writer_unit[writes] = u
        last_of_unit[u] = j
    if own_unit_bits:
        for j, ins in enumerate(instrs):
            ins.dpdon |= 1 << int(units[j])
            ins.dpdby |= 1 << int(units[j])


def check(instrs: list[Instruction], g: Geometry | None = None, fps: Footprints | None = None) -> dict[str, int]:
    """Prove the flags safe (module docstring); raise `ScheduleError` naming the first problem.

    Returns the number of instructions per unit.
    """
    if fps is None:
        fps = footprints(instrs, g)
    n = len(instrs)
    units = np.array([unit(i) for i in instrs], dtype=np.int64)
    per_unit: list[list[int]] = [[], [], [], []]
    for j in range(n):
        per_unit[int(units[j])].append(j)
    own = [(ins.dpdon >> int(units[j]) & 1, ins.dpdby >> int(units[j]) & 1) for j, ins in enumerate(instrs)]
    convention = own[0] if own else (0, 0)
    for j, bits in enumerate(own):
        if bits != convention or bits not in ((0, 0), (1, 1)):
            raise ScheduleError(f"instruction {j} ({instrs[j].name}) sets its own unit's bit as "
                                f"dpdon {bits[0]} / dpdby {bits[1]}; every instruction must set both (AMD's "
                                f"convention) or neither")
    instrs = [Instruction(i.name, i.opcode, i.dpdon & ~(1 << int(u)), i.dpdby & ~(1 << int(u)), i.fields)
              for i, u in zip(instrs, units)]
    # abstract run of the token protocol; vector clocks for happens-before
    unit_clock = [[0] * 4 for _ in range(4)]
    clock = np.zeros((n, 4), dtype=np.int64)

    def fire(j: int, u: int, received: list[int]) -> int:
        vc = list(unit_clock[u])
        for src in received:
            vc = [max(x, int(y)) for x, y in zip(vc, clock[src])]
        vc[u] = unit_clock[u][u] + 1
        clock[j] = vc
        unit_clock[u] = vc
        return j

    run = run_tokens(units.tolist(), [i.dpdon for i in instrs], [i.dpdby for i in instrs], fire)
    if run.stuck:
        stuck = [f"{UNIT_NAMES[u]} at instruction {j} ({instrs[j].name})" for u, j in run.stuck]
        raise ScheduleError("deadlock: " + "; ".join(stuck) + " wait for tokens never sent")
    if run.unconsumed:
        a, b, q = run.unconsumed[0]
        raise ScheduleError(f"{len(q)} token(s) from {UNIT_NAMES[a]} to {UNIT_NAMES[b]} are never consumed "
                            f"(first sent by instruction {q[0]})")
    own = clock[np.arange(n), units]                 # position of each instruction in its unit (1-based)
    depth = g.depth if g is not None else 2048

    def first_unordered(prev: np.ndarray, j: int) -> int | None:
        prev = prev[prev >= 0]
        if prev.size == 0:
            return None
        bad = prev[clock[j, units[prev]] < own[prev]]
        return int(bad.min()) if bad.size else None

    last_writer = np.full(fps.size, -1, dtype=np.int64)
    writer_unit = np.full(fps.size, -1, dtype=np.int64)
    last_reader = np.full((4, fps.size), -1, dtype=np.int64)
    for j in range(n):
        reads, writes = fps.reads[j], fps.writes[j]
        u = int(units[j])
        if reads.size or writes.size:
            # within a unit `own` grows with the index: the newest conflicting instruction of each unit is
            # ordered before j iff all of that unit's are
            c = _conflicts(last_writer, writer_unit, last_reader, reads, writes)
            if all(p < 0 or own[p] <= clock[j, a] for a, p in enumerate(c.tolist())):
                if reads.size:                  # all ordered (the common case): bookkeeping only
                    last_reader[u, reads] = j
                if writes.size:
                    last_writer[writes] = j
                    writer_unit[writes] = u
                continue
        if reads.size:
            i = first_unordered(last_writer[reads], j)
            if i is not None:
                raise ScheduleError(_race("read-after-write", i, j, reads, last_writer, fps, depth, instrs))
        if writes.size:
            lw = last_writer[writes]
            i = first_unordered(lw, j)
            if i is not None:
                raise ScheduleError(_race("write-after-write", i, j, writes, last_writer, fps, depth, instrs))
            for a in range(4):
                lr = last_reader[a, writes]
                i = first_unordered(np.where(lr > lw, lr, -1), j)
                if i is not None:
                    raise ScheduleError(_race("write-after-read", i, j, writes, last_reader[a], fps, depth, instrs))
        if reads.size:
            last_reader[u, reads] = j
        if writes.size:
            last_writer[writes] = j
            writer_unit[writes] = u
    return {f"{UNIT_NAMES[u]} instructions": len(per_unit[u]) for u in range(4)}


def _race(kind: str, i: int, j: int, res: np.ndarray, owner: np.ndarray, fps: Footprints, depth: int,
          instrs: list[Instruction]) -> str:
    where = fps.describe(int(res[owner[res] == i][0]), depth)
    return (f"{kind} hazard on {where}: instruction {j} ({instrs[j].name}) is not ordered after "
            f"instruction {i} ({instrs[i].name})")


__all__ = ["schedule", "check", "footprints", "Footprints", "Geometry", "ScheduleError", "unit", "UNIT_NAMES",
           "LOAD_U", "SAVE_U", "CONV_U", "MISC_U"]
