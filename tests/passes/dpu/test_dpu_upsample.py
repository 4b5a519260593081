"""Nearest upsample on the DPU: sh * sw 1x1 ALU copies of the input, each SAVEd with a row stride of sh
rows and a pixel stride of sw pixels at its origin (dy, dx) of the output; the output can itself be
placed into a concat (the YOLO/FPN pattern: upsample a deep map, concatenate it with a shallow one).
Bit for bit against the fix-level integer execution over random shapes, factors and target sizes."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from _dpu_testlib import FT, SIZES, assert_bit_exact, conv_ops, module_with
from fixflow.dialects.fix import ops as Q

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def upsample_op(x, scale, name="up"):
    _, h, w, c = x.type.shape
    op = Q.UpsampleOp.build(x, scale=scale, result_types=[FT((1, h * scale[0], w * scale[1], c), 8,
                                                            x.type.element_type.fix_pos)])
    op.results[0].name_hint = name
    return op


@st.composite
def up_case(draw):
    return (draw(st.integers(1, 9)), draw(st.integers(1, 9)), draw(st.integers(1, 40)),
            (draw(st.integers(1, 3)), draw(st.integers(1, 3))), draw(st.booleans()), draw(st.booleans()),
            draw(st.sampled_from(SIZES)), draw(st.integers(0, 2**16)))


@SETTINGS
@given(up_case())
def test_upsample_bit_exact(case):
    h, w, c, scale, of_input, with_concat, size, seed = case
    rng = np.random.default_rng(seed)

    def build(x):
        ops = [] if of_input else conv_ops(x, rng, c, (3, 3), pad=(1, 1, 1, 1), act="RELU", fps=(7, 6, 4), name="deep")
        src = x if of_input else ops[-1].results[0]
        up = upsample_op(src, scale)
        ops.append(up)
        y = up.results[0]
        if with_concat:
            side = Q.UpsampleOp.build(x, scale=scale, result_types=[FT(up.results[0].type.shape[:3] + (x.type.shape[3],),
                                                                        8, 4)])
            side.results[0].name_hint = "side"
            shallow = conv_ops(side.results[0], rng, 7, (1, 1), fps=(7, 6, 4), name="shallow")
            cat = Q.ConcatOp.build([y, shallow[-1].results[0]], axis=3,
                                   result_types=[FT(up.results[0].type.shape[:3] + (c + 7,), 8, 4)])
            cat.results[0].name_hint = "cat"
            ops += [side] + shallow + [cat]
            y = cat.results[0]
        return ops + conv_ops(y, rng, 5, (3, 3), pad=(1, 1, 1, 1), fps=(7, 6, 3), name="out")

    m = module_with((1, h, w, c), 4, build)
    xs = [rng.uniform(-2, 2, size=(1, h, w, c)).astype(np.float32) for _ in range(2)]
    prog = assert_bit_exact(m, f"DPUCZDX8G_ISA1_B{size}", xs)
    copies = [L for L in prog.layers if getattr(L, "role", "") == "copy"]
    assert len(copies) == (1 + with_concat) * scale[0] * scale[1]
