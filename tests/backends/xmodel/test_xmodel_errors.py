"""Corrupt, truncated and non-xmodel files give one clear XModelError naming the file."""

import random
import re

import pytest

from fixflow.backends.xmodel import XModelError, read_xmodel, read_xmodel_bytes, xmodel_bytes
from fixflow.backends.xmodel.samples import sample_dpu_graph
from fixflow.backends.xmodel.schema import messages


@pytest.fixture(scope="module")
def good() -> bytes:
    return xmodel_bytes(sample_dpu_graph())


def _err(data: bytes, tmp_path, name="model.xmodel") -> str:
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(XModelError) as ei:
        read_xmodel(p)
    msg = ei.value.message
    assert msg.startswith(f"{p}: ") and "\n" not in msg
    return msg


def test_empty_file(tmp_path):
    assert _err(b"", tmp_path).endswith("not a valid xmodel: empty file")


def test_text_file(tmp_path):
    msg = _err(b"graph_name: 'hello'\nop_node {}\n", tmp_path)
    assert "not a valid xmodel" in msg


def test_missing_file(tmp_path):
    with pytest.raises(XModelError, match="nope.xmodel: cannot read: No such file"):
        read_xmodel(tmp_path / "nope.xmodel")


@pytest.mark.parametrize("cut", [1, 2, 10, 100, 0.5, -1, -7])
def test_truncated(good, tmp_path, cut):
    n = cut if isinstance(cut, int) and cut > 0 else len(good) + cut if isinstance(cut, int) \
        else int(len(good) * cut)
    msg = _err(good[:n], tmp_path)
    assert "not a valid xmodel: truncated protobuf" in msg or "invalid xmodel" in msg


def test_truncated_names_position(good, tmp_path):
    msg = _err(good[: len(good) // 2], tmp_path)
    assert re.search(r"truncated protobuf \(field \d+ at byte \d+ needs \d+ bytes, \d+ left\)$", msg)


def test_random_bytes(tmp_path):
    rng = random.Random(1)
    for i in range(50):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        msg = _err(data, tmp_path, f"r{i}.xmodel")
        assert "not a valid xmodel" in msg or "invalid xmodel" in msg


def test_flipped_bytes_never_crash(good, tmp_path):
    """Every single-byte corruption either reads back or raises XModelError (never another error)."""
    rng = random.Random(2)
    failures = 0
    for i in range(300):
        data = bytearray(good)
        pos = rng.randrange(len(data))
        data[pos] ^= 1 << rng.randrange(8)
        try:
            read_xmodel_bytes(bytes(data), "f.xmodel")
        except XModelError as e:
            failures += 1
            assert e.message.startswith("f.xmodel: ") and "\n" not in e.message
    assert failures > 0


def test_bad_utf8_is_diagnosed(good):
    bad = good.replace(b"subgraph_softmax", b"subgraph_softm\xff\xfe")
    with pytest.raises(XModelError, match="not a valid xmodel: invalid UTF-8 in string "
                                          "Graph.subg_root.subg_child.subgraph_name"):
        read_xmodel_bytes(bad, "u.xmodel")


def _pb(good):
    pb = messages()["Graph"]()
    pb.ParseFromString(good)
    return pb


def test_unknown_data_type(good):
    pb = _pb(good)
    pb.op_node[3].output_tensor.data_type = 9
    with pytest.raises(XModelError, match="x.xmodel: invalid xmodel: op 'conv': tensor 'conv' has "
                                          "unknown data_type 9"):
        read_xmodel_bytes(pb.SerializeToString(), "x.xmodel")


def test_dangling_arg_ops(good):
    pb = _pb(good)
    pb.op_node[4].args[0].arg_ops[0] = "ghost"
    with pytest.raises(XModelError, match="op 'pool': input op 'ghost' does not exist"):
        read_xmodel_bytes(pb.SerializeToString(), "x.xmodel")


def test_wrong_order_in_file(good):
    pb = _pb(good)
    ops = list(pb.op_node)
    del pb.op_node[:]
    pb.op_node.extend([ops[3]] + ops[:3] + ops[4:])
    with pytest.raises(XModelError, match="not in topological order"):
        read_xmodel_bytes(pb.SerializeToString(), "x.xmodel")


def test_empty_graph():
    g = messages()["Graph"](graph_name="nothing")
    with pytest.raises(XModelError, match="e.xmodel: invalid xmodel: the graph has no ops"):
        read_xmodel_bytes(g.SerializeToString(), "e.xmodel")


def test_subgraph_invariant_on_read(good):
    pb = _pb(good)
    pb.subg_root.op_name.append("input")  # root now has op names and children
    with pytest.raises(XModelError, match="subgraph 'root' has both op names and children"):
        read_xmodel_bytes(pb.SerializeToString(), "x.xmodel")
    pb = _pb(good)
    pb.subg_root.subg_child.add(subgraph_name="hollow")
    with pytest.raises(XModelError, match="'hollow' has neither"):
        read_xmodel_bytes(pb.SerializeToString(), "x.xmodel")


def test_attr_without_value(good):
    pb = _pb(good)
    pb.op_node[0].op_attr["broken"].SetInParent()
    with pytest.raises(XModelError, match="op 'input': attribute 'broken': attribute value has no kind"):
        read_xmodel_bytes(pb.SerializeToString(), "x.xmodel")


def test_missing_output_tensor(good):
    pb = _pb(good)
    pb.op_node[0].ClearField("output_tensor")
    with pytest.raises(XModelError, match="op 'input': missing output tensor"):
        read_xmodel_bytes(pb.SerializeToString(), "x.xmodel")


def test_wrong_wire_type_at_top_level():
    with pytest.raises(XModelError, match="top-level field 5 .op_node. at byte 0 has wire type varint"):
        read_xmodel_bytes(b"\x28\x01", "w.xmodel")
