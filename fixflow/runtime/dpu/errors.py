"""The one error the DPU interpreter raises: a `FixflowError` naming the instruction and the address."""

from __future__ import annotations

from ...ir.diagnostics import FixflowError


class DPUExecError(FixflowError):
    """A program the DPU cannot run: a corrupt or unsupported instruction, or a bank/DDR access outside
    its region. ``index`` is the instruction index (0-based), ``name`` its mnemonic."""

    def __init__(self, message: str, index: int | None = None, name: str | None = None):
        where = ""
        if index is not None:
            where = f"instruction {index}" + (f" ({name})" if name else "") + ": "
        super().__init__(f"dpu: {where}{message}")
        self.index, self.name, self.bare_message = index, name, message
