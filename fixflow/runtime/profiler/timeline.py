"""The timeline of the four units under the ``dpdon``/``dpdby`` tokens.

Protocol (spec ``dpu-isa.md`` "Dependencies", the decoupled access/execute scheme of TVM's VTA, as
fixflow's scheduler uses it): each unit runs its own instructions in program order, one at a time.
An instruction whose ``dpdon`` has the bit of another unit U first takes one token from the FIFO
U -> this unit (waiting until U has sent it); when it completes, it sends one token to every other
unit named in its ``dpdby``. A LOAD or SAVE occupies its unit for its transfer and completes a DDR
latency later (the next one may start meanwhile); instructions of one unit complete in order. A unit's own bit (AMD's compiler sets it on almost every instruction)
adds nothing: a unit is already in order. Instruction queues are assumed deep enough that dispatch
never stalls a unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ...dialects.dpu.tokens import run_tokens
from ...ir.diagnostics import FixflowError
from .cycles import UNITS, Cost


class ProfileError(FixflowError):
    """A program the profiler cannot time (a deadlock under its tokens, a bad input); one message."""


@dataclass(frozen=True)
class Slot:
    """When one instruction ran: it occupied ``unit`` from ``start`` to ``busy_end`` and completed (sent
    its tokens) at ``end`` (later than ``busy_end`` by the DDR latency of a LOAD/SAVE); ``waited``:
    cycles spent waiting for tokens after the unit became free."""

    index: int
    unit: int
    start: int
    end: int
    waited: int
    busy_end: int


def timeline(instrs: Sequence[Any], costs: Sequence[Cost]) -> tuple[list[Slot], list[str]]:
    """The start and end cycle of every instruction (see the module docstring), and notes on tokens
    sent but never consumed (harmless for timing, but a sign of a wrong schedule).

    Raises :class:`ProfileError` naming the stuck instructions when the tokens can never arrive.
    """
    slots: list[Slot | None] = [None] * len(instrs)
    free = [0, 0, 0, 0]
    last_end = [0, 0, 0, 0]

    def fire(j: int, u: int, received: list[int]) -> int:
        start = max(free[u], max(received, default=0))
        busy_end = start + costs[j].cycles
        end = max(busy_end + costs[j].latency, last_end[u])      # a unit completes in order
        slots[j] = Slot(j, u, start, end, start - free[u], busy_end)
        free[u], last_end[u] = busy_end, end
        return end

    run = run_tokens([c.unit for c in costs], [i.dpdon for i in instrs], [i.dpdby for i in instrs], fire)
    if run.stuck:
        stuck = [f"{UNITS[u]} at instruction {j} ({instrs[j].name})" for u, j in run.stuck]
        raise ProfileError("deadlock under dpdon/dpdby: " + "; ".join(stuck) + " wait for tokens never sent")
    notes = [f"{len(q)} token(s) from {UNITS[a]} to {UNITS[b]} are never consumed" for a, b, q in run.unconsumed]
    return slots, notes  # type: ignore[return-value]


__all__ = ["ProfileError", "Slot", "timeline"]
