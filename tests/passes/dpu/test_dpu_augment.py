"""Channel augmentation of a conv with few input channels (the LOAD engine folds the kernel's width into the
channels, as AMD's compiler does for MNIST's first conv): bit for bit against the fix-level execution on
every target size and in both interpreter modes, column padding by the LOAD pad mask, fewer CONV cycles in
the profiler, none on a target without the feature, and (opt-in) AMD's simulator agreeing."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from _dpu_amd_sim import compile_and_simulate, needs_sim
from _dpu_testlib import SIZES, assert_bit_exact, conv_ops, module_with, pool_ops
from fixflow.passes.dpu.augment import channels, input_margins
from fixflow.passes.dpu.layers import ConvLayer
from fixflow.runtime.profiler import Machine, costs
from fixflow.target import Target, get_board, get_target


def _inputs(rng, shape, n=1):
    return [rng.uniform(-2, 2, size=shape).astype(np.float32) for _ in range(n)]


def _first_conv(h, w, c, k, s, pads, oc=24, seed=0, then_pool=False):
    rng = np.random.default_rng(seed)

    def build(x):
        ops = conv_ops(x, rng, oc, k, s, pads, "RELU", (7, 6, 4), name="stem")
        if then_pool:
            ops += pool_ops(ops[-1].results[0], "MAX", (2, 2), (2, 2), name="pool")
        return ops
    return module_with((1, h, w, c), 5, build), rng


def _stem(prog) -> ConvLayer:
    return next(L for L in prog.layers if L.name == "stem")


def _conv_inits(prog):
    return [i for i in prog.instructions if i.name == "CONVINIT"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 24), st.integers(1, 40), st.integers(1, 5), st.integers(2, 7), st.integers(1, 7),
       st.integers(1, 3), st.integers(1, 3), st.data(), st.sampled_from(SIZES), st.sampled_from(["reference", "fast"]),
       st.integers(0, 2**16))
def test_augmented_conv_bit_exact(h, w, c, kw, kh, sw, sh, data, size, mode, seed):
    """Random first convs (1-5 channels, kernel widths 2-7, strides, paddings up to kernel - 1 on each side):
    bit exact; augmented exactly when the target's width holds kw*IC and it saves weight lines, then one LOAD
    of kw*IC channels per input row of a band and CONVs with kernel_w 1."""
    sw = min(sw, kw)
    sh = min(sh, kh)
    pl, pr = data.draw(st.integers(0, kw - 1)), data.draw(st.integers(0, kw - 1))
    pt, pb = data.draw(st.integers(0, kh - 1)), data.draw(st.integers(0, kh - 1))
    if h + pt + pb < kh or w + pl + pr < kw:
        return
    target = f"DPUCZDX8G_ISA1_B{size}"
    m, rng = _first_conv(h, w, c, (kh, kw), (sh, sw), (pt, pb, pl, pr), oc=data.draw(st.integers(1, 40)), seed=seed)
    prog = assert_bit_exact(m, target, _inputs(rng, (1, h, w, c)), mode=mode)
    t = get_target(target)
    want = kw * c if kw * c <= 2 * t.icp and math.ceil(kw * c / t.icp) < kw * math.ceil(c / t.icp) else 0
    assert _stem(prog).augment == want
    if _stem(prog).fold:                       # column folding (test_folded_conv_bit_exact)
        assert not want and {i["kernel_w"] for i in _conv_inits(prog)} == {-(-kw // sw)}
        return
    loads = [i for i in prog.instructions if i.name == "LOAD" and i["reg_id"] == 2]
    if want:
        assert {i["kernel_w"] for i in _conv_inits(prog)} == {1}
        assert {i["channel"] for i in loads} == {want}
        assert {i["jump_read"] for i in loads} == {_stem(prog).win.stride[1] * c}   # 1 when one column
        conv = [i for i in prog.instructions if i.name == "CONV"]
        assert {i["channel_offset"] for i in conv} == {math.ceil(want / t.icp) * t.icp - want}
    else:
        assert {i["kernel_w"] for i in _conv_inits(prog)} == {kw}


@pytest.mark.parametrize("size", SIZES)
def test_resnet_stem_and_mnist_conv(size):
    """ResNet's 7x7/2 stem (pad 3, 3 channels, then a 2x2 max pool chained on chip) and MNIST's 3x3 over one
    channel (pad 1): bit exact on every size; the stem is augmented where 21 channels fit 2 * ICP."""
    target = f"DPUCZDX8G_ISA1_B{size}"
    t = get_target(target)
    for shape, k, s, p, then_pool in [((40, 36, 3), (7, 7), (2, 2), (3, 3, 3, 3), True),
                                      ((28, 28, 1), (3, 3), (1, 1), (1, 1, 1, 1), False)]:
        m, rng = _first_conv(*shape, k, s, p, oc=64, seed=size, then_pool=then_pool)
        prog = assert_bit_exact(m, target, _inputs(rng, (1,) + shape, 2), mode="fast")
        aug = k[1] * shape[2]
        assert _stem(prog).augment == (aug if aug <= 2 * t.icp else 0)
        assert _stem(prog).fold == (0 if aug <= 2 * t.icp else s[1])     # the stem folded where it is not augmented
        if _stem(prog).augment:
            # the masked bytes the first row's LOAD addresses lie before the input: the input moved up
            reg, addr = prog.inputs[0].addr()
            assert reg == 2 and addr >= p[2] * shape[2]
            assert min(i["ddr_addr"] for i in prog.instructions if i.name == "LOAD" and i["reg_id"] == 2) \
                == addr - p[2] * shape[2]
            ends = [i["ddr_addr"] + (i["length"] - 1) * i["jump_read"] + i["channel"]
                    for i in prog.instructions if i.name == "LOAD" and i["reg_id"] == 2]
            assert max(ends) <= prog.reg_sizes[2]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 24), st.integers(1, 40), st.integers(1, 8), st.integers(3, 9), st.integers(1, 5),
       st.integers(2, 4), st.integers(1, 2), st.data(), st.sampled_from(SIZES), st.sampled_from(["reference", "fast"]),
       st.integers(0, 2**16))
def test_folded_conv_bit_exact(h, w, c, kw, kh, sw, sh, data, size, mode, seed):
    """Column folding (kw*IC beyond 2 * ICP, sw*IC within ICP: each pixel holds sw columns, ceil(kw/sw) taps
    across): bit exact on random shapes, paddings and every size; folded exactly when expected."""
    sw = min(sw, kw - 1)
    pl, pr = data.draw(st.integers(0, kw - 1)), data.draw(st.integers(0, kw - 1))
    pt, pb = data.draw(st.integers(0, kh - 1)), data.draw(st.integers(0, kh - 1))
    if h + pt + pb < kh or w + pl + pr < kw:
        return
    target = f"DPUCZDX8G_ISA1_B{size}"
    m, rng = _first_conv(h, w, c, (kh, kw), (sh, sw), (pt, pb, pl, pr), oc=data.draw(st.integers(1, 40)), seed=seed)
    prog = assert_bit_exact(m, target, _inputs(rng, (1, h, w, c)), mode=mode)
    L, t = _stem(prog), get_target(target)
    if L.fold:
        assert not L.augment and L.fold == L.win.stride[1] and L.win.stride[1] * c <= t.icp < kw * c
        assert {i["kernel_w"] for i in _conv_inits(prog)} == {-(-kw // L.fold)}
        loads = [i for i in prog.instructions if i.name == "LOAD" and i["reg_id"] == 2]
        assert {i["channel"] for i in loads} == {L.fold * c}
    elif not L.augment:
        assert {i["kernel_w"] for i in _conv_inits(prog)} == {kw}


def _no_augmentation(target: str) -> str:
    t = get_target(target)
    return Target.from_features(dataclasses.replace(t.features, channel_augmentation=False)).name


def test_not_on_a_target_without_the_feature():
    """A B4096 whose fingerprint lacks bit 26: no augmentation, same results, more CONV cycles."""
    plain = _no_augmentation("DPUCZDX8G_ISA1_B4096")
    assert get_target(plain).channel_augmentation is None
    progs = {}
    for target in ("DPUCZDX8G_ISA1_B4096", plain):
        m, rng = _first_conv(28, 28, 1, (3, 3), (1, 1), (1, 1, 1, 1), oc=32, seed=3)
        progs[target] = assert_bit_exact(m, target, _inputs(rng, (1, 28, 28, 1), 2))
    assert _stem(progs["DPUCZDX8G_ISA1_B4096"]).augment == 3 and _stem(progs[plain]).augment == 0
    assert {i["kernel_w"] for i in _conv_inits(progs[plain])} == {3}


def _conv_cycles(prog) -> int:
    machine = Machine.of(get_target("DPUCZDX8G_ISA1_B4096"), get_board("kv260"))
    return sum(c.cycles for c, i in zip(costs(prog.instructions, machine), prog.instructions) if i.name == "CONV")


def test_profiler_counts_fewer_conv_cycles():
    """The CONV unit's cycles of MNIST's first conv drop 3x (3 taps of one line instead of 9), the stem's
    49 taps become 7 taps of 2 lines (3.5x), in fixflow's profiler cycle model."""
    plain = _no_augmentation("DPUCZDX8G_ISA1_B4096")
    for shape, k, s, p, ratio in [((28, 28, 1), (3, 3), (1, 1), (1, 1, 1, 1), 3.0),
                                  ((64, 64, 3), (7, 7), (2, 2), (3, 3, 3, 3), 3.5)]:
        cyc = {}
        for target in ("DPUCZDX8G_ISA1_B4096", plain):
            m, rng = _first_conv(*shape, k, s, p, oc=64, seed=1)
            prog = assert_bit_exact(m, target, _inputs(rng, (1,) + shape, 1), mode="fast")
            cyc[target] = _conv_cycles(prog)
        assert cyc[plain] == pytest.approx(ratio * cyc["DPUCZDX8G_ISA1_B4096"])


