"""Partition: per-op placement with reasons, maximal subgraphs, the annotations the pass writes."""

from __future__ import annotations

import numpy as np
import pytest

from _dpu_testlib import FT, compile_module, conv_ops, dense_ops, dw_ops, module_with, pool_ops, rand_ints
from fixflow.dialects.fix import ops as Q
from fixflow.ir import parse_module, print_module
from fixflow.ir.diagnostics import FixflowError
from fixflow.ir.passes import PassManager
from fixflow.passes.dpu.partition import dpu_reason, placements, subgraphs
from fixflow.passes.dpu.program import annotated_subgraphs, load_programs
from fixflow.target import get_target

B4096 = get_target("DPUCZDX8G_ISA1_B4096")
B512 = get_target("DPUCZDX8G_ISA1_B512")


def _func(m):
    return next(iter(m.body.ops))


def _op(m, name):
    return next(op for op in _func(m).body.ops if op.name == name)


def _reason(build, target=B4096, in_shape=(1, 8, 8, 4), kind="fix.conv2d"):
    m = module_with(in_shape, 5, build)
    return dpu_reason(_op(m, kind), target)


def test_supported_ops_have_no_reason():
    rng = np.random.default_rng(0)
    assert _reason(lambda x: conv_ops(x, rng, 8, (3, 3), (2, 2), (1, 1, 1, 1), "RELU")) is None
    assert _reason(lambda x: dw_ops(x, rng, (3, 3), act="RELU"), kind="fix.depthwise_conv2d") is None
    assert _reason(lambda x: pool_ops(x, "MAX", (2, 2), (2, 2)), kind="fix.pool") is None
    assert _reason(lambda x: dense_ops(x, rng, 10), kind="fix.dense") is None


@pytest.mark.parametrize("build, kind, target, words", [
    (lambda x, r: conv_ops(x, r, 8, (3, 3), act="RELU6", fps=(7, 6, 3)), "fix.conv2d", B4096,
     "RELU6 clamps at 96"),
    (lambda x, r: dw_ops(x, r, (3, 3), act="LEAKYRELU"), "fix.depthwise_conv2d", B4096,
     "alu engine has no fused LEAKYRELU"),
    (lambda x, r: conv_ops(x, r, 8, (1, 1), (9, 9)), "fix.conv2d", B4096, "stride 9x9 is outside"),
    (lambda x, r: conv_ops(x, r, 8, (3, 3), pad=(0, 3, 0, 0)), "fix.conv2d", B4096, "bottom/right padding 3/0"),
    (lambda x, r: conv_ops(x, r, 8, (3, 3), pad=(3, 0, 0, 0)), "fix.conv2d", B4096, None),
    (lambda x, r: pool_ops(x, "MAX", (2, 2), (2, 2), fp_out=5 + 9), "fix.pool", B4096, "beyond the ALU shift_cut"),
])
def test_cpu_reasons(build, kind, target, words):
    rng = np.random.default_rng(1)
    r = _reason(lambda x: build(x, rng), target, kind=kind)
    if words is None:
        assert r is None      # top padding 3 of a 3x3 kernel is a legal encoding (pad_top is a count)
    else:
        assert r is not None and words in r, r


def test_weight_bank_and_kernel_limits():
    rng = np.random.default_rng(2)
    r = _reason(lambda x: conv_ops(x, rng, 4, (16, 16)), B4096, in_shape=(1, 16, 16, 144))
    assert r is not None and "lines of a weight bank" in r
    r = _reason(lambda x: dense_ops(x, rng, 4), B4096, in_shape=(1, 17, 17, 2), kind="fix.dense")
    assert r is not None and "kernel 17x17 is outside the conv engine's 1-16" in r


def test_dilation_and_unlowered_ops():
    rng = np.random.default_rng(3)

    def dilated(stride, out):
        def build(x):
            ops = conv_ops(x, rng, 4, (3, 3))
            c = ops[-1]
            d = Q.Conv2dOp.build(x, c.operands[1], c.operands[2], kernel=(3, 3), dilation=(2, 2), stride=stride,
                                 result_types=[FT((1, out, out, 4), 8, 4)])
            return ops[:-1] + [d]
        return build

    assert _reason(dilated((1, 1), 4)) is None              # 4 undilated convs (tests/passes/dpu/test_dpu_dilation.py)
    assert _reason(dilated((2, 2), 2)) is None              # 1 conv over the even pixels

    def cat(x):
        return [Q.ConcatOp.build([x, x], axis=3, result_types=[FT((1, 8, 8, 8), 8, 5)])]

    assert _reason(cat, kind="fix.concat") is None          # by placement (x itself copied in)

    def wcat(x):
        return [Q.ConcatOp.build([x, x], axis=2, result_types=[FT((1, 8, 16, 4), 8, 5)])]

    assert "along axis 2" in _reason(wcat, kind="fix.concat")

    def add(x):
        return [Q.EltwiseOp.build([x, x], type="ADD", nonlinear="RELU", result_types=[FT(x.type.shape, 8, 4)])]

    assert _reason(add, kind="fix.eltwise") is None

    def bcast(x):
        b = Q.PoolOp.build(x, type="MAX", kernel=(8, 8), stride=(8, 8), result_types=[FT((1, 1, 1, 4), 8, 5)])
        return [b, Q.EltwiseOp.build([x, b.results[0]], type="MUL", result_types=[FT(x.type.shape, 8, 4)])]

    assert "broadcasting" in _reason(bcast, kind="fix.eltwise")

    def plus_const(x):
        k = Q.ConstOp.from_ints(rand_ints(rng, x.type.shape), 8, 5)
        return [k, Q.EltwiseOp.build([x, k.results[0]], type="ADD", result_types=[FT(x.type.shape, 8, 4)])]

    assert "constant feature-map operand" in _reason(plus_const, kind="fix.eltwise")


