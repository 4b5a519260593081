"""Cycles of each DPU instruction on its unit (LOAD, SAVE, CONV, MISC).

The rules (docs/profiler.md works them out by hand):

- CONV computes PP output rows x ``length`` columns x OCP channels; per cycle the MAC array takes one
  kernel tap of one ICP-channel group for all PP rows and OCP outputs (PP x ICP x OCP MACs), so a CONV
  takes ``length * kernel_h * kernel_w * channel_group`` cycles (the sticky CONVINIT gives the kernel).
  All PP rows are computed even when ``valid_pixel_parallel`` is smaller (AMD's simulator does the same).
- ALU (pooling, depthwise conv on ISA1) takes ALU_PP rows x ICP channels of one tap per cycle:
  ``length * kernel_h * kernel_w * channel_group`` cycles with the ALUINIT's values.
- ELEW reads one ICP-channel line of each of its ``num`` inputs per cycle for ALU_PP rows:
  ``length * channel_group * num`` cycles.
- LOAD / SAVE: the unit is busy for the slower of the DDR transfer (bytes over the board's DDR bytes
  per DPU clock) and the bank port (one ICP-byte line per cycle); the instruction completes a fixed DDR
  latency later (``Cost.latency``): the AXI master keeps several bursts in flight, so back-to-back
  LOADs overlap their latencies, but whoever waits for a LOAD's token waits for its data.
- INIT instructions and END: one issue cycle.

``ops_on_arch`` is the work the hardware performs, counted as AMD's compiler counts its
``workload_on_arch`` attribute (checked against AMD's compiled MNIST per super-layer): CONV
``2*PP*ICP*OCP`` per cycle plus one bias add per PP x OCP output, ALU ``ALU_PP*ICP`` per cycle
(pooling; depthwise modes count 2 per tap), ELEW ``ALU_PP*ICP`` per cycle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from ...dialects.dpu.tokens import UNIT_NAMES, unit_of
from .constants import ModelConstants

UNITS = UNIT_NAMES
#: ALU exec_modes that multiply (depthwise conv): 2 ops per tap
_DW_MODES = (0, 6, 8)


@dataclass(frozen=True)
class Machine:
    """What the cycle model needs of a target and a board: parallelism, clock, DDR bytes per cycle."""

    name: str
    pp: int
    icp: int
    ocp: int
    alu_pp: int
    clock_hz: float
    ddr_bytes_per_second: float
    cores: int = 1

    @classmethod
    def of(cls, target: Any, board: Any = None) -> "Machine":
        """From a ``fixflow.target`` Target and Board (the board gives clock, DDR and cores; without a
        board: the KV260's 300 MHz and DDR4-2400 x 64 bit, one core)."""
        from ...target import get_board
        b = board if board is not None else get_board("kv260")
        return cls(target.name, target.pp, target.icp, target.ocp, target.alu_pp, b.clock_hz,
                   b.ddr_bytes_per_second, b.cores)

    @property
    def macs_per_cycle(self) -> int:
        return self.pp * self.icp * self.ocp

    @property
    def peak_ops_per_cycle(self) -> int:
        return 2 * self.macs_per_cycle

    @property
    def ddr_bytes_per_cycle(self) -> float:
        return self.ddr_bytes_per_second / self.clock_hz


@dataclass(frozen=True)
class Cost:
    """One instruction's unit, cycles, hardware work and DDR traffic."""

    unit: int
    cycles: int                 # the unit is busy this long
    latency: int = 0            # then the instruction completes (sends its tokens) this much later
    ops_on_arch: int = 0
    ddr_read: int = 0
    ddr_write: int = 0
    lines: int = 0


def ddr_latency_cycles(machine: Machine, consts: ModelConstants) -> int:
    """The fixed DDR latency in DPU cycles (rounded up)."""
    return math.ceil(round(consts.ddr_latency_ns * machine.clock_hz / 1e9, 6))


def costs(instrs: Sequence[Any], machine: Machine, consts: ModelConstants | None = None) -> list[Cost]:
    """The :class:`Cost` of every instruction of a program (INIT state is tracked in program order)."""
    consts = consts or ModelConstants()
    lat = ddr_latency_cycles(machine, consts)
    bpc = machine.ddr_bytes_per_cycle
    conv: dict = {}
    alu: dict = {}
    out: list[Cost] = []
    for i, ins in enumerate(instrs):
        n, f = ins.name, ins.fields
        u = unit_of(n)
        if n == "LOAD":
            lines = f["length"] * math.ceil(f["channel"] / machine.icp)
            nbytes = 0 if f["broadcast"] == 7 else f["length"] * f["channel"]
            cyc = max(math.ceil(nbytes / bpc), math.ceil(lines / consts.lines_per_cycle), 1)
            out.append(Cost(u, cyc, lat if nbytes else 0, ddr_read=nbytes, lines=lines))
        elif n == "SAVE":
            argmax = f.get("argmax", 0) & 2
            const = f.get("const_en", 0)
            lines = 0 if const else f["length"] * math.ceil(f["channel"] / machine.icp)
            nbytes = f["length"] * (1 if argmax else f["channel"])
            cyc = max(math.ceil(nbytes / bpc), math.ceil(lines / consts.lines_per_cycle), 1)
            out.append(Cost(u, cyc, lat, ddr_write=nbytes, lines=lines))
        elif n == "CONV":
            if not conv:
                raise ValueError(f"instruction {i}: CONV before any CONVINIT")
            cyc = f["length"] * conv["kernel_h"] * conv["kernel_w"] * f["channel_group"]
            ops = 2 * machine.macs_per_cycle * cyc + machine.pp * machine.ocp * f["length"]
            out.append(Cost(u, cyc, ops_on_arch=ops))
        elif n == "ALU":
            if not alu:
                raise ValueError(f"instruction {i}: ALU before any ALUINIT")
            cyc = alu["length"] * alu["kernel_h"] * alu["kernel_w"] * alu["channel_group"]
            per = 2 if alu["exec_mode"] in _DW_MODES else 1
            out.append(Cost(u, cyc, ops_on_arch=per * machine.alu_pp * machine.icp * cyc))
        elif n == "ELEW":
            cyc = f["length"] * f["channel_group"] * f["num"]
            out.append(Cost(u, cyc, ops_on_arch=machine.alu_pp * machine.icp * cyc))
        else:
            if n == "CONVINIT":
                conv = dict(f)
            elif n == "ALUINIT":
                alu = dict(f)
            out.append(Cost(u, consts.issue_cycles))
    return out


__all__ = ["UNITS", "Machine", "Cost", "costs", "unit_of", "ddr_latency_cycles"]
