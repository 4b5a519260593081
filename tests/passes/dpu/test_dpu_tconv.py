"""Transposed conv on the DPU: the zero-inserted input (a zero fill of the frame, the input copied in with
pixel steps = the stride) and a stride-1 unpadded CONV with the spatially flipped weights; bit for bit
against transposed-conv2d-fix over random kernels, strides, paddings, output paddings and target sizes."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from _dpu_testlib import FT, SIZES, assert_bit_exact, rand_ints, module_with
from fixflow.dialects.fix import ops as Q
from fixflow.passes.dpu.layers import ConvLayer

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def tconv_ops(x, rng, oc, kernel, stride, pad, out_pad, act="NONE", fps=(7, 6, 3), name="up"):
    _, h, w, c = x.type.shape
    fw, fb, fo = fps
    wc = Q.ConstOp.from_ints(rand_ints(rng, (oc, kernel[0], kernel[1], c)), 8, fw)
    b = Q.ConstOp.from_ints(rand_ints(rng, (oc,)), 8, fb)
    oh = (h - 1) * stride[0] - pad[0] - pad[1] + kernel[0] + out_pad[0]
    ow = (w - 1) * stride[1] - pad[2] - pad[3] + kernel[1] + out_pad[1]
    op = Q.ConvTranspose2dOp.build(x, wc.results[0], b.results[0], kernel=kernel, stride=stride, pad=pad,
                                   output_padding=out_pad, nonlinear=act, result_types=[FT((1, oh, ow, oc), 8, fo)])
    op.results[0].name_hint = name
    return [wc, b, op]


@st.composite
def tconv_case(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pad = (draw(st.integers(0, kh - 1)), draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1)),
           draw(st.integers(0, kw - 1)))
    out_pad = (draw(st.integers(0, sh - 1)), draw(st.integers(0, sw - 1)))
    return ((kh, kw), (sh, sw), pad, out_pad, draw(st.integers(1, 8)), draw(st.integers(1, 8)),
            draw(st.integers(1, 24)), draw(st.integers(1, 24)), draw(st.sampled_from(["NONE", "RELU"])),
            draw(st.sampled_from(SIZES)), draw(st.integers(0, 2**16)))


@SETTINGS
@given(tconv_case())
def test_transposed_conv_bit_exact(case):
    k, s, pad, out_pad, h, w, c, oc, act, size, seed = case
    assume((h - 1) * s[0] - pad[0] - pad[1] + k[0] + out_pad[0] >= 1)
    assume((w - 1) * s[1] - pad[2] - pad[3] + k[1] + out_pad[1] >= 1)
    rng = np.random.default_rng(seed)
    m = module_with((1, h, w, c), 4, lambda x: tconv_ops(x, rng, oc, k, s, pad, out_pad, act))
    xs = [rng.uniform(-2, 2, size=(1, h, w, c)).astype(np.float32) for _ in range(2)]
    prog = assert_bit_exact(m, f"DPUCZDX8G_ISA1_B{size}", xs)
    assert [L.win.stride for L in prog.layers if isinstance(L, ConvLayer)] == [(1, 1)]
