"""Structural properties of compiled programs, checked from the instructions alone (no execution):
every output byte is written exactly once; live workspace tensors never share DDR bytes; conv weights
and biases are in the bank lines the CONVs read, and REG_0 holds them in [OC][KH][KW][IC] order."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from _dpu_testlib import FT, SIZES, compile_module, conv_ops, dw_ops, module_with, pool_ops
from fixflow.dialects.fix import ops as Q
from fixflow.passes.dpu.layers import ConvLayer, EltwiseLayer
from fixflow.passes.dpu.ddr import REG_OUT
from fixflow.passes.dpu.program import annotated_subgraphs, ddr_annotations, load_programs
from fixflow.passes.dpu.tiling import Geometry, in_lines, out_lines, plan
from fixflow.target import get_target

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def conv_layer(draw):
    kh, kw = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    pt, pb, pl, pr = (draw(st.integers(0, kh - 1)), draw(st.integers(0, kh - 1)),
                      draw(st.integers(0, kw - 1)), draw(st.integers(0, kw - 1)))
    h = draw(st.integers(max(1, kh - pt - pb), 70))
    w = draw(st.integers(max(1, kw - pl - pr), 70))
    c = draw(st.integers(1, 300))
    oc = draw(st.integers(1, 300))
    size = draw(st.sampled_from(SIZES))
    return h, w, c, oc, (kh, kw), (sh, sw), (pt, pb, pl, pr), size


def _compiled(h, w, c, oc, k, s, p, size, tiling="", seed=0):
    rng = np.random.default_rng(seed)
    m = module_with((1, h, w, c), 5, lambda x: conv_ops(x, rng, oc, k, s, p, "RELU"))
    compile_module(m, f"DPUCZDX8G_ISA1_B{size}", tiling, check=False)
    (prog,) = load_programs(m)
    return m, prog


@SETTINGS
@given(conv_layer())
def test_tiles_cover_every_output_byte_once(case):
    h, w, c, oc, k, s, p, size = case
    t = get_target(f"DPUCZDX8G_ISA1_B{size}")
    g = Geometry(h, w, math.ceil(c / t.icp), (h + p[0] + p[1] - k[0]) // s[0] + 1,
                 (w + p[2] + p[3] - k[1]) // s[1] + 1, k[0], k[1], s[0], s[1], p[0], p[2], 1, t.pp, False)
    pl = plan(g, t.pp, 1024)
    assert in_lines(g, pl.rows, pl.cols, t.pp) <= 1024 and out_lines(g, pl.rows, pl.cols, t.pp) <= 1024
    cover = np.zeros((g.oh, g.ow), dtype=int)
    for b in pl.bands():
        cover[b.oh0:b.oh1, b.ow0:b.ow1] += 1
        assert sum(v for _, v in pl.strips(b)) == b.oh1 - b.oh0
    assert (cover == 1).all()
    if h * w * c > 40000 or oc * k[0] * k[1] * c > 200000:
        return                          # the plan is enough; keep the instruction-level check quick
    m, prog = _compiled(h, w, c, oc, k, s, p, size)
    out = prog.outputs[0]
    counts = np.zeros(out.nbytes, dtype=int)
    for ins in prog.instructions:
        if ins.name == "SAVE":
            assert ins["reg_id"] == REG_OUT
            for px in range(ins["length"]):
                a = ins["ddr_addr"] + px * ins["jump_write"] - out.ddr[1]
                counts[a:a + ins["channel"]] += 1
    assert (counts == 1).all()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["conv", "pool", "dw", "res"]), min_size=2, max_size=7), st.sampled_from(SIZES))
def test_live_workspace_tensors_never_share_bytes(kinds, size):
    """Maps live at the same time never share DDR bytes; in "res" (two convs and an add of the second's
    output and the block input, which the compiler may fuse band by band) the second conv's input stays
    live through the add."""
    rng = np.random.default_rng(len(kinds))

    def build(x):
        ops = []
        for i, kind in enumerate(kinds):
            v = ops[-1].results[0] if ops else x
            if kind == "conv":
                ops += conv_ops(v, rng, 8 + 4 * i, (3, 3), pad=(1, 1, 1, 1), act="RELU", name=f"l{i}")
            elif kind == "dw":
                ops += dw_ops(v, rng, (3, 3), pad=(1, 1, 1, 1), act="RELU", name=f"l{i}")
            elif kind == "res":               # v -> conv -> conv -> add(that, v)
                ops += conv_ops(v, rng, int(v.type.shape[3]), (3, 3), pad=(1, 1, 1, 1), act="RELU", name=f"l{i}a")
                ops += conv_ops(ops[-1].results[0], rng, int(v.type.shape[3]), (3, 3), pad=(1, 1, 1, 1), name=f"l{i}")
                e = Q.EltwiseOp.build([ops[-1].results[0], v], type="ADD", nonlinear="RELU",
                                      result_types=[FT(tuple(v.type.shape), 8, 4)])
                e.results[0].name_hint = f"l{i}add"
                ops.append(e)
            else:
                ops += pool_ops(v, "MAX", (2, 2), (1, 1), name=f"l{i}")
        return ops

    m = module_with((1, 12, 12, 3), 5, build)
    from fixflow.ir.passes import PassManager
    PassManager.parse(f"partition{{target=DPUCZDX8G_ISA1_B{size}}}").run(m)
    (sg,) = [s for s in annotated_subgraphs(next(iter(m.body.ops))) if s.device == "DPU"]
    ddr = ddr_annotations(sg)
    iv = ddr.intervals
    for x, (f, a, b) in enumerate(iv):
        for g, c, d in iv[x + 1:]:
            if not (b < c or d < a):         # live at the same time
                lo1, hi1 = f.ddr[1], f.ddr[1] + f.nbytes
                lo2, hi2 = g.ddr[1], g.ddr[1] + g.nbytes
                assert hi1 <= lo2 or hi2 <= lo1, (f.name, g.name)
    assert ddr.peak_workspace <= ddr.naive_workspace
    from fixflow.passes.dpu.program import _layers
    layers = _layers(sg)[0]                     # the same layers again (maps matched by name)
    ends = {f.name: b for f, _, b in iv}
    fused = 0
    for i, L in enumerate(layers[:-1]):
        nxt = layers[i + 1]
        if isinstance(L, ConvLayer) and isinstance(nxt, EltwiseLayer) and any(x is L.out for x in nxt.ins):
            fused += 1
            assert all(ends[x.root().name] >= i + 1 for x in L.inputs if x.root().name in ends)
    assert fused == kinds.count("res")
    if len(kinds) >= 4:
        assert ddr.peak_workspace < ddr.naive_workspace      # a chain reuses bytes


def test_weights_and_biases_land_where_the_convs_read():
    """Replay only the parameter LOADs into a model of the weight/bias banks; at every CONV, the lines the
    engine reads (dpu-semantics.md A32/A33) hold one output-channel group's weights and biases."""
    rng = np.random.default_rng(3)
    for size, ic, oc in ((512, 64, 240), (4096, 20, 40), (1024, 3, 9), (4096, 512, 20)):
        m = module_with((1, 7, 6, ic), 5, lambda x: conv_ops(x, rng, oc, (3, 3), pad=(1, 1, 1, 1), act="RELU"))
        conv = next(op for op in next(iter(m.body.ops)).body.ops if op.name == "fix.conv2d")
        wts = conv.weights.op.ints.astype(np.int8)
        bias = conv.bias.op.ints.astype(np.int8)
        compile_module(m, f"DPUCZDX8G_ISA1_B{size}", check=False)
        (prog,) = load_programs(m)
        t = prog.target
        reg0 = np.frombuffer(prog.const_bytes, dtype=np.int8)
        woff, boff = (int(v) for v in conv.attributes["dpu.const"].value)
        np.testing.assert_array_equal(reg0[woff:woff + wts.size], wts.reshape(-1))      # OHWI in REG_0
        np.testing.assert_array_equal(reg0[boff:boff + oc], bias)
        convw = t.bank_group_named("CONVW")
        bias_id = t.bank_group_named("BIAS").first_id
        banks = {b: np.zeros((2048, t.icp), dtype=np.int8) for b in [*convw.ids, bias_id]}
        cg = math.ceil(ic / t.icp)
        seen = set()
        taps, tap_ch = 9, ic                  # a channel-augmented conv (test_dpu_augment.py): a tap is a kernel row
        if {i["kernel_w"] for i in prog.instructions if i.name == "CONVINIT"} == {1}:
            taps, tap_ch = 3, 3 * ic
            cg = math.ceil(tap_ch / t.icp)
        for ins in prog.instructions:
            if ins.name == "LOAD" and ins["bank_id"] in banks:
                flat = banks[ins["bank_id"]].reshape(-1)
                for px in range(ins["length"]):
                    src = reg0[ins["ddr_addr"] + px * ins["jump_read"]:][:ins["channel"]]
                    start = (ins["bank_addr"] + px * ins["jump_write"]) * t.icp
                    n = math.ceil(ins["channel"] / t.icp) * t.icp
                    flat[start:start + n] = np.pad(src, (0, n - len(src)))
            elif ins.name == "CONV":
                got_w = np.stack([np.stack([banks[convw.first_id + i][ins["bank_addr_weights"] + tap * cg:][:cg]
                                            .reshape(-1)[:tap_ch] for tap in range(taps)]) for i in range(t.ocp)])
                got_b = banks[bias_id][ins["bank_addr_bias"]]
                matches = [og for og in range(math.ceil(oc / t.ocp))
                           if all(np.array_equal(got_w[i], wts[og * t.ocp + i].reshape(taps, tap_ch))
                                  and got_b[i] == bias[og * t.ocp + i]
                                  for i in range(min(t.ocp, oc - og * t.ocp)))]
                assert matches, f"B{size}: a CONV reads weights/bias of no output-channel group"
                seen.update(matches)
        assert seen == set(range(math.ceil(oc / t.ocp)))
