"""DPU machine code and assembly text.

Machine code (``codec.py``): ``decode(data) -> list[Instruction]`` and ``encode(instrs) -> bytes``
convert between `mc_code` (little-endian 32-bit words, bit positions from the ISA1 field table) and the
`Instruction` record of :mod:`fixflow.dialects.dpu`; errors are one :class:`McError` naming the byte
offset and instruction index.

Assembly text (``ac.py``): ``write_ac(instrs) -> str``, ``format_instruction(ins) -> str`` and
``parse_ac(text, filename, comments=True) -> list[Instruction]``; errors are one :class:`AcError` at
``file:line:col``.
"""

from ...dialects.dpu.isa import Instruction
from .ac import AcError, format_instruction, parse_ac, write_ac
from .codec import McError, decode, encode, encode_one, words_of

__all__ = ["Instruction", "McError", "decode", "encode", "encode_one", "words_of", "AcError",
           "format_instruction", "parse_ac", "write_ac"]
