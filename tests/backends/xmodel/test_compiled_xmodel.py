"""The compiled .xmodel: AMD's MNIST read completely, fixflow-built models round-trip, validation."""

import copy
import hashlib
import json

import numpy as np
import pytest

from fixflow.backends.xmodel import XAttr, netron_problems, read_xmodel_bytes, xmodel_bytes
from fixflow.backends.xmodel.compiled import (CompiledModel, CompiledModelError, HostSubgraph, Region, SuperLayer,
                                              compiled_bytes, from_xgraph, read_compiled, read_compiled_bytes,
                                              write_compiled)
from fixflow.backends.xmodel.vaic import meta_json, read_compiler_outputs, write_compiler_outputs
from fixflow.ir.diagnostics import FixflowError
from fixflow.target import get_target

from _compiled_testlib import MNIST, build_model  # noqa: E402  (tests/backends/xmodel/)


@pytest.fixture(scope="module")
def mnist():
    return read_compiled(MNIST)


def test_mnist_file_is_the_reference():
    assert hashlib.md5(MNIST.read_bytes()).hexdigest() == "0ad75b008da5bf13dc0ae9da5c03a86f"


def test_mnist_tree(mnist):
    assert mnist.name == "mnist_classifier" and mnist.root_name == "root"
    assert [(s.name, s.device) for s in mnist.subgraphs] == [
        ("subgraph_input_1", "USER"), ("subgraph_quant_conv2d", "DPU"), ("subgraph_quant_dense_1_softmax", "CPU")]
    (d,) = mnist.dpu_subgraphs
    assert [(c.name, c.kind) for c in d.children] == [
        ("subgraph_input_1_upload_0", "upload"),
        ("subgraph_quant_conv2d", "code"),
        ("subgraph_quant_dense(TransferMatMulToConv2d)", "code"),
        ("subgraph_quant_dense_1(TransferMatMulToConv2d)", "code"),
        ("subgraph_quant_dense_1(TransferMatMulToConv2d)_inserted_fix_3_reshaped", "skip"),
        ("subgraph_quant_dense_1(TransferMatMulToConv2d)_inserted_fix_3_reshaped_download_0", "download")]
    # children_topological_sort lists every child but the upload and download ones
    assert d.topological_sort == [c.name for c in d.children[1:5]]
    assert [c.name for c in d.code_children] == d.topological_sort
    assert d.child("subgraph_quant_conv2d").op_names == [
        "quant_conv2d_weights", "quant_conv2d_bias", "quant_conv2d", "quant_max_pooling2d_fix"]
    assert [c.workload for c in d.children] == [0, 432640, 1384576, 2570, 0, 0]
    assert all(c.mc_code is None and c.ac_code is None for c in d.children)  # release mode
    assert mnist.subgraph("subgraph_quant_dense_1_softmax").op_names == [
        "quant_dense_1_softmax_fix_quant_dense_1_softmax", "quant_dense_1_softmax"]
    assert mnist.root_attrs["workload"] == XAttr("uint64", 1819815)
    assert mnist.attrs["origin"].value == "tensorflow2"


def test_mnist_dpu_attributes(mnist):
    (d,) = mnist.dpu_subgraphs
    assert d.target == get_target("DPUCZDX8G_ISA1_B4096") and d.dpu_name == "DPUCZDX8G_ISA1_B4096"
    assert len(d.mc_code) == 4572 and hashlib.md5(d.mc_code).hexdigest() == "11f559efcb8f0148038d7c5035ae09bd"
    words = np.frombuffer(d.mc_code, "<u4")
    assert [f"{w:08x}" for w in words[:5]] == ["01184000", "00007c00", "00007c00", "00000000", "00000000"]
    assert f"{words[-1]:08x}" == "72200000"
    assert [(r.name, r.context_type, r.context_type_v2, r.hw_segment, r.size) for r in d.regions] == [
        ("REG_0", "CONST", "CONST", "W0", 712704), ("REG_1", "DATA", "WORKSPACE", "D0", 5536),
        ("REG_2", "DATA", "INTERFACE", "D0", 784), ("REG_3", "DATA", "INTERFACE", "D0", 16)]
    assert list(d.parameters) == ["REG_0"]
    assert hashlib.md5(d.parameters["REG_0"]).hexdigest() == "94c15707b16260f6cb9a9a682ddb56ba"
    assert (d.workload, d.workload_on_arch, d.ac_code) == (1819786, 13718656, None)
    assert d.runner == {"ref": "libvart-cpu-runner.so", "run": "libvart-dpu-runner.so", "sim": "libvart-sim-runner.so"}
    assert d.attrs["debug_mode"].value == "null" and d.attrs["mc_code_preload"] == XAttr("bytes", b"")


