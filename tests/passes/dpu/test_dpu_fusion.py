"""conv + element-wise fusion (the conv's output band stays in the banks and the ELEW reads it there), on-chip
chains (a layer writes its output straight into the next layer's input window) and the double-buffered
weight banks: bit for bit against the fix-level execution on every target size, the on-chip maps never go
to DDR, and fusion is refused where the conv's output is needed elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from _dpu_testlib import FT, SIZES, assert_bit_exact, conv_ops, dw_ops, module_with, pool_ops
from fixflow.dialects.fix import ops as Q
from fixflow.passes.dpu.codegen import Arch
from fixflow.passes.dpu.layers import ConvLayer, EltwiseLayer
from fixflow.passes.dpu.schedule import Geometry, footprints
from fixflow.passes.dpu.tiling import Geometry as TileGeometry, extra_regions, in_lines, out_lines


def _inputs(rng, shape, n=2):
    return [rng.uniform(-2, 2, size=shape).astype(np.float32) for _ in range(n)]


def _residual(rng, h, w, c, oc, kernel, act="RELU", extra_reader=False, typ="ADD"):
    """x -> conv a (3x3) -> conv b (`kernel`) -> add(b, shortcut 1x1 conv of x) [-> also conv c reads b]."""
    pad = tuple(k // 2 for k in kernel)

    def build(x):
        ops = conv_ops(x, rng, oc, (1, 1), act="NONE", fps=(7, 6, 4), name="short")
        short = ops[-1].results[0]
        ops += conv_ops(x, rng, oc, (3, 3), pad=(1, 1, 1, 1), act="RELU", fps=(7, 6, 3), name="a")
        ops += conv_ops(ops[-1].results[0], rng, oc, kernel, pad=(pad[0], pad[0], pad[1], pad[1]), act="NONE",
                        fps=(7, 6, 4), name="b")
        b = ops[-1].results[0]
        e = Q.EltwiseOp.build([b, short], type=typ, nonlinear=act, result_types=[FT((1, h, w, oc), 8, 3)])
        e.results[0].name_hint = "add"
        ops.append(e)
        if extra_reader:
            ops += conv_ops(b, rng, oc, (1, 1), act="NONE", fps=(7, 6, 4), name="c")
            e2 = Q.EltwiseOp.build([e.results[0], ops[-1].results[0]], type="ADD", nonlinear="NONE",
                                   result_types=[FT((1, h, w, oc), 8, 3)])
            e2.results[0].name_hint = "add2"
            ops.append(e2)
        return ops

    return module_with((1, h, w, c), 5, build)


def _fused_pairs(prog):
    return {(prog.layers[i].name, prog.layers[j].name) for i, j in prog.emitter.fused.items()}


def _saves_to(prog, fmap):
    reg, addr = fmap.addr()
    if addr < 0:                    # no DDR bytes (lower-to-dpu's workspace layout: kept on chip)
        return []
    return [i for i in prog.instructions if i.name == "SAVE" and i["reg_id"] == reg
            and addr <= i["ddr_addr"] < addr + fmap.nbytes]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 20), st.integers(1, 20), st.integers(1, 40), st.integers(1, 70), st.sampled_from(SIZES),
       st.sampled_from([(1, 1), (3, 3)]), st.sampled_from(["NONE", "RELU"]), st.sampled_from(["ADD", "MUL"]),
       st.integers(0, 2**16))
def test_conv_eltwise_fused_bit_exact(h, w, c, oc, size, kernel, act, typ, seed):
    rng = np.random.default_rng(seed)
    m = _residual(rng, h, w, c, oc, kernel, act, typ=typ)
    prog = assert_bit_exact(m, f"DPUCZDX8G_ISA1_B{size}", _inputs(rng, (1, h, w, c), 1))
    b = next(L for L in prog.layers if isinstance(L, ConvLayer) and L.name == "b")
    if ("b", "add") in _fused_pairs(prog):
        assert not _saves_to(prog, b.out), "a fused conv's output must stay in the banks"
    else:                                   # only when the three band-sized regions cannot fit
        assert _saves_to(prog, b.out)


@pytest.mark.parametrize("size", [512, 1024, 4096])
def test_residual_blocks_fuse(size):
    """ResNet's conv + add: fused on every size when the map is small; the DDR write of the conv is gone."""
    rng = np.random.default_rng(size)
    m = _residual(rng, 14, 14, 32, 64, (1, 1))
    prog = assert_bit_exact(m, f"DPUCZDX8G_ISA1_B{size}", _inputs(rng, (1, 14, 14, 32), 1))
    assert ("b", "add") in _fused_pairs(prog)
    b = next(L for L in prog.layers if L.name == "b")
    assert not _saves_to(prog, b.out)
    add = next(L for L in prog.layers if isinstance(L, EltwiseLayer))
    assert _saves_to(prog, add.out)


