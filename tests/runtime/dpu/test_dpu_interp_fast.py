"""Fast mode against reference mode: random instruction streams (any valid field values, overlapping
writes, read-after-write chains through banks and DDR), batches, and adversarial reductions where a
naive float32 product is wrong."""

import numpy as np
import pytest
from _dpu_interp_lib import (
    SIZES,
    TARGET,
    I,
    conv_expected,
    conv_program,
    out_fmap,
    random_program,
)

from fixflow.runtime.dpu import DPUExecError, DPUInterpreter, fastconv
from fixflow.runtime.dpu.fast import FastPlan, compile_plan
from fixflow.runtime.dpu.machine import Machine


def regions(rng, batch=None):
    shape = (lambda s: (s,)) if batch is None else (lambda s: (batch, s))
    return {reg: rng.integers(-128, 128, size=shape(s)).astype(np.int8) for reg, s in SIZES.items()}


def run_both(program, regs, target=TARGET):
    out = {}
    for mode in ("reference", "fast"):
        it = DPUInterpreter(target, program, {r: a.copy() for r, a in regs.items()}, mode=mode)
        try:
            res = it.run()
            out[mode] = ({r: a.copy() for r, a in res.items()},
                         np.concatenate([it.bank(b).ravel() for b in range(it.machine.num_banks)]))
        except DPUExecError as e:
            out[mode] = str(e)
    return out["reference"], out["fast"]


OTHER_TARGETS = ["DPUCZDX8G_ISA1_B512", "DPUCZDX8G_ISA1_B1152", "DPUCZDX8G_ISA1_B3136"]


@pytest.mark.parametrize("target,seed", [(TARGET, s) for s in range(40)]
                         + [(t, s) for t in OTHER_TARGETS for s in range(8)])
def test_random_programs_bit_exact(target, seed):
    rng = np.random.default_rng(seed)
    program = random_program(rng, target=target)
    ref, fast = run_both(program, regions(rng), target)
    if isinstance(ref, str):
        assert fast == ref
        return
    assert not isinstance(fast, str), fast
    for r in ref[0]:
        np.testing.assert_array_equal(ref[0][r], fast[0][r], err_msg=f"REG_{r}")
    np.testing.assert_array_equal(ref[1], fast[1], err_msg="banks")


def test_random_programs_run_and_merge():
    """The generator makes executable programs (else the test above would compare only errors), and
    their fast plans merge several instructions into one kernel on every engine."""
    ran, merged = 0, set()
    m = Machine.from_target(TARGET)
    for seed in range(40):
        rng = np.random.default_rng(seed)
        program = random_program(rng)
        regs = regions(rng)
        try:
            plan = compile_plan(m, program, SIZES, {0: regs[0]})
        except DPUExecError:
            continue
        ran += 1
        merged |= {k.kind for k in plan.kernels if len(k.instructions) > 1}
    assert ran >= 30
    assert merged >= {"conv", "alu", "elew"}


@pytest.mark.parametrize("seed", range(12))
def test_random_bad_programs_fail_alike(seed):
    rng = np.random.default_rng(1000 + seed)
    ref, fast = run_both(random_program(rng, n=30, bad=True), regions(rng))
    if isinstance(ref, str) or isinstance(fast, str):
        assert ref == fast


@pytest.mark.parametrize("min_rows", [None, 1, 24])
def test_batch_equals_one_by_one(min_rows, monkeypatch):
    """Also with convs cut into blocks of a few rows (1: row bands of one image; 24: whole images
    grouped while they fit) instead of the cache-sized blocks of real layers."""
    if min_rows is not None:
        monkeypatch.setattr(fastconv, "BLOCK_BYTES", 1)
        monkeypatch.setattr(fastconv, "MIN_BLOCK_ROWS", min_rows)
    rng = np.random.default_rng(7)
    program = random_program(rng, n=80)
    regs = regions(rng, batch=5)
    m = Machine.from_target(TARGET)
    plan = FastPlan(m, program, SIZES, {0: regs[0][0]})
    out = plan.run({r: regs[r] for r in (1, 2, 3)})
    for i in range(5):
        it = DPUInterpreter(TARGET, program, {r: regs[r][i] if r else regs[0][0] for r in SIZES})
        res = it.run()
        for r in (1, 2, 3):
            np.testing.assert_array_equal(out[r][i], res[r])