def test_mnist_tensors_and_parameters(mnist):
    (d,) = mnist.dpu_subgraphs
    (i,) = mnist.dpu_inputs(d)
    assert (i.name, i.op, i.shape, i.reg_id, i.ddr_addr, i.location, i.stride, i.fix_point, i.nbytes) == (
        "quant_input_1_upload_0", "input_1_upload_0", (1, 28, 28, 1), 2, 0, 1, (784, 28, 1, 1), 6, 784)
    (o,) = mnist.dpu_outputs(d)
    assert (o.name, o.shape, o.reg_id, o.ddr_addr, o.stride, o.fix_point) == (
        "quant_dense_1_softmax_fix_download_0", (1, 10), 3, 0, (10, 1), 2)
    # the download op's output keeps the original name (the tensor the README's expected outputs are of)
    download = mnist.op("quant_dense_1(TransferMatMulToConv2d)_inserted_fix_3_reshaped_download_0")
    assert download.output.name == "quant_dense_1_softmax_fix" and "location" not in download.output.attrs
    # REG_0: every constant at its tensor's ddr_addr, on a 4096-byte boundary, zero gaps between them
    reg0 = d.parameters["REG_0"]
    consts = sorted((mnist.ddr_tensor(o.name) for o in mnist.ops if o.type == "const-fix"), key=lambda t: t.ddr_addr)
    assert [(t.ddr_addr, t.nbytes) for t in consts] == [
        (0, 32), (4096, 288), (8192, 128), (12288, 128 * 13 * 13 * 32), (704512, 10), (708608, 1280)]
    used = np.zeros(len(reg0), bool)
    for t in consts:
        assert t.reg_id == 0 and t.ddr_addr % 4096 == 0
        used[t.ddr_addr:t.ddr_addr + t.nbytes] = True
        assert any(reg0[t.ddr_addr:t.ddr_addr + t.nbytes])
    assert not np.frombuffer(reg0, np.int8)[~used].any()
    assert all(o.attrs["data"] == XAttr("bytes", b"") for o in mnist.ops if o.type == "const-fix")


def test_mnist_round_trip(mnist, tmp_path):
    data = write_compiled(mnist, tmp_path / "m.xmodel")
    again = read_compiled(tmp_path / "m.xmodel")
    assert again == mnist
    assert compiled_bytes(again) == data
    assert netron_problems(tmp_path / "m.xmodel") == []


# --------------------------------------------------------------------- a compiled model built here (_compiled_testlib)


