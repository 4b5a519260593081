"""Constant pad on the DPU: the border SAVEd from a REG_0 row of the pad value, the input copied into
the interior by a 1x1 ALU copy (a view at origin (top, left)); bit for bit against the fix-level integer
execution over random pads, values, shapes and target sizes (the bank garbage prologue makes any
unwritten byte visible)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from _dpu_testlib import FT, SIZES, assert_bit_exact, compile_module, conv_ops, module_with
from fixflow.dialects.fix import ops as Q
from fixflow.passes.dpu.layers import FillLayer

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def pad_op(x, pad, value=0, mode="constant", name="padded"):
    _, h, w, c = x.type.shape
    pt, pb, pl, pr = pad
    op = Q.PadOp.build(x, pad=pad, value=value, mode=mode,
                       result_types=[FT((1, h + pt + pb, w + pl + pr, c), 8, x.type.element_type.fix_pos)])
    op.results[0].name_hint = name
    return op


@st.composite
def pad_case(draw):
    return (draw(st.integers(1, 9)), draw(st.integers(1, 80)), draw(st.integers(1, 40)),
            tuple(draw(st.integers(0, 4)) for _ in range(4)), draw(st.integers(-128, 127)), draw(st.booleans()),
            draw(st.sampled_from(SIZES)), draw(st.integers(0, 2**16)))


@SETTINGS
@given(pad_case())
def test_pad_bit_exact(case):
    h, w, c, pad, value, of_input, size, seed = case
    rng = np.random.default_rng(seed)

    def build(x):
        ops = [] if of_input else conv_ops(x, rng, c, (3, 3), pad=(1, 1, 1, 1), fps=(7, 6, 4), name="c1")
        p = pad_op(x if of_input else ops[-1].results[0], pad, value)
        return ops + [p] + conv_ops(p.results[0], rng, 5, (1, 1), fps=(7, 6, 3), name="out")

    m = module_with((1, h, w, c), 4, build)
    xs = [rng.uniform(-2, 2, size=(1, h, w, c)).astype(np.float32) for _ in range(2)]
    prog = assert_bit_exact(m, f"DPUCZDX8G_ISA1_B{size}", xs)
    assert sum(isinstance(L, FillLayer) for L in prog.layers) == (sum(pad) > 0)


def test_reflect_pad_stays_on_cpu():
    m = module_with((1, 4, 4, 3), 4, lambda x: [pad_op(x, (1, 1, 1, 1), mode="reflect")])
    compile_module(m, "DPUCZDX8G_ISA1_B512")
    p = next(op for op in next(iter(m.body.ops)).body.ops if op.name == "fix.pad")
    assert "reflect padding" in p.attributes["dpu.reason"].value
