"""Machine code ("mc_code"): instructions <-> little-endian 32-bit words, bit positions from the table.

Word 0 of every instruction holds `opcode[31:28] dpdon[27:24] dpdby[23:20]`; the rest of the bits are
placed exactly as `isa1_fields.xml` says, `minus` fields stored as value - 1. Bits no field covers
(reserved) are written as 0; the decoder refuses a stream whose reserved bits are set, so whatever it
accepts encodes back to the same bytes.
"""

from __future__ import annotations

import struct
from typing import Any, Iterable

from ...dialects.dpu.isa import InstrSpec, Instruction, by_name, by_opcode, table
from ...ir.diagnostics import FixflowError


class McError(FixflowError):
    """Bad machine code, or an instruction that cannot be encoded; names the byte offset and index."""

    def __init__(self, message: str, offset: int | None = None, index: int | None = None,
                 source: str = "mc_code"):
        where = [source]
        if offset is not None:
            where.append(f"byte {offset}")
        if index is not None:
            where.append(f"instruction {index}")
        super().__init__(f"{': '.join(where)}: {message}")
        self.offset, self.index, self.source = offset, index, source
        self.bare_message = message


# per instruction: its spec and a flat tuple of (name, word, pos, mask, minus) for speed
_Layout = tuple[InstrSpec, tuple[tuple[str, int, int, int, int], ...]]
_LAYOUTS: dict[int, _Layout] = {}


def _layout(opcode: int) -> _Layout | None:
    if not _LAYOUTS:
        for s in table():
            _LAYOUTS[s.opcode] = (s, tuple((f.name, f.word, f.pos, f.mask, int(f.minus)) for f in s.fields))
    return _LAYOUTS.get(opcode)


def encode_one(ins: Instruction) -> list[int]:
    """The words of one instruction (its values are checked first; ValueError names the problem)."""
    problem = ins.check()
    if problem:
        raise ValueError(problem)
    s, fields = _layout(by_name()[ins.name].opcode)
    words = [0] * s.words
    words[0] = (s.opcode << 28) | (ins.dpdon << 24) | (ins.dpdby << 20)
    values = ins.fields
    for name, word, pos, mask, minus in fields:
        words[word] |= ((values[name] - minus) & mask) << pos
    return words


def encode(instrs: Iterable[Any]) -> bytes:
    """Machine code of a program: a sequence of `Instruction`s (or `dpu` instruction ops)."""
    out: list[int] = []
    for i, ins in enumerate(instrs):
        if not isinstance(ins, Instruction):
            from ...dialects.dpu import to_instruction
            try:
                ins = to_instruction(ins)
            except (FixflowError, ValueError, TypeError) as e:
                raise McError(str(e), index=i, offset=4 * len(out)) from None
        try:
            out.extend(encode_one(ins))
        except ValueError as e:
            raise McError(f"cannot encode: {e}", offset=4 * len(out), index=i) from None
    return struct.pack(f"<{len(out)}I", *out)


def decode(data: bytes | bytearray | memoryview, source: str = "mc_code") -> list[Instruction]:
    """The instructions of a machine-code stream.

    Raises one `McError` (byte offset and instruction index) for an unknown opcode, a truncated
    instruction, set reserved bits, or trailing bytes that are not a whole word.
    """
    data = bytes(data)
    n = len(data)
    nwords = n // 4
    words = struct.unpack_from(f"<{nwords}I", data)
    out: list[Instruction] = []
    w = 0
    while w < nwords:
        w0 = words[w]
        opcode = w0 >> 28
        lay = _layout(opcode)
        if lay is None:
            raise McError(f"unknown opcode {opcode:#x} (word {w0:#010x})", 4 * w, len(out), source)
        s, fields = lay
        if w + s.words > nwords:
            have = n - 4 * w
            raise McError(f"truncated {s.name}: it needs {4 * s.words} bytes, only {have} remain",
                          4 * w, len(out), source)
        iw = words[w:w + s.words]
        for k, rmask in s.reserved:
            if iw[k] & rmask:
                raise McError(f"{s.name} has reserved bits {iw[k] & rmask:#010x} set in word {k}",
                              4 * (w + k), len(out), source)
        values = {name: ((iw[word] >> pos) & mask) + minus for name, word, pos, mask, minus in fields}
        out.append(Instruction(s.name, opcode, (w0 >> 24) & 0xF, (w0 >> 20) & 0xF, values))
        w += s.words
    if n % 4:
        raise McError(f"{n % 4} trailing byte(s): not a whole 32-bit word", 4 * nwords, len(out), source)
    return out


def words_of(data: bytes) -> list[int]:
    """The little-endian 32-bit words of `data` (length must be a multiple of 4)."""
    if len(data) % 4:
        raise McError(f"{len(data) % 4} trailing byte(s): not a whole 32-bit word", len(data) - len(data) % 4)
    return list(struct.unpack(f"<{len(data) // 4}I", data))


__all__ = ["McError", "encode", "encode_one", "decode", "words_of"]