def test_built_model_round_trip_and_kinds(tmp_path):
    m = build_model()
    data = write_compiled(m, tmp_path / "t.xmodel")
    assert read_compiled(tmp_path / "t.xmodel") == m
    g = read_xmodel_bytes(data)
    dpu = g.root.find("subgraph_conv_dpu")
    kinds = {k: a.kind for k, a in dpu.attrs.items()}
    assert kinds == {
        "device": "string", "dpu_name": "string", "dpu_fingerprint": "uint64", "mc_code": "bytes",
        "ac_code": "string_vec", "reg_id_to_context_type": "map_string_2_string",
        "reg_id_to_context_type_v2": "map_string_2_string", "reg_id_to_hw_segment": "map_string_2_string",
        "reg_id_to_size": "map_string_2_int32", "reg_id_to_parameter_value": "map_string_2_bytes",
        "workload": "uint64", "children_topological_sort": "string_vec", "runner": "map_string_2_string"}
    assert dpu.attr("dpu_name") == "DPUCZDX8G_ISA1_B1024" and dpu.attr("dpu_fingerprint") == 0x0101000056010402
    assert dpu.attr("reg_id_to_hw_segment") == {"REG_0": "W0", "REG_1": "D0", "REG_2": "D0", "REG_3": "D0"}
    assert dpu.attr("children_topological_sort") == ["subgraph_conv"]
    assert g.root.find("subgraph_x_upload_0").attr("skip_code_gen") is True
    assert {k: a.kind for k, a in g.root.find("subgraph_conv").attrs.items()} == {
        "mc_code": "bytes", "ac_code": "string_vec", "workload": "uint64"}
    assert g.root.find("subgraph_y").attr("runner")["run"] == "libvart-cpu-runner.so"
    assert netron_problems(data) == []
    (i,), (o,) = m.dpu_inputs(m.dpu_subgraphs[0]), m.dpu_outputs(m.dpu_subgraphs[0])
    assert (i.name, i.reg_id) == ("x_upload_0", 2) and (o.name, o.reg_id, o.nbytes) == ("conv_download_0", 3, 64)


def test_compiler_outputs(tmp_path):
    m = build_model()
    paths = write_compiler_outputs(m, tmp_path / "out", "tiny_net")
    assert paths.xmodel.name == "tiny_net.xmodel"
    meta = json.loads(paths.meta_json.read_text())
    assert meta == {"lib": "libvart-dpu-runner.so", "filename": "tiny_net.xmodel", "kernel": ["subgraph_conv_dpu"],
                    "target": "DPUCZDX8G_ISA1_B1024"}
    assert list(meta) == ["lib", "filename", "kernel", "target"] and meta == meta_json(m, "tiny_net")
    assert paths.md5sum_txt.read_text() == hashlib.md5(paths.xmodel.read_bytes()).hexdigest() + "\n"
    m2, meta2 = read_compiler_outputs(tmp_path / "out")
    assert m2 == m and meta2 == meta
    paths.md5sum_txt.write_text("0" * 32 + "\n")
    with pytest.raises(CompiledModelError, match="md5sum.txt: does not match"):
        read_compiler_outputs(tmp_path / "out")
    with pytest.raises(CompiledModelError, match="net name"):
        write_compiler_outputs(m, tmp_path / "out", "a/b")
    cpu_only = CompiledModel("c", m.ops[:1], [HostSubgraph("subgraph_x", "USER", ["x"])])
    with pytest.raises(CompiledModelError, match="no DPU subgraph"):
        meta_json(cpu_only, "c")


# --------------------------------------------------------------------- validation: one message each


def _graph():
    return build_model().to_xgraph()


def _dpu_of(g):
    return g.root.find("subgraph_conv_dpu")


@pytest.mark.parametrize("attr", ["device", "dpu_name", "dpu_fingerprint", "mc_code", "reg_id_to_context_type",
                                  "reg_id_to_context_type_v2", "reg_id_to_size", "workload",
                                  "children_topological_sort"])
def test_missing_required_attribute(attr):
    g = _graph()
    del _dpu_of(g).attrs[attr]
    with pytest.raises(CompiledModelError) as e:
        read_compiled_bytes(xmodel_bytes(g), "t.xmodel")
    assert attr in e.value.message and e.value.message.startswith("t.xmodel: invalid compiled xmodel: ")
    assert "\n" not in e.value.message


