"""The `dpu` dialect: DPUCZDX8G instructions, one op per instruction of the ISA1 field table."""

from .isa import FieldSpec, Instruction, InstrSpec, UNIT_BITS, by_name, by_opcode, spec, table

__all__ = ["FieldSpec", "Instruction", "InstrSpec", "UNIT_BITS", "by_name", "by_opcode", "spec", "table"]
