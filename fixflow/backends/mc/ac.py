"""Assembly text ("AC code"): one instruction per line, as AMD's simulator reads and writes it.

    LOAD 0001 0101 bank_id 16 bank_addr 0 jump_read 2048 ... reg_id 0 ddr_addr 2048
    END 0010 0000

`NAME`, the `dpdon` and `dpdby` masks as 4 binary digits MSB first (bit 0 LOAD, 1 SAVE, 2 CONV, 3 MISC),
then every field of the instruction as `name value` with its logical decimal value. The writer names
the fields in table order; the parser, like AMD's, accepts them in any order and splits tokens on
spaces, tabs, `,` and `;`. In `.ac` files (`comments=True`) `#` starts a comment that runs to the end
of the line; an xmodel's `ac_code` has none.
"""

from __future__ import annotations

import re
from typing import Iterable

from ...dialects.dpu.isa import Instruction, by_name
from ...ir.diagnostics import ParseError, register_source

_TOKEN = re.compile(r"[^ \t,;\r\n\v\f]+")
_MASK = re.compile(r"[01]{4}")


class AcError(ParseError):
    """A bad line of assembly text, at `file:line:col`."""


def format_instruction(ins: Instruction) -> str:
    """The AC line of one instruction (fields in table order, no trailing space)."""
    s = by_name()[ins.name]
    parts = [ins.name, format(ins.dpdon, "04b"), format(ins.dpdby, "04b")]
    values = ins.fields
    for f in s.fields:
        parts.append(f.name)
        parts.append(str(values[f.name]))
    return " ".join(parts)


def write_ac(instrs: Iterable[Instruction]) -> str:
    """AC text of a program: one line per instruction, each ending with a newline."""
    return "".join(format_instruction(i) + "\n" for i in instrs)


def parse_ac(text: str, filename: str = "<ac>", comments: bool = True) -> list[Instruction]:
    """The instructions of AC text; the first problem is one :class:`AcError` at `line:col`.

    Errors: unknown instruction, bad mask, unknown/missing/duplicate field, a field without a value,
    a value that is not a decimal integer or is out of the field's range. Blank lines are skipped.
    """
    register_source(filename, text)
    out: list[Instruction] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if comments:
            hash_at = line.find("#")
            if hash_at >= 0:
                line = line[:hash_at]
        toks = [(m.group(), m.start() + 1) for m in _TOKEN.finditer(line)]
        if not toks:
            continue
        out.append(_parse_line(toks, filename, lineno, len(line.rstrip("\r")) + 1))
    return out


def _parse_line(toks: list[tuple[str, int]], filename: str, lineno: int, end_col: int) -> Instruction:
    def err(message: str, col: int) -> AcError:
        return AcError(message, filename, lineno, col)

    name, name_col = toks[0]
    s = by_name().get(name)
    if s is None:
        if "#" in name:
            raise err("'#' comments are not allowed here", name_col + name.index("#"))
        known = ", ".join(x for x in by_name())
        raise err(f"unknown instruction '{name}' (expected one of {known})", name_col)
    masks = []
    for i, what in ((1, "dpdon"), (2, "dpdby")):
        if i >= len(toks):
            raise err(f"{name}: expected the {what} mask (4 binary digits, MSB first)", end_col)
        tok, col = toks[i]
        if not _MASK.fullmatch(tok):
            raise err(f"{name}: {what} must be 4 binary digits (MSB first: MISC CONV SAVE LOAD), got '{tok}'",
                      col)
        masks.append(int(tok, 2))
    values: dict[str, int] = {}
    seen_at: dict[str, int] = {}
    i = 3
    while i < len(toks):
        key, kcol = toks[i]
        f = s.by_name.get(key)
        if f is None:
            hint = f"; its fields are {' '.join(s.field_names)}" if s.fields else "; it has no fields"
            raise err(f"{name} has no field '{key}'{hint}", kcol)
        if key in seen_at:
            raise err(f"{name}: field '{key}' given twice (first at column {seen_at[key]})", kcol)
        if i + 1 >= len(toks):
            raise err(f"{name}: field '{key}' has no value", end_col)
        val, vcol = toks[i + 1]
        if not val.isascii() or not val.isdigit():
            raise err(f"{name}: value of '{key}' must be a decimal integer, got '{val}'", vcol)
        v = int(val) if len(val) <= 24 else f.hi + 1
        if not f.lo <= v <= f.hi:
            raise err(f"{name}: {key} {val} is out of range [{f.lo}, {f.hi}] ({f.length}-bit field"
                      f"{', stored minus one' if f.minus else ''})", vcol)
        values[key] = v
        seen_at[key] = kcol
        i += 2
    missing = [f.name for f in s.fields if f.name not in values]
    if missing:
        raise err(f"{name} lacks field{'s' if len(missing) > 1 else ''} {', '.join(missing)}", end_col)
    return Instruction(name, s.opcode, masks[0], masks[1], {f.name: values[f.name] for f in s.fields})


__all__ = ["AcError", "format_instruction", "write_ac", "parse_ac"]
