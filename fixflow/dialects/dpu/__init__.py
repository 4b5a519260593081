"""The `dpu` dialect: DPUCZDX8G instructions, one op per instruction of the ISA1 field table.

``isa.py``: the field table (``table()``, ``spec(name)``, ``by_opcode()``) and the plain
``Instruction`` record. ``ops.py``: the generated instruction ops (``dpu.load`` ... ``dpu.end``),
``dpu.program`` with its target checks, and conversions ``from_instruction`` / ``to_instruction``.
Importing this package registers the dialect.
"""

from .isa import FieldSpec, Instruction, InstrSpec, UNIT_BITS, by_name, by_opcode, spec, table
from .ops import *  # noqa: F401,F403
from .ops import __all__ as _ops_all

__all__ = ["FieldSpec", "Instruction", "InstrSpec", "UNIT_BITS", "by_name", "by_opcode", "spec",
           "table"] + list(_ops_all)
