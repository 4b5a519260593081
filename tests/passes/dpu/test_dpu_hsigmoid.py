"""Hard sigmoid on the ALU's HSIGMOID exec mode (ISA1 has it; hard swish has no ISA1 engine and stays on
the CPU): bit for bit against hard-sigmoid-fix over the whole int8 input range, random fix positions,
shapes and target sizes."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from _dpu_testlib import FT, SIZES, assert_bit_exact, compile_module, conv_ops, module_with
from fixflow.dialects.fix import ops as Q
from fixflow.passes.dpu.layers import AluLayer

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def hs_case(draw):
    return (draw(st.integers(1, 9)), draw(st.integers(1, 17)), draw(st.integers(1, 40)), draw(st.integers(0, 7)),
            draw(st.integers(7, 12)), draw(st.booleans()), draw(st.sampled_from(SIZES)), draw(st.integers(0, 2**16)))


@SETTINGS
@given(hs_case())
def test_hard_sigmoid_bit_exact(case):
    h, w, c, fi, fo, after_conv, size, seed = case
    rng = np.random.default_rng(seed)

    def build(x):
        ops = conv_ops(x, rng, c, (3, 3), pad=(1, 1, 1, 1), fps=(7, 6, fi), name="c1") if after_conv else []
        src = ops[-1].results[0] if after_conv else x
        hs = Q.HardSigmoidOp.build(src, result_types=[FT((1, h, w, c), 8, fo)])
        hs.results[0].name_hint = "hs"
        return ops + [hs]

    m = module_with((1, h, w, c), fi, build)
    # inputs spanning the whole int8 range at fix_pos fi (both saturation ends of hard sigmoid)
    xs = [rng.uniform(-130, 130, size=(1, h, w, c)).astype(np.float32) / 2.0**fi for _ in range(2)]
    prog = assert_bit_exact(m, f"DPUCZDX8G_ISA1_B{size}", xs)
    assert [L.mode for L in prog.layers if isinstance(L, AluLayer)] == ["hsigmoid"]


def test_hard_swish_stays_on_cpu():
    def build(x):
        op = Q.HardSwishOp.build(x, result_types=[FT(x.type.shape, 8, 4)])
        return [op]
    m = module_with((1, 3, 3, 4), 4, build)
    compile_module(m, "DPUCZDX8G_ISA1_B4096")
    op = next(o for o in next(iter(m.body.ops)).body.ops if o.name == "fix.hard_swish")
    assert "no hard-swish engine" in op.attributes["dpu.reason"].value