def test_only_plain_interface_inputs():
    """A few-channel conv reading an intermediate map (not the subgraph's input) is not augmented, and the
    target-independent margins come only from convs over the input region."""
    rng = np.random.default_rng(5)

    def build(x):
        ops = conv_ops(x, rng, 2, (1, 1), name="squeeze")
        return ops + conv_ops(ops[-1].results[0], rng, 16, (3, 3), pad=(1, 1, 1, 1), name="stem")
    m = module_with((1, 12, 12, 8), 5, build)
    prog = assert_bit_exact(m, "DPUCZDX8G_ISA1_B4096", _inputs(rng, (1, 12, 12, 8)))
    assert _stem(prog).augment == 0 and channels(_stem(prog), 32, 16) == 0
    assert input_margins(prog.layers) == (0, 0)
    assert prog.inputs[0].addr() == (2, 0)


# ---- AMD's simulator (opt-in) ------------------------------------------------------------------------
@needs_sim
@pytest.mark.parametrize("shape,k,s,p,size", [((28, 28, 1), (3, 3), (1, 1), (1, 1, 1, 1), 4096),
                                              ((32, 30, 3), (7, 7), (2, 2), (3, 3, 3, 3), 4096),
                                              ((11, 17, 2), (5, 5), (1, 3), (0, 1, 2, 4), 4096),
                                              ((32, 30, 3), (7, 7), (2, 2), (3, 3, 3, 3), 1024),
                                              ((19, 23, 4), (6, 6), (2, 2), (2, 3, 1, 4), 512)])
def test_amd_simulator_runs_augmented_convs(tmp_path, shape, k, s, p, size):
    """fixflow-compile of an augmented (B4096) or column-folded (B1024, B512) first conv: AMD's simulator
    (which assembles the ac_code and checks it against mc_code) gives the fix-level integer execution's outputs."""
    m, rng = _first_conv(*shape, k, s, p, oc=32, seed=11, then_pool=shape[2] == 3)
    instrs = compile_and_simulate(m, _inputs(rng, (1,) + shape, 2), tmp_path, f"DPUCZDX8G_ISA1_B{size}")
    ch = k[1] * shape[2] if size == 4096 else s[1] * shape[2]
    assert any(i.name == "LOAD" and i["reg_id"] == 2 and i["channel"] == ch for i in instrs)
