"""Single instructions (LOAD, SAVE, CONVINIT+CONV, ALUINIT+ALU, ELEWINIT+ELEW) against numpy expectations
computed independently in float64 (spec numerics.md), in both modes."""

import numpy as np
import pytest

from _dpu_interp_lib import (TARGET, I, Prog, alu_program, alu_scale, conv_expected, conv_program,
                             elew_expected, elew_program, out_fmap, pool_windows, round_sat)
from fixflow.runtime.dpu import DPUInterpreter

MODES = ["reference", "fast"]


def run(p: Prog, mode: str) -> dict:
    return DPUInterpreter(TARGET, p.ins, p.regions(), mode=mode).run()


def rnd(rng, *shape, lo=-128, hi=128):
    return rng.integers(lo, hi, size=shape).astype(np.int8)


# ---- LOAD / SAVE -------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_load_then_save_copies_with_strides(mode):
    rng = np.random.default_rng(0)
    p = Prog()
    p.inp[:600] = rnd(rng, 600)
    # 5 pixels of 20 bytes, DDR stride 37, bank stride 3 lines (20 bytes = 2 lines, last one zero-filled)
    p.load(9, 2040, 2, 11, 20, length=5, jump_read=37, jump_write=3)
    p.ins.append(I("SAVE", bank_id=9, bank_addr=2040, jump_read=3, jump_write=32, channel=32, length=5,
                   reg_id=3, ddr_addr=4))
    out = run(p, mode)[3]
    for li in range(5):
        got = out[4 + 32 * li:4 + 32 * li + 32]
        np.testing.assert_array_equal(got[:20], p.inp[11 + 37 * li:11 + 37 * li + 20])
        assert not got[20:].any()          # the rest of the second line was zero-filled
    # line 2040 + 3*3 = 2049 wrapped to line 1 of bank 9
    it = DPUInterpreter(TARGET, p.ins[:1], p.regions(), mode=mode)
    it.run()
    np.testing.assert_array_equal(it.bank(9)[1], p.inp[11 + 37 * 3:11 + 37 * 3 + 16])


@pytest.mark.parametrize("mode", MODES)
def test_load_broadcast_const_and_channel_augmentation_mask(mode):
    p = Prog()
    p.inp[:64] = np.arange(1, 65)
    p.ins.append(I("LOAD", bank_id=3, bank_addr=0, reg_id=2, ddr_addr=0, channel=6, length=4, jump_read=2,
                   jump_write=1, pad_start=3, pad_end=1, pad_idx=2))
    p.ins.append(I("LOAD", bank_id=4, bank_addr=0, reg_id=2, ddr_addr=0, channel=5, length=2, jump_read=5,
                   jump_write=1, broadcast=7, const_value=0xFB))
    it = DPUInterpreter(TARGET, p.ins, p.regions(), mode=mode)
    it.run()
    b3 = it.bank(3)[:4, :6].astype(int)
    # pixel l reads bytes 2l+1 .. 2l+6; the first max(0, 3 - 2l) are masked (pad_start);
    # pixels l >= 4 - 2 mask channels from 16 - (1 + 2*(l-2)) on (pad_end): none of the 6 for l = 2, 3
    expect = np.array([[1 + 2 * li + c for c in range(6)] for li in range(4)])
    expect[0, :3] = 0
    expect[1, :1] = 0
    np.testing.assert_array_equal(b3, expect)
    np.testing.assert_array_equal(it.bank(4)[:2, :5], np.full((2, 5), -5))
    assert not it.bank(4)[:2, 5:].any()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("argmax", [2, 3])
def test_save_argmax(mode, argmax):
    rng = np.random.default_rng(1)
    p = Prog()
    x = rnd(rng, 6, 32)
    x[2, 5] = x[2, 20] = 127            # a tie: the first index wins
    p.inp[:x.size] = x.ravel()
    p.load(0, 10, 2, 0, 32, length=6, jump_read=32, jump_write=2)
    p.ins.append(I("SAVE", bank_id=0, bank_addr=10, jump_read=2, jump_write=1, channel=32, length=6,
                   reg_id=3, ddr_addr=0, argmax=argmax))
    out = run(p, mode)[3][:6]
    idx = x.argmax(axis=1)
    assert idx[2] == 5
    np.testing.assert_array_equal(out, idx if argmax == 2 else x[np.arange(6), idx])