@pytest.mark.parametrize("attr, bad, msg", [
    ("reg_id_to_size", XAttr("map_string_2_int64", {"REG_0": 1}), "'reg_id_to_size' is map_string_2_int64, "
                                                                  "expected map_string_2_int32"),
    ("dpu_fingerprint", XAttr("int64", 1), "'dpu_fingerprint' is int64, expected uint64"),
    ("mc_code", XAttr("string", "x"), "'mc_code' is string, expected bytes"),
    ("workload", XAttr("int32", 1), "'workload' is int32, expected uint64"),
    ("children_topological_sort", XAttr("string", "a"), "expected string_vec"),
    ("ac_code", XAttr("string", "END"), "'ac_code' is string, expected string_vec"),
    ("reg_id_to_parameter_value", XAttr("map_string_2_string", {"REG_0": "x"}), "expected map_string_2_bytes"),
    ("dpu_fingerprint", XAttr("uint64", 0x0601000000000000), "'dpu_fingerprint': fingerprint 0x0601000000000000 "
                                                             "is DPUCVDX8G"),
    ("dpu_name", "DPUCZDX8G_ISA1_B4096", "'dpu_name' is 'DPUCZDX8G_ISA1_B4096' but dpu_fingerprint "
                                         "0x0101000056010402 is DPUCZDX8G_ISA1_B1024"),
    ("reg_id_to_size", {"REG_0": 8192, "REG_1": 0, "REG_2": 36, "REG_9": 64}, "key 'REG_9' is not a register"),
    ("reg_id_to_context_type", {"REG_0": "CONST", "REG_1": "DATA", "REG_2": "DATA", "REG_3": "CODE"},
     "REG_3 is 'CODE', expected CONST or DATA"),
    ("reg_id_to_parameter_value", {"REG_2": b"x"}, "REG_2 is a DATA region, not CONST"),
    ("reg_id_to_parameter_value", XAttr("map_string_2_bytes", {"REG_0": bytes(9000)}), "REG_0 holds 9000 bytes"),
    ("children_topological_sort", ["subgraph_nope"], "names 'subgraph_nope', which is not a child"),
])
def test_wrong_attribute(attr, bad, msg):
    g = _graph()
    _dpu_of(g).set_attr(attr, bad)
    with pytest.raises(CompiledModelError, match=None) as e:
        read_compiled_bytes(xmodel_bytes(g), "t.xmodel")
    assert msg in e.value.message and "subgraph_conv_dpu" in e.value.message


def test_tensor_and_dataflow_checks():
    g = _graph()
    del g.op("x_upload_0").output.attrs["reg_id"]
    with pytest.raises(CompiledModelError, match="tensor 'x_upload_0' .*lacks attribute 'reg_id'"):
        from_xgraph(g)
    g = _graph()
    g.op("conv").output.set_attr("ddr_addr", 10)
    with pytest.raises(CompiledModelError, match="bytes 10..74 lie outside REG_3 .64 bytes; attribute 'ddr_addr'"):
        from_xgraph(g)
    g = _graph()
    g.op("x_upload_0").output.set_attr("reg_id", 5)
    with pytest.raises(CompiledModelError, match="'reg_id' is 5, but DPU subgraph 'subgraph_conv_dpu' has registers"):
        from_xgraph(g)
    g = _graph()
    g.op("x_upload_0").output.set_attr("location", 0)
    with pytest.raises(CompiledModelError, match="'location' is 0"):
        from_xgraph(g)
    g = _graph()
    g.op("conv").inputs["input"] = ["x"]  # skips the upload
    with pytest.raises(CompiledModelError, match="reads 'x' from outside it; data enters a DPU subgraph only "
                                                 "through an upload op"):
        from_xgraph(g)
    g = _graph()
    g.op("y").inputs["input"] = ["conv"]  # skips the download
    with pytest.raises(CompiledModelError, match="data leaves a DPU subgraph only through a download op"):
        from_xgraph(g)