def test_layer_tiles_merge_into_few_kernels():
    """A conv over 3 row tiles x 2 output-channel groups becomes one matrix product."""
    program = [I("LOAD", bank_id=16 + o, bank_addr=0, reg_id=0, ddr_addr=4096 * o, channel=4096)
               for o in range(16)]
    program += [I("LOAD", bank_id=8 + b, bank_addr=0, reg_id=2, ddr_addr=1024 * b, channel=1024)
                for b in range(8)]
    for _oc in range(2):
        program.append(I("CONVINIT", kernel_h=3, kernel_w=3, valid_pixel_parallel=8, jump_read=1,
                         jump_read_endl=1, jump_write=1, jump_write_endl=1))
        for t in range(3):
            program.append(I("CONV", bank_id_in=8, bank_addr_in=40 * t, bank_addr_in_1=40 * t + 200,
                             length=16, channel_group=1, bank_id_out=0, bank_addr_out=20 * t + 60 * _oc,
                             bank_addr_weights=100 * _oc, pad_right=2, pad_bottom=2))
    program.append(I("END"))
    m = Machine.from_target(TARGET)
    plan = compile_plan(m, program, {0: 65536, 2: 8192}, {})
    assert [k.kind for k in plan.kernels] == ["conv"]
    k = plan.kernels[0]
    assert k.x.shape[0] == 3 * 8 * 16 and k.x.shape[1] * k.run == 9 * 16   # rows: the 3 tiles
    assert k.run >= 16                        # stored as runs of contiguous cells (one per tap at most)
    assert plan.kernels[0].w.shape == (9 * 16, 32)                        # columns: both groups
    rng = np.random.default_rng(3)
    regs = {0: rng.integers(-128, 128, 65536).astype(np.int8), 2: rng.integers(-128, 128, 8192).astype(np.int8)}
    ref, fast = run_both(program, regs)
    np.testing.assert_array_equal(ref[1], fast[1])


