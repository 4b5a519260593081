"""The DPUCZDX8G instruction table, read from AMD's field table `isa1_fields.xml` (package data).

The XML is the one source of truth: every instruction's opcode, word count, unit and, for each field,
its word, bit position, bit length and whether it is stored minus one. It is parsed once, on first use.

Field order ("table order") is the order AMD's simulator names fields in AC text: words in order, and
within a word from the most significant field down (LOAD: bank_id bank_addr jump_read jump_write ...).
Reserved fields and the word-0 header (`opcode`, `dpdon`, `dpdby`) are not instruction fields.

`Instruction` is the plain record decoders, encoders and interpreters exchange: logical field values
(a `minus` field holds its real value, e.g. `channel 2048` is stored as 2047).
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from importlib import resources

#: the thirteen real instructions, by XML tag, in the table's order (the sim-only DUMP* entries are
#: left out: their opcodes do not fit in 4 bits and they never get machine code)
_TAGS = ("Load", "Save", "ConvInit", "Conv", "PoolInit", "Pool", "AluInit", "Alu", "DWInit", "DptWise",
         "ElewInit", "Elew", "End")
_HEADER = ("opcode", "dpdon", "dpdby")

#: unit bits of the `dpdon`/`dpdby` masks
UNIT_BITS = {"load": 0, "save": 1, "conv": 2, "misc": 3}


@dataclass(frozen=True)
class FieldSpec:
    """One field of an instruction: `length` bits at `pos` in word `word`; `minus` = stored as value-1."""

    name: str
    word: int
    pos: int
    length: int
    minus: bool

    @property
    def lo(self) -> int:
        """Smallest logical value."""
        return 1 if self.minus else 0

    @property
    def hi(self) -> int:
        """Largest logical value."""
        return (1 << self.length) if self.minus else (1 << self.length) - 1

    @property
    def mask(self) -> int:
        return (1 << self.length) - 1


@dataclass(frozen=True)
class InstrSpec:
    """One instruction of the table."""

    name: str           # mnemonic as in AC text: "LOAD", "CONVINIT", ...
    tag: str            # the XML element name: "Load", "ConvInit", ...
    opcode: int
    words: int
    category: str       # execution unit: load, save, conv, misc
    fields: tuple[FieldSpec, ...]   # table order
    reserved: tuple[tuple[int, int], ...]   # (word, mask of the bits no field covers) for nonzero masks

    @property
    def op_name(self) -> str:
        return "dpu." + self.name.lower()

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @functools.cached_property
    def by_name(self) -> dict[str, FieldSpec]:
        return {f.name: f for f in self.fields}


def _parse_table(text: str) -> tuple[InstrSpec, ...]:
    root = ET.fromstring(text)
    specs = []
    for tag in _TAGS:
        el = root.find(tag)
        if el is None:
            raise ValueError(f"isa1_fields.xml has no <{tag}>")
        words = int(el.get("word_num"))
        fields: list[FieldSpec] = []
        reserved = []
        for w in range(words):
            wel = el.find(f"WORD{w}")
            if wel is None:
                raise ValueError(f"isa1_fields.xml: <{tag}> has no <WORD{w}>")
            covered = 0
            in_word = []
            for f in wel:
                pos, length = int(f.get("pos")), int(f.get("len"))
                name = f.tag
                if name.startswith("reserved"):
                    continue
                bits = ((1 << length) - 1) << pos
                if covered & bits or pos + length > 32:
                    raise ValueError(f"isa1_fields.xml: <{tag}> field {name} overlaps or overflows")
                covered |= bits
                if w == 0 and name in _HEADER:
                    continue
                in_word.append(FieldSpec(name, w, pos, length, f.get("minus") == "1"))
            in_word.sort(key=lambda s: -s.pos)
            fields.extend(in_word)
            rmask = 0xFFFFFFFF & ~covered
            if rmask:
                reserved.append((w, rmask))
        specs.append(InstrSpec(tag.upper(), tag, int(el.get("opcode"), 16), words, el.get("category"),
                               tuple(fields), tuple(reserved)))
    return tuple(specs)


@functools.cache
def table() -> tuple[InstrSpec, ...]:
    """Every instruction of the ISA, in the XML's order."""
    text = resources.files(__package__).joinpath("isa1_fields.xml").read_text(encoding="utf-8")
    return _parse_table(text)


@functools.cache
def by_name() -> dict[str, InstrSpec]:
    """Mnemonic ("LOAD") -> spec."""
    return {s.name: s for s in table()}


@functools.cache
def by_opcode() -> dict[int, InstrSpec]:
    """4-bit opcode -> spec."""
    return {s.opcode: s for s in table()}


def spec(name: str) -> InstrSpec:
    """The spec of mnemonic `name` (KeyError when unknown)."""
    return by_name()[name]


@dataclass(eq=True)
class Instruction:
    """One decoded instruction: mnemonic, opcode, dependency masks, logical field values in table order."""

    name: str
    opcode: int
    dpdon: int = 0
    dpdby: int = 0
    fields: dict[str, int] = field(default_factory=dict)

    @classmethod
    def make(cls, name: str, dpdon: int = 0, dpdby: int = 0, **fields: int) -> "Instruction":
        """Build from keyword fields; fields not given are set to their smallest legal value."""
        s = spec(name)
        unknown = set(fields) - set(s.field_names)
        if unknown:
            raise KeyError(f"{name} has no field {sorted(unknown)[0]!r}")
        return cls(name, s.opcode, dpdon, dpdby, {f.name: int(fields.get(f.name, f.lo)) for f in s.fields})

    @property
    def spec(self) -> InstrSpec:
        return by_name()[self.name]

    def __getitem__(self, key: str) -> int:
        return self.fields[key]

    def check(self) -> str | None:
        """The first problem (unknown/missing field, value out of range) as a message, or None."""
        s = by_name().get(self.name)
        if s is None:
            return f"unknown instruction '{self.name}'"
        if self.opcode != s.opcode:
            return f"{self.name} has opcode {s.opcode:#x}, not {self.opcode:#x}"
        for mask_name in ("dpdon", "dpdby"):
            v = getattr(self, mask_name)
            if not isinstance(v, int) or not 0 <= v <= 15:
                return f"{self.name} {mask_name} {v} is out of range [0, 15]"
        for f in s.fields:
            if f.name not in self.fields:
                return f"{self.name} lacks field '{f.name}'"
            v = self.fields[f.name]
            if not isinstance(v, int) or not f.lo <= v <= f.hi:
                return f"{self.name} field '{f.name}' = {v} is out of range [{f.lo}, {f.hi}]"
        for k in self.fields:
            if k not in s.by_name:
                return f"{self.name} has no field '{k}'"
        return None


__all__ = ["FieldSpec", "InstrSpec", "Instruction", "UNIT_BITS", "table", "by_name", "by_opcode", "spec"]
