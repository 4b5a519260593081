"""fixflow.target.legality: the DPU engine rules, with the limits read from the Target."""

from __future__ import annotations

import math

import pytest

from fixflow.target import get_target
from fixflow.target import legality as L


def test_default_is_b4096():
    assert L.default_target().name == get_target("DPUCZDX8G_ISA1_B4096").name


@pytest.mark.parametrize("size", ["B512", "B1024", "B4096"])
def test_weight_bank_rule_follows_the_input_channel_parallelism(size):
    t = get_target(f"DPUCZDX8G_ISA1_{size}")
    # the largest input-channel count whose 3x3 kernel still fits: 9 * ceil(ic / icp) <= 2048
    ic_max = (2048 // 9) * t.icp
    assert L.conv_violation((3, 3), (1, 1), (1, 1, 1, 1), ic_max, t) is None
    bad = L.conv_violation((3, 3), (1, 1), (1, 1, 1, 1), ic_max + 1, t)
    assert bad == (f"kernel 3x3 with {ic_max + 1} input channels exceeds the weight bank "
                   f"(kernel_w * kernel_h * ceil(ic / {t.icp}) = {9 * math.ceil((ic_max + 1) / t.icp)} > 2048)")
    assert L.dense_violation(2048 * t.icp, t) is None
    assert L.dense_violation(2048 * t.icp + 1, t) == f"inner product with {2048 * t.icp + 1} inputs exceeds the weight bank"


@pytest.mark.parametrize("args,message", [
    (((17, 3), (1, 1), (0, 0, 0, 0), 4), "kernel (17, 3) is outside the DPU range [1, 16]"),
    (((3, 3), (9, 1), (0, 0, 0, 0), 4), "stride (9, 1) is outside the DPU range [1, 8]"),
    (((3, 3), (1, 1), (16, 0, 0, 0), 4), "pad (top, left) (16, 0) is outside the DPU range [0, 15]"),
    (((3, 3), (1, 1), (0, 256, 0, 0), 4), "pad (bottom, right) (256, 0) is outside the DPU range [0, 255]"),
])
def test_conv_ranges(args, message):
    assert L.conv_violation(*args) == message


def test_pool_and_depthwise_ranges():
    assert L.pool_violation((256, 256), (256, 256), (15, 255, 15, 255)) is None
    assert L.pool_violation((257, 1), (1, 1), (0, 0, 0, 0)) == "kernel (257, 1) is outside the DPU range [1, 256]"
    assert L.depthwise_violation((3, 3), (2, 2), (1, 1, 1, 1)) is None
    assert L.depthwise_violation((3, 17), (1, 1), (0, 0, 0, 0)) == "kernel (3, 17) is outside the DPU range [1, 16]"
    assert L.bit_width_violation(8) is None and "4-bit feature map" in L.bit_width_violation(4)
    assert L.bit_width_violation(4, "weights") is None and L.bit_width_violation(16, "bias") is not None


def test_fix_ops_ask_the_target_they_are_given():
    """A 3x3 conv over 1824 input channels fits B4096's weight bank (ICP 16) but not B512's (ICP 8)."""
    from fixflow.dialects.builtin import FuncOp
    from fixflow.dialects.fix import ops as Q
    func = FuncOp.create_function("f", [Q.fix_tensor((1, 8, 8, 1824), 8, 2), Q.fix_tensor((4, 3, 3, 1824), 8, 3)], [])
    x, w = func.body.args
    op = Q.Conv2dOp.build(x, w, None, kernel=(3, 3), pad=(1, 1, 1, 1), result_types=[Q.fix_tensor((1, 8, 8, 4), 8, 1)])
    assert op.dpu_violation(get_target("DPUCZDX8G_ISA1_B4096")) is None
    assert "ceil(ic / 8) = 2052 > 2048" in op.dpu_violation(get_target("DPUCZDX8G_ISA1_B512"))
    assert Q.dpu_violation(op) is None   # the default target is B4096
