"""Write and read ``.xmodel`` files (XIR serial_v2) from and to :class:`XGraph`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from . import schema, wire
from .model import (DATA_TYPE_NAME, XAttr, XGraph, XModelError, XOp, XSubgraph, XTensor,
                    format_data_type, parse_data_type)

_GRAPH_FIELDS = {1: "graph_name", 5: "op_node", 10: "subg_root", 11: "graph_attr", 101: "op_defs"}

# ---------------------------------------------------------------------------- attributes


def attr_to_pb(attr: XAttr, pb: Any) -> None:
    """Fill the ``AttrValue`` message ``pb`` from ``attr``."""
    kind, v = attr.kind, attr.value
    field = f"{kind}_value"
    if kind == "bytes":
        pb.bytes_value.SetInParent()
        pb.bytes_value.value = v
    elif kind.startswith("map_string_2_"):
        holder = getattr(pb, field)
        holder.SetInParent()
        elem = kind[len("map_string_2_"):]
        m = holder.value
        for k, x in v.items():
            if elem == "bytes":
                m[k].value = x
            elif elem.endswith("_vec"):
                m[k].value.extend(x)
            else:
                m[k] = x
    elif kind.endswith("_vec"):
        holder = getattr(pb, field)
        holder.SetInParent()
        if kind == "bytes_vec":
            for x in v:
                holder.value.add(value=x)
        else:
            holder.value.extend(v)
    else:
        setattr(pb, field, v)


def attr_from_pb(pb: Any) -> XAttr:
    """The :class:`XAttr` held by an ``AttrValue`` message."""
    field = pb.WhichOneof("value")
    if field is None:
        raise XModelError("attribute value has no kind set")
    kind = field[: -len("_value")]
    holder = getattr(pb, field)
    if kind == "bytes":
        return XAttr(kind, holder.value)
    if kind.startswith("map_string_2_"):
        elem = kind[len("map_string_2_"):]
        if elem == "bytes":
            val = {k: x.value for k, x in holder.value.items()}
        elif elem.endswith("_vec"):
            val = {k: list(x.value) for k, x in holder.value.items()}
        else:
            val = dict(holder.value)
        return XAttr(kind, dict(sorted(val.items())))
    if kind == "bytes_vec":
        return XAttr(kind, [x.value for x in holder.value])
    if kind.endswith("_vec"):
        return XAttr(kind, list(holder.value))
    return XAttr(kind, holder)


def _zero_attr(kind: str) -> XAttr:
    if kind.startswith("map_string_2_"):
        return XAttr(kind, {})
    if kind.endswith("_vec"):
        return XAttr(kind, [])
    return XAttr(kind, {"bool": False, "string": "", "bytes": b"", "float": 0.0,
                        "double": 0.0}.get(kind, 0))


def _put_attrs(pb_map: Any, attrs: Mapping[str, XAttr]) -> None:
    for k, a in attrs.items():
        attr_to_pb(a, pb_map[k])


def _get_attrs(pb_map: Any, where: str) -> dict[str, XAttr]:
    out = {}
    for k in sorted(pb_map):
        try:
            out[k] = attr_from_pb(pb_map[k])
        except XModelError as e:
            raise XModelError(f"{where}attribute {k!r}: {e.message}") from None
    return out

# ---------------------------------------------------------------------------- writer


def _op_defs(graph: XGraph, pb_graph: Any) -> None:
    """One OpDef per op type used, derived from the ops (every AttrDef has a default)."""
    by_type: dict[str, list[XOp]] = {}
    for o in graph.ops:
        by_type.setdefault(o.type, []).append(o)
    ops = graph.op_map()
    for typ, group in by_type.items():
        d = pb_graph.op_defs.add(name=typ)
        args: dict[str, None] = {}
        attrs: dict[str, str] = {}
        for o in group:
            args.update(dict.fromkeys(o.inputs))
            for k, a in o.attrs.items():
                attrs.setdefault(k, a.kind)
        for arg in args:
            counts = [len(o.inputs.get(arg, ())) for o in group]
            repeated, required = max(counts) > 1, min(counts) > 0
            occur = (3 if required else 2) if repeated else (0 if required else 1)
            producer = next((o.inputs[arg][0] for o in group if o.inputs.get(arg)), None)
            dt = parse_data_type(ops[producer].output.data_type)[0] if producer else 0
            d.input_args.add(name=arg, occur_type=occur, data_type=dt)
        for k, kind in sorted(attrs.items()):
            ad = d.attrs.add(name=k, occur_type=0 if all(k in o.attrs for o in group) else 1)
            attr_to_pb(_zero_attr(kind), ad.default_value)


def _put_subgraph(sg: XSubgraph, pb: Any) -> None:
    pb.subgraph_name = sg.name
    pb.op_name.extend(sg.op_names)
    _put_attrs(pb.subg_attr, sg.attrs)
    for c in sg.children:
        _put_subgraph(c, pb.subg_child.add())


def to_proto(graph: XGraph, origin: str = "fixflow") -> Any:
    """Validate ``graph`` and build its ``serial_v2.Graph`` message.

    Adds the graph attribute ``origin`` when the graph has none.
    """
    graph.validate()
    pb = schema.messages()["Graph"](graph_name=graph.name)
    for o in graph.ops:
        n = pb.op_node.add(op_name=o.name, op_type=o.type)
        _put_attrs(n.op_attr, o.attrs)
        for arg, producers in o.inputs.items():
            n.args.add(arg_name=arg, arg_ops=producers)
        t = o.output
        enum, bits = parse_data_type(t.data_type)
        n.output_tensor.SetInParent()
        n.output_tensor.tensor_name = t.name
        n.output_tensor.tensor_dim.extend(t.shape)
        n.output_tensor.data_type = enum
        n.output_tensor.tensor_bit_width = bits
        _put_attrs(n.output_tensor.tensor_attr, t.attrs)
    attrs = dict(graph.attrs)
    attrs.setdefault("origin", XAttr("string", origin))
    _put_attrs(pb.graph_attr, attrs)
    _put_subgraph(graph.root_or_default(), pb.subg_root)
    _op_defs(graph, pb)
    return pb


def xmodel_bytes(graph: XGraph, origin: str = "fixflow") -> bytes:
    """Serialize ``graph`` to .xmodel bytes (see :func:`to_proto`)."""
    return to_proto(graph, origin).SerializeToString(deterministic=True)


def write_xmodel(graph: XGraph, path: str | os.PathLike, origin: str = "fixflow") -> None:
    """Write ``graph`` to ``path``; raises :class:`XModelError` naming the file on failure."""
    try:
        data = xmodel_bytes(graph, origin)
    except XModelError as e:
        raise XModelError(f"{os.fspath(path)}: cannot write xmodel: {e.message}") from None
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as e:
        raise XModelError(f"{os.fspath(path)}: cannot write: {e.strerror or e}") from None

# ---------------------------------------------------------------------------- reader


def _get_subgraph(pb: Any) -> XSubgraph:
    name = pb.subgraph_name
    return XSubgraph(name, list(pb.op_name), _get_attrs(pb.subg_attr, f"subgraph {name!r}: "),
                     [_get_subgraph(c) for c in pb.subg_child])


def from_proto(pb: Any) -> XGraph:
    """Convert a parsed ``serial_v2.Graph`` message to a checked :class:`XGraph`."""
    if not pb.op_node:
        raise XModelError("the graph has no ops")
    ops = []
    for i, n in enumerate(pb.op_node):
        where = f"op {n.op_name!r}: " if n.op_name else f"op #{i}: "
        if not n.op_name or not n.op_type:
            raise XModelError(f"{where}missing op name or type")
        if not n.HasField("output_tensor"):
            raise XModelError(f"{where}missing output tensor")
        t = n.output_tensor
        if t.data_type not in DATA_TYPE_NAME:
            raise XModelError(f"{where}tensor {t.tensor_name!r} has unknown data_type {t.data_type} "
                              "(expected 0..5: INT, UINT, XINT, XUINT, FLOAT, BFLOAT)")
        try:
            dtype = format_data_type(t.data_type, t.tensor_bit_width)
        except XModelError as e:
            raise XModelError(f"{where}tensor {t.tensor_name!r}: {e.message}") from None
        tensor = XTensor(t.tensor_name, list(t.tensor_dim), dtype,
                         _get_attrs(t.tensor_attr, f"{where}tensor {t.tensor_name!r}: "))
        inputs: dict[str, list[str]] = {}
        for a in n.args:
            inputs.setdefault(a.arg_name, []).extend(a.arg_ops)
        ops.append(XOp(n.op_name, n.op_type, _get_attrs(n.op_attr, where), inputs, output=tensor))
    root = _get_subgraph(pb.subg_root) if pb.HasField("subg_root") else None
    g = XGraph(pb.graph_name, ops, _get_attrs(pb.graph_attr, "graph: "), root)
    g.validate()
    return g


def _check_top_level(data: bytes) -> None:
    """Cheap structural check of the top-level message (wire format, known fields)."""
    for f in wire.iter_fields(data):
        if f.num not in _GRAPH_FIELDS:
            raise wire.WireError(f"unexpected top-level field {f.num} at byte {f.offset} "
                                 "(not part of serial_v2.Graph)")
        if f.wire_type != wire.LEN:
            raise wire.WireError(f"top-level field {f.num} ({_GRAPH_FIELDS[f.num]}) at byte "
                                 f"{f.offset} has wire type {wire.WIRE_NAMES.get(f.wire_type)}")


_WIRE_OF = {"int32": 0, "int64": 0, "uint32": 0, "uint64": 0, "bool": 0,
            "float": 5, "double": 1, "string": 2, "bytes": 2}


#: protobuf's decoder (upb) refuses messages nested deeper than 100
MAX_NESTING = 100


def _diagnose(data: memoryview, message: str, base: int = 0, path: str = "Graph", depth: int = 0) -> str | None:
    """Walk ``data`` as ``message`` with the schema table; describe the first problem."""
    if depth >= MAX_NESTING:
        return (f"messages nested deeper than {MAX_NESTING} levels at byte {base} "
                f"({path.split('.', 1)[0]}.{'.'.join(path.split('.')[1:4])}...)")
    table = dict(schema.MESSAGES)
    fields = {num: (name, schema._parse_spec(spec)) for name, num, spec in table[message]}
    try:
        for f in wire.iter_fields(data, base):
            if f.num not in fields:
                continue
            name, (kind, typ, key, _) = fields[f.num]
            where = f"{path}.{name}"
            if kind == "map":
                sub = _diagnose_entry(f, typ, where)
            elif typ in table:
                sub = (_wire_mismatch(f, where, wire.LEN)
                       or _diagnose(f.value, typ, f.data_offset, where, depth + 1))
            else:
                expect = _WIRE_OF.get(typ, 0)  # enums are varints
                if kind == "repeated" and expect != wire.LEN and f.wire_type == wire.LEN:
                    continue  # packed
                sub = _wire_mismatch(f, where, expect)
                if sub is None and typ == "string":
                    try:
                        bytes(f.value).decode("utf-8")
                    except UnicodeDecodeError:
                        sub = f"invalid UTF-8 in string {where} at byte {f.data_offset}"
            if sub:
                return sub
    except wire.WireError as e:
        return f"{e} in {path}"
    return None


def _diagnose_entry(f: wire.Field, typ: str, where: str) -> str | None:
    if (bad := _wire_mismatch(f, where, wire.LEN)) is not None:
        return bad
    try:
        for e in wire.iter_fields(f.value, f.data_offset):
            if e.num == 1:
                bad = _wire_mismatch(e, where + ".key", wire.LEN)
            elif e.num == 2:
                bad = (_wire_mismatch(e, where + ".value", wire.LEN)
                       or _diagnose(e.value, typ, e.data_offset, where + ".value", 1)
                       if typ in dict(schema.MESSAGES)
                       else _wire_mismatch(e, where + ".value", _WIRE_OF.get(typ, 0)))
            if bad:
                return bad
    except wire.WireError as e:
        return f"{e} in {where}"
    return None


def _wire_mismatch(f: wire.Field, where: str, expect: int) -> str | None:
    if f.wire_type == expect:
        return None
    return (f"malformed protobuf ({where} at byte {f.offset} has wire type "
            f"{wire.WIRE_NAMES.get(f.wire_type)}, expected {wire.WIRE_NAMES[expect]})")


def parse_xmodel_bytes(data: bytes, name: str = "<bytes>") -> Any:
    """Parse .xmodel bytes into a ``serial_v2.Graph`` message (no semantic checks)."""
    from google.protobuf.message import DecodeError

    if not data:
        raise XModelError(f"{name}: not a valid xmodel: empty file")
    try:
        _check_top_level(data)
    except wire.WireError as e:
        raise XModelError(f"{name}: not a valid xmodel: {e}") from None
    pb = schema.messages()["Graph"]()
    try:
        pb.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        why = _diagnose(memoryview(data), "Graph") or f"malformed protobuf ({e})"
        raise XModelError(f"{name}: not a valid xmodel: {why}") from None
    return pb


def read_xmodel_bytes(data: bytes, name: str = "<bytes>") -> XGraph:
    """Decode .xmodel bytes to a checked :class:`XGraph`; ``name`` prefixes error messages."""
    pb = parse_xmodel_bytes(data, name)
    try:
        return from_proto(pb)
    except XModelError as e:
        raise XModelError(f"{name}: invalid xmodel: {e.message}") from None


def read_file_bytes(path: str | os.PathLike) -> bytes:
    """Read a file, turning OS errors into :class:`XModelError`."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise XModelError(f"{os.fspath(path)}: cannot read: {e.strerror or e}") from None


def read_xmodel(path: str | os.PathLike) -> XGraph:
    """Read and check an .xmodel file; raises :class:`XModelError` naming the file."""
    return read_xmodel_bytes(read_file_bytes(path), os.fspath(path))
