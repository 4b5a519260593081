"""DPU machine code and assembly text.

``decode(data) -> list[Instruction]`` and ``encode(instrs) -> bytes`` convert between `mc_code`
(little-endian 32-bit words, bit positions from the ISA1 field table) and the `Instruction` record
of :mod:`fixflow.dialects.dpu`; errors are one :class:`McError` naming the byte offset and
instruction index.
"""

from ...dialects.dpu.isa import Instruction
from .codec import McError, decode, encode, encode_one, words_of

__all__ = ["Instruction", "McError", "decode", "encode", "encode_one", "words_of"]
