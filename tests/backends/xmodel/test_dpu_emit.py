"""Emission of the compiled xmodel from a module the DPU passes compiled (fixflow.backends.xmodel.dpu_emit):
vai_c_xir's structure (USER / DPU / CPU, upload / super-layer / skip / download children), constants only
in REG_0, DDR tensor attributes, dense as conv2d-fix, mc_code and ac_code; the file read back and run on
the DPU interpreter (both modes) equals the fix-level integer execution bit for bit, for several targets."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "passes" / "dpu"))
from _dpu_testlib import (
    FT,
    compile_module,
    conv_ops,
    dense_ops,
    fix_reference,
    pool_ops,
)

from fixflow.backends.mc import decode, encode, parse_ac
from fixflow.backends.xmodel.compiled import read_compiled
from fixflow.backends.xmodel.dpu_emit import EmitError, compile_log, emit_compiled
from fixflow.backends.xmodel.vaic import read_compiler_outputs, write_compiler_outputs
from fixflow.dialects.builtin import FuncOp, ModuleOp, ReturnOp
from fixflow.dialects.fix import ops as Q
from fixflow.ir.types import TensorType, f32
from fixflow.runtime.dpu import DPUSubgraph

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def digits_fix(tmp_path_factory):
    """digits_cnn quantized with the Quantizer API (calib on 128 digits, then test mode): the fix module."""
    from fixflow.quantizer import Quantizer
    from fixflow.zoo import get_model, load_digits
    model = get_model("digits_cnn").eval()
    x, _ = load_digits("train", size=28)
    out = tmp_path_factory.mktemp("digits_q")
    example = (torch.zeros(1, 1, 28, 28),)
    q = Quantizer(model, example, mode="calib", output_dir=out, log=None, progress=False)
    for i in range(0, 128, 64):
        q.quant_model(torch.from_numpy(x[i:i + 64]))
    q.export_quant_config()
    return Quantizer(model, example, mode="test", output_dir=out, log=None, progress=False).fix_module


@pytest.fixture(scope="module")
def images():
    from fixflow.zoo import load_digits
    return load_digits("test", size=28)[0]


def _compiled(module, target):
    m = compile_module(module.clone(), target)
    return m, emit_compiled(m, "digits")


def test_digits_structure_as_vai_c_xir(digits_fix):
    from fixflow.passes.dpu import load_programs
    mod, cm = _compiled(digits_fix, "DPUCZDX8G_ISA1_B4096")
    cm.validate()
    assert compile_log(cm) == ["Total device subgraph number 3, DPU subgraph number 1"]
    assert [getattr(s, "device", None) for s in cm.subgraphs] == ["USER", "DPU", "CPU"]
    (dpu,) = cm.dpu_subgraphs
    kinds = [c.kind for c in dpu.children]
    # conv -> pool -> conv -> conv stay on chip (one super-layer, as vai_c_xir's MNIST conv + relu + pool);
    # the dense reads the last conv's output from DDR
    assert kinds == ["upload", "code", "code", "skip", "download"]
    chain = dpu.children[1]
    assert [n for n in chain.op_names if cm.op(n).type != "const-fix"] == [
        "features_0_2", "features_1", "features_2_2", "features_3_2"]
    assert [cm.op(n).output.attr("location") for n in ("features_0_2", "features_1", "features_2_2")] == [0, 0, 0]
    assert dpu.topological_sort == [c.name for c in dpu.children if c.kind in ("code", "skip")]
    assert dpu.name not in [c.name for c in dpu.children]          # no child repeats the DPU subgraph's name
    ops = {o.name: o for o in cm.ops}
    types = [o.type for o in cm.ops]
    assert "matmul-fix" not in types and types.count("conv2d-fix") == 4 and types.count("pool-fix") == 1
    # the dense runs as a conv over the 7x7x64 map; the flatten before it is gone; a [1, 10] reshape follows
    fc = ops["classifier(TransferMatMulToConv2d)"]
    assert fc.attr("kernel") == [7, 7] and fc.output.shape == [1, 1, 1, 10]
    assert ops[fc.inputs["weights"][0]].output.shape == [10, 7, 7, 64]
    assert fc.inputs["input"] == ["features_3_2"] and "flatten" not in ops
    assert ops["classifier"].type == "reshape-fix" and ops["classifier"].inputs["input"] == [fc.name]
    # constants: empty data, the bytes only in REG_0 at their tensor's ddr_addr
    (prog,) = load_programs(mod)
    reg0 = dpu.region(0).parameter
    assert reg0 == prog.const_bytes and set(dpu.parameters) == {"REG_0"}
    func = next(op for op in mod.body.ops if op.name == "func.func")
    consts = {op.results[0].name_hint: op for op in func.body.ops if op.name == "fix.const"}
    for c in cm.ops:
        if c.type == "const-fix":
            assert c.attr("data") == b""
            data = np.ascontiguousarray(consts[c.name].ints, dtype=np.int8).tobytes()
            a = c.output.attr("ddr_addr")
            assert c.output.attr("reg_id") == 0 and reg0[a:a + len(data)] == data
    # interface and DDR tensors
    (inp,) = cm.dpu_inputs(dpu)
    assert (inp.op, inp.reg_id, inp.location, inp.stride) == ("x_upload_0", 2, 1, (784, 28, 1, 1))
    assert inp.ddr_addr % 16 == 0 and inp.ddr_addr + 784 <= dpu.region(2).size
    (out,) = cm.dpu_outputs(dpu)
    assert out.reg_id == 3 and out.name == "classifier_download_0" and out.stride == (10, 1)
    assert ops["classifier_download_0"].output.name == "classifier"        # the CPU side keeps the name
    assert ops["classifier_float"].inputs["input"] == ["classifier_download_0"]
    assert all(o.output.attr("reg_id") == 1 for o in cm.ops if o.name in ("features_0_2", "features_1"))
    # REG_1 holds only what the program writes to DDR: the last conv's output (read by the dense)
    f3 = cm.ddr_tensor("features_3_2")
    assert (f3.location, f3.ddr_addr) == (1, 0) and dpu.region(1).size == f3.nbytes == 7 * 7 * 64
    # program: mc_code is the dpu.program, ac_code assembles to the same words
    assert decode(dpu.mc_code) == prog.instructions
    assert encode(parse_ac("\n".join(dpu.ac_code), "ac")) == dpu.mc_code
    assert {r.name: r.size for r in dpu.regions} == {f"REG_{k}": v for k, v in prog.reg_sizes.items()}
    assert [r.context_type_v2 for r in dpu.regions] == ["CONST", "WORKSPACE", "INTERFACE", "INTERFACE"]
    assert dpu.workload == sum(c.workload for c in dpu.children) > 0
    # conv workload as AMD counts it: 2 per MAC + 1 per bias add
    assert ops["features_0_2"].attr("workload") == 28 * 28 * 16 * (2 * 9 + 1)
    assert emit_compiled(mod, "digits", ac_code=False).dpu_subgraphs[0].ac_code is None


@pytest.mark.parametrize("target", ["DPUCZDX8G_ISA1_B4096", "DPUCZDX8G_ISA1_B1024"])
def test_digits_written_read_run_bit_exact(digits_fix, images, target, tmp_path):
    mod, cm = _compiled(digits_fix, target)
    write_compiler_outputs(cm, tmp_path, "digits")
    back, meta = read_compiler_outputs(tmp_path)
    assert back == read_compiled(tmp_path / "digits.xmodel") and meta["target"] == target
    assert back.dpu_subgraphs[0].dpu_name == target
    dpu = DPUSubgraph.from_xmodel(tmp_path / "digits.xmodel")
    xins, refs = zip(*(fix_reference(mod, images[k:k + 1]) for k in range(6)))
    batch = np.stack(xins).astype(np.int8)
    for mode in ("fast", "reference"):
        got = dpu.run([batch], mode=mode)["classifier"]
        np.testing.assert_array_equal(got.reshape(6, -1), np.stack(refs).reshape(6, -1), err_msg=mode)


def test_graph_runner_equals_fix_integer_execution(digits_fix, images, tmp_path):
    from fixflow.runtime import GraphRunner
    from fixflow.runtime.fix_executor import run_quantized
    _, cm = _compiled(digits_fix, "DPUCZDX8G_ISA1_B4096")
    write_compiler_outputs(cm, tmp_path, "digits")
    got = GraphRunner.from_xmodel(tmp_path / "digits.xmodel").run([images[:20]])[0]
    np.testing.assert_array_equal(got, run_quantized(digits_fix, [images[:20]])[0])


# ---- small modules: shapes the digits model does not have ---------------------------------------------
def _module(build, in_shape=(1, 6, 6, 8), fp_in=5, seed=0):
    """x -> fix.data -> build(x, rng) -> (list of ops, output values) -> one fix.float per output."""
    rng = np.random.default_rng(seed)
    m = ModuleOp.empty()
    f = FuncOp.create_function("main", [TensorType(in_shape, f32)], [])
    m.body.append(f)
    x = Q.DataOp.build(f.args[0], result_types=[FT(in_shape, 8, fp_in)])
    x.results[0].name_hint = "x_q"
    f.body.append(x)
    ops, outs = build(x.results[0], rng)
    for o in ops:
        f.body.append(o)
    rets = []
    for k, v in enumerate(outs):
        fl = Q.FloatOp.build(v)
        fl.results[0].name_hint = f"out{k}"
        f.body.append(fl)
        rets.append(fl.results[0])
    f.body.append(ReturnOp.build(rets))
    f.update_function_type()
    m.verify()
    return m


def _int_values(m, x):
    from fixflow.ir.interpreter import run_function
    func = next(op for op in m.body.ops if op.name == "func.func")
    vals = {}

    def obs(op, ys):
        for r, v in zip(op.results, ys):
            vals[r] = np.asarray(v)
    run_function(func, [x], obs)
    return func, vals


def _check_exact(m, target, n=3, seed=1):
    """Compile, emit, run the DPU subgraph from the xmodel; compare each DPU output with the fix execution."""
    ref_m = m.clone()
    compile_module(m, target)
    cm = emit_compiled(m)
    cm.validate()
    assert len(cm.dpu_subgraphs) == 1
    dpu = DPUSubgraph.from_xmodel(cm)
    rng = np.random.default_rng(seed)
    func = next(op for op in ref_m.body.ops if op.name == "func.func")
    shape = func.regions[0].blocks[0].args[0].type.shape
    for _ in range(n):
        x = rng.uniform(-2, 2, size=shape).astype(np.float32)
        f, vals = _int_values(ref_m, x)
        data = next(op for op in f.body.ops if op.name == "fix.data")
        floats = [op for op in f.body.ops if op.name == "fix.float"]
        got = dpu.run([vals[data.results[0]].astype(np.int8)], mode="reference")
        for fl in floats:
            want = vals[fl.operands[0]]
            np.testing.assert_array_equal(got[fl.operands[0].name_hint].reshape(want.shape), want)
    return cm


def test_dense_after_dense_and_conv_without_bias():
    def build(x, rng):
        c = conv_ops(x, rng, 8, (3, 3), pad=(1, 1, 1, 1), act="RELU", bias=False, name="c1")
        d1 = dense_ops(c[-1].results[0], rng, 16, act="RELU", name="fc1", fps=(9, 6, 3))
        d2 = dense_ops(d1[-1].results[0], rng, 5, name="fc2", fps=(7, 6, 2))
        return c + d1 + d2, [d2[-1].results[0]]
    cm = _check_exact(_module(build), "DPUCZDX8G_ISA1_B512")
    types = {o.name: o.type for o in cm.ops}
    # the second dense reads the first's [1, 1, 1, 16] conv directly; fc1 needs no [1, N] view
    assert types["fc1(TransferMatMulToConv2d)"] == "conv2d-fix" and "fc1" not in types
    assert cm.op("fc2(TransferMatMulToConv2d)").inputs["input"] == ["fc1(TransferMatMulToConv2d)"]
    assert "bias" not in cm.op("c1").inputs
    assert [c.kind for c in cm.dpu_subgraphs[0].children] == ["upload", "code", "code", "code", "skip", "download"]


def test_two_dpu_outputs_two_downloads():
    def build(x, rng):
        c1 = conv_ops(x, rng, 8, (3, 3), pad=(1, 1, 1, 1), act="RELU", name="c1")
        p = pool_ops(c1[-1].results[0], "MAX", (2, 2), (2, 2), name="p")
        c2 = conv_ops(p[-1].results[0], rng, 4, (1, 1), name="c2", fps=(7, 6, 3))
        return c1 + p + c2, [c1[-1].results[0], c2[-1].results[0]]
    cm = _check_exact(_module(build), "DPUCZDX8G_ISA1_B1024")
    (sg,) = cm.dpu_subgraphs
    downs = [c for c in sg.children if c.kind == "download"]
    assert [c.op_names for c in downs] == [["c1_download_0"], ["c2_download_0"]]
    assert {t.reg_id for t in cm.dpu_outputs(sg)} == {3}
    assert compile_log(cm) == ["Total device subgraph number 4, DPU subgraph number 1"]


# ---- errors ----------------------------------------------------------------------------------------
def test_errors_name_the_missing_step(digits_fix):
    m = digits_fix.clone()
    with pytest.raises(EmitError, match="run the DPU compiler's passes first"):
        emit_compiled(m)
    from fixflow.ir.passes import PassManager
    PassManager.parse("partition{target=DPUCZDX8G_ISA1_B4096},allocate-ddr,lower-to-dpu").run(m)
    for op in next(iter(m.body.ops)).body.ops:
        if op.name == "fix.pool":
            del op.attributes["dpu.ddr"]
    with pytest.raises(EmitError, match="features_1.*has no dpu.ddr: run 'allocate-ddr' first"):
        emit_compiled(m)


def test_op_neither_dpu_nor_cpu_can_run():
    """A float op the partition leaves on the CPU, for which XIR has no CPU op type: one clear error."""
    from fixflow.dialects.graph.ops import RollOp   # (graph.relu was the example before XIR's float relu was written)

    def build(x, rng):
        c = conv_ops(x, rng, 8, (3, 3), pad=(1, 1, 1, 1), name="c1")
        fl = Q.FloatOp.build(c[-1].results[0])
        r = RollOp.build(fl.results[0], shifts=[1], axes=[1])
        r.results[0].name_hint = "r"
        back = Q.FixFixOp.build(r.results[0], result_types=[FT((1, 6, 6, 8), 8, 4)])
        return c + [fl, r, back], [back.results[0]]
    m = _module(build)
    compile_module(m, "DPUCZDX8G_ISA1_B4096")
    with pytest.raises(EmitError, match=r"op 'r' \(graph.roll\) cannot run on the DPU \(.*\), and not on the CPU"):
        emit_compiled(m)


def test_several_dpu_subgraphs_around_a_cpu_concat(tmp_path):
    """Two convs -> concat (left on the CPU) -> conv: DPU subgraphs fed by USER and by a CPU op, each with its
    own upload/download; the whole written graph (GraphRunner: USER, DPU interpreter, CPU) equals the
    fix-level integer execution."""
    from fixflow.runtime import GraphRunner
    from fixflow.runtime.fix_executor import run_quantized

    def build(x, rng):
        a = conv_ops(x, rng, 8, (3, 3), pad=(1, 1, 1, 1), act="RELU", name="a", fps=(7, 6, 4))
        b = conv_ops(x, rng, 8, (1, 1), act="RELU", name="b", fps=(7, 6, 4))
        cat = Q.ConcatOp.build([a[-1].results[0], b[-1].results[0]], axis=2,     # along W: stays on the CPU
                               result_types=[FT((1, 6, 12, 8), 8, 4)])
        cat.results[0].name_hint = "cat"
        c = conv_ops(cat.results[0], rng, 4, (3, 3), name="c", fps=(8, 6, 3))
        return a + b + [cat] + c, [c[-1].results[0]]
    m = _module(build)
    ref = m.clone()
    compile_module(m, "DPUCZDX8G_ISA1_B800")
    cm = emit_compiled(m, "cat")
    assert [getattr(s, "device", None) for s in cm.subgraphs].count("DPU") == len(cm.dpu_subgraphs) >= 2
    n, k = len(cm.subgraphs), len(cm.dpu_subgraphs)
    assert compile_log(cm) == [f"Total device subgraph number {n}, DPU subgraph number {k}"]
    last = cm.dpu_subgraphs[-1]
    (inp,) = cm.dpu_inputs(last)
    assert inp.op == "cat_upload_0" and inp.reg_id == 2 and cm.op("cat_upload_0").inputs["input"] == ["cat"]
    assert cm.op("cat").inputs["input"] == ["a_download_0", "b_download_0"]
    write_compiler_outputs(cm, tmp_path, "cat")
    x = np.random.default_rng(3).uniform(-2, 2, size=(4, 6, 6, 8)).astype(np.float32)
    for mode in ("fast", "reference"):
        got = GraphRunner.from_xmodel(tmp_path / "cat.xmodel", mode=mode).run([x])[0]
        np.testing.assert_array_equal(got, run_quantized(ref, [x])[0], err_msg=mode)


def test_constants_shared_by_two_layers():
    """Two convs reading the same weight and bias ops: the const-fix ops appear once, in the first layer's
    child; REG_0 holds the bytes for both (each layer at its own offset)."""
    def build(x, rng):
        c1 = conv_ops(x, rng, 8, (3, 3), pad=(1, 1, 1, 1), act="RELU", name="c1", fps=(7, 6, 5))
        w, b = c1[0].results[0], c1[1].results[0]
        c2 = Q.Conv2dOp.build(c1[-1].results[0], w, b, kernel=(3, 3), stride=(1, 1), pad=(1, 1, 1, 1),
                              nonlinear="NONE", result_types=[FT((1, 6, 6, 8), 8, 3)])
        c2.results[0].name_hint = "c2"
        return [*c1, c2], [c2.results[0]]
    cm = _check_exact(_module(build), "DPUCZDX8G_ISA1_B4096")
    names = [o.name for o in cm.ops]
    assert len(names) == len(set(names))
    code = [c for c in cm.dpu_subgraphs[0].children if c.kind == "code"]
    # c2 reads c1's output from the banks (an on-chip chain): one super-layer, the constants once
    assert [c.op_names for c in code] == [[code[0].op_names[0], code[0].op_names[1], "c1", "c2"]]
    assert cm.op("c2").inputs["weights"] == [code[0].op_names[0]]


def test_conv_and_add_fused_into_one_super_layer(tmp_path):
    """A conv whose output only an add reads: one child holds both (as vai_c_xir's conv + add super-layer),
    the conv's output tensor is on chip (`location = 0`), the file runs bit for bit and round-trips."""
    def build(x, rng):
        a = conv_ops(x, rng, 8, (3, 3), pad=(1, 1, 1, 1), act="RELU", name="a")
        b = conv_ops(a[-1].results[0], rng, 8, (1, 1), name="b")
        e = Q.EltwiseOp.build([b[-1].results[0], a[-1].results[0]], type="ADD", nonlinear="RELU",
                              result_types=[FT((1, 6, 6, 8), 8, 3)])
        e.results[0].name_hint = "add"
        return a + b + [e], [e.results[0]]

    cm = _check_exact(_module(build), "DPUCZDX8G_ISA1_B4096")
    (sg,) = cm.dpu_subgraphs
    fused = [c for c in sg.children if "add" in c.op_names]
    assert len(fused) == 1 and "b" in fused[0].op_names and fused[0].kind == "code"
    assert not any(c.op_names == ["add"] for c in sg.children)
    assert cm.op("b").output.attrs["location"].value == 0
    assert cm.op("a").output.attrs["location"].value == 1          # read by the add too: in DDR
    write_compiler_outputs(cm, tmp_path, "fused")
    again = read_compiled(tmp_path / "fused.xmodel")
    assert [c.op_names for c in again.dpu_subgraphs[0].children] == [c.op_names for c in sg.children]
