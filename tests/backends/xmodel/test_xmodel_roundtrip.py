"""Write -> read round trips of XGraph through .xmodel bytes and files."""

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fixflow.backends.xmodel import (ATTR_KINDS, XAttr, XGraph, XModelError, XOp, XSubgraph,
                                     XTensor, read_xmodel, read_xmodel_bytes, write_xmodel,
                                     xmodel_bytes)
from fixflow.backends.xmodel.samples import DPU_FINGERPRINT, sample_dpu_graph, sample_graph
from fixflow.backends.xmodel.schema import messages

EVERY_KIND = {
    "bool": True, "int32": -(2**31), "uint32": 2**32 - 1, "int64": -(2**63),
    "uint64": 2**64 - 1, "float": 0.1, "double": 0.1, "string": "héllo",
    "bytes": bytes(range(256)), "bool_vec": [True, False], "int32_vec": [1, -2, 3],
    "uint32_vec": [0, 2**32 - 1], "int64_vec": [2**40, -(2**40)], "uint64_vec": [2**64 - 1],
    "float_vec": [1.5, -0.25, 3.1], "double_vec": [1e-300, 2.5], "string_vec": ["a", "", "c"],
    "bytes_vec": [b"", b"\x00\xff"], "map_string_2_int32": {"a": 1, "b": -1},
    "map_string_2_uint32": {"a": 2**32 - 1}, "map_string_2_int64": {"a": -(2**63)},
    "map_string_2_uint64": {"a": 2**64 - 1}, "map_string_2_string": {"k": "v", "": "e"},
    "map_string_2_bytes": {"REG_0": b"\x01\x02"}, "map_string_2_int32_vec": {"a": [1, 2], "b": []},
    "map_string_2_uint32_vec": {"a": [7]}, "map_string_2_int64_vec": {"a": [2**50]},
    "map_string_2_uint64_vec": {"a": [2**63]}, "map_string_2_string_vec": {"a": ["x", "y"]},
}


def _every_kind_attrs(empty: bool = False) -> dict:
    assert set(EVERY_KIND) == set(ATTR_KINDS)
    if not empty:
        return {f"a_{k}": XAttr(k, v) for k, v in EVERY_KIND.items()}
    return {f"e_{k}": XAttr(k, {} if k.startswith("map") else [] if k.endswith("_vec") else
                        {"bool": False, "string": "", "bytes": b"", "float": 0.0,
                         "double": 0.0}.get(k, 0)) for k in ATTR_KINDS}


def test_every_attribute_kind_round_trips(tmp_path):
    attrs = _every_kind_attrs() | _every_kind_attrs(empty=True)
    x = XOp("x", "data", {"shape": [2, 3]}, output=XTensor("x", [2, 3], "FLOAT32", attrs))
    y = XOp("y", "custom", attrs, {"input": ["x"]}, output=XTensor("y", [2, 3], "INT32"))
    g = XGraph("kinds", [x, y], {"origin": "test"} | attrs,
               XSubgraph("root", attrs=attrs, children=[XSubgraph("s0", ["x"], attrs),
                                                         XSubgraph("s1", ["y"])]))
    path = tmp_path / "kinds.xmodel"
    write_xmodel(g, path)
    g2 = read_xmodel(path)
    assert g2 == g
    assert {k: a.kind for k, a in g2.op("y").attrs.items()} == {k: a.kind for k, a in attrs.items()}
    assert g2.op("y").attr("a_uint64") == 2**64 - 1
    assert g2.op("y").attr("a_float") == float(np.float32(0.1))


def test_dpu_subgraph_tree_round_trips(tmp_path):
    g = sample_dpu_graph()
    path = tmp_path / "dpu.xmodel"
    write_xmodel(g, path)
    g2 = read_xmodel(path)
    assert g2 == g
    dpu = g2.root.find("subgraph_conv")
    assert dpu.attrs["dpu_fingerprint"] == XAttr("uint64", DPU_FINGERPRINT)
    assert dpu.attrs["reg_id_to_size"].kind == "map_string_2_int32"
    assert dpu.attrs["reg_id_to_context_type"].kind == "map_string_2_string"
    assert dpu.attrs["reg_id_to_parameter_value"].kind == "map_string_2_bytes"
    assert dpu.attrs["mc_code"].kind == "bytes" and dpu.attrs["ac_code"].kind == "string_vec"
    assert dpu.attrs["workload"].kind == "uint64"
    assert [c.name for c in dpu.children] == dpu.attr("children_topological_sort")
    w = np.frombuffer(g2.op("conv/weights").attr("data"), np.int8).reshape(4, 3, 3, 1)
    rng = np.random.default_rng(0)
    assert (w == rng.integers(-128, 128, size=(4, 3, 3, 1), dtype=np.int8)).all()


def test_default_root_and_origin_filled_in():
    g = sample_graph()
    g.attrs.pop("origin")
    g2 = read_xmodel_bytes(xmodel_bytes(g, origin="me"))
    assert g2.attr("origin") == "me"
    assert g2.root == g.default_root()
    assert g2.ops == g.ops and g.root is None  # the writer does not modify the graph