# ---- adversarial exactness ----------------------------------------------------------------
def cancelling_case(rng, c=256, k=8):
    """x, w with reduction length k*k*c = 16384: all products positive for the first half, then the same
    magnitudes negative with a few changed, so partial sums reach ~1e8 (> 2^24) and the result is small."""
    n = k * k * c
    x = (rng.choice([-127, 127], size=n)).astype(np.int64)
    w = np.empty((16, n), dtype=np.int64)
    for o in range(16):
        mag = rng.choice([125, 127], size=n // 2)
        second = rng.permutation(mag)
        flip = rng.choice(n // 2, size=int(rng.integers(0, 7)), replace=False)
        second[flip] = 252 - second[flip]
        w[o] = np.sign(x) * np.concatenate([mag, -second])
    return x.astype(np.int8).reshape(k, k, c), w.astype(np.int8).reshape(16, k, k, c)


@pytest.mark.parametrize("mode", ["reference", "fast"])
@pytest.mark.parametrize("dynamic_weights", [False, True])
def test_cancelling_long_reduction(mode, dynamic_weights):
    rng = np.random.default_rng(11)
    x, wt = cancelling_case(rng)
    bias = rng.integers(-128, 128, 16).astype(np.int8)
    kwargs = dict(shift_cut=4, shift_bias=0, act=0)
    p, shape = conv_program(x, wt, bias, **kwargs)
    want = conv_expected(x, wt, bias, **kwargs)
    acc = wt.reshape(16, -1).astype(np.int64) @ x.reshape(-1).astype(np.int64)
    # the data really is adversarial: a plain float32 matrix product gets most sums wrong
    naive = x.reshape(1, -1).astype(np.float32) @ wt.reshape(16, -1).T.astype(np.float32)
    assert (naive[0].astype(np.int64) != acc).mean() > 0.5
    assert np.abs(acc).max() < 2**11 and len(np.unique(want)) > 4
    it = DPUInterpreter(TARGET, p.ins, p.regions(), mode=mode, const_regs=() if dynamic_weights else (0,))
    np.testing.assert_array_equal(out_fmap(it.run(), *shape), want)


@pytest.mark.parametrize("mode", ["reference", "fast"])
def test_max_magnitude_weights_and_inputs(mode):
    x = np.full((4, 4, 256), -128, dtype=np.int8)
    wt = np.full((16, 4, 4, 256), -128, dtype=np.int8)
    wt[1::2] = 127
    bias = np.full(16, -128, dtype=np.int8)
    kwargs = dict(shift_cut=20, shift_bias=20, act=0)
    p, shape = conv_program(x, wt, bias, **kwargs)
    want = conv_expected(x, wt, bias, **kwargs)
    got = out_fmap(DPUInterpreter(TARGET, p.ins, p.regions(), mode=mode).run(), *shape)
    np.testing.assert_array_equal(got, want)
    # by hand: even channels 2*4096*16384 - 128*2^20 = 0; odd: (2*4096*(-16256) - 2^27) / 2^21 = -127.5 -> -127
    assert (want[..., 0::2] == 0).all() and (want[..., 1::2] == -127).all()


def test_fast_plan_splits_long_reductions():
    rng = np.random.default_rng(11)
    x, wt = cancelling_case(rng)
    p, _ = conv_program(x, wt, np.zeros(16, dtype=np.int8))
    m = Machine.from_target(TARGET)
    regs = p.regions()
    plan = compile_plan(m, p.ins, {r: a.size for r, a in regs.items()}, {0: regs[0]})
    (k,) = [k for k in plan.kernels if k.kind == "conv"]
    w = wt.reshape(16, -1).T.astype(np.int64)
    assert len(k.chunks) >= 4 and k.chunks[0][0] == 0 and k.chunks[-1][1] == w.shape[0]
    assert all(a1 == b0 for (_, b0), (a1, _) in zip(k.chunks, k.chunks[1:]))
    # x is any int8 here: a term x*w lies in [-128w, 127w] (w > 0) or [127w, -128w] (w < 0)
    hi = np.where(w > 0, 127 * w, -128 * w)
    lo = np.where(w > 0, -128 * w, 127 * w)
    for a, b in k.chunks:                     # every partial sum of every chunk is below 2^24
        assert hi[a:b].sum(axis=0).max() < 2**24 and -lo[a:b].sum(axis=0).min() < 2**24


@pytest.mark.parametrize("act", [0, 1])
def test_short_single_cell_reduction_takes_bias_into_product(act):
    """A first layer of a 1-channel image: padding channels have zero weights, so the reduction is 9
    single cells and the plan makes the bias one more term of the product (cell ONE); still exact."""
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (6, 6, 16)).astype(np.int8)
    wt = np.zeros((16, 3, 3, 16), dtype=np.int8)
    wt[..., 0] = rng.integers(-128, 128, (16, 3, 3))
    bias = rng.integers(-128, 128, 16).astype(np.int8)
    kwargs = dict(shift_cut=9, shift_bias=2, act=act)
    p, shape = conv_program(x, wt, bias, pads=(1, 1, 1, 1), **kwargs)
    regs = p.regions()
    plan = compile_plan(Machine.from_target(TARGET), p.ins, {r: a.size for r, a in regs.items()}, {0: regs[0]})
    (k,) = [k for k in plan.kernels if k.kind == "conv"]
    assert k.fbias_in_product and k.ones_gathered and k.run == 1 and k.x.shape[1] == 10
    assert k.wchunks[0].shape[0] == 10
    want = conv_expected(x, wt, bias, pads=(1, 1, 1, 1), **kwargs)
    assert len(np.unique(want)) > 8
    got = out_fmap(DPUInterpreter(TARGET, p.ins, regs, mode="fast").run(), *shape)
    np.testing.assert_array_equal(got, want)
