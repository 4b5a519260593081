"""On-chip chains through a map with several readers ("tee"): the producer writes its output straight into
the next layer's input window and SAVEs it from there for the later readers, so the next layer LOADs
nothing: bit for bit against the fix-level execution on every target size, one SAVE stream of the map and
no LOAD of it by the next layer."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from _dpu_amd_sim import compile_and_simulate, needs_sim
from _dpu_testlib import FT, SIZES, assert_bit_exact, conv_ops, dw_ops, module_with, pool_ops
from fixflow.passes.dpu.program import annotated_subgraphs, compile_annotated, parse_tiling
from fixflow.target import get_target
from fixflow.dialects.fix import ops as Q


def _saves_to(instrs, fmap):
    reg, addr = fmap.addr()
    if addr < 0:
        return []
    return [i for i in instrs if i.name == "SAVE" and i["reg_id"] == reg and addr <= i["ddr_addr"] < addr + fmap.nbytes]


def _loads_from(prog, layer, fmap):
    reg, addr = fmap.addr()
    return [t.ins for t in prog.emitter.out if t.layer == layer and t.ins.name == "LOAD" and t.ins["reg_id"] == reg
            and addr <= t.ins["ddr_addr"] < addr + fmap.nbytes]


def _fire(rng, h, w, c, sq, e1, e3, first):
    """SqueezeNet's fire module: squeeze (1x1 conv, or a 3x3/1 max pool) read by expand 1x1 and expand 3x3,
    concatenated."""
    def build(x):
        if first == "conv":
            ops = conv_ops(x, rng, sq, (1, 1), act="RELU", fps=(7, 6, 4), name="squeeze")
        else:
            ops = pool_ops(x, "MAX", (3, 3), (1, 1), (1, 1, 1, 1), name="squeeze")
        s = ops[-1].results[0]
        ops += conv_ops(s, rng, e1, (1, 1), act="RELU", fps=(7, 6, 4), name="e1")
        a = ops[-1].results[0]
        ops += conv_ops(s, rng, e3, (3, 3), pad=(1, 1, 1, 1), act="RELU", fps=(7, 6, 4), name="e3")
        b = ops[-1].results[0]
        cat = Q.ConcatOp.build([a, b], axis=3, result_types=[FT((1, h, w, e1 + e3), 8, 4)])
        cat.results[0].name_hint = "cat"
        return ops + [cat]
    return module_with((1, h, w, c), 5, build)


def _check_tee(prog, name):
    k = next(i for i, L in enumerate(prog.layers) if L.name == name)
    mid = prog.layers[k].out
    instrs = [t.ins for t in prog.emitter.out]
    if k in prog.emitter.tee:
        assert k not in prog.emitter.chain
        assert not _loads_from(prog, k + 1, mid), "the next layer reads the map from the banks"
        assert _saves_to(instrs, mid), "the other readers need it in DDR"
        assert any(_loads_from(prog, j, mid) for j in range(k + 2, len(prog.layers)))
    else:
        assert _loads_from(prog, k + 1, mid)
    return k in prog.emitter.tee


@settings(max_examples=14, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 20), st.integers(2, 20), st.integers(1, 40), st.integers(1, 40), st.integers(1, 40),
       st.integers(1, 40), st.sampled_from(["conv", "pool"]), st.sampled_from(SIZES),
       st.sampled_from(["reference", "fast"]), st.integers(0, 2**16))
def test_tee_bit_exact(h, w, c, sq, e1, e3, first, size, mode, seed):
    rng = np.random.default_rng(seed)
    m = _fire(rng, h, w, c, sq, e1, e3, first)
    prog = assert_bit_exact(m, f"DPUCZDX8G_ISA1_B{size}", [rng.uniform(-2, 2, (1, h, w, c)).astype(np.float32)],
                            mode=mode)
    _check_tee(prog, "squeeze")


def test_fire_modules_tee_on_every_size():
    for size in SIZES:
        rng = np.random.default_rng(size)
        m = _fire(rng, 13, 13, 64, 16, 32, 32, "conv")
        prog = assert_bit_exact(m, f"DPUCZDX8G_ISA1_B{size}", [rng.uniform(-2, 2, (1, 13, 13, 64)).astype(np.float32)])
        assert _check_tee(prog, "squeeze")


def test_inverted_residual_tee():
    """MobileNetV2: a block's projection (no residual) read by the next block's expansion and by its add; a
    depthwise conv between."""
    rng = np.random.default_rng(2)

    def build(x):
        ops = conv_ops(x, rng, 24, (1, 1), act="NONE", fps=(7, 6, 4), name="proj")
        p = ops[-1].results[0]
        ops += conv_ops(p, rng, 64, (1, 1), act="RELU6", fps=(7, 6, 4), name="expand")
        ops += dw_ops(ops[-1].results[0], rng, (3, 3), pad=(1, 1, 1, 1), act="RELU6", fps=(7, 6, 4), name="dw")
        ops += conv_ops(ops[-1].results[0], rng, 24, (1, 1), act="NONE", fps=(7, 6, 4), name="proj2")
        add = Q.EltwiseOp.build([ops[-1].results[0], p], type="ADD", nonlinear="NONE",
                                result_types=[FT((1, 14, 14, 24), 8, 3)])
        add.results[0].name_hint = "add"
        return ops + [add]

    m = module_with((1, 14, 14, 16), 5, build)
    prog = assert_bit_exact(m, "DPUCZDX8G_ISA1_B4096", [rng.uniform(-2, 2, (1, 14, 14, 16)).astype(np.float32)],
                            mode="fast")
    assert _check_tee(prog, "proj")


@needs_sim
def test_amd_simulator_runs_a_tee(tmp_path):
    rng = np.random.default_rng(4)
    m = _fire(rng, 13, 13, 64, 16, 32, 32, "conv")
    compile_and_simulate(m, [rng.uniform(-2, 2, (1, 13, 13, 64)).astype(np.float32) for _ in range(2)], tmp_path)


def test_forced_band_on_the_next_layer_drops_the_tee_with_a_reason():
    rng = np.random.default_rng(6)
    m = _fire(rng, 13, 13, 64, 16, 32, 32, "conv")
    assert_bit_exact(m, "DPUCZDX8G_ISA1_B4096", [rng.uniform(-2, 2, (1, 13, 13, 64)).astype(np.float32)],
                     tiling="e1:8:13")
    func = next(op for op in m.body.ops if op.name == "func.func")
    sg = next(s for s in annotated_subgraphs(func) if s.device == "DPU")
    low = compile_annotated(sg, get_target("DPUCZDX8G_ISA1_B4096"), parse_tiling("e1:8:13"), flags=False)
    k = next(i for i, L in enumerate(low.layers) if L.name == "squeeze")
    assert k not in low.emitter.tee
    assert low.emitter.notes[k] == ("output not kept on chip for e1: the forced band 8:13 of e1 does not cover its "
                                    "whole 13x13 map in one band, which an on-chip chain needs")
    assert low.layers[k].ops[-1].attributes["dpu.tiling_note"].value == low.emitter.notes[k]
