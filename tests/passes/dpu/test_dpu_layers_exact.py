"""Single layers and short chains, compiled for random targets and tilings, executed on the DPU
interpreter: equal bit for bit to the fix-level integer execution. These are the property tests of
tiling (bands, halo rows, column tiles, output-channel chunks), instruction selection, bank
ping-pong and DDR placement together."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from _dpu_testlib import (FT, SIZES, assert_bit_exact, conv_ops, dense_ops, dw_ops, module_with, pool_ops)
from fixflow.dialects.fix import ops as Q

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _inputs(rng, shape, n=2):
    return [rng.uniform(-2, 2, size=shape).astype(np.float32) for _ in range(n)]


@st.composite
def conv_case(draw):
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pt, pb = draw(st.integers(0, kh - 1)), draw(st.integers(0, kh - 1))
    pl, pr = draw(st.integers(0, kw - 1)), draw(st.integers(0, kw - 1))
    h = draw(st.integers(max(1, kh - pt - pb), 19))
    w = draw(st.integers(max(1, kw - pl - pr), 19))
    c = draw(st.integers(1, 40))
    oc = draw(st.integers(1, 40))
    act = draw(st.sampled_from(["NONE", "RELU", "LEAKYRELU"]))
    fo = draw(st.integers(0, 8))
    fb = draw(st.integers(0, 12))
    size = draw(st.sampled_from(SIZES))
    seed = draw(st.integers(0, 2**16))
    bias = draw(st.booleans())
    return (h, w, c, oc, (kh, kw), (sh, sw), (pt, pb, pl, pr), act, fo, fb, size, seed, bias)


@SETTINGS
@given(conv_case(), st.data())
def test_conv_bit_exact(case, data):
    h, w, c, oc, k, s, p, act, fo, fb, size, seed, bias = case
    rng = np.random.default_rng(seed)
    m = module_with((1, h, w, c), 5, lambda x: conv_ops(x, rng, oc, k, s, p, act, (7, fb, fo), bias))
    conv = next(op for op in next(iter(m.body.ops)).body.ops if op.name == "fix.conv2d")
    oh, ow = conv.results[0].type.shape[1:3]
    from fixflow.target import get_target
    t = get_target(f"DPUCZDX8G_ISA1_B{size}")
    tiling = ""
    if data.draw(st.booleans(), label="force tiling"):
        rows = data.draw(st.sampled_from([1, 3, t.pp, 2 * t.pp]), label="rows")
        cols = data.draw(st.integers(1, ow), label="cols")
        tiling = f"conv:{rows}:{cols}"
    assert_bit_exact(m, t.name, _inputs(rng, (1, h, w, c)), tiling)


@st.composite
def alu_case(draw):
    kind = draw(st.sampled_from(["MAX", "AVG", "DW"]))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pt, pb = draw(st.integers(0, kh - 1)), draw(st.integers(0, kh - 1))
    pl, pr = draw(st.integers(0, kw - 1)), draw(st.integers(0, kw - 1))
    h = draw(st.integers(max(1, kh - pt - pb), 17))
    w = draw(st.integers(max(1, kw - pl - pr), 17))
    c = draw(st.integers(1, 40))
    size = draw(st.sampled_from(SIZES))
    seed = draw(st.integers(0, 2**16))
    dfp = draw(st.integers(-2, 2))
    return kind, (kh, kw), (sh, sw), (pt, pb, pl, pr), h, w, c, size, seed, dfp


@SETTINGS
@given(alu_case())
def test_alu_bit_exact(case):
    kind, k, s, p, h, w, c, size, seed, dfp = case
    rng = np.random.default_rng(seed)
    if kind == "DW":
        build = lambda x: dw_ops(x, rng, k, s, p, "RELU", (7, 6, 5 + dfp + 2))
    else:
        build = lambda x: pool_ops(x, kind, k, s, p, fp_out=5 + dfp)
    m = module_with((1, h, w, c), 5, build)
    assert_bit_exact(m, f"DPUCZDX8G_ISA1_B{size}", _inputs(rng, (1, h, w, c)))


@pytest.mark.parametrize("size", [512, 4096])
def test_chain_with_dense_and_global_pool(size):
    rng = np.random.default_rng(size)

    def build(x):
        ops = conv_ops(x, rng, 24, (3, 3), (1, 1), (1, 1, 1, 1), "RELU", (7, 6, 4), name="c1")
        ops += pool_ops(ops[-1].results[0], "MAX", (2, 2), (2, 2), name="p1")
        ops += dw_ops(ops[-1].results[0], rng, (3, 3), (2, 2), (1, 1, 1, 1), "RELU", (7, 6, 4), name="d1")
        ops += conv_ops(ops[-1].results[0], rng, 20, (1, 1), act="RELU", fps=(7, 6, 3), name="c2")
        ops += pool_ops(ops[-1].results[0], "AVG", (3, 3), (3, 3), fp_out=4, name="gap")
        ops += dense_ops(ops[-1].results[0], rng, 10, (7, 8, 2))
        return ops

    m = module_with((1, 12, 12, 3), 6, build)
    assert_bit_exact(m, f"DPUCZDX8G_ISA1_B{size}", _inputs(rng, (1, 12, 12, 3), 3))


def test_output_channel_chunks():
    """Weights beyond the weight banks: 3x3x64 on B512 needs 72 lines a group, 28 groups fit the bank, 30
    needed; chunks take half the bank (14 groups) so the next chunk's weights load into the other half."""
    rng = np.random.default_rng(1)
    m = module_with((1, 5, 6, 64), 5,
                    lambda x: conv_ops(x, rng, 240, (3, 3), (1, 1), (1, 1, 1, 1), "RELU", (8, 7, 4)))
    prog = assert_bit_exact(m, "DPUCZDX8G_ISA1_B512", _inputs(rng, (1, 5, 6, 64), 1))
    bias_loads = [i for i in prog.instructions if i.name == "LOAD" and i["bank_id"] == 4 * 2 + 8 + 1]
    assert len(bias_loads) == 3       # one per chunk
    weight_lines = sorted({i["bank_addr"] for i in prog.instructions if i.name == "LOAD" and 8 <= i["bank_id"] < 16})
    assert weight_lines == [0, 1024]  # the chunks alternate between the two halves of the CONVW banks


