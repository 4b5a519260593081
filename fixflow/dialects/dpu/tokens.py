"""The ``dpdon``/``dpdby`` token protocol of the four DPU units (spec ``dpu-isa.md`` "Dependencies").

Each unit (LOAD, SAVE, CONV, MISC) runs its own instructions in program order. An instruction whose
``dpdon`` has the bit of another unit U first takes one token from the FIFO U -> its unit; when it
completes it sends one token to every other unit named in its ``dpdby``. A unit's own bit adds nothing.
:func:`run_tokens` plays this protocol once; the scheduler and the profiler give the tokens meaning.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Generic, Sequence, TypeVar

LOAD_U, SAVE_U, CONV_U, MISC_U = 0, 1, 2, 3
UNIT_NAMES = ("LOAD", "SAVE", "CONV", "MISC")
_UNIT_OF = {"LOAD": LOAD_U, "SAVE": SAVE_U, "END": SAVE_U, "CONVINIT": CONV_U, "CONV": CONV_U}

T = TypeVar("T")


def unit_of(name: str) -> int:
    """The unit index (0 LOAD, 1 SAVE, 2 CONV, 3 MISC) of an instruction mnemonic."""
    return _UNIT_OF.get(name, MISC_U)


def waits_on(dpdon: int, unit: int) -> list[int]:
    """The other units an instruction of ``unit`` takes a token from before it starts."""
    return [a for a in range(4) if a != unit and dpdon >> a & 1]


def signals(dpdby: int, unit: int) -> list[int]:
    """The other units an instruction of ``unit`` sends a token to when it completes."""
    return [b for b in range(4) if b != unit and dpdby >> b & 1]


@dataclass(frozen=True)
class TokenRun(Generic[T]):
    """The outcome of :func:`run_tokens`: ``stuck`` (unit, instruction index) heads that wait for tokens
    never sent (empty if every instruction ran); ``unconsumed`` (from unit, to unit, payloads) per FIFO
    left non-empty, in (from, to) order."""

    stuck: list[tuple[int, int]]
    unconsumed: list[tuple[int, int, list[T]]]


def run_tokens(units: Sequence[int], dpdons: Sequence[int], dpdbys: Sequence[int],
               fire: Callable[[int, int, list[T]], T]) -> TokenRun[T]:
    """Run instruction ``j`` (on unit ``units[j]``) as soon as its tokens are there, units visited in turn.

    ``fire(j, unit, received)`` is called once per instruction, in an order the protocol allows, with the
    payloads of the tokens it took (by sending unit, ascending); what it returns is the payload of the
    tokens ``j`` sends.
    """
    per_unit: list[list[int]] = [[], [], [], []]
    for j, u in enumerate(units):
        per_unit[int(u)].append(j)
    queues: dict[tuple[int, int], deque] = {(a, b): deque() for a in range(4) for b in range(4)}
    head = [0, 0, 0, 0]
    done, n = 0, len(per_unit[0]) + len(per_unit[1]) + len(per_unit[2]) + len(per_unit[3])
    while done < n:
        progressed = False
        for u in range(4):
            while head[u] < len(per_unit[u]):
                j = per_unit[u][head[u]]
                waits = waits_on(dpdons[j], u)
                if any(not queues[(a, u)] for a in waits):
                    break
                payload = fire(j, u, [queues[(a, u)].popleft() for a in waits])
                for b in signals(dpdbys[j], u):
                    queues[(u, b)].append(payload)
                head[u] += 1
                done += 1
                progressed = True
        if not progressed:
            return TokenRun([(u, per_unit[u][head[u]]) for u in range(4) if head[u] < len(per_unit[u])], [])
    return TokenRun([], [(a, b, list(q)) for (a, b), q in queues.items() if q])


__all__ = ["LOAD_U", "SAVE_U", "CONV_U", "MISC_U", "UNIT_NAMES", "unit_of", "waits_on", "signals",
           "TokenRun", "run_tokens"]