def test_no_fusion_when_the_conv_output_has_another_reader():
    rng = np.random.default_rng(3)
    m = _residual(rng, 8, 9, 16, 24, (1, 1), extra_reader=True)
    prog = assert_bit_exact(m, "DPUCZDX8G_ISA1_B4096", _inputs(rng, (1, 8, 9, 16), 1))
    assert ("b", "add") not in _fused_pairs(prog)
    b = next(L for L in prog.layers if L.name == "b")
    assert _saves_to(prog, b.out)


def test_fusion_keeps_a_forced_band():
    """A forced band composes with the fusion (more in test_dpu_forced_tiling.py)."""
    rng = np.random.default_rng(4)
    m = _residual(rng, 16, 16, 16, 16, (3, 3))
    prog = assert_bit_exact(m, "DPUCZDX8G_ISA1_B1024", _inputs(rng, (1, 16, 16, 16), 1), tiling="b:8:8")
    b = next(L for L in prog.layers if L.name == "b")
    assert not _saves_to(prog, b.out)      # prog.instructions are the module's (compiled with the option)
    assert b.ops[0].attributes["dpu.tiling"].value == "b:8:8"


def test_weight_banks_alternate_halves():
    """Consecutive convs whose weights fit half the CONVW banks load into alternating halves, so the next
    layer's weights LOAD while this one computes (no write-after-read wait on the weight lines)."""
    rng = np.random.default_rng(5)
    m = _residual(rng, 10, 10, 16, 32, (3, 3))
    prog = assert_bit_exact(m, "DPUCZDX8G_ISA1_B4096", _inputs(rng, (1, 10, 10, 16), 1))
    convw = [i["bank_addr"] for i in prog.instructions if i.name == "LOAD" and i["bank_id"] == 16]
    assert convw[:3] == [0, 1024, 0]
    weights = [i["bank_addr_weights"] for i in prog.instructions if i.name == "CONV"]
    assert {w // 1024 for w in weights} == {0, 1}


def test_fused_conv_inputs_stay_live_in_ddr():
    """x -> a -> b -> add(b, x), several bands: the add's result may share DDR bytes only with maps dead
    before the add, not with b's input (a's output), which b's later bands still LOAD after the add's
    first SAVEs (regression: ResNet-18-CIFAR's first block)."""
    rng = np.random.default_rng(18)

    def build(x):
        ops = conv_ops(x, rng, 64, (3, 3), pad=(1, 1, 1, 1), act="RELU", fps=(7, 6, 4), name="stem")
        stem = ops[-1].results[0]
        ops += conv_ops(stem, rng, 64, (3, 3), pad=(1, 1, 1, 1), act="RELU", fps=(7, 6, 4), name="a")
        ops += conv_ops(ops[-1].results[0], rng, 64, (3, 3), pad=(1, 1, 1, 1), act="NONE", fps=(7, 6, 4), name="b")
        e = Q.EltwiseOp.build([ops[-1].results[0], stem], type="ADD", nonlinear="RELU",
                              result_types=[FT((1, 32, 32, 64), 8, 4)])
        e.results[0].name_hint = "add"
        ops.append(e)
        ops += conv_ops(e.results[0], rng, 8, (1, 1), act="NONE", fps=(7, 6, 3), name="head")
        return ops

    m = module_with((1, 32, 32, 3), 5, build)
    prog = assert_bit_exact(m, "DPUCZDX8G_ISA1_B4096", _inputs(rng, (1, 32, 32, 3), 1))
    assert ("b", "add") in _fused_pairs(prog)
    b = next(L for L in prog.layers if L.name == "b")
    assert prog.emitter.plans[prog.layers.index(b)].rows < 32          # several bands


# ---- on-chip chains: a layer writes its output straight into the next layer's input window ----------


def _loads_from(prog, fmap):
    reg, addr = fmap.addr()
    return [i for i in prog.instructions if i.name == "LOAD" and i["reg_id"] == reg
            and addr <= i["ddr_addr"] < addr + fmap.nbytes]


def _chained(prog):
    return {prog.layers[i].name for i in prog.emitter.chain}


def _second(rng, kind, x, k, s, p, oc):
    if kind == "conv":
        return conv_ops(x, rng, oc, (k, k), (s, s), (p, p, p, p), "RELU", (7, 6, 4), name="second")
    if kind == "dw":
        return dw_ops(x, rng, (k, k), (s, s), (p, p, p, p), "RELU", (7, 6, 4), name="second")
    return pool_ops(x, "MAX" if kind == "max" else "AVG", (k, k), (s, s), (p, p, p, p), name="second")


def _assert_writes_inside_window(prog, k):
    """Every bank line chained layer k's CONV/ALU instructions write lies in its consumer's input window:
    the lower half of the consumer's group, below the window's lines (so no other live buffer is hit)."""
    em = prog.emitter
    d, gC = em.dest[k], em.chain[k]
    arch = Arch.of(prog.target)
    instrs = [t.ins for t in em.out]
    fps = footprints(instrs, Geometry.of(arch))
    window = in_lines(gC, gC.oh, gC.ow, arch.pp)
    for t, ins, w in zip(em.out, instrs, fps.writes):
        if t.layer == k and ins.name in ("CONV", "ALU"):
            bank, line = w // arch.depth, w % arch.depth
            assert ((bank >= arch.vb[d.vb]) & (bank < arch.vb[d.vb] + arch.pp)).all()
            assert (line < window).all() and window <= arch.half


@settings(max_examples=16, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 16), st.integers(2, 16), st.integers(1, 40), st.integers(1, 40), st.sampled_from(SIZES),
       st.sampled_from(["conv", "dw", "max", "avg"]), st.integers(1, 3), st.integers(1, 3), st.booleans(),
       st.sampled_from(["conv", "max"]), st.integers(0, 2**16))
