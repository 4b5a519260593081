"""Dilated convolutions on the DPU: undilated convs, each over the input's pixels of step (dh, dw) from one
phase (stride (sh, sw) / gcd), SAVEd into the output's pixels of step (dh, dw) / gcd: bit for bit against the
fix-level execution on random shapes, strides and every target size; a phase whose taps all fall in the
padding keeps the conv on the CPU with the reason."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from _dpu_amd_sim import compile_and_simulate, needs_sim
from _dpu_testlib import FT, SIZES, assert_bit_exact, compile_module, module_with, rand_ints
from fixflow.dialects.fix import ops as Q
from fixflow.passes.dpu.layers import ConvLayer


def _dilated(rng, h, w, c, oc, k, d, pad, stride=(1, 1), act="RELU", then=False):
    def build(x):
        wc = Q.ConstOp.from_ints(rand_ints(rng, (oc, k[0], k[1], c)), 8, 7)
        b = Q.ConstOp.from_ints(rand_ints(rng, (oc,)), 8, 6)
        oh = Q.conv_out_size(h, d[0] * (k[0] - 1) + 1, stride[0], pad[0], pad[1])
        ow = Q.conv_out_size(w, d[1] * (k[1] - 1) + 1, stride[1], pad[2], pad[3])
        conv = Q.Conv2dOp.build(x, wc.results[0], b.results[0], kernel=k, stride=stride, pad=pad, dilation=d,
                                nonlinear=act, result_types=[FT((1, oh, ow, oc), 8, 4)])
        conv.results[0].name_hint = "dil"
        ops = [wc, b, conv]
        if then:                          # a plain conv reading the dilated conv's output
            w2 = Q.ConstOp.from_ints(rand_ints(rng, (8, 1, 1, oc)), 8, 7)
            b2 = Q.ConstOp.from_ints(rand_ints(rng, (8,)), 8, 6)
            c2 = Q.Conv2dOp.build(conv.results[0], w2.results[0], b2.results[0], kernel=(1, 1), stride=(1, 1),
                                  pad=(0, 0, 0, 0), nonlinear="NONE", result_types=[FT((1, oh, ow, 8), 8, 3)])
            c2.results[0].name_hint = "after"
            ops += [w2, b2, c2]
        return ops
    return module_with((1, h, w, c), 5, build)


def _xs(rng, shape):
    return [rng.uniform(-2, 2, size=shape).astype(np.float32)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 24), st.integers(1, 24), st.integers(1, 40), st.integers(1, 40), st.integers(1, 3),
       st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.data(),
       st.sampled_from(SIZES), st.sampled_from(["reference", "fast"]), st.integers(0, 2**16))
def test_dilated_conv_bit_exact(h, w, c, oc, kh, kw, dh, dw, sh, sw, data, size, mode, seed):
    pads = tuple(data.draw(st.integers(0, d * (k - 1))) for k, d in ((kh, dh), (kh, dh), (kw, dw), (kw, dw)))
    if h + pads[0] + pads[1] < dh * (kh - 1) + 1 or w + pads[2] + pads[3] < dw * (kw - 1) + 1:
        return
    rng = np.random.default_rng(seed)
    m = _dilated(rng, h, w, c, oc, (kh, kw), (dh, dw), pads, stride=(sh, sw), then=data.draw(st.booleans()))
    placed = compile_module(m.clone(), f"DPUCZDX8G_ISA1_B{size}")
    conv = next(op for op in next(o for o in placed.body.ops if o.name == "func.func").body.ops
                if op.name == "fix.conv2d" and op.results[0].name_hint == "dil")
    if conv.attributes["dpu.device"].value != "DPU":   # a phase whose every tap is padding (bias only)
        assert "reads no input row or pads beyond" in conv.attributes["dpu.reason"].value
        return
    prog = assert_bit_exact(m, f"DPUCZDX8G_ISA1_B{size}", _xs(rng, (1, h, w, c)), mode=mode)
    phases = [L for L in prog.layers if isinstance(L, ConvLayer) and L.name.startswith("dil")]
    gh, gw = math.gcd(sh, dh), math.gcd(sw, dw)
    assert 1 <= len(phases) <= (dh // gh) * (dw // gw)
    assert all(L.win.kernel == (kh, kw) for L in phases)
    if (dh, dw) != (1, 1):
        assert all(L.inp.step == (dh, dw) and L.out.step == (dh // gh, dw // gw) for L in phases)
        assert all(L.win.stride[0] in (1, sh // gh) and L.win.stride[1] in (1, sw // gw) for L in phases)


@pytest.mark.parametrize("size", [512, 1152, 4096])
def test_aspp_like_dilations(size):
    """DeepLab's ASPP branches: 3x3 convs with dilation 2, 4 and 6 and 'same' padding, on the DPU."""
    for d in (2, 4, 6):
        rng = np.random.default_rng(d)
        m = _dilated(rng, 20, 18, 32, 24, (3, 3), (d, d), (d, d, d, d), then=True)
        prog = assert_bit_exact(m, f"DPUCZDX8G_ISA1_B{size}", _xs(rng, (1, 20, 18, 32)), mode="fast")
        assert sum(isinstance(L, ConvLayer) for L in prog.layers) == d * d + 1


def test_strided_dilated_convs():
    """stride 2 with dilation 2: one phase, a stride-1 conv over the even pixels; stride 2 with dilation 3:
    3 x 3 phases of stride 2 over pixels of step 3."""
    for d, n in (((2, 2), 1), ((3, 3), 9)):
        rng = np.random.default_rng(1)
        m = _dilated(rng, 19, 17, 8, 8, (3, 3), d, (d[0], d[0], d[1], d[1]), stride=(2, 2), then=True)
        prog = assert_bit_exact(m, "DPUCZDX8G_ISA1_B4096", _xs(rng, (1, 19, 17, 8)))
        phases = [L for L in prog.layers if isinstance(L, ConvLayer) and L.name.startswith("dil_")]
        assert len(phases) == n and all(L.win.stride == ((1, 1) if n == 1 else (2, 2)) for L in phases)


def test_a_phase_of_padding_only_stays_on_the_cpu():
    """One output column whose taps (columns -1, 2, 5 of a 1-column map) all fall in the padding."""
    rng = np.random.default_rng(1)
    m = _dilated(rng, 4, 1, 8, 8, (1, 3), (1, 3), (0, 0, 1, 5))
    compile_module(m, "DPUCZDX8G_ISA1_B4096")
    func = next(op for op in m.body.ops if op.name == "func.func")
    conv = next(op for op in func.body.ops if op.name == "fix.conv2d")
    assert conv.attributes["dpu.device"].value == "CPU"
    assert conv.attributes["dpu.reason"].value == "phase 0 of dilation 3 reads no input row or pads beyond kernel - 1"


@needs_sim
@pytest.mark.parametrize("d,pad,stride", [((2, 2), (2, 2, 2, 2), (1, 1)), ((3, 2), (1, 4, 0, 2), (1, 1)),
                                          ((3, 2), (3, 3, 2, 2), (2, 2))])
def test_amd_simulator_runs_dilated_convs(tmp_path, d, pad, stride):
    rng = np.random.default_rng(sum(d))
    m = _dilated(rng, 13, 11, 16, 24, (3, 3), d, pad, stride=stride, then=True)
    instrs = compile_and_simulate(m, _xs(rng, (1, 13, 11, 16)) * 2, tmp_path)
    assert sum(i.name == "CONVINIT" for i in instrs) >= 1