def _dpu_cpu_dpu(rng):
    def build(x):
        ops = conv_ops(x, rng, 8, (3, 3), pad=(1, 1, 1, 1), act="RELU", name="c1")
        add = Q.ConcatOp.build([ops[-1].results[0], ops[-1].results[0]], axis=2,
                               result_types=[FT((1, 6, 12, 8), 8, 4)])
        add.results[0].name_hint = "add"
        ops.append(add)
        ops += conv_ops(add.results[0], rng, 4, (1, 1), act="RELU", fps=(7, 6, 3), name="c2")
        return ops
    return module_with((1, 6, 6, 3), 5, build)


def test_subgraphs_split_around_cpu_ops():
    m = _dpu_cpu_dpu(np.random.default_rng(4))
    sgs = subgraphs(_func(m), placements(_func(m), B4096))
    assert [(s.name, s.device) for s in sgs][:4] == [
        ("subgraph_x_q", "USER"), ("subgraph_c1", "DPU"), ("subgraph_add", "CPU"), ("subgraph_c2", "DPU")]
    assert [s.device for s in sgs[4:]] == ["CPU"]          # the fix.float of the result
    c1 = sgs[1]
    assert [v.name_hint for v in c1.inputs] == ["x_q"] and [v.name_hint for v in c1.outputs] == ["c1"]
    assert all(op.name in ("fix.const", "fix.conv2d") for op in c1.ops)


def test_pass_annotations_round_trip_and_two_programs():
    m = _dpu_cpu_dpu(np.random.default_rng(5))
    compile_module(m, "DPUCZDX8G_ISA1_B512")
    add = _op(m, "fix.concat")
    assert add.attributes["dpu.device"].value == "CPU"
    assert "concat" in add.attributes["dpu.reason"].value
    assert _func(m).attributes["dpu.target"].value == "DPUCZDX8G_ISA1_B512"
    progs = [op for op in m.body.ops if op.name == "dpu.program"]
    assert [p.sym_name for p in progs] == ["subgraph_c1", "subgraph_c2"]
    text = print_module(m)
    m2 = parse_module(text)
    assert print_module(m2) == text
    assert [s.name for s in annotated_subgraphs(_func(m2)) if s.device == "DPU"] == ["subgraph_c1", "subgraph_c2"]
    # the second subgraph reads its input (the CPU add's result) from REG_2
    assert list(add.attributes["dpu.ddr"].value) == [2, 0]


def test_lowering_needs_partition_first():
    m = module_with((1, 4, 4, 2), 5, lambda x: pool_ops(x, "MAX", (2, 2), (2, 2)))
    with pytest.raises(FixflowError, match="run 'partition' first"):
        PassManager.parse("allocate-ddr").run(m)
    PassManager.parse("partition").run(m)
    with pytest.raises(FixflowError, match="no DDR address .*run allocate-ddr first"):
        PassManager.parse("lower-to-dpu").run(m)


def test_bad_target_and_tiling_option():
    m = module_with((1, 16, 4, 2), 5, lambda x: pool_ops(x, "MAX", (2, 2), (2, 2)))
    with pytest.raises(FixflowError, match="B9999"):
        PassManager.parse("partition{target=DPUCZDX8G_ISA1_B9999}").run(m)
    PassManager.parse("partition,allocate-ddr").run(m)
    with pytest.raises(FixflowError, match="tiling entry 'pool:4'"):
        PassManager.parse("lower-to-dpu{tiling=pool:4}").run(m)
    with pytest.raises(FixflowError, match="names no layer"):
        PassManager.parse("lower-to-dpu{tiling=nope:4:1}").run(m)
    with pytest.raises(FixflowError, match="multiple of 4"):
        PassManager.parse("lower-to-dpu{tiling=pool:6:1}").run(m)


def test_two_dpu_subgraphs_around_a_cpu_op_run_bit_exact():
    """Program 1 on the DPU interpreter, the CPU concat at the fix level, program 2 on the interpreter:
    equal to the whole module's integer execution (REG_2/REG_3 interfaces across subgraphs)."""
    from _dpu_testlib import fix_reference, run_program
    m = _dpu_cpu_dpu(np.random.default_rng(6))
    compile_module(m, "DPUCZDX8G_ISA1_B1024")
    p1, p2 = load_programs(m)
    x = np.random.default_rng(7).uniform(-2, 2, (1, 6, 6, 3)).astype(np.float32)
    xin, ref = fix_reference(m, x)
    y1 = run_program(p1, xin)
    cat = _op(m, "fix.concat")
    mid = cat.evaluate([y1[None], y1[None]])[0][0]
    y2 = run_program(p2, mid)
    np.testing.assert_array_equal(y2.reshape(-1), ref.reshape(-1))