def test_chain_bit_exact(h, w, c, oc, size, kind, k, s, pad, first, seed):
    """first layer (3x3 conv or 2x2/1 max pool) -> second layer (conv, depthwise, max or avg pool with kernel
    k, stride s, optional padding): bit for bit; when chained, the intermediate map touches no DDR."""
    rng = np.random.default_rng(seed)
    p = k // 2 if pad else 0
    mh, mw = (h, w) if first == "conv" else (h - 1, w - 1)       # the first layer's output
    if mh + 2 * p - k < 0 or mw + 2 * p - k < 0:
        return

    def build(x):
        if first == "conv":
            ops = conv_ops(x, rng, oc, (3, 3), pad=(1, 1, 1, 1), act="RELU", fps=(7, 6, 4), name="first")
        else:
            ops = pool_ops(x, "MAX", (2, 2), (1, 1), name="first")
        return ops + _second(rng, kind, ops[-1].results[0], k, s, p, oc)

    m = module_with((1, h, w, c), 5, build)
    prog = assert_bit_exact(m, f"DPUCZDX8G_ISA1_B{size}", _inputs(rng, (1, h, w, c), 1))
    mid = next(L for L in prog.layers if L.name == "first").out
    if "first" in _chained(prog):
        assert not _saves_to(prog, mid) and not _loads_from(prog, mid)
        _assert_writes_inside_window(prog, next(k for k, L in enumerate(prog.layers) if L.name == "first"))
    else:
        assert _saves_to(prog, mid) and _loads_from(prog, mid)


