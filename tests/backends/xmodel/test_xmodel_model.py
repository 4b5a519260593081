"""XGraph model: attribute kinds and inference, data types, ordering, subgraph helpers."""

import numpy as np
import pytest

from fixflow.backends.xmodel import (XAttr, XGraph, XModelError, XOp, XSubgraph, XTensor,
                                     format_data_type, infer_kind, parse_data_type)
from fixflow.backends.xmodel.samples import sample_dpu_graph, sample_graph


@pytest.mark.parametrize("value,kind", [
    (True, "bool"), (3, "int32"), (-(2**31), "int32"), (2**31, "int64"), (2**63, "uint64"),
    (0.5, "double"), ("s", "string"), (b"\x00", "bytes"),
    (np.int32(1), "int32"), (np.uint32(1), "uint32"), (np.int64(1), "int64"),
    (np.uint64(1), "uint64"), (np.float32(1), "float"), (np.float64(1), "double"),
    ([1, 2], "int32_vec"), ([1, 2**40], "int64_vec"), ([1, 2**63], "uint64_vec"),
    ((True, False), "bool_vec"), ([0.5], "double_vec"), (["a"], "string_vec"),
    ([b"a", b""], "bytes_vec"), (np.array([1, 2], np.uint32), "uint32_vec"),
    (np.array([1.0], np.float32), "float_vec"),
    ({"REG_0": 4}, "map_string_2_int32"), ({"a": 2**40, "b": 1}, "map_string_2_int64"),
    ({"REG_0": "CONST"}, "map_string_2_string"), ({"REG_0": b"x"}, "map_string_2_bytes"),
    ({"a": [1, 2]}, "map_string_2_int32_vec"), ({"a": ["x"]}, "map_string_2_string_vec"),
])
def test_infer_kind(value, kind):
    assert infer_kind(value) == kind


@pytest.mark.parametrize("value", [[], {}, [1, "a"], [1, 2.0], {1: 2}, None, object(),
                                   [-1, 2**63], 2**64, np.zeros((2, 2), np.int32)])
def test_ambiguous_values_need_explicit_kind(value):
    with pytest.raises(XModelError, match="XAttr"):
        infer_kind(value)


@pytest.mark.parametrize("kind,value", [
    ("int32", 2**31), ("uint32", -1), ("uint64", 2**64), ("int64", 1.5), ("bool", 1),
    ("string", b"x"), ("bytes", "x"), ("int32_vec", [1, "a"]), ("int32_vec", "12"),
    ("map_string_2_int32", {1: 1}), ("map_string_2_bytes", {"a": "s"}), ("int128", 1),
    ("float", "1.0"),
])
def test_xattr_rejects_bad_values(kind, value):
    with pytest.raises(XModelError):
        XAttr(kind, value)


def test_xattr_normalises():
    assert XAttr("float", 0.1).value == float(np.float32(0.1))
    assert XAttr("int32_vec", np.array([1, 2])).value == [1, 2]
    assert type(XAttr("int32_vec", (np.int64(1),)).value[0]) is int
    assert XAttr("bytes", bytearray(b"ab")).value == b"ab"
    assert XAttr("map_string_2_int32_vec", {"a": (1, 2)}).value == {"a": [1, 2]}
    # plain values become XAttr on construction; attr() gives the plain value back
    t = XTensor("t", [1], "XINT8", {"fix_point": 3})
    assert t.attrs == {"fix_point": XAttr("int32", 3)} and t.attr("fix_point") == 3
    assert t.attr("missing", 7) == 7
    t.set_attr("ddr_addr", XAttr("int32", 0))
    assert t.has_attr("ddr_addr")


@pytest.mark.parametrize("s,enum,bits", [("INT32", 0, 32), ("UINT8", 1, 8), ("XINT8", 2, 8),
                                         ("XUINT4", 3, 4), ("FLOAT32", 4, 32), ("BFLOAT16", 5, 16)])
def test_data_types(s, enum, bits):
    assert parse_data_type(s) == (enum, bits)
    assert format_data_type(enum, bits) == s


@pytest.mark.parametrize("s", ["xint8", "INT", "FLOAT0", "INT8X", "QINT8", ""])
def test_bad_data_type(s):
    with pytest.raises(XModelError, match="unknown data_type"):
        XTensor("t", [1], s)