def test_multi_band_and_column_tiles():
    """A map too big for one band (forced small bands and columns), with halo rows and stride 2."""
    rng = np.random.default_rng(2)
    m = module_with((1, 30, 23, 20), 5,
                    lambda x: conv_ops(x, rng, 18, (5, 3), (2, 1), (2, 2, 1, 1), "RELU", (7, 6, 4)))
    prog = assert_bit_exact(m, "DPUCZDX8G_ISA1_B1024", _inputs(rng, (1, 30, 23, 20), 1), tiling="conv:8:6")
    assert sum(i.name == "CONV" for i in prog.instructions) == 2 * 4 * 3   # 2 bands x 4 column tiles x 3 groups


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 13), st.integers(1, 13), st.integers(1, 70), st.sampled_from(SIZES), st.integers(0, 2**16),
       st.sampled_from(["ADD", "MUL"]), st.sampled_from(["NONE", "RELU"]), st.integers(2, 4))
def test_residual_eltwise_bit_exact(h, w, c, size, seed, typ, act, n):
    """conv branches joined by an ELEW add (2-4 inputs, different fix positions) or mult."""
    rng = np.random.default_rng(seed)
    n = 2 if typ == "MUL" else n

    def build(x):
        ops, outs = [], []
        for k in range(n):
            ops += conv_ops(x, rng, c, (3, 3), pad=(1, 1, 1, 1), act="RELU", fps=(7, 6, 3 + k % 3), name=f"b{k}")
            outs.append(ops[-1].results[0])
        e = Q.EltwiseOp.build(outs, type=typ, nonlinear=act, result_types=[FT((1, h, w, c), 8, 3)])
        e.results[0].name_hint = "add"
        return ops + [e]

    m = module_with((1, h, w, 5), 5, build)
    assert_bit_exact(m, f"DPUCZDX8G_ISA1_B{size}", _inputs(rng, (1, h, w, 5), 2))