def test_tree_checks():
    g = _graph()
    del g.root.find("subgraph_y").attrs["device"]
    with pytest.raises(CompiledModelError, match="subgraph 'subgraph_y': a child of the root lacks attribute 'device'"):
        from_xgraph(g)
    g = _graph()
    g.root.find("subgraph_y").set_attr("device", "GPU")
    with pytest.raises(CompiledModelError, match="'device' is 'GPU'"):
        from_xgraph(g)
    g = _graph()
    conv = _dpu_of(g).children[1]
    conv.children, conv.op_names = [copy.deepcopy(conv)], []
    with pytest.raises(CompiledModelError, match="must be a leaf"):
        from_xgraph(g)
    g = _graph()
    g.root = None
    with pytest.raises(CompiledModelError, match="no subgraph tree"):
        from_xgraph(g)
    with pytest.raises(CompiledModelError, match="unknown super-layer kind 'fused'"):
        SuperLayer("s", ["a"], "fused")
    with pytest.raises(CompiledModelError, match="device 'DPU' is not USER or CPU"):
        HostSubgraph("s", "DPU", ["a"])


def test_int_xmodel_is_not_a_compiled_one():
    from fixflow.backends.xmodel import XSubgraph
    from fixflow.backends.xmodel.samples import sample_graph

    g = sample_graph()  # as the quantizer writes it: one leaf root
    g.root = XSubgraph("root", [o.name for o in g.ops])
    with pytest.raises(FixflowError, match="x.xmodel: invalid compiled xmodel: .*root subgraph has no children"):
        read_compiled_bytes(xmodel_bytes(g), "x.xmodel")


@pytest.mark.parametrize("size", [512, 800, 1024, 1152, 1600, 2304, 3136, 4096])
def test_every_target_size_round_trips(size):
    m = build_model(f"DPUCZDX8G_ISA1_B{size}")
    again = read_compiled_bytes(compiled_bytes(m))
    assert again == m and again.dpu_subgraphs[0].target.peak_ops == size
    assert again.dpu_subgraphs[0].dpu_name == f"DPUCZDX8G_ISA1_B{size}"


def test_25_fingerprint_with_its_base_name():
    """Vitis AI 2.5 wrote fingerprint 0x0101000016010407 with dpu_name DPUCZDX8G_ISA1_B4096."""
    g = build_model().to_xgraph()
    dpu = g.root.find("subgraph_conv_dpu")
    dpu.set_attr("dpu_fingerprint", XAttr("uint64", 0x0101000016010407))
    dpu.set_attr("dpu_name", "DPUCZDX8G_ISA1_B4096")
    m = from_xgraph(g)
    assert m.dpu_subgraphs[0].target.name == "DPUCZDX8G_ISA1_B4096_0101000016010407"
    assert read_compiled_bytes(compiled_bytes(m)) == m


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40)
@given(extra=st.lists(st.tuples(st.integers(4, 7), st.sampled_from(["WORKSPACE", "INTERFACE"]),
                                st.integers(0, 2**31 - 1)), unique_by=lambda r: r[0], max_size=3),
       mc=st.binary(max_size=64), ac=st.none() | st.lists(st.text(max_size=20), max_size=4),
       workload=st.integers(0, 2**64 - 1), on_arch=st.none() | st.integers(0, 2**64 - 1),
       debug=st.booleans())
def test_random_dpu_attributes_round_trip(extra, mc, ac, workload, on_arch, debug):
    m = build_model()
    d = m.dpu_subgraphs[0]
    d.regions = sorted(d.regions + [Region(i, "DATA", v2, size) for i, v2, size in extra], key=lambda r: r.reg_id)
    d.mc_code, d.ac_code, d.workload, d.workload_on_arch = mc, ac, workload, on_arch
    child = d.child("subgraph_conv")
    child.mc_code, child.ac_code, child.workload_on_arch = mc, ac, on_arch
    if debug:
        d.attrs["debug_mode"] = XAttr("string", "function")
    again = read_compiled_bytes(compiled_bytes(m))
    assert again == m