def test_bad_tensor_shape_and_enum():
    with pytest.raises(XModelError, match="dimensions"):
        XTensor("t", [-1], "XINT8")
    with pytest.raises(XModelError, match="unknown data_type enum 6"):
        format_data_type(6, 8)


def _chain(names):
    ops = [XOp(names[0], "data", output=XTensor(names[0], [1], "FLOAT32"))]
    for p, n in zip(names, names[1:]):
        ops.append(XOp(n, "relu", inputs={"input": [p]}, output=XTensor(n, [1], "FLOAT32")))
    return ops


def test_order_checks_and_toposort():
    ops = _chain(["a", "b", "c", "d"])
    g = XGraph("g", [ops[2], ops[0], ops[3], ops[1]])
    with pytest.raises(XModelError, match="not in topological order: 'c' uses 'b'"):
        g.check_order()
    assert [o.name for o in g.toposorted()] == ["a", "b", "c", "d"]
    XGraph("g", g.toposorted()).check_order()
    with pytest.raises(XModelError, match="duplicate op name 'a'"):
        XGraph("g", [ops[0], ops[0]]).check_order()
    dangling = XOp("x", "relu", inputs={"input": "nope"}, output=XTensor("x", [1], "FLOAT32"))
    with pytest.raises(XModelError, match="'nope' does not exist"):
        XGraph("g", [ops[0], dangling]).check_order()
    cyc = [XOp("p", "add", inputs={"input": ["q"]}, output=XTensor("p", [1], "FLOAT32")),
           XOp("q", "add", inputs={"input": ["p"]}, output=XTensor("q", [1], "FLOAT32"))]
    with pytest.raises(XModelError, match="cycle"):
        XGraph("g", cyc).toposorted()


def test_subgraph_invariants():
    ops = _chain(["a", "b"])
    g = XGraph("g", ops, root=XSubgraph("root", ["a"], children=[XSubgraph("s", ["b"])]))
    with pytest.raises(XModelError, match="both op names and children"):
        g.validate()
    g.root = XSubgraph("root", children=[XSubgraph("s", ["a", "b"]), XSubgraph("empty")])
    with pytest.raises(XModelError, match="'empty' has neither"):
        g.validate()
    g.root = XSubgraph("root", children=[XSubgraph("s", ["a"])])
    with pytest.raises(XModelError, match="'b' is in no subgraph"):
        g.validate()
    g.root = XSubgraph("root", children=[XSubgraph("s", ["a", "b"]), XSubgraph("t", ["b"])])
    with pytest.raises(XModelError, match="'b' is in two subgraphs"):
        g.validate()
    g.root = XSubgraph("root", children=[XSubgraph("s", ["a", "b", "zz"])])
    with pytest.raises(XModelError, match="op 'zz' which does not exist"):
        g.validate()
    g.root = XSubgraph("root", ["a", "b"])  # a single leaf root is fine
    g.validate()
    with pytest.raises(XModelError, match="empty"):
        XGraph("e", []).validate()


def test_default_root_devices():
    g = sample_graph()
    root = g.default_root()
    assert [c.name for c in root.children] == [f"subgraph_{o.name}" for o in g.ops]
    assert root.children[0].device == "USER" and root.children[3].device == "CPU"
    assert all(c.op_names == [o.name] for c, o in zip(root.children, g.ops))


def test_subgraph_queries():
    g = sample_dpu_graph()
    dpu = g.root.find("subgraph_conv")
    assert dpu.device == "DPU" and not dpu.is_leaf
    assert dpu.all_op_names() == ["conv/weights", "conv/bias", "conv", "pool", "flatten"]
    assert g.subgraph_inputs(dpu) == ["input"]
    assert g.subgraph_outputs(dpu) == ["flatten"]
    assert g.subgraph_outputs(g.root) == ["softmax"]
    assert [s.name for s in g.root.walk()][:3] == ["root", "subgraph_input", "subgraph_conv"]
    assert g.root.find("nope") is None
    # children given out of order come back in dependency order
    g.root.children.reverse()
    dpu.children.reverse()
    assert [c.name for c in g.toposort_children()] == [
        "subgraph_input", "subgraph_conv", "subgraph_softmax"]
    assert [c.name for c in g.toposort_children(dpu)] == [
        "subgraph_conv__super0", "subgraph_conv__super1"]
    assert g.consumers()["conv"] == ["pool"] and g.consumers()["softmax"] == []
