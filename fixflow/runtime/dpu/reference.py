"""Reference mode: one instruction at a time on a literal bank model (the oracle and the debugger).

State: the flat on-chip memory (``machine.num_banks`` banks of ``depth`` lines x ``width`` bytes, plus
the ZERO and MIN cells) and the DDR regions. Each instruction is decoded into a step (its addresses)
and executed: gather, compute in int64, scatter. A trace hook sees every instruction with the bank
lines and DDR bytes it read and wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .arith import alu_compute, conv_requant, elew_compute
from .machine import Machine
from .steps import Decoder, Step, unit_of


@dataclass
class TraceEvent:
    """What one instruction did. Bank lines are ``(bank_id, line)`` pairs; DDR accesses are
    ``(reg_id, address, nbytes)`` runs."""

    index: int
    name: str
    unit: str
    instruction: object
    bank_lines_read: list[tuple[int, int]] = field(default_factory=list)
    bank_lines_written: list[tuple[int, int]] = field(default_factory=list)
    ddr_read: list[tuple[int, int, int]] = field(default_factory=list)
    ddr_written: list[tuple[int, int, int]] = field(default_factory=list)


def _lines(m: Machine, *idx: np.ndarray | None) -> list[tuple[int, int]]:
    parts = [np.asarray(i).ravel() for i in idx if i is not None]
    if not parts:
        return []
    cells = np.concatenate(parts)
    cells = cells[cells < m.memory_bytes]
    lines = np.unique(cells // m.width)
    per = m.depth
    return [(int(v // per), int(v % per)) for v in lines]


def _runs(reg: int, offsets: np.ndarray | None) -> list[tuple[int, int, int]]:
    if offsets is None:
        return []
    u = np.unique(np.asarray(offsets).ravel())
    if u.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(u) != 1) + 1
    return [(reg, int(r[0]), int(r.size)) for r in np.split(u, breaks)]


def scatter(dst: np.ndarray, idx: np.ndarray, values: np.ndarray) -> None:
    """dst[idx] = values with sequential semantics (the last write to an address wins)."""
    flat_i = idx.ravel()
    flat_v = np.broadcast_to(values, idx.shape).ravel()
    if flat_i.size > 1:
        rev = flat_i[::-1]
        uniq, first = np.unique(rev, return_index=True)
        if uniq.size != flat_i.size:
            keep = flat_i.size - 1 - first
            flat_i, flat_v = flat_i[keep], flat_v[keep]
    dst[flat_i] = flat_v


class ReferenceMachine:
    """Executes a program instruction by instruction."""

    def __init__(self, machine: Machine, program: Sequence, regions: dict[int, np.ndarray],
                 trace: Callable[[TraceEvent], None] | None = None):
        self.m = machine
        self.program = program
        self.regions = regions
        self.mem = np.zeros(machine.memory_bytes + 2, dtype=np.int8)
        self.mem[machine.memory_bytes + 1] = -128
        self.decoder = Decoder(machine, {r: a.size for r, a in regions.items()})
        self.pc = 0
        self.trace = trace

    def bank(self, bank_id: int) -> np.ndarray:
        """A (depth, width) view of one bank."""
        m = self.m
        if not 0 <= bank_id < m.num_banks:
            raise IndexError(f"bank {bank_id} does not exist (0-{m.num_banks - 1})")
        return self.mem[bank_id * m.bank_bytes:(bank_id + 1) * m.bank_bytes].reshape(m.depth, m.width)

    def run(self, stop: int | None = None) -> None:
        """Execute instructions from the current one up to (not including) index `stop`."""
        end = len(self.program) if stop is None else min(stop, len(self.program))
        while self.pc < end:
            self.step()

    def step(self) -> None:
        """Execute the next instruction."""
        ins = self.program[self.pc]
        s = self.decoder.step(self.pc, ins)
        self.execute(s)
        if self.trace is not None:
            self.trace(self._event(s, ins))
        self.pc += 1

    def execute(self, s: Step) -> None:
        mem = self.mem
        if s.kind == "nop":
            return
        if s.kind == "load":
            ddr = self.regions[s.reg]
            if s.params["const"] is not None:
                vals = np.full(s.ddr.shape, s.params["const"], dtype=np.int8)
            else:
                vals = ddr[s.ddr]
            if s.mask is not None:
                vals = np.where(s.mask, vals, np.int8(0))
            self._write(s, vals)
        elif s.kind == "save":
            ddr = self.regions[s.reg]
            mode = s.params["mode"]
            if mode == "const":
                vals = np.full(s.ddr.shape, s.params["const"], dtype=np.int8)
            elif mode == "copy":
                vals = mem[s.src]
            else:
                data = mem[s.src]
                idx = data.argmax(axis=1)                        # first maximum, as the sim
                vals = (idx.astype(np.int64).astype(np.uint8).view(np.int8) if mode == "argmax_index"
                        else data[np.arange(len(idx)), idx])
            scatter(ddr, s.ddr, vals)
        elif s.kind == "conv":
            # float64 products are exact here: every partial sum is an integer below 128*128*K <= 2^34
            acc = (mem[s.x].astype(np.float64) @ mem[s.w].astype(np.float64)).astype(np.int64)
            self._write(s, conv_requant(acc, mem[s.b], s.params["shift_cut"], s.params["shift_bias"],
                                        s.params["act"]))
        elif s.kind == "alu":
            w = mem[s.w] if s.w is not None else None
            b = mem[s.b] if s.b is not None else None
            self._write(s, alu_compute(s.params, mem[s.x], w, b))
        elif s.kind == "elew":
            self._write(s, elew_compute(s.params, mem[s.x]))
        else:  # pragma: no cover - the decoder makes no other kind
            raise AssertionError(s.kind)

    def _write(self, s: Step, vals: np.ndarray) -> None:
        vals = vals.reshape(s.out.shape[0], -1)
        fill = s.out.shape[1] - vals.shape[1]
        if fill:
            vals = np.concatenate([vals, np.zeros((vals.shape[0], fill), dtype=np.int8)], axis=1)
        scatter(self.mem, s.out, vals)

    def _event(self, s: Step, ins) -> TraceEvent:
        m = self.m
        ev = TraceEvent(s.index, s.name, unit_of(s.name), ins)
        ev.bank_lines_read = _lines(m, s.src, s.x, s.w, s.b)
        ev.bank_lines_written = _lines(m, s.out)
        if s.kind == "load" and s.params["const"] is None:
            ev.ddr_read = _runs(s.reg, s.ddr)
        if s.kind == "save":
            ev.ddr_written = _runs(s.reg, s.ddr)
        return ev
