"""The XIR ``serial_v2`` protobuf schema, declared once as a table.

``MESSAGES`` / ``ENUMS`` below are the single source of truth.  From them we build a
``FileDescriptorProto`` in Python (no ``protoc`` at install or run time), obtain the
message classes with ``message_factory.GetMessageClass`` and render the equivalent
``.proto`` text (:func:`proto_text`; shipped as ``serial_v2.proto`` for reference).

Field spec strings: ``"<type>"``, ``"repeated <type>"``, ``"map<string, <type>>"`` or
``"oneof <name> <type>"``; ``<type>`` is a proto3 scalar, a message or an enum of the table.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

PACKAGE = "serial_v2"
FILE_NAME = "serial_v2.proto"
#: The shipped, generated schema file (regenerate: ``python -m fixflow.backends.xmodel.schema``).
PROTO_PATH = Path(__file__).with_name(FILE_NAME)

_VEC_SCALARS = ("bool", "int32", "uint32", "int64", "uint64", "float", "double", "string")
_MAP_SCALARS = ("int32", "uint32", "int64", "uint64", "string")


def _camel(s: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in s.split("_"))


#: ``(enum name, [(value name, number)])``, nested inside ``scope`` (a message) or top level.
ENUMS: list[tuple[str, str | None, list[tuple[str, int]]]] = [
    ("OccurType", "AttrDef", [("REQUIRED", 0), ("OPTIONAL", 1)]),
    ("OccurType", "OpArgDef", [("REQUIRED", 0), ("OPTIONAL", 1), ("REPEATED", 2),
                               ("REQUIRED_AND_REPEATED", 3)]),
]

#: ``(message name, [(field name, number, spec)])`` in file order.
MESSAGES: list[tuple[str, list[tuple[str, int, str]]]] = [
    ("Graph", [
        ("graph_name", 1, "string"),
        ("op_node", 5, "repeated OPNode"),
        ("subg_root", 10, "SubGraph"),
        ("graph_attr", 11, "map<string, AttrValue>"),
        ("op_defs", 101, "repeated OpDef"),
    ]),
    ("OPNode", [
        ("op_name", 1, "string"),
        ("op_type", 2, "string"),
        ("op_attr", 3, "map<string, AttrValue>"),
        ("args", 4, "repeated OpArg"),
        ("output_tensor", 5, "Tensor"),
    ]),
    ("OpArg", [
        ("arg_name", 1, "string"),
        ("arg_ops", 2, "repeated string"),
    ]),
    ("Tensor", [
        ("tensor_name", 1, "string"),
        ("tensor_dim", 2, "repeated uint32"),
        ("data_type", 5, "int32"),
        ("tensor_bit_width", 6, "int32"),
        ("tensor_attr", 10, "map<string, AttrValue>"),
    ]),
    ("SubGraph", [
        ("subgraph_name", 1, "string"),
        ("op_name", 3, "repeated string"),
        ("subg_attr", 5, "map<string, AttrValue>"),
        ("subg_child", 10, "repeated SubGraph"),
    ]),
    ("OpDef", [
        ("name", 1, "string"),
        ("input_args", 2, "repeated OpArgDef"),
        ("attrs", 3, "repeated AttrDef"),
        ("annotation", 4, "string"),
    ]),
    ("AttrDef", [
        ("name", 1, "string"),
        ("occur_type", 3, "OccurType"),
        ("default_value", 4, "AttrValue"),
        ("list_length", 6, "int32"),
        ("annotation", 7, "string"),
    ]),
    ("OpArgDef", [
        ("name", 1, "string"),
        ("occur_type", 2, "OccurType"),
        ("data_type", 3, "int32"),
        ("annotation", 4, "string"),
    ]),
    ("AttrValue", [
        ("bool_value", 4, "oneof value bool"),
        ("int32_value", 5, "oneof value int32"),
        ("uint32_value", 6, "oneof value uint32"),
        ("int64_value", 7, "oneof value int64"),
        ("uint64_value", 8, "oneof value uint64"),
        ("float_value", 9, "oneof value float"),
        ("double_value", 10, "oneof value double"),
        ("string_value", 11, "oneof value string"),
        ("bytes_value", 12, "oneof value Bytes"),
        *[(f"{s}_vec_value", 13 + i, f"oneof value {_camel(s)}Vec")
          for i, s in enumerate(("bool", "int32", "uint32", "int64", "uint64", "float",
                                 "double", "string", "bytes"))],
        *[(f"map_string_2_{s}_value", 22 + i, f"oneof value MapString2{_camel(s)}")
          for i, s in enumerate(_MAP_SCALARS + ("bytes",))],
        *[(f"map_string_2_{s}_vec_value", 28 + i, f"oneof value MapString2{_camel(s)}Vec")
          for i, s in enumerate(_MAP_SCALARS)],
    ]),
    ("Bytes", [("value", 1, "bytes")]),
    *[(f"{_camel(s)}Vec", [("value", 1, f"repeated {s}")]) for s in _VEC_SCALARS],
    ("BytesVec", [("value", 1, "repeated Bytes")]),
    *[(f"MapString2{_camel(s)}", [("value", 1, f"map<string, {s}>")]) for s in _MAP_SCALARS],
    ("MapString2Bytes", [("value", 1, "map<string, Bytes>")]),
    *[(f"MapString2{_camel(s)}Vec", [("value", 1, f"map<string, {_camel(s)}Vec>")])
      for s in _MAP_SCALARS],
]

_SCALARS = {  # proto3 scalar -> FieldDescriptorProto.Type number
    "double": 1, "float": 2, "int64": 3, "uint64": 4, "int32": 5, "bool": 8,
    "string": 9, "bytes": 12, "uint32": 13,
}
_TYPE_MESSAGE, _TYPE_ENUM = 11, 14
_LABEL_OPTIONAL, _LABEL_REPEATED = 1, 3


def _parse_spec(spec: str) -> tuple[str, str, str | None, str | None]:
    """Return ``(kind, type, map_key_type, oneof)``; kind is single/repeated/map."""
    if spec.startswith("map<"):
        key, val = (p.strip() for p in spec[4:-1].split(","))
        return "map", val, key, None
    if spec.startswith("repeated "):
        return "repeated", spec[9:], None, None
    if spec.startswith("oneof "):
        _, name, typ = spec.split()
        return "single", typ, None, name
    return "single", spec, None, None


def _enum_scope(name: str, message: str) -> str | None:
    """Full name of enum ``name`` visible from ``message`` (nested first), else None."""
    for ename, scope, _ in ENUMS:
        if ename == name and scope == message:
            return f".{PACKAGE}.{message}.{ename}"
    for ename, scope, _ in ENUMS:
        if ename == name and scope is None:
            return f".{PACKAGE}.{ename}"
    return None


def _set_type(field: Any, typ: str, message: str) -> None:
    if typ in _SCALARS:
        field.type = _SCALARS[typ]
    elif (enum := _enum_scope(typ, message)) is not None:
        field.type, field.type_name = _TYPE_ENUM, enum
    else:
        field.type, field.type_name = _TYPE_MESSAGE, f".{PACKAGE}.{typ}"


def build_file_descriptor() -> Any:
    """Build the ``FileDescriptorProto`` of serial_v2 from the table."""
    from google.protobuf import descriptor_pb2

    fdp = descriptor_pb2.FileDescriptorProto(name=FILE_NAME, package=PACKAGE, syntax="proto3")
    for ename, scope, values in ENUMS:
        if scope is None:
            e = fdp.enum_type.add(name=ename)
            for vname, num in values:
                e.value.add(name=vname, number=num)
    for mname, fields in MESSAGES:
        msg = fdp.message_type.add(name=mname)
        for ename, scope, values in ENUMS:
            if scope == mname:
                e = msg.enum_type.add(name=ename)
                for vname, num in values:
                    e.value.add(name=vname, number=num)
        oneofs: list[str] = []
        for fname, number, spec in fields:
            kind, typ, key, oneof = _parse_spec(spec)
            f = msg.field.add(name=fname, number=number)
            if kind == "map":
                entry = msg.nested_type.add(name=_camel(fname) + "Entry")
                entry.options.map_entry = True
                kf = entry.field.add(name="key", number=1, label=_LABEL_OPTIONAL)
                _set_type(kf, key, mname)
                vf = entry.field.add(name="value", number=2, label=_LABEL_OPTIONAL)
                _set_type(vf, typ, mname)
                f.label, f.type = _LABEL_REPEATED, _TYPE_MESSAGE
                f.type_name = f".{PACKAGE}.{mname}.{entry.name}"
            else:
                f.label = _LABEL_REPEATED if kind == "repeated" else _LABEL_OPTIONAL
                _set_type(f, typ, mname)
            if oneof is not None:
                if oneof not in oneofs:
                    oneofs.append(oneof)
                    msg.oneof_decl.add(name=oneof)
                f.oneof_index = oneofs.index(oneof)
    return fdp


def proto_text() -> str:
    """Render the table as ``.proto`` source (the content of ``serial_v2.proto``)."""
    out = ["// Generated by fixflow.backends.xmodel.schema.proto_text(); do not edit.",
           "// XIR serial_v2: the .xmodel file format.",
           'syntax = "proto3";', "", f"package {PACKAGE};", ""]
    for ename, scope, values in ENUMS:
        if scope is None:
            out += [f"enum {ename} {{"] + [f"  {v} = {n};" for v, n in values] + ["}", ""]
    for mname, fields in MESSAGES:
        out.append(f"message {mname} {{")
        for ename, scope, values in ENUMS:
            if scope == mname:
                out += [f"  enum {ename} {{"] + [f"    {v} = {n};" for v, n in values] + ["  }"]
        open_oneof = None
        for fname, number, spec in fields:
            kind, typ, key, oneof = _parse_spec(spec)
            if oneof != open_oneof:
                if open_oneof is not None:
                    out.append("  }")
                if oneof is not None:
                    out.append(f"  oneof {oneof} {{")
                open_oneof = oneof
            indent = "    " if oneof else "  "
            if kind == "map":
                decl = f"map<{key}, {typ}>"
            elif kind == "repeated":
                decl = f"repeated {typ}"
            else:
                decl = typ
            out.append(f"{indent}{decl} {fname} = {number};")
        if open_oneof is not None:
            out.append("  }")
        out += ["}", ""]
    return "\n".join(out).rstrip("\n") + "\n"


@lru_cache(maxsize=1)
def messages() -> dict[str, type]:
    """Message classes by name (``messages()["Graph"]``), built once per process."""
    from google.protobuf import descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    fd = pool.Add(build_file_descriptor())
    if not hasattr(fd, "message_types_by_name"):  # older API returns None from Add
        fd = pool.FindFileByName(FILE_NAME)
    return {name: message_factory.GetMessageClass(desc)
            for name, desc in fd.message_types_by_name.items()}


if __name__ == "__main__":
    PROTO_PATH.write_text(proto_text())
    print(f"wrote {PROTO_PATH}")