def test_writer_output_fields():
    """Independent look at the message: order, data_type enum, bit width, op_defs."""
    g = sample_graph()
    pb = messages()["Graph"]()
    pb.ParseFromString(xmodel_bytes(g))
    assert [n.op_name for n in pb.op_node] == [o.name for o in g.ops]
    t = {n.op_name: n.output_tensor for n in pb.op_node}
    assert (t["conv"].data_type, t["conv"].tensor_bit_width) == (2, 8)
    assert (t["softmax"].data_type, t["softmax"].tensor_bit_width) == (4, 32)
    assert list(t["conv"].tensor_dim) == [1, 8, 8, 4]
    assert pb.graph_attr["origin"].string_value == "fixflow"
    defs = {d.name: d for d in pb.op_defs}
    assert set(defs) == {o.type for o in g.ops}
    conv = defs["conv2d-fix"]
    assert [a.name for a in conv.input_args] == ["input", "weights", "bias"]
    assert all(a.HasField("default_value") and a.default_value.WhichOneof("value")
               for d in pb.op_defs for a in d.attrs)
    assert {a.name: a.default_value.WhichOneof("value") for a in conv.attrs}["kernel"] == "int32_vec_value"


def test_op_def_occurrence():
    ops = [XOp("a", "data", output=XTensor("a", [1], "XINT8")),
           XOp("b", "data", {"opt": 1}, output=XTensor("b", [1], "XINT8")),
           XOp("c", "concat", {"axis": 1}, {"input": ["a", "b"]}, output=XTensor("c", [2], "XINT8")),
           XOp("d", "concat", {"axis": 0}, {"input": ["c"], "extra": ["a"]}, output=XTensor("d", [3], "XINT8"))]
    pb = messages()["Graph"]()
    pb.ParseFromString(xmodel_bytes(XGraph("g", ops)))
    defs = {d.name: d for d in pb.op_defs}
    assert {a.name: a.occur_type for a in defs["data"].attrs} == {"opt": 1}
    assert {a.name: a.occur_type for a in defs["concat"].attrs} == {"axis": 0}
    assert {a.name: a.occur_type for a in defs["concat"].input_args} == {"input": 3, "extra": 1}
    assert all(a.data_type == 2 for a in defs["concat"].input_args)


def test_writer_rejects_bad_graphs(tmp_path):
    ops = [XOp("a", "data", output=XTensor("a", [1], "XINT8")),
           XOp("b", "relu", inputs={"input": ["a"]}, output=XTensor("b", [1], "XINT8"))]
    with pytest.raises(XModelError, match=r"out\.xmodel: cannot write xmodel: ops are not in topological"):
        write_xmodel(XGraph("g", ops[::-1]), tmp_path / "out.xmodel")
    with pytest.raises(XModelError, match="graph 'g' is empty"):
        xmodel_bytes(XGraph("g", []))
    with pytest.raises(XModelError, match="cannot write"):
        write_xmodel(XGraph("g", ops), tmp_path / "no" / "such" / "dir.xmodel")
    assert not (tmp_path / "out.xmodel").exists()


def test_deterministic_bytes():
    assert xmodel_bytes(sample_dpu_graph()) == xmodel_bytes(sample_dpu_graph())
    b = xmodel_bytes(sample_dpu_graph())
    assert hashlib.md5(xmodel_bytes(read_xmodel_bytes(b))).digest() == hashlib.md5(b).digest()


_scalar = {
    "bool": st.booleans(), "int32": st.integers(-(2**31), 2**31 - 1),
    "uint32": st.integers(0, 2**32 - 1), "int64": st.integers(-(2**63), 2**63 - 1),
    "uint64": st.integers(0, 2**64 - 1),
    "float": st.floats(width=32, allow_nan=False), "double": st.floats(allow_nan=False),
    "string": st.text(max_size=8), "bytes": st.binary(max_size=16),
}


def _attr_strategy():
    scal = st.sampled_from(sorted(_scalar)).flatmap(lambda k: _scalar[k].map(lambda v: XAttr(k, v)))
    vec = st.sampled_from(sorted(_scalar)).flatmap(
        lambda k: st.lists(_scalar[k], max_size=4).map(lambda v: XAttr(k + "_vec", v)))
    mp = st.sampled_from(["int32", "uint32", "int64", "uint64", "string", "bytes"]).flatmap(
        lambda k: st.dictionaries(st.text(max_size=4), _scalar[k], max_size=3).map(
            lambda v: XAttr("map_string_2_" + k, v)))
    return st.one_of(scal, vec, mp)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=6), _attr_strategy(), max_size=5),
       st.lists(st.integers(0, 2**32 - 1), max_size=4))
def test_random_attrs_round_trip(attrs, shape):
    g = XGraph("h", [XOp("x", "data", attrs, output=XTensor("x", shape, "XUINT4", attrs))], attrs)
    g2 = read_xmodel_bytes(xmodel_bytes(g))
    assert g2.ops == g.ops
    assert {k: v for k, v in g2.attrs.items() if k != "origin"} == \
        {k: v for k, v in g.attrs.items() if k != "origin"}


def test_op_with_empty_producer_list():
    ops = [XOp("a", "data", output=XTensor("a", [1], "XINT8")),
           XOp("b", "relu", inputs={"input": ["a"], "unused": []}, output=XTensor("b", [1], "XINT8"))]
    g = XGraph("g", ops)
    assert read_xmodel_bytes(xmodel_bytes(g)).ops == ops


def test_package_docstring_example_runs(tmp_path, monkeypatch):
    import textwrap

    import fixflow.backends.xmodel as pkg

    doc = pkg.__doc__
    block = doc[doc.index("::\n") + 3: doc.index("\nModel (")]
    monkeypatch.chdir(tmp_path)
    exec(compile(textwrap.dedent(block), "docstring", "exec"), {})
    assert (tmp_path / "net.xmodel").exists()
