"""A minimal protobuf wire-format reader (varints and length-delimited fields).

Independent of the ``protobuf`` library and of any schema: used to check files the way
other readers (Netron) see them and to explain why a file does not parse.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple, Union

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5
WIRE_NAMES = {0: "varint", 1: "fixed64", 2: "length-delimited", 3: "start-group",
              4: "end-group", 5: "fixed32"}

Value = Union[int, memoryview]


class Field(NamedTuple):
    """One decoded field: ``value`` is an int, or a memoryview for length-delimited data."""

    num: int
    wire_type: int
    value: Value
    offset: int       # byte offset of the tag in the file
    data_offset: int  # byte offset of the value (payload start for length-delimited)


class WireError(Exception):
    """Malformed protobuf wire data; ``str()`` says what and at which byte offset."""


def read_varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    """Decode a varint at ``pos``; return ``(value, next_pos)``."""
    result = shift = 0
    start = pos
    while True:
        if pos >= end:
            raise WireError(f"truncated protobuf (varint at byte {start} runs past the end)")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError(f"malformed protobuf (varint at byte {start} is longer than 10 bytes)")


def iter_fields(data: bytes | memoryview, base: int = 0) -> Iterator[Field]:
    """Yield each :class:`Field` of one message; offsets are relative to ``data`` plus ``base``."""
    buf = memoryview(data)
    pos, end = 0, len(buf)
    while pos < end:
        tag_at = pos
        tag, pos = read_varint(buf, pos, end)
        num, wt = tag >> 3, tag & 7
        data_at = pos
        if num == 0:
            raise WireError(f"malformed protobuf (field number 0 at byte {base + tag_at})")
        if wt == VARINT:
            val, pos = read_varint(buf, pos, end)
        elif wt in (FIXED64, FIXED32):
            n = 8 if wt == FIXED64 else 4
            if pos + n > end:
                raise WireError(f"truncated protobuf (field {num} at byte {base + tag_at} needs "
                                f"{n} bytes, {end - pos} left)")
            val = int.from_bytes(buf[pos:pos + n], "little")
            pos += n
        elif wt == LEN:
            n, pos = read_varint(buf, pos, end)
            if pos + n > end:
                raise WireError(f"truncated protobuf (field {num} at byte {base + tag_at} needs "
                                f"{n} bytes, {end - pos} left)")
            data_at = pos
            val = buf[pos:pos + n]
            pos += n
        else:
            raise WireError(f"malformed protobuf (unsupported wire type {wt} "
                            f"({WIRE_NAMES.get(wt, 'invalid')}) at byte {base + tag_at})")
        yield Field(num, wt, val, base + tag_at, base + data_at)


def fields_by_number(data: bytes | memoryview, base: int = 0) -> dict[int, list[Field]]:
    """All fields of one message grouped by number."""
    out: dict[int, list[Field]] = {}
    for f in iter_fields(data, base):
        out.setdefault(f.num, []).append(f)
    return out
