"""`DPUInterpreter`: run DPU machine code against DDR regions, in `reference` or `fast` mode.

    interp = DPUInterpreter("DPUCZDX8G_ISA1_B4096", mc_code, {0: consts, 1: workspace, 2: inp, 3: out})
    regions = interp.run()                 # dict reg_id -> int8 array (the DDR after the program)

Reference mode also steps: ``interp.run(stop=N)`` executes instructions 0..N-1 and returns, then
``interp.bank(i)`` shows a bank and ``interp.run()`` continues; ``trace=`` gets a `TraceEvent` per
instruction. Fast mode compiles (and caches) a plan and runs it whole; ``bank(i)`` afterwards shows the
final bank contents.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import DPUExecError
from .machine import Machine
from .reference import ReferenceMachine, TraceEvent

MODES = ("reference", "fast")


def as_program(program: Any) -> list:
    """Machine code bytes or a sequence of `Instruction`s -> list of instructions."""
    if isinstance(program, (bytes, bytearray, memoryview)):
        from ...backends.mc import McError, decode
        try:
            return decode(bytes(program))
        except McError as e:
            at = f" at byte {e.offset}" if e.offset is not None else ""
            raise DPUExecError(f"corrupt machine code{at}: {e.bare_message}", e.index) from None
    return list(program)


def as_region(reg: int, data: Any) -> np.ndarray:
    """A DDR region as a writable 1-D int8 array (copied)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(bytes(data), dtype=np.int8).copy()
    a = np.asarray(data)
    if a.dtype not in (np.int8, np.uint8):
        raise DPUExecError(f"DDR region REG_{reg} must hold int8 or uint8 bytes, got {a.dtype}")
    return a.reshape(-1).view(np.int8).copy()


class DPUInterpreter:
    """One program on one target with its DDR regions (``{reg_id: bytes or int8 array}``)."""

    def __init__(self, target: Any, program: Any, regions: Mapping[int, Any], mode: str = "reference",
                 trace: Callable[[TraceEvent], None] | None = None, const_regs: Sequence[int] = (0,)):
        if mode not in MODES:
            raise DPUExecError(f"unknown mode {mode!r} (expected reference or fast)")
        self.machine = Machine.from_target(target)
        self.program = as_program(program)
        self.regions = {int(r): as_region(int(r), d) for r, d in regions.items()}
        self.mode = mode
        self.const_regs = tuple(r for r in const_regs if r in self.regions)
        if trace is not None and mode != "reference":
            raise DPUExecError("a trace hook needs mode='reference'")
        self._ref: ReferenceMachine | None = None
        self._fast_banks: np.ndarray | None = None
        if mode == "reference":
            self._ref = ReferenceMachine(self.machine, self.program, self.regions, trace)

    @property
    def pc(self) -> int:
        """Index of the next instruction (reference mode)."""
        return self._ref.pc if self._ref is not None else (len(self.program) if self._fast_banks is not None else 0)

    def run(self, stop: int | None = None) -> dict[int, np.ndarray]:
        """Execute up to instruction `stop` (exclusive; reference mode) or to the end; returns the regions."""
        if self._ref is not None:
            self._ref.run(stop)
            return self.regions
        if stop is not None:
            raise DPUExecError("stopping at an instruction needs mode='reference'")
        from .fast import compile_plan
        plan = compile_plan(self.machine, self.program, {r: a.size for r, a in self.regions.items()},
                            {r: self.regions[r] for r in self.const_regs})
        out, banks = plan.run({r: a[None] for r, a in self.regions.items() if r not in self.const_regs},
                              with_banks=True)
        for r, a in out.items():
            self.regions[r][...] = a[0]
        self._fast_banks = banks[0]
        return self.regions

    def step(self) -> None:
        """Execute one instruction (reference mode)."""
        if self._ref is None:
            raise DPUExecError("stepping needs mode='reference'")
        self._ref.step()

    def bank(self, bank_id: int) -> np.ndarray:
        """Contents of one bank as a (depth, width) int8 array."""
        m = self.machine
        if not 0 <= bank_id < m.num_banks:
            raise DPUExecError(f"bank {bank_id} does not exist on {m.name} (0-{m.num_banks - 1})")
        if self._ref is not None:
            return self._ref.bank(bank_id)
        if self._fast_banks is None:
            return np.zeros((m.depth, m.width), dtype=np.int8)
        return self._fast_banks[bank_id * m.bank_bytes:(bank_id + 1) * m.bank_bytes].reshape(m.depth, m.width)