def test_small_chain_stays_on_chip():
    """conv -> conv (stride 2) -> max pool 2x2/2 -> conv on a 16x16 map: every intermediate stays in the
    banks (one LOAD stream in, one SAVE stream out), on B4096 and B512."""
    for size in (512, 4096):
        rng = np.random.default_rng(size)

        def build(x):
            ops = conv_ops(x, rng, 24, (3, 3), pad=(1, 1, 1, 1), act="RELU", fps=(7, 6, 4), name="c1")
            ops += conv_ops(ops[-1].results[0], rng, 32, (3, 3), (2, 2), (1, 1, 1, 1), "RELU", (7, 6, 4), name="c2")
            ops += pool_ops(ops[-1].results[0], "MAX", (2, 2), (2, 2), name="p")
            ops += conv_ops(ops[-1].results[0], rng, 16, (1, 1), act="NONE", fps=(7, 6, 3), name="c3")
            return ops

        m = module_with((1, 16, 16, 8), 5, build)
        prog = assert_bit_exact(m, f"DPUCZDX8G_ISA1_B{size}", _inputs(rng, (1, 16, 16, 8), 2))
        assert _chained(prog) == {"c1", "c2", "p"}
        for k in prog.emitter.chain:
            _assert_writes_inside_window(prog, k)
        assert all(i["reg_id"] in (0, 2) for i in prog.instructions if i.name == "LOAD")
        assert all(i["reg_id"] == 3 for i in prog.instructions if i.name == "SAVE")


@pytest.mark.parametrize("size", [1024, 4096])
def test_chain_from_a_multi_band_producer(size):
    """A strided conv over a map too big for one band writes each band's rows straight into the next conv's
    window (its own input windows alternate between the two halves of its bank group)."""
    rng = np.random.default_rng(size)

    def build(x):
        ops = conv_ops(x, rng, 16, (3, 3), (2, 2), (1, 1, 1, 1), "RELU", (7, 6, 4), name="down")
        ops += conv_ops(ops[-1].results[0], rng, 24, (3, 3), pad=(1, 1, 1, 1), act="RELU", fps=(7, 6, 3), name="next")
        return ops

    m = module_with((1, 48, 48, 64), 5, build)
    prog = assert_bit_exact(m, f"DPUCZDX8G_ISA1_B{size}", _inputs(rng, (1, 48, 48, 64), 1))
    k = next(k for k, L in enumerate(prog.layers) if L.name == "down")
    assert "down" in _chained(prog)
    assert len(prog.emitter.plans[k].bands()) > 1
    _assert_writes_inside_window(prog, k)
    assert not _saves_to(prog, prog.layers[k].out) and not _loads_from(prog, prog.layers[k].out)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 64), st.integers(1, 64), st.integers(1, 8), st.integers(1, 5), st.integers(1, 3),
       st.integers(1, 64), st.integers(1, 64), st.sampled_from([4, 8]), st.integers(1, 4))
def test_fused_regions_never_overlap(h, w, cg, k, s, rows, cols, pp, extra):
    """The band-sized regions `extra_regions` hands a fused ELEW lie inside the group and overlap neither
    the conv's input window, nor its output, nor each other."""
    g = TileGeometry(h, w, cg, h, w, k, k, s, s, 0, 0, cg, pp, False, 1, extra)
    half = 1024
    ol = out_lines(g, rows, cols, pp)
    used = [(0, in_lines(g, rows, cols, pp)), (half, half + ol)]
    if used[0][1] > half or ol > half:
        return
    for lo in extra_regions(g, rows, cols, pp, half):
        hi = lo + ol
        assert 0 <= lo and hi <= 2 * half and (hi <= half or lo >= half)
        assert all(hi <= a or b <= lo for a, b in used)
        used.append((lo, hi))
