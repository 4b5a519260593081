"""Emission of the ops the DPU compiler lowers beyond conv/pool/dense: pad, nearest upsample, hard-sigmoid,
transposed conv (four REG_0 offsets, a zero-filled scratch frame in REG_1) and channel concat by placement
(convs saving into their slice). Each module is compiled, emitted, written, read back and run on the DPU
interpreter (DPUSubgraph, both modes) and through GraphRunner, bit for bit against the fix-level execution."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "passes" / "dpu"))
from _dpu_testlib import FT, compile_module, conv_ops, dense_ops, module_with, rand_ints

from fixflow.backends.xmodel.dpu_emit import EmitError, emit_compiled
from fixflow.backends.xmodel.vaic import write_compiler_outputs
from fixflow.dialects.fix import ops as Q
from fixflow.runtime import GraphRunner
from fixflow.runtime.fix_executor import run_quantized


def _pad(x, rng):
    c = conv_ops(x, rng, 6, (3, 3), pad=(1, 1, 1, 1), fps=(7, 6, 4), name="c1")
    _, h, w, ch = c[-1].results[0].type.shape
    p = Q.PadOp.build(c[-1].results[0], pad=(1, 2, 0, 3), value=-3, mode="constant",
                      result_types=[FT((1, h + 3, w + 3, ch), 8, 4)])
    p.results[0].name_hint = "padded"
    return c + [p] + conv_ops(p.results[0], rng, 5, (1, 1), fps=(7, 6, 3), name="out")


def _upsample(x, rng):
    c = conv_ops(x, rng, 6, (3, 3), pad=(1, 1, 1, 1), act="RELU", fps=(7, 6, 4), name="deep")
    _, h, w, ch = c[-1].results[0].type.shape
    up = Q.UpsampleOp.build(c[-1].results[0], scale=(2, 3), result_types=[FT((1, 2 * h, 3 * w, ch), 8, 4)])
    up.results[0].name_hint = "up"
    return c + [up] + conv_ops(up.results[0], rng, 4, (3, 3), pad=(1, 1, 1, 1), fps=(7, 6, 3), name="out")


def _hsigmoid(x, rng):
    c = conv_ops(x, rng, 6, (3, 3), pad=(1, 1, 1, 1), fps=(7, 6, 4), name="c1")
    hs = Q.HardSigmoidOp.build(c[-1].results[0], result_types=[FT(c[-1].results[0].type.shape, 8, 7)])
    hs.results[0].name_hint = "hs"
    return c + [hs] + conv_ops(hs.results[0], rng, 4, (1, 1), fps=(7, 6, 3), name="out")


def _tconv(x, rng):
    _, h, w, c = x.type.shape
    wc = Q.ConstOp.from_ints(rand_ints(rng, (5, 3, 3, c)), 8, 7)
    b = Q.ConstOp.from_ints(rand_ints(rng, (5,)), 8, 6)
    oh, ow = (h - 1) * 2 - 1 + 3, (w - 1) * 2 - 1 + 3
    t = Q.ConvTranspose2dOp.build(x, wc.results[0], b.results[0], kernel=(3, 3), stride=(2, 2), pad=(1, 0, 1, 0),
                                  output_padding=(0, 0), nonlinear="RELU", result_types=[FT((1, oh, ow, 5), 8, 3)])
    t.results[0].name_hint = "tconv"
    return [wc, b, t] + conv_ops(t.results[0], rng, 4, (1, 1), fps=(7, 6, 3), name="out")


def _concat(x, rng):
    a = conv_ops(x, rng, 5, (1, 1), act="RELU", fps=(7, 6, 4), name="e1")
    b = conv_ops(x, rng, 7, (3, 3), pad=(1, 1, 1, 1), act="RELU", fps=(7, 6, 4), name="e3")
    _, h, w, _ = x.type.shape
    cat = Q.ConcatOp.build([a[-1].results[0], b[-1].results[0]], axis=3, result_types=[FT((1, h, w, 12), 8, 4)])
    cat.results[0].name_hint = "cat"
    return a + b + [cat] + conv_ops(cat.results[0], rng, 5, (3, 3), pad=(1, 1, 1, 1), fps=(7, 6, 3), name="out")


CASES = {"pad": _pad, "upsample": _upsample, "hsigmoid": _hsigmoid, "tconv": _tconv, "concat": _concat}


def _run_case(build, target, tmp_path, shape=(1, 5, 6, 3), seed=0):
    rng = np.random.default_rng(seed)
    m = module_with(shape, 4, lambda x: build(x, rng))
    ref = m.clone()
    compile_module(m, target)
    func = next(op for op in m.body.ops if op.name == "func.func")
    assert all(op.attributes["dpu.device"].value == "DPU" for op in func.body.ops
               if op.name not in ("func.return", "fix.data", "fix.float"))
    cm = emit_compiled(m, "net")
    cm.validate()
    write_compiler_outputs(cm, tmp_path, "net")
    x = rng.uniform(-2, 2, size=(3,) + shape[1:]).astype(np.float32)
    want = run_quantized(ref, [x])[0]
    for mode in ("fast", "reference"):
        got = GraphRunner.from_xmodel(tmp_path / "net.xmodel", mode=mode).run([x])[0]
        np.testing.assert_array_equal(got, want, err_msg=mode)
    return cm, m


@pytest.mark.parametrize("target", ["DPUCZDX8G_ISA1_B512", "DPUCZDX8G_ISA1_B4096"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_op_emitted_runs_bit_exact(case, target, tmp_path):
    _run_case(CASES[case], target, tmp_path)


def test_tconv_scratch_in_workspace_and_four_offsets(tmp_path):
    cm, m = _run_case(_tconv, "DPUCZDX8G_ISA1_B1024", tmp_path)
    (sg,) = cm.dpu_subgraphs
    # the 1x1 conv after the transposed conv reads its input from the banks: one super-layer
    assert [c.kind for c in sg.children] == ["upload", "code", "download"]
    assert {"tconv", "out"} <= set(sg.children[1].op_names)
    assert cm.op("tconv").output.attr("location") == 0 and "stride" not in cm.op("tconv").output.attrs
    w = cm.op(cm.op("tconv").inputs["weights"][0])
    assert w.output.attr("reg_id") == 0
    t = next(op for op in next(iter(m.body.ops)).body.ops if op.name == "fix.transposed_conv2d")
    reg, addr = (int(v) for v in t.attributes["dpu.scratch"].value)
    assert reg == 1 and 0 <= addr < sg.region(1).size
    del t.attributes["dpu.scratch"]
    with pytest.raises(EmitError, match="dpu.scratch|no DDR address"):
        emit_compiled(m)


def test_placed_concat_slices_have_their_address_and_stride(tmp_path):
    cm, _ = _run_case(_concat, "DPUCZDX8G_ISA1_B1024", tmp_path)
    e1, e3, cat = (cm.op(n).output for n in ("e1", "e3", "cat"))
    assert e1.attr("reg_id") == e3.attr("reg_id") == cat.attr("reg_id")
    assert e3.attr("ddr_addr") - e1.attr("ddr_addr") == 5 and e1.attr("ddr_addr") == cat.attr("ddr_addr")
    assert e1.attr("stride")[-2:] == e3.attr("stride")[-2:] == [12, 1]
    kinds = {c.op_names[-1]: c.kind for c in cm.dpu_subgraphs[0].children}
    assert kinds["cat"] == "skip"


def test_dense_reading_the_flatten_of_a_cpu_op(tmp_path):
    """conv (DPU) -> hard-swish (CPU) -> flatten -> dense (DPU): the second DPU subgraph uploads the CPU
    op's flatten (a CPU reshape joining its producer) and runs the dense as a conv over it."""
    def build(x, rng):
        c = conv_ops(x, rng, 4, (3, 3), pad=(1, 1, 1, 1), fps=(7, 6, 4), name="c1")
        hsw = Q.HardSwishOp.build(c[-1].results[0], result_types=[FT(c[-1].results[0].type.shape, 8, 4)])
        hsw.results[0].name_hint = "hsw"
        return c + [hsw] + dense_ops(hsw.results[0], rng, 7, fps=(9, 6, 3), name="fc")
    rng = np.random.default_rng(4)
    shape = (1, 5, 6, 3)
    m = module_with(shape, 4, lambda x: build(x, rng))
    ref = m.clone()
    compile_module(m, "DPUCZDX8G_ISA1_B1024")
    func = next(op for op in m.body.ops if op.name == "func.func")
    dev = {op.results[0].name_hint: op.attributes["dpu.device"].value for op in func.body.ops if op.results}
    assert dev["hsw"] == "CPU" and dev["fc"] == "DPU"
    cm = emit_compiled(m, "net")
    assert len(cm.dpu_subgraphs) == 2
    fc = cm.op("fc(TransferMatMulToConv2d)")
    (up,) = fc.inputs["input"]
    assert cm.op(up).type == "upload" and cm.op(up).inputs["input"] == ["fc_flat"]
    write_compiler_outputs(cm, tmp_path, "net")
    for _ in range(3):                          # batch 1: the flatten's shape is [1, N]
        x = rng.uniform(-2, 2, size=shape).astype(np.float32)
        for mode in ("fast", "reference"):
            got = GraphRunner.from_xmodel(tmp_path / "net.xmodel", mode=mode).run([x])[0]
            np.testing.assert_array_equal(got, run_quantized(ref, [x])[0], err_msg=mode)


def test_nothing_on_the_dpu_says_so():
    """Every layer on the CPU (hard-swish has no ISA1 engine): the message says so, not 'run the passes'."""
    def build(x, rng):
        hsw = Q.HardSwishOp.build(x, result_types=[FT(x.type.shape, 8, 4)])
        hsw.results[0].name_hint = "hsw"
        return [hsw]
    m = module_with((1, 3, 3, 4), 4, lambda x: build(x, None))
    compile_module(m, "DPUCZDX8G_ISA1_B1024")
    with pytest.raises(EmitError, match="^(error: )?nothing runs on the DPU: every layer was placed on the CPU$"):
        emit_compiled(m)