# ---- CONV --------------------------------------------------------------------------------
CONV_CASES = [
    dict(shape=(6, 7, 16), k=(3, 3), stride=(1, 1), pads=(1, 1, 1, 1), act=1),
    dict(shape=(9, 9, 32), k=(3, 3), stride=(2, 2), pads=(1, 1, 1, 1), act=0),
    dict(shape=(5, 6, 16), k=(1, 1), stride=(1, 1), pads=(0, 0, 0, 0), act=4, shift_cut=9),
    dict(shape=(8, 10, 16), k=(5, 3), stride=(2, 1), pads=(2, 2, 1, 1), act=3),
    dict(shape=(6, 6, 48), k=(4, 4), stride=(1, 1), pads=(0, 0, 0, 0), act=0, shift_cut=12, shift_bias=0),
    dict(shape=(6, 6, 16), k=(2, 2), stride=(2, 2), pads=(0, 1, 0, 1), act=1, shift_bias=12),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_conv(mode, case):
    c = dict(CONV_CASES[case])
    rng = np.random.default_rng(10 + case)
    h, w, ch = c.pop("shape")
    kh, kw = c.pop("k")
    x = rnd(rng, h, w, ch)
    wt = rnd(rng, 16, kh, kw, ch)
    bias = rnd(rng, 16)
    kwargs = dict(stride=c["stride"], pads=c["pads"], act=c["act"], shift_cut=c.get("shift_cut", 9),
                  shift_bias=c.get("shift_bias", 4))
    p, (oh, ow, oc) = conv_program(x, wt, bias, **kwargs)
    got = out_fmap(run(p, mode), oh, ow, oc)
    want = conv_expected(x, wt, bias, **kwargs)
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(want)) > 8          # the case is not degenerate (all saturated / all zero)


# ---- ALU ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shift_cut", [0, 9, 2])
def test_alu_maxpool(mode, shift_cut):
    rng = np.random.default_rng(20 + shift_cut)
    x = rnd(rng, 7, 9, 32)
    kw = dict(kernel=(3, 3), stride=(2, 2), pads=(1, 1, 1, 1))
    p, (oh, ow, c) = alu_program(x, 3, shift_cut=shift_cut, **kw)
    got = out_fmap(run(p, mode), oh, ow, c)
    win = pool_windows(x, pad_value=-128, **kw)
    np.testing.assert_array_equal(got, round_sat(win.max(axis=0) * alu_scale(shift_cut)))


@pytest.mark.parametrize("mode", MODES)
def test_alu_maxreduce_has_no_padding(mode):
    rng = np.random.default_rng(3)
    x = rnd(rng, 4, 4, 16)
    p, (oh, ow, c) = alu_program(x, 5, kernel=(2, 2), stride=(2, 2), shift_cut=0)
    got = out_fmap(run(p, mode), oh, ow, c)
    np.testing.assert_array_equal(got, pool_windows(x, (2, 2), (2, 2), (0, 0, 0, 0), 0).max(axis=0))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("mf,shift_cut", [(7, 14), (21, 18), (-9, 3), (127, 10)])
def test_alu_avgpool(mode, mf, shift_cut):
    rng = np.random.default_rng(abs(mf))
    x = rnd(rng, 6, 6, 16)
    kw = dict(kernel=(3, 3), stride=(1, 1), pads=(1, 1, 1, 1))
    p2, (oh, ow, c) = alu_program(x[:4], 2, shift_cut=shift_cut, multi_factor=mf, **kw)
    got = out_fmap(run(p2, mode), oh, ow, c)
    win = pool_windows(x[:4], pad_value=0, **kw)
    # AMD's simulator: a float32 sum, a float32 product with the int8 multiplier, then the shift
    prod = np.float32(win.sum(axis=0)) * np.float32(mf)
    np.testing.assert_array_equal(got, round_sat(prod.astype(np.float64) * alu_scale(shift_cut)))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("exec_mode,act", [(0, 0), (0, 1), (0, 4), (6, 1)])
def test_alu_depthwise(mode, exec_mode, act):
    rng = np.random.default_rng(30 + exec_mode + act)
    x = rnd(rng, 5, 6, 32)
    wt = rnd(rng, 3, 3, 32)
    bias = rnd(rng, 32)
    sc, sb = 7, 5
    kw = dict(kernel=(3, 3), stride=(1, 1), pads=(1, 0, 1, 1))
    p, (oh, ow, c) = alu_program(x, exec_mode, shift_cut=sc, shift_bias=sb, act=act, wt=wt,
                                 bias=bias if exec_mode == 0 else None, **kw)
    got = out_fmap(run(p, mode), oh, ow, c)
    win = pool_windows(x, pad_value=0, **kw)                 # (9, oh, ow, C)
    acc = (win * wt.reshape(9, 1, 1, 32).astype(np.int64)).sum(axis=0)
    if exec_mode == 0:
        y = (2.0 * acc + bias * 2.0 ** sb) / 2.0 ** (sc + 1)
    else:
        y = acc / 2.0 ** sc
    y = np.maximum(y, 0) if act == 1 else (np.clip(y, 0, 96) if act == 4 else y)
    np.testing.assert_array_equal(got, round_sat(y))


