"""Concat by placement: producers SAVE straight into their channel slice of the concat's buffer and
consumers LOAD slices with the concat's pixel stride; inputs that cannot be placed (the subgraph's
input, another fix_pos, a value in two concats) are copied in by a 1x1 ALU max pool. Every case is
compared bit for bit with the fix-level integer execution, over random shapes and target sizes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from _dpu_testlib import FT, SIZES, assert_bit_exact, compile_module, conv_ops, module_with, pool_ops
from fixflow.dialects.fix import ops as Q
from fixflow.passes.dpu.layers import Concat

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def concat_op(vals, fp, name="cat", axis=3):
    shape = list(vals[0].type.shape)
    shape[axis] = sum(v.type.shape[axis] for v in vals)
    op = Q.ConcatOp.build(list(vals), axis=axis, result_types=[FT(tuple(shape), 8, fp)])
    op.results[0].name_hint = name
    return op


def fire(x, rng, c1, c3, fps=(4, 4), with_input=False, reuse=False):
    """conv 1x1 (c1) and conv 3x3 pad 1 (c3) of x, concatenated (at fix_pos 4), then a 3x3 conv of the
    concat; `with_input` adds x itself (the subgraph's input: a copy) and `reuse` a second concat of the
    1x1 branch (a value in two concats: the second one copies) plus a pool reading the 3x3 slice."""
    a = conv_ops(x, rng, c1, (1, 1), act="RELU", fps=(7, 6, fps[0]), name="e1")
    b = conv_ops(x, rng, c3, (3, 3), pad=(1, 1, 1, 1), act="RELU", fps=(7, 6, fps[1]), name="e3")
    ins = [a[-1].results[0], b[-1].results[0]] + ([x] if with_input else [])
    cat = concat_op(ins, 4)
    ops = a + b + [cat]
    if reuse:
        p = pool_ops(b[-1].results[0], "MAX", (3, 3), (1, 1), (1, 1, 1, 1), name="p3")
        cat2 = concat_op([cat.results[0], a[-1].results[0], p[-1].results[0]], 4, "cat2")
        ops += p + [cat2]
        cat = cat2
    ops += conv_ops(cat.results[0], rng, 5, (3, 3), pad=(1, 1, 1, 1), fps=(7, 6, 3), name="out")
    return ops


@st.composite
def fire_case(draw):
    return (draw(st.integers(1, 12)), draw(st.integers(1, 12)), draw(st.integers(1, 20)), draw(st.integers(1, 40)),
            draw(st.integers(1, 40)), draw(st.sampled_from([(4, 4), (4, 5), (3, 4)])), draw(st.booleans()),
            draw(st.booleans()), draw(st.sampled_from(SIZES)), draw(st.integers(0, 2**16)))


@SETTINGS
@given(fire_case())
def test_concat_bit_exact(case):
    h, w, c, c1, c3, fps, with_input, reuse, size, seed = case
    rng = np.random.default_rng(seed)
    m = module_with((1, h, w, c), 4, lambda x: fire(x, rng, c1, c3, fps, with_input, reuse))
    xs = [rng.uniform(-2, 2, size=(1, h, w, c)).astype(np.float32) for _ in range(2)]
    prog = assert_bit_exact(m, f"DPUCZDX8G_ISA1_B{size}", xs)
    cats = [L for L in prog.layers if isinstance(L, Concat)]
    assert len(cats) == 1 + reuse
    copies = [L for L in prog.layers if getattr(L, "role", "") == "copy"]
    # placed: the branches at the concat's fix_pos, produced here, in one concat only
    # copied: a branch at another fix_pos, x; in cat2 the 1x1 branch (already in cat) and the pool
    # when at another fix_pos (it keeps e3's); cat itself is placed into cat2
    expect = (fps[0] != 4) + (fps[1] != 4) + with_input + (reuse and 1 + (fps[1] != 4))
    assert len(copies) == expect


@pytest.mark.parametrize("size", [512, 4096])
def test_placed_slices_are_strided_saves(size):
    """No copy when both branches are at the concat's fix_pos: the branch convs SAVE with the concat's
    pixel stride, at their channel offset."""
    rng = np.random.default_rng(1)
    m = module_with((1, 9, 7, 6), 4, lambda x: fire(x, rng, 11, 13))
    prog = assert_bit_exact(m, f"DPUCZDX8G_ISA1_B{size}", [rng.uniform(-2, 2, (1, 9, 7, 6)).astype(np.float32)])
    assert not [L for L in prog.layers if getattr(L, "role", "") == "copy"]
    saves = [(t.ins.fields["jump_write"], prog.layers[t.layer].name) for t in prog.emitter.out
             if t.ins.name == "SAVE" and prog.layers[t.layer].name in ("e1", "e3")]
    assert {j for j, _ in saves} == {24} and {n for _, n in saves} == {"e1", "e3"}
    cat = next(L for L in prog.layers if isinstance(L, Concat))
    assert [f.c_off for f in cat.ins] == [0, 11]


def test_concat_not_on_channels_stays_on_cpu():
    rng = np.random.default_rng(2)

    def build(x):
        a = conv_ops(x, rng, 4, (1, 1), fps=(7, 6, 4), name="a")
        b = conv_ops(x, rng, 4, (1, 1), fps=(7, 6, 4), name="b")
        return a + b + [concat_op([a[-1].results[0], b[-1].results[0]], 4, axis=1)]
    m = module_with((1, 5, 5, 3), 4, build)
    compile_module(m, "DPUCZDX8G_ISA1_B1024")
    cat = next(op for op in next(iter(m.body.ops)).body.ops if op.name == "fix.concat")
    assert cat.attributes["dpu.device"].value == "CPU"
    assert "along axis 1" in cat.attributes["dpu.reason"].value