def resnet_like(rng, widths=(8, 16, 24), size=16):
    """stem conv, per stage a strided basic block (3x3 s2 + 1x1 s2 shortcut) and a plain one, residual
    add + ReLU on the ELEW engine, global average pool, dense."""

    def block(x, c, stride, name):
        ops = conv_ops(x, rng, c, (3, 3), (stride, stride), (1, 1, 1, 1), "RELU", (7, 6, 4), name=f"{name}a")
        ops += conv_ops(ops[-1].results[0], rng, c, (3, 3), (1, 1), (1, 1, 1, 1), "NONE", (7, 6, 4), name=f"{name}b")
        main = ops[-1].results[0]
        short = x
        if stride != 1 or x.type.shape[3] != c:
            ops += conv_ops(x, rng, c, (1, 1), (stride, stride), act="NONE", fps=(7, 6, 4), name=f"{name}s")
            short = ops[-1].results[0]
        e = Q.EltwiseOp.build([main, short], type="ADD", nonlinear="RELU", result_types=[FT(main.type.shape, 8, 4)])
        e.results[0].name_hint = f"{name}add"
        return ops + [e]

    def build(x):
        ops = conv_ops(x, rng, widths[0], (3, 3), pad=(1, 1, 1, 1), act="RELU", fps=(7, 6, 4), name="stem")
        for k, c in enumerate(widths):
            ops += block(ops[-1].results[0], c, 1 if k == 0 else 2, f"s{k}x")
            ops += block(ops[-1].results[0], c, 1, f"s{k}y")
        hw = ops[-1].results[0].type.shape[1]
        ops += pool_ops(ops[-1].results[0], "AVG", (hw, hw), (hw, hw), fp_out=4, name="gap")
        ops += dense_ops(ops[-1].results[0], rng, 10, (7, 6, 2))
        return ops

    return module_with((1, size, size, 3), 5, build)


@pytest.mark.parametrize("size", [512, 4096])
def test_resnet_like_bit_exact(size):
    rng = np.random.default_rng(size)
    m = resnet_like(rng)
    prog = assert_bit_exact(m, f"DPUCZDX8G_ISA1_B{size}", _inputs(rng, (1, 16, 16, 3), 2))
    assert sum(i.name == "ELEW" for i in prog.instructions) > 0


@pytest.mark.slow
def test_resnet18_cifar_shaped_bit_exact():
    """ResNet-18-CIFAR's shapes (32x32, 64-512 channels, two blocks a stage), random weights."""
    rng = np.random.default_rng(18)
    m = resnet_like(rng, widths=(64, 128, 256, 512), size=32)
    assert_bit_exact(m, "DPUCZDX8G_ISA1_B4096", _inputs(rng, (1, 32, 32, 3), 1), mode="fast")


def test_channel_tiles_for_alu_and_elew():
    """A 7x7 global average pool over 1280 channels on B512 and an add over 5000 channels: the bands fit
    only with the channels split into tiles (each tile LOADs and SAVEs its own channel slice)."""
    rng = np.random.default_rng(7)
    m = module_with((1, 7, 7, 1280), 5, lambda x: pool_ops(x, "AVG", (7, 7), (7, 7), fp_out=5))
    prog = assert_bit_exact(m, "DPUCZDX8G_ISA1_B512", _inputs(rng, (1, 7, 7, 1280), 1))
    assert len({i["channel_group"] for i in prog.instructions if i.name == "ALUINIT"}) == 1
    assert sum(i.name == "ALU" for i in prog.instructions) == 4           # 160 lines -> 4 tiles of 40

    def add(x):
        e = Q.EltwiseOp.build([x, x], type="ADD", nonlinear="RELU", result_types=[FT((1, 2, 3, 5000), 8, 4)])
        e.results[0].name_hint = "add"
        return [e]

    m = module_with((1, 2, 3, 5000), 5, add)
    prog = assert_bit_exact(m, "DPUCZDX8G_ISA1_B4096", _inputs(rng, (1, 2, 3, 5000), 1))
    assert len({i["ddr_addr"] % 5000 for i in prog.instructions if i.name == "SAVE"}) > 1   # channel slices
