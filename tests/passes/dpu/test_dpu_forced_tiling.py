"""The `tiling` option of lower-to-dpu (a forced band) composed with conv + element-wise fusion and with
on-chip chains: bit for bit against the fix-level execution on every target size, the forced band is the
one used, and where a forced band costs a fusion or a chain the op says why (`dpu.tiling_note`)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from _dpu_testlib import FT, SIZES, assert_bit_exact, conv_ops, module_with, pool_ops
from fixflow.dialects.fix import ops as Q
from fixflow.passes.dpu.program import annotated_subgraphs, compile_annotated, parse_tiling
from fixflow.target import get_target


def _inputs(rng, shape):
    return [rng.uniform(-2, 2, size=shape).astype(np.float32)]


def _residual(rng, h, w, c, oc, kernel):
    """x -> short (1x1) ; x -> a (3x3) -> b (`kernel`) -> add(b, short) + relu."""
    p = kernel[0] // 2

    def build(x):
        ops = conv_ops(x, rng, oc, (1, 1), fps=(7, 6, 4), name="short")
        short = ops[-1].results[0]
        ops += conv_ops(x, rng, oc, (3, 3), pad=(1, 1, 1, 1), act="RELU", fps=(7, 6, 3), name="a")
        ops += conv_ops(ops[-1].results[0], rng, oc, kernel, pad=(p, p, p, p), fps=(7, 6, 4), name="b")
        e = Q.EltwiseOp.build([ops[-1].results[0], short], type="ADD", nonlinear="RELU",
                              result_types=[FT((1, h, w, oc), 8, 3)])
        e.results[0].name_hint = "add"
        return ops + [e]

    return module_with((1, h, w, c), 5, build)


def _lowered(m, target, tiling):
    """The emitter of the module's DPU subgraph lowered with `tiling` (its instructions are the module's)."""
    func = next(op for op in m.body.ops if op.name == "func.func")
    sg = next(s for s in annotated_subgraphs(func) if s.device == "DPU")
    return compile_annotated(sg, get_target(target), parse_tiling(tiling), flags=False)


def _names(prog, pairs):
    return {(prog.layers[i].name, prog.layers[j].name) for i, j in pairs.items()}


def _notes(prog):
    return {prog.layers[i].name: n for i, n in prog.emitter.notes.items()}


def _saves_to(instrs, fmap):
    reg, addr = fmap.addr()
    if addr < 0:                    # no DDR bytes (lower-to-dpu's workspace layout: kept on chip)
        return []
    return [i for i in instrs if i.name == "SAVE" and i["reg_id"] == reg and addr <= i["ddr_addr"] < addr + fmap.nbytes]


def _loads_from(instrs, fmap):
    reg, addr = fmap.addr()
    if addr < 0:
        return []
    return [i for i in instrs if i.name == "LOAD" and i["reg_id"] == reg and addr <= i["ddr_addr"] < addr + fmap.nbytes]


@settings(max_examples=14, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 20), st.integers(2, 20), st.integers(1, 24), st.integers(1, 40), st.sampled_from(SIZES),
       st.sampled_from([(1, 1), (3, 3)]), st.integers(1, 3), st.integers(1, 20), st.sampled_from(["b", "add"]),
       st.integers(0, 2**16))
def test_forced_band_with_fusion_bit_exact(h, w, c, oc, size, kernel, strips, cols, on, seed):
    """A band forced on the conv or on the ELEW of a conv + add pair: bit exact; fused with exactly that band
    (the conv's output never in DDR), or unfused with the reason on both ops."""
    rng = np.random.default_rng(seed)
    target = f"DPUCZDX8G_ISA1_B{size}"
    pp = get_target(target).pp
    rows = min(h, strips * pp)
    tiling = f"{on}:{rows}:{cols}"
    m = _residual(rng, h, w, c, oc, kernel)
    prog = assert_bit_exact(m, target, _inputs(rng, (1, h, w, c)), tiling=tiling)
    low = _lowered(m, target, tiling)
    assert [i.fields for i in low.instructions] == [i.fields for i in prog.instructions[:len(low.instructions)]]
    b = next(k for k, L in enumerate(low.layers) if L.name == "b")
    if ("b", "add") in _names(low, low.emitter.fused):
        p = low.emitter.plans[b]
        assert (p.rows, p.cols) == (rows, min(cols, w))
        assert not _saves_to(low.instructions, low.layers[b].out)
        assert "b" not in _notes(low)
    else:
        assert _saves_to(low.instructions, low.layers[b].out)
        if "b" in _notes(low):                       # the tiler's band would have fused them
            assert _notes(low)["b"].startswith("not fused with add: ")
            assert low.layers[b].ops[-1].attributes["dpu.tiling_note"].value == _notes(low)["b"]


def test_forced_band_fused_on_every_size():
    """conv + add on a 16x16x16 map with a 4-row (or PP-row) band of 8 columns: fused on every size."""
    for size in SIZES:
        rng = np.random.default_rng(size)
        target = f"DPUCZDX8G_ISA1_B{size}"
        rows = get_target(target).pp
        m = _residual(rng, 16, 16, 16, 16, (3, 3))
        assert_bit_exact(m, target, _inputs(rng, (1, 16, 16, 16)), tiling=f"add:{rows}:8")
        low = _lowered(m, target, f"add:{rows}:8")
        assert ("b", "add") in _names(low, low.emitter.fused)
        b = next(k for k, L in enumerate(low.layers) if L.name == "b")
        assert (low.emitter.plans[b].rows, low.emitter.plans[b].cols) == (rows, 8)
        assert len(low.emitter.plans[b].bands()) == (16 // rows) * 2
        # the chain a -> b (b computing the whole map in one band) is what this band costs, if anything
        assert set(_notes(low)) <= {"a"}
        if "a" in _notes(low):
            assert _notes(low)["a"] == (f"output not kept on chip for b: the forced band {rows}:8 of b fused with "
                                        "add does not cover its whole 16x16 map in one band, which an on-chip "
                                        "chain needs")


def test_conflicting_bands_unfuse_with_a_reason():
    rng = np.random.default_rng(7)
    m = _residual(rng, 16, 16, 16, 16, (3, 3))
    tiling = "b:8:8,add:8:16"
    assert_bit_exact(m, "DPUCZDX8G_ISA1_B4096", _inputs(rng, (1, 16, 16, 16)), tiling=tiling)
    low = _lowered(m, "DPUCZDX8G_ISA1_B4096", tiling)
    assert not low.emitter.fused
    notes = _notes(low)
    assert notes["b"] == notes["add"].replace("not fused with b", "not fused with add")
    assert "forced bands differ (8:16, 8:8)" in notes["b"]
    op = next(L for L in low.layers if L.name == "add").ops[-1]
    assert "forced bands differ" in op.attributes["dpu.tiling_note"].value


def test_band_too_big_for_fusion_falls_back():
    """A band that fits the conv alone but not with the add's two regions beside it: unfused, with why."""
    rng = np.random.default_rng(8)
    m = _residual(rng, 32, 64, 64, 64, (3, 3))
    target = "DPUCZDX8G_ISA1_B512"
    tiling = "b:4:48"
    assert_bit_exact(m, target, _inputs(rng, (1, 32, 64, 64)), tiling=tiling)
    low = _lowered(m, target, tiling)
    assert not low.emitter.fused
    assert "the forced band 4:48 of the conv with the element-wise op's 2 band-sized regions" in _notes(low)["b"]
    assert _lowered(m, target, "").emitter.fused        # the tiler's own band fuses them


def _chain2(rng, h, w, c, oc, second_pool=False):
    def build(x):
        ops = conv_ops(x, rng, oc, (3, 3), (2, 2), (1, 1, 1, 1), "RELU", (7, 6, 4), name="down")
        if second_pool:
            return ops + pool_ops(ops[-1].results[0], "MAX", (3, 3), (1, 1), (1, 1, 1, 1), name="next")
        return ops + conv_ops(ops[-1].results[0], rng, oc, (3, 3), pad=(1, 1, 1, 1), act="RELU", fps=(7, 6, 3),
                              name="next")
    return module_with((1, h, w, c), 5, build)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(4, 40), st.integers(4, 40), st.integers(1, 32), st.integers(1, 32), st.sampled_from(SIZES),
       st.integers(1, 3), st.integers(1, 24), st.booleans(), st.integers(0, 2**16))
def test_forced_producer_band_keeps_the_chain(h, w, c, oc, size, strips, cols, pool, seed):
    """A band forced on a chain's producer: the chain stays (each forced band writes into the consumer's
    window), bit exact, the intermediate map never in DDR."""
    rng = np.random.default_rng(seed)
    target = f"DPUCZDX8G_ISA1_B{size}"
    oh, ow = (h + 1) // 2, (w + 1) // 2
    rows = min(oh, strips * get_target(target).pp)
    tiling = f"down:{rows}:{cols}"
    m = _chain2(rng, h, w, c, oc, pool)
    assert_bit_exact(m, target, _inputs(rng, (1, h, w, c)), tiling=tiling)
    free = _lowered(m, target, "")
    low = _lowered(m, target, tiling)
    k = next(i for i, L in enumerate(low.layers) if L.name == "down")
    assert (low.emitter.plans[k].rows, low.emitter.plans[k].cols) == (rows, min(cols, ow))
    if k in free.emitter.chain:
        assert k in low.emitter.chain and not low.emitter.notes
    if k in low.emitter.chain:
        mid = low.layers[k].out
        assert not _saves_to(low.instructions, mid) and not _loads_from(low.instructions, mid)


def test_forced_consumer_band_breaks_the_chain_with_a_reason():
    rng = np.random.default_rng(9)
    target = "DPUCZDX8G_ISA1_B4096"
    m = _chain2(rng, 32, 32, 16, 16)
    assert_bit_exact(m, target, _inputs(rng, (1, 32, 32, 16)), tiling="next:8:8")
    assert 0 in _lowered(m, target, "").emitter.chain
    low = _lowered(m, target, "next:8:8")
    assert not low.emitter.chain
    note = _notes(low)["down"]
    assert note == ("output not kept on chip for next: the forced band 8:8 of next does not cover its whole "
                    "16x16 map in one band, which an on-chip chain needs")
    assert low.layers[0].ops[-1].attributes["dpu.tiling_note"].value == note
    # forcing the consumer's whole map keeps the chain
    whole = _lowered(m, target, "next:16:16")
    assert 0 in whole.emitter.chain and not whole.emitter.notes


def test_load_programs_and_the_profiler_lower_with_the_forced_bands():
    """lower-to-dpu records the forced bands on the ops (`dpu.forced_tiling`): load_programs (and the profiler's
    per-layer attribution) lower the same program again; a later run without the option clears them."""
    from fixflow.passes.dpu.program import load_programs
    from fixflow.runtime.profiler.profile import profile_module
    rng = np.random.default_rng(10)
    m = _residual(rng, 16, 16, 16, 16, (3, 3))
    prog = assert_bit_exact(m, "DPUCZDX8G_ISA1_B1024", _inputs(rng, (1, 16, 16, 16)), tiling="b:8:8,a:8:")
    b = next(k for k, L in enumerate(prog.layers) if L.name == "b")
    a = next(k for k, L in enumerate(prog.layers) if L.name == "a")
    assert (prog.emitter.plans[b].rows, prog.emitter.plans[b].cols) == (8, 8)
    assert prog.emitter.plans[a].rows == 8
    assert prog.layers[b].ops[-1].attributes["dpu.forced_tiling"].value == "b:8:8"
    again, = load_programs(m)
    assert [i.fields for i in again.emitter.out and [t.ins for t in again.emitter.out]] == \
        [i.fields for i in prog.instructions[:-1]]
    sub = next(s for s in profile_module(m, "kv260")["subgraphs"] if s["device"] == "DPU")
    assert "none" not in str(sub.get("attribution", ""))
    from _dpu_testlib import compile_module
    compile_module(m, "DPUCZDX8G_ISA1_B1024")
    assert "dpu.forced_tiling" not in prog.layers[b].ops[-1].attributes
