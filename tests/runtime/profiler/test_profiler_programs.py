"""The profiler on real programs: AMD's compiled MNIST (release mode, layers found from the data) and
the digits models compiled by fixflow's DPU passes; random token programs (hypothesis)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from _profiler_testlib import check_tokens, ins
from fixflow.backends.mc import decode
from fixflow.backends.xmodel.compiled import read_compiled
from fixflow.runtime.profiler import (Machine, ProfileError, costs, profile_module, profile_xmodel, timeline,
                                      unit_of)
from fixflow.target import get_board, get_target

MNIST = Path(__file__).resolve().parents[4] / "shared" / "reference" / "amd-compiled-mnist" / "dpu_mnist_classifier.xmodel"
B4096 = get_target("DPUCZDX8G_ISA1_B4096")
KV260 = Machine.of(B4096, get_board("kv260"))
_KINDS = [("LOAD", {"length": 2, "channel": 32}), ("SAVE", {"length": 1, "channel": 48}), ("CONV", {"length": 3}),
          ("ALU", {}), ("ELEW", {"length": 2, "num": 2})]


@st.composite
def token_programs(draw):
    """Random streams whose tokens are always sent before they are taken in program order (the
    compiler's invariant), so they never deadlock; some tokens stay unconsumed."""
    n = draw(st.integers(1, 40))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    prog = [ins("CONVINIT", kernel_h=2, kernel_w=1), ins("ALUINIT", kernel_h=2, kernel_w=2, length=3)]
    pending = [[0] * 4 for _ in range(4)]
    for _ in range(n):
        name, fields = rng.choice(_KINDS)
        u = unit_of(name)
        dpdon = 0
        for a in range(4):
            if a != u and pending[a][u] and rng.random() < 0.7:
                dpdon |= 1 << a
                pending[a][u] -= 1
        dpdby = 0
        for b in range(4):
            if rng.random() < 0.3:
                dpdby |= 1 << b
                if b != u:
                    pending[u][b] += 1
        prog.append(ins(name, dpdon, dpdby, **fields))
    prog.append(ins("END"))
    return prog


@settings(max_examples=150, deadline=None)
@given(token_programs())
def test_timeline_respects_every_token(prog):
    c = costs(prog, KV260)
    slots, _ = timeline(prog, c)
    check_tokens(prog, c, slots)


@pytest.fixture(scope="module")
def mnist():
    return read_compiled(MNIST)


def test_mnist_layers_match_amd_workloads(mnist):
    """The attributed instructions do exactly the work AMD's compiler wrote on each super-layer."""
    p = profile_xmodel(mnist, "kv260")
    (dpu,) = [s for s in p["subgraphs"] if s["device"] == "DPU"]
    sg = mnist.dpu_subgraphs[0]
    by_name = {c.name: c for c in sg.children}
    assert [L["name"] for L in dpu["layers"]] == sg.topological_sort
    for L in dpu["layers"]:
        assert L["ops_on_arch"] == (by_name[L["name"]].workload_on_arch or 0), L["name"]
        assert L["workload_ops"] == by_name[L["name"]].workload
        assert 0 <= L["utilization"] <= 1
    assert dpu["ops_on_arch"] == sg.workload_on_arch and dpu["workload_ops"] == sg.workload
    assert sum(L["cycles"] for L in dpu["layers"]) == pytest.approx(dpu["cycles"])
    assert sum(L["share"] for L in dpu["layers"]) == pytest.approx(1.0)
    assert dpu["notes"] == []            # AMD's tokens balance under the FIFO reading
    assert [L["type"] for L in dpu["layers"]][:2] == ["conv2d-fix+pool-fix", "conv2d-fix"]
    # the weights of the 13x13x32 -> 128 dense layer dominate the DDR traffic
    dense = dpu["layers"][1]
    assert dense["ddr_read_bytes"] == 128 * 13 * 13 * 32 + 128
    assert p["subgraphs"][2]["ms"] is None          # CPU subgraph not run unless asked


def test_mnist_timeline_respects_amd_tokens(mnist):
    sg = mnist.dpu_subgraphs[0]
    prog = decode(sg.mc_code)
    c = costs(prog, KV260)
    slots, _ = timeline(prog, c)
    check_tokens(prog, c, slots)
    total = max(s.end for s in slots)
    assert max(sum(x.cycles for x in c if x.unit == u) for u in range(4)) <= total <= sum(x.cycles + x.latency for x in c)


def test_mnist_boards_scale_with_clock(mnist):
    kv = profile_xmodel(mnist, "kv260")
    zcu102 = profile_xmodel(mnist, "zcu102")
    assert zcu102["machine"]["cores"] == 3 and zcu102["machine"]["clock_mhz"] == 281.0
    assert zcu102["throughput"]["fps_multi_thread"] > 2.5 * kv["throughput"]["fps_multi_thread"]


def test_mnist_cpu_subgraph_timed_by_running(mnist):
    p = profile_xmodel(mnist, "kv260", measure_cpu=True)
    cpu = [s for s in p["subgraphs"] if s["device"] == "CPU"]
    assert cpu and all(s["ms"] is not None and s["ms"] > 0 for s in cpu)
    host = {h["name"]: h for h in p["host"]["subgraphs"]}
    dpu = host[mnist.dpu_subgraphs[0].name]
    assert dpu["ms"] > 0
    # per layer: the fast plan run kernel by kernel (checked inside to give the plan's own result)
    assert "per layer" in p["host"]["granularity"]
    assert [L["name"] for L in dpu["layers"]] == mnist.dpu_subgraphs[0].topological_sort
    assert all(L["ms"] >= 0 for L in dpu["layers"]) and dpu["layers"][1]["ms"] > 0
    assert dpu["layers"][-1]["ms"] == 0.0            # the reshape has no kernel
    assert p["throughput"]["fps_single_thread"] < p["throughput"]["fps_multi_thread"]


def test_kernel_by_kernel_run_equals_the_plan(mnist):
    import numpy as np
    from fixflow.runtime.dpu import DPUSubgraph
    from fixflow.runtime.dpu.fast import FastPlan
    from fixflow.runtime.profiler.host import _run_by_kernel
    d = DPUSubgraph.from_xmodel(mnist)
    rng = np.random.default_rng(3)
    regions = {r: rng.integers(-128, 128, (1, s), dtype=np.int8) for r, s in d.reg_sizes.items() if r not in d.consts}
    want = d.plan().run(regions)
    got, times = _run_by_kernel(d.plan(), FastPlan._exec, regions)
    assert set(got) == set(want) and all(np.array_equal(got[r], want[r]) for r in want)
    assert len(times) == len(d.plan().kernels)


def test_not_compiled_module_is_one_error():
    from fixflow.dialects.builtin import ModuleOp
    with pytest.raises(ProfileError, match="no dpu.program"):
        profile_module(ModuleOp.empty())


# ---------------------------------------------------------------------------- fixflow's compiler

torch = pytest.importorskip("torch")


def _compiled(name, tmp_path_factory):
    from fixflow.ir.passes import PassManager
    from fixflow.quantizer import Quantizer
    from fixflow.zoo import get_model, load_digits
    model = get_model(name).eval()
    x, _ = load_digits("train", size=28)
    out = tmp_path_factory.mktemp(name)
    example = (torch.zeros(1, 1, 28, 28),)
    q = Quantizer(model, example, mode="calib", output_dir=out, log=None, progress=False)
    q.quant_model(torch.from_numpy(x[:64]))
    q.export_quant_config()
    m = Quantizer(model, example, mode="test", output_dir=out, log=None, progress=False).fix_module
    PassManager.parse("partition{target=DPUCZDX8G_ISA1_B4096},allocate-ddr,lower-to-dpu,schedule-dpu").run(m)
    return m


@pytest.fixture(scope="module", params=["digits_cnn", "tiny_mobilenet"])
def compiled(request, tmp_path_factory):
    return request.param, _compiled(request.param, tmp_path_factory)


def test_compiled_digits_models(compiled):
    from fixflow.dialects.dpu.ops import ProgramOp
    from fixflow.passes.dpu.program import annotated_subgraphs, compile_annotated
    name, m = compiled
    p = profile_module(m, "kv260")
    dpus = [s for s in p["subgraphs"] if s["device"] == "DPU"]
    assert len(dpus) == 1 and {s["device"] for s in p["subgraphs"]} == {"USER", "DPU", "CPU"}
    d = dpus[0]
    assert d["attribution"] == "the compiler's layer of each instruction"
    func = next(op for op in m.body.ops if op.name == "func.func")
    (sg,) = [s for s in annotated_subgraphs(func) if s.device == "DPU"]
    dp = compile_annotated(sg, B4096, flags=False)
    used = sorted({k for k in dp.layer_of if k >= 0})
    assert [L["name"] for L in d["layers"]] == [dp.layers[k].name for k in used]
    # every layer's useful work fits in the cycles the model gives it; the hardware does at least that
    for L in d["layers"]:
        assert 0 < L["utilization"] <= 1, L["name"]
        assert L["ops_on_arch"] >= L["workload_ops"] * 0.5, L["name"]
    # conv work: 2 MACs per op + a bias add per output, checked against the torch model's MAC count
    from fixflow.zoo import count_macs, get_model
    macs = sum(count_macs(get_model(name), (1, 1, 28, 28)).values())
    conv_like = [L for L in d["layers"] if L["type"] in ("conv2d", "dense", "depthwise_conv2d")]
    outputs = sum(L["workload_ops"] for L in conv_like) - 2 * macs
    assert 0 < outputs < 2 * macs / 8
    # the program's own tokens are honoured
    (prog,) = [op for op in m.body.ops if isinstance(op, ProgramOp)]
    instrs = prog.instructions()
    c = costs(instrs, KV260)
    slots, notes = timeline(instrs, c)
    check_tokens(instrs, c, slots)
    assert notes == [] and max(s.end for s in slots) == d["cycles"]


def test_debug_mode_children_run_one_after_another(mnist):
    """When every super-layer child carries its own stream (debug mode), each is timed on its own and
    they follow each other."""
    import copy
    from fixflow.backends.mc import encode
    from fixflow.runtime.profiler import profile_dpu_subgraph
    m = copy.deepcopy(mnist)
    sg = m.dpu_subgraphs[0]
    code = [c for c in sg.code_children if c.kind == "code"]
    streams = [
        [ins("LOAD", 0, 4, length=4, channel=64), ins("CONVINIT", kernel_h=3, kernel_w=3),
         ins("CONV", 1, 2, length=10, channel_group=2), ins("SAVE", 4, 0, length=2, channel=32), ins("END")],
        [ins("CONVINIT"), ins("CONV", 0, 2, length=7), ins("SAVE", 4, 0, length=1, channel=16), ins("END")],
        [ins("ALUINIT", kernel_h=2, kernel_w=2, length=13, channel_group=2), ins("ALU"), ins("END")],
    ]
    for c, s in zip(code, streams):
        c.mc_code = encode(s)
    p = profile_dpu_subgraph(m, sg, "kv260")
    assert p["attribution"] == "per-super-layer mc_code (debug mode)"
    assert [L["name"] for L in p["layers"]] == [c.name for c in code]
    # 290 (the worked example); CONVINIT [0,1) CONV [1,8) SAVE [8,9) done 54, END completes at 54;
    # ALUINIT [0,1) ALU [1,105) (END, on the SAVE unit, waits for nothing)
    assert [L["cycles"] for L in p["layers"]] == [290, 54, 105]
    assert p["cycles"] == 290 + 54 + 105
    assert [L["start_cycle"] for L in p["layers"]] == [0, 290, 344]
    assert [L["workload_ops"] for L in p["layers"]] == [c.workload for c in code]


def test_layer_labels_are_checked():
    from fixflow.runtime.profiler import profile_program
    prog = [ins("CONVINIT"), ins("END")]
    with pytest.raises(ProfileError, match="instruction 1 has layer 2, but there are 2 layers"):
        profile_program(prog, B4096, groups=["a", "b"], group_of=[0, 2])
    with pytest.raises(ProfileError, match="1 layer labels for 2 instructions"):
        profile_program(prog, B4096, groups=["a"], group_of=[0])
