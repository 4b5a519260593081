"""Check that an .xmodel opens in Netron, decoding it with the schema-free wire reader.

Netron's rules (see spec/xmodel.md and Netron's ``xmodel.js``): the top-level message
has field 5 (``op_node``) length-delimited; op attribute values and every ``AttrDef``
default are of a kind Netron understands; every ``AttrDef`` has a default; tensor
``data_type`` is shown only when non-zero and 5 (BFLOAT) is rejected.
"""

from __future__ import annotations

import os

from . import wire

# AttrValue field numbers Netron decodes: bool, int32(+vec), uint32(+vec), int64, uint64,
# float(+vec), double(+vec), string(+vec), bytes, map_string_2_int32.
NETRON_ATTR_FIELDS = {4: "bool", 5: "int32", 14: "int32_vec", 6: "uint32", 15: "uint32_vec",
                      7: "int64", 8: "uint64", 9: "float", 18: "float_vec", 10: "double",
                      19: "double_vec", 11: "string", 20: "string_vec", 12: "bytes",
                      22: "map_string_2_int32"}
_ALL_ATTR_FIELDS = range(4, 33)
# op attributes Netron skips before looking at their kind
_SKIPPED = ("device", "workload")
_SKIPPED_PREFIX = ("quant_in_", "quant_out_")


def _string(v: wire.Value) -> str:
    return bytes(v).decode("utf-8", "replace") if isinstance(v, memoryview) else str(v)


def _first(fields: dict[int, list[wire.Field]], num: int) -> wire.Field | None:
    fs = fields.get(num)
    return fs[-1] if fs else None


def _attr_kind(value: wire.Field) -> tuple[int | None, str | None]:
    """``(AttrValue field number, problem)`` for a length-delimited AttrValue."""
    if value.wire_type != wire.LEN:
        return None, "is not a message"
    nums = [f.num for f in wire.iter_fields(value.value, value.data_offset) if f.num in _ALL_ATTR_FIELDS]
    if not nums:
        return None, "has no value"
    return nums[-1], None


def _check_attr_map(entries: list[wire.Field], where: str, problems: list[str], is_op: bool) -> None:
    for e in entries:
        if e.wire_type != wire.LEN:
            problems.append(f"{where}: attribute entry at byte {e.offset} is not length-delimited")
            continue
        ef = wire.fields_by_number(e.value, e.data_offset)
        key = _first(ef, 1)
        name = _string(key.value) if key else ""
        if is_op and (name in _SKIPPED or name.startswith(_SKIPPED_PREFIX)):
            continue
        val = _first(ef, 2)
        if val is None:
            problems.append(f"{where}: attribute {name!r} has no value")
            continue
        num, bad = _attr_kind(val)
        if bad:
            problems.append(f"{where}: attribute {name!r} {bad}")
        elif is_op and num not in NETRON_ATTR_FIELDS:
            problems.append(f"{where}: attribute {name!r} has AttrValue field {num}, a kind "
                            "Netron cannot show (the file would fail to open)")


def _check_op(op: wire.Field, index: int, problems: list[str]) -> None:
    f = wire.fields_by_number(op.value, op.data_offset)
    name = _string(_first(f, 1).value) if _first(f, 1) else f"#{index}"
    where = f"op {name!r}"
    _check_attr_map(f.get(3, []), where, problems, is_op=True)
    for a in f.get(4, []):
        if a.wire_type != wire.LEN:
            problems.append(f"{where}: args at byte {a.offset} are not length-delimited")
    t = _first(f, 5)
    if t is None:
        problems.append(f"{where}: no output tensor")
        return
    if t.wire_type != wire.LEN:
        problems.append(f"{where}: output tensor is not length-delimited")
        return
    tf = wire.fields_by_number(t.value, t.data_offset)
    dt = _first(tf, 5)
    dtype = dt.value if dt is not None and dt.wire_type == wire.VARINT else 0
    if dtype == 0:
        problems.append(f"{where}: output tensor has data_type 0 (INT); Netron shows no type")
    elif dtype not in (1, 2, 3, 4):
        problems.append(f"{where}: output tensor has data_type {dtype}; Netron only knows 0..4 "
                        "(INT, UINT, XINT, XUINT, FLOAT) and fails to open the file")
    _check_attr_map(tf.get(10, []), where + " tensor", problems, is_op=False)


def _check_op_def(d: wire.Field, problems: list[str]) -> None:
    f = wire.fields_by_number(d.value, d.data_offset)
    op_type = _string(_first(f, 1).value) if _first(f, 1) else "?"
    for a in f.get(3, []):
        af = wire.fields_by_number(a.value, a.data_offset) if a.wire_type == wire.LEN else {}
        name = _string(_first(af, 1).value) if _first(af, 1) else "?"
        where = f"op_def {op_type!r} attr {name!r}"
        dv = _first(af, 4)
        if dv is None:
            problems.append(f"{where}: no default_value")
            continue
        num, bad = _attr_kind(dv)
        if bad:
            problems.append(f"{where}: default_value {bad}")
        elif num not in NETRON_ATTR_FIELDS:
            problems.append(f"{where}: default_value has AttrValue field {num}, a kind Netron "
                            "cannot read")


def netron_problems(src: str | os.PathLike | bytes) -> list[str]:
    """Reasons Netron would fail to open (or would misdisplay) an .xmodel; ``[]`` if none.

    ``src`` is a path (must end in ``.xmodel``) or the file's bytes.
    """
    problems: list[str] = []
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    else:
        path = os.fspath(src)
        if not path.endswith(".xmodel"):
            problems.append(f"file name {os.path.basename(path)!r} does not end in .xmodel")
        from .serial import read_file_bytes

        data = read_file_bytes(path)  # XModelError if unreadable
    try:
        top = wire.fields_by_number(data)
        ops = top.get(5, [])
        if not ops:
            problems.append("no top-level field 5 (op_node): Netron does not recognise the file")
        elif any(o.wire_type != wire.LEN for o in ops):
            problems.append("top-level field 5 (op_node) is not length-delimited")
            return problems
        for i, op in enumerate(ops):
            _check_op(op, i, problems)
        for d in top.get(101, []):
            if d.wire_type != wire.LEN:
                problems.append(f"op_defs entry at byte {d.offset} is not length-delimited")
            else:
                _check_op_def(d, problems)
    except wire.WireError as e:
        problems.append(str(e))
    return problems