@pytest.mark.parametrize("mode", MODES)
def test_alu_leakyrelu_prelu_hsigmoid(mode):
    rng = np.random.default_rng(5)
    x = rnd(rng, 3, 5, 16)
    one = dict(kernel=(1, 1), stride=(1, 1))
    # LEAKYRELU: negative x times int8(multi_factor), then / 2^(field-32) (>= 32) or * 2^field
    p, (oh, ow, c) = alu_program(x, 4, multi_factor=26, prelu_shifts=(1, 40), **one)
    xf = x.astype(np.float64)
    t = np.where(xf < 0, xf * 26, xf)
    want = round_sat(np.where(t < 0, t / 2.0 ** 8, t * 2.0))
    np.testing.assert_array_equal(out_fmap(run(p, mode), oh, ow, c), want)
    # PRELU: per-channel slopes from the DWCONVW bank
    slopes = rnd(rng, 16)
    p, _ = alu_program(x, 1, bias=slopes, prelu_shifts=(32, 38), **one)
    t = np.where(xf < 0, xf * slopes, xf)
    want = round_sat(np.where(t < 0, t / 2.0 ** 6, t))
    np.testing.assert_array_equal(out_fmap(run(p, mode), oh, ow, c), want)
    # HSIGMOID: min(2^32, max(0, x*2731 + 3*2731*2^shift_bias)) / 2^shift_cut
    p, _ = alu_program(x, 7, shift_bias=4, shift_cut=12, **one)
    want = round_sat(np.minimum(2.0 ** 32, np.maximum(0, xf * 2731 + 3 * 2731 * 16.0)) / 2.0 ** 12)
    np.testing.assert_array_equal(out_fmap(run(p, mode), oh, ow, c), want)


# ---- ELEW --------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("etype,shifts,sw,act", [(0, (2, 3), 1, 0), (0, (0, 1), 18, 1), (0, (1, 1, 4), 0, 0),
                                                 (1, (1, 2), 20, 0), (1, (0, 3), 2, 1)])
def test_elew(mode, etype, shifts, sw, act):
    rng = np.random.default_rng(40 + sw)
    xs = [rnd(rng, 4, 5, 32) for _ in shifts]
    p, (r, w, c) = elew_program(xs, shifts, sw, etype, act)
    got = out_fmap(run(p, mode), r, w, c)
    np.testing.assert_array_equal(got, elew_expected(xs, shifts, sw, etype, act))


@pytest.mark.parametrize("mode", MODES)
def test_alu_depthwise_16bit_weights(mode):
    """exec_mode 8 (DWCV-W16B0): int16 weights, two bytes per channel (low byte first); every channel
    uses the weight of the first channel of its group of 16; no bias; acc / 2^shift_cut."""
    rng = np.random.default_rng(8)
    x = rnd(rng, 4, 5, 32)
    w16 = rng.integers(-600, 600, size=(3, 3, 32)).astype(np.int16)
    raw = w16.view(np.uint8).view(np.int8).reshape(3, 3, 64)      # little-endian byte pairs
    kw = dict(kernel=(3, 3), stride=(1, 1), pads=(1, 1, 1, 1))
    p, (oh, ow, c) = alu_program(x, 8, shift_cut=9, act=1, wt=raw, **kw)
    got = out_fmap(run(p, mode), oh, ow, c)
    win = pool_windows(x, pad_value=0, **kw)                       # (9, oh, ow, 32)
    shared = np.repeat(w16.reshape(9, 32)[:, ::16], 16, axis=1)     # channel c -> weight of 16*(c//16)
    acc = (win * shared.reshape(9, 1, 1, 32).astype(np.int64)).sum(axis=0)
    np.testing.assert_array_equal(got, round_sat(np.maximum(acc / 2.0 ** 9, 0)))


def test_integer_helpers_against_float64():
    from fixflow.runtime.dpu.arith import _window_dot, round_shift, scale_round
    rng = np.random.default_rng(99)
    x = rng.integers(-(1 << 40), 1 << 40, 2000)
    for s in (0, 1, 5, 13, 40, 61, 62, 70):
        want = np.floor(x / 2.0 ** s + 0.5) if s < 62 else np.zeros(x.size)
        if s <= 13:                                   # float64 is exact here
            np.testing.assert_array_equal(round_shift(x, s), want.astype(np.int64))
        else:
            np.testing.assert_array_equal(round_shift(x, s), np.array([(int(v) + (1 << (s - 1))) >> s for v in x]))
    np.testing.assert_array_equal(scale_round(np.array([-3, 5]), 4), [-48, 80])
    np.testing.assert_array_equal(scale_round(np.array([-3, 5, -5, 6]), -1), [-1, 3, -2, 3])   # ties toward +inf
    xs = rng.integers(-128, 128, (2, 3, 600, 16)).astype(np.int8)
    ws = rng.integers(-32768, 32768, (600, 16)).astype(np.int64)
    want = (xs.astype(np.int64) * ws).sum(axis=-2)
    np.testing.assert_array_equal(_window_dot(xs, ws, 128 * 32768), want)             # int64 path
    ws8 = ws.astype(np.int8)
    np.testing.assert_array_equal(_window_dot(xs, ws8, 128 * 128), (xs.astype(np.int64) * ws8).sum(axis=-2))
