"""serial_v2 schema: field numbers from spec/xmodel.md, the generated .proto, raw wire bytes."""

from fixflow.backends.xmodel import schema

# Field numbers copied from spec/xmodel.md (independent of the table in schema.py).
SPEC = {
    "Graph": {"graph_name": 1, "op_node": 5, "subg_root": 10, "graph_attr": 11, "op_defs": 101},
    "OPNode": {"op_name": 1, "op_type": 2, "op_attr": 3, "args": 4, "output_tensor": 5},
    "OpArg": {"arg_name": 1, "arg_ops": 2},
    "Tensor": {"tensor_name": 1, "tensor_dim": 2, "data_type": 5, "tensor_bit_width": 6,
               "tensor_attr": 10},
    "SubGraph": {"subgraph_name": 1, "op_name": 3, "subg_attr": 5, "subg_child": 10},
    "OpDef": {"name": 1, "input_args": 2, "attrs": 3, "annotation": 4},
    "AttrDef": {"name": 1, "occur_type": 3, "default_value": 4, "list_length": 6, "annotation": 7},
    "OpArgDef": {"name": 1, "occur_type": 2, "data_type": 3, "annotation": 4},
    "AttrValue": dict(zip(
        "bool int32 uint32 int64 uint64 float double string bytes bool_vec int32_vec uint32_vec "
        "int64_vec uint64_vec float_vec double_vec string_vec bytes_vec map_string_2_int32 "
        "map_string_2_uint32 map_string_2_int64 map_string_2_uint64 map_string_2_string "
        "map_string_2_bytes map_string_2_int32_vec map_string_2_uint32_vec map_string_2_int64_vec "
        "map_string_2_uint64_vec map_string_2_string_vec".split(), range(4, 33))),
}


def test_field_numbers_match_spec():
    msgs = schema.messages()
    for mname, fields in SPEC.items():
        desc = msgs[mname].DESCRIPTOR
        got = {f.name: f.number for f in desc.fields}
        want = {f if mname != "AttrValue" else f + "_value": n for f, n in fields.items()}
        assert got == want, mname
    assert [o.name for o in msgs["AttrValue"].DESCRIPTOR.oneofs] == ["value"]
    assert len(msgs["AttrValue"].DESCRIPTOR.oneofs[0].fields) == 29
    occ = msgs["OpArgDef"].DESCRIPTOR.fields_by_name["occur_type"].enum_type
    assert {v.name: v.number for v in occ.values} == {
        "REQUIRED": 0, "OPTIONAL": 1, "REPEATED": 2, "REQUIRED_AND_REPEATED": 3}


def test_shipped_proto_is_generated_from_table():
    assert schema.PROTO_PATH.read_text() == schema.proto_text()


def test_proto_text_declares_every_message_and_field():
    text = schema.proto_text()
    for mname, fields in schema.MESSAGES:
        assert f"message {mname} {{" in text
        for fname, num, _ in fields:
            assert f" {fname} = {num};" in text


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def test_wire_bytes_by_hand():
    """Serialized bytes equal hand-computed protobuf encodings."""
    m = schema.messages()
    g = m["Graph"](graph_name="g")
    g.op_node.add(op_name="a")
    g.op_defs.add(name="t")
    # 1:"g" -> 0a 01 67; 5:{1:"a"} -> 2a 03 0a 01 61; 101:{1:"t"} -> tag 101<<3|2=810 -> aa 06
    assert g.SerializeToString() == bytes.fromhex("0a0167" "2a030a0161" "aa06030a0174")
    v = m["AttrValue"](uint64_value=0x0101000056010407)
    assert v.SerializeToString() == b"\x40" + _varint(0x0101000056010407)
    t = m["Tensor"](data_type=2, tensor_bit_width=8)
    t.tensor_dim.extend([1, 300])
    assert t.SerializeToString() == bytes.fromhex("1203" "01ac02" "2802" "3008")
