"""Netron compatibility checker: writer output passes, hand-made bad files fail."""

import pytest

from fixflow.backends.xmodel import XAttr, XGraph, XOp, XTensor, netron_problems, write_xmodel, xmodel_bytes
from fixflow.backends.xmodel.samples import sample_dpu_graph, sample_graph
from fixflow.backends.xmodel.schema import messages


def _pb(graph):
    pb = messages()["Graph"]()
    pb.ParseFromString(xmodel_bytes(graph))
    return pb


def test_writer_output_passes(tmp_path):
    for g in (sample_graph(), sample_dpu_graph()):
        p = tmp_path / f"{g.name}.xmodel"
        write_xmodel(g, p)
        assert netron_problems(p) == []
        assert netron_problems(p.read_bytes()) == []


def test_file_name_must_end_in_xmodel(tmp_path):
    p = tmp_path / "model.pb"
    write_xmodel(sample_graph(), p)
    assert netron_problems(p) == ["file name 'model.pb' does not end in .xmodel"]


def test_no_op_node_field():
    pb = messages()["Graph"](graph_name="g")
    assert any("no top-level field 5" in p for p in netron_problems(pb.SerializeToString()))
    # field 5 as a varint instead of a message
    assert any("not length-delimited" in p for p in netron_problems(b"\x28\x01"))


def test_garbage():
    assert netron_problems(b"\x0a\xff\xff") and "truncated" in netron_problems(b"\x0a\xff\xff")[0]


def test_int_data_type_is_flagged():
    g = sample_graph()
    g.ops[-1].output = XTensor("softmax", [1, 64], "INT32")
    probs = netron_problems(xmodel_bytes(g))
    assert probs == ["op 'softmax': output tensor has data_type 0 (INT); Netron shows no type"]


def test_bfloat_and_unknown_data_type_are_flagged():
    g = sample_graph()
    g.ops[-1].output = XTensor("softmax", [1, 64], "BFLOAT16")
    assert "data_type 5" in netron_problems(xmodel_bytes(g))[0]
    pb = _pb(sample_graph())
    pb.op_node[0].output_tensor.data_type = 11
    assert "data_type 11" in netron_problems(pb.SerializeToString())[0]


@pytest.mark.parametrize("kind,value", [
    ("int64_vec", [1]), ("uint64_vec", [1]), ("bool_vec", [True]), ("bytes_vec", [b"x"]),
    ("map_string_2_string", {"a": "b"}), ("map_string_2_bytes", {"a": b""}),
    ("map_string_2_int32_vec", {"a": [1]}), ("map_string_2_uint64", {"a": 1}),
])
def test_unsupported_op_attr_kinds_are_flagged(kind, value):
    g = sample_graph()
    g.ops[3].set_attr("extra", XAttr(kind, value))
    probs = netron_problems(xmodel_bytes(g))
    assert any(p.startswith("op 'conv': attribute 'extra' has AttrValue field") for p in probs)
    assert any(p.startswith("op_def 'conv2d-fix' attr 'extra': default_value has AttrValue field")
               for p in probs)


@pytest.mark.parametrize("kind,value", [
    ("bool", True), ("int32", 1), ("int32_vec", [1]), ("uint32", 1), ("uint32_vec", [1]),
    ("int64", 1), ("uint64", 1), ("float", 1.0), ("float_vec", [1.0]), ("double", 1.0),
    ("double_vec", [1.0]), ("string", "s"), ("string_vec", ["s"]), ("bytes", b"s"),
    ("map_string_2_int32", {"a": 1}),
])
def test_supported_op_attr_kinds_pass(kind, value):
    g = sample_graph()
    g.ops[3].set_attr("extra", XAttr(kind, value))
    assert netron_problems(xmodel_bytes(g)) == []


def test_skipped_op_attrs_and_other_places_are_not_checked():
    g = sample_dpu_graph()  # subgraph attrs use map<string,string>/bytes: Netron ignores subg_root
    g.ops[3].set_attr("device", XAttr("map_string_2_string", {"a": "b"}))
    g.ops[3].set_attr("quant_in_x", XAttr("int64_vec", [1]))
    pb = _pb(g)
    for d in pb.op_defs:  # defaults would still be read by Netron: keep them supported
        for a in d.attrs:
            if a.name in ("device", "quant_in_x"):
                a.default_value.string_value = ""
    assert netron_problems(pb.SerializeToString()) == []


def test_attr_def_without_default_and_empty_attr_value():
    pb = _pb(sample_graph())
    pb.op_defs[0].attrs[0].ClearField("default_value")
    pb.op_node[0].op_attr["hollow"].SetInParent()
    probs = netron_problems(pb.SerializeToString())
    assert "op 'input': attribute 'hollow' has no value" in probs
    assert f"op_def 'data-fix' attr '{pb.op_defs[0].attrs[0].name}': no default_value" in probs


def test_missing_file_is_an_xmodel_error(tmp_path):
    from fixflow.backends.xmodel import XModelError

    with pytest.raises(XModelError, match="cannot read"):
        netron_problems(tmp_path / "absent.xmodel")
