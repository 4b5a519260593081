"""The cycle model's constants, each with where it comes from.

Everything the model charges is one of these, the target (PP, ICP, OCP, ALU_PP from the fingerprint,
spec ``dpu-isa.md``) or the board (clock, DDR data rate and bus width, ``fixflow.target.boards``).
There is no calibration factor: the model was not fitted to the published frame rates.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Nanoseconds from issuing a DDR read burst at the DPU's AXI port until its first data returns (and,
#: for SAVE, until the write response). Assumption: AMD publishes no DPU-side figure; measurements of
#: PL -> PS-DDR reads through the Zynq UltraScale+ HP ports are of the order of 100-200 ns. The model
#: charges it once per LOAD or SAVE instruction (the rows of one instruction are issued back to back).
DDR_LATENCY_NS = 150.0

#: Cycles of an instruction that only sets registers (CONVINIT, ALUINIT, ELEWINIT, POOLINIT, DWINIT)
#: or marks the end (END): one issue slot on its unit.
ISSUE_CYCLES = 1

#: Bank lines one bank port moves per cycle: every bank has one ICP-byte line per cycle (spec
#: ``dpu-isa.md``: a bank address selects one line). A LOAD writes, a SAVE reads, one line per cycle.
LINES_PER_CYCLE = 1


@dataclass(frozen=True)
class ModelConstants:
    """The constants of one model run (defaults above; change them to study sensitivity)."""

    ddr_latency_ns: float = DDR_LATENCY_NS
    issue_cycles: int = ISSUE_CYCLES
    lines_per_cycle: int = LINES_PER_CYCLE


__all__ = ["DDR_LATENCY_NS", "ISSUE_CYCLES", "LINES_PER_CYCLE", "ModelConstants"]
