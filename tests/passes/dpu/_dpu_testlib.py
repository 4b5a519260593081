"""Helpers for the DPU compiler tests: small random fix-level modules, the pass pipeline, and the
comparison of a compiled program on the DPU interpreter with the fix-level integer execution."""

from __future__ import annotations

import numpy as np

from fixflow.dialects.builtin import FuncOp, ModuleOp, ReturnOp
from fixflow.dialects.fix import ops as Q
from fixflow.ir.interpreter import run_function
from fixflow.ir.passes import PassManager
from fixflow.ir.types import TensorType, f32
from fixflow.passes.dpu.program import load_programs
from fixflow.runtime.dpu.interpreter import DPUInterpreter

SIZES = (512, 800, 1024, 1152, 1600, 2304, 3136, 4096)


def FT(shape, bw, fp):
    return Q.fix_tensor(shape, bw, fp)


def rand_ints(rng, shape, lo=-128, hi=127):
    return rng.integers(lo, hi + 1, size=shape).astype(np.int8)


def module_with(in_shape, fp_in, build):
    """A module: x [1, h, w, c] float -> fix.data (fp_in) -> `build(x_value)` ops -> fix.float -> return."""
    m = ModuleOp.empty()
    f = FuncOp.create_function("main", [TensorType(in_shape, f32)], [])
    m.body.append(f)
    x = Q.DataOp.build(f.args[0], result_types=[FT(in_shape, 8, fp_in)])
    x.results[0].name_hint = "x_q"
    f.body.append(x)
    ops = build(x.results[0])
    for o in ops:
        f.body.append(o)
    fl = Q.FloatOp.build(ops[-1].results[0])
    f.body.append(fl)
    f.body.append(ReturnOp.build([fl.results[0]]))
    f.update_function_type()
    m.verify()
    return m


def conv_ops(x, rng, oc, kernel, stride=(1, 1), pad=(0, 0, 0, 0), act="NONE", fps=(7, 6, 4), bias=True,
             name="conv"):
    """const weights/bias + fix.conv2d; fps = (fp_w, fp_b, fp_out)."""
    _, h, w, c = x.type.shape
    fw, fb, fo = fps
    wc = Q.ConstOp.from_ints(rand_ints(rng, (oc, kernel[0], kernel[1], c)), 8, fw)
    b = Q.ConstOp.from_ints(rand_ints(rng, (oc,)), 8, fb) if bias else None
    oh = Q.conv_out_size(h, kernel[0], stride[0], pad[0], pad[1])
    ow = Q.conv_out_size(w, kernel[1], stride[1], pad[2], pad[3])
    conv = Q.Conv2dOp.build(x, wc.results[0], b.results[0] if b else None, kernel=kernel, stride=stride, pad=pad,
                            nonlinear=act, result_types=[FT((1, oh, ow, oc), 8, fo)])
    conv.results[0].name_hint = name
    return [wc] + ([b] if b else []) + [conv]


def dw_ops(x, rng, kernel, stride=(1, 1), pad=(0, 0, 0, 0), act="NONE", fps=(7, 6, 4), bias=True, name="dw"):
    _, h, w, c = x.type.shape
    fw, fb, fo = fps
    wc = Q.ConstOp.from_ints(rand_ints(rng, (1, kernel[0], kernel[1], c)), 8, fw)
    b = Q.ConstOp.from_ints(rand_ints(rng, (c,)), 8, fb) if bias else None
    oh = Q.conv_out_size(h, kernel[0], stride[0], pad[0], pad[1])
    ow = Q.conv_out_size(w, kernel[1], stride[1], pad[2], pad[3])
    op = Q.DepthwiseConv2dOp.build(x, wc.results[0], b.results[0] if b else None, kernel=kernel, stride=stride,
                                   pad=pad, nonlinear=act, result_types=[FT((1, oh, ow, c), 8, fo)])
    op.results[0].name_hint = name
    return [wc] + ([b] if b else []) + [op]


def pool_ops(x, typ, kernel, stride, pad=(0, 0, 0, 0), fp_out=None, name="pool"):
    _, h, w, c = x.type.shape
    fo = x.type.element_type.fix_pos if fp_out is None else fp_out
    oh = Q.conv_out_size(h, kernel[0], stride[0], pad[0], pad[1])
    ow = Q.conv_out_size(w, kernel[1], stride[1], pad[2], pad[3])
    op = Q.PoolOp.build(x, type=typ, kernel=kernel, stride=stride, pad=pad,
                        result_types=[FT((1, oh, ow, c), 8, fo)])
    op.results[0].name_hint = name
    return [op]


def dense_ops(x, rng, out, fps=(7, 6, 4), act="NONE", name="fc"):
    """reshape to [1, K] + dense (the DPU runs it as a conv over the map)."""
    k = int(np.prod(x.type.shape))
    r = Q.ReshapeOp.build(x, shape=(1, k))
    r.results[0].name_hint = name + "_flat"
    fw, fb, fo = fps
    wc = Q.ConstOp.from_ints(rand_ints(rng, (out, k)), 8, fw)
    b = Q.ConstOp.from_ints(rand_ints(rng, (out,)), 8, fb)
    d = Q.DenseOp.build(r.results[0], wc.results[0], b.results[0], nonlinear=act,
                        result_types=[FT((1, out), 8, fo)])
    d.results[0].name_hint = name
    return [r, wc, b, d]


def compile_module(m, target: str, tiling: str = "", check: bool = True):
    """Run the DPU compiler's passes on `m` (in place)."""
    pipe = f"partition{{target={target}}},allocate-ddr,lower-to-dpu{{tiling={tiling}}},schedule-dpu"
    if check:
        pipe += ",verify-dpu-schedule"
    PassManager.parse(pipe).run(m)
    return m


def quantize_zoo_model(make_model, calib, out_dir, example=None):
    """The fix module of ``make_model()`` calibrated on the float32 batches ``calib`` (exported to
    ``out_dir``); ``example`` (default: the first image of ``calib[0]``) traces the model."""
    import torch
    from fixflow.quantizer import Quantizer
    ex = (torch.from_numpy(calib[0][:1] if example is None else example),)
    q = Quantizer(make_model(), ex, mode="calib", output_dir=out_dir, log=None, progress=False)
    for batch in calib:
        q.quant_model(torch.from_numpy(batch))
    q.export_quant_config()
    return Quantizer(make_model(), ex, mode="test", output_dir=out_dir, log=None, progress=False).fix_module


def compile_whole(fix_module, target: str):
    """Compile a clone of ``fix_module`` for ``target``, check that only the final fix.float stays on the
    CPU, and return (compiled module, its one DPU program)."""
    m = fix_module.clone()
    compile_module(m, target)
    func = next(iter(m.body.ops))
    on_cpu = [op.name for op in func.body.ops if op.attributes.get("dpu.device") is not None
              and op.attributes["dpu.device"].value == "CPU"]
    assert on_cpu == ["fix.float"]
    (prog,) = load_programs(m)
    return m, prog


def fix_reference(m, x):
    """(int8 input of the DPU subgraph, int8 result before fix.float) of the fix-level integer execution."""
    func = next(op for op in m.body.ops if op.name == "func.func")
    vals = {}

    def obs(op, ys):
        for r, v in zip(op.results, ys):
            vals[r] = np.asarray(v)

    run_function(func, [x], obs)
    data = next(op for op in func.body.ops if op.name == "fix.data")
    fl = next(op for op in func.body.ops if op.name == "fix.float")
    return vals[data.results[0]][0], vals[fl.operands[0]][0]


GARBAGE_REG = 7


def garbage_prologue(target, seed=0):
    """LOADs filling every line of every bank with random bytes (from DDR region 7), and that region:
    run before a program, they make any read of a line the program did not write visible."""
    from fixflow.dialects.dpu.isa import Instruction
    depth = target.banks[0].depth
    rng = np.random.default_rng(seed)
    data = rng.integers(-128, 128, size=depth * target.icp, dtype=np.int8).tobytes()
    instrs = []
    for g in target.banks:
        for b in g.ids:
            for start in range(0, depth, 1024):
                n = min(1024, depth - start)
                instrs.append(Instruction.make("LOAD", bank_id=b, bank_addr=start, jump_read=g.width_bytes,
                                               jump_write=1, pad_idx=1, channel=g.width_bytes, length=n,
                                               reg_id=GARBAGE_REG, ddr_addr=start * g.width_bytes))
    return instrs, data


def run_program(prog, xin, mode="reference", garbage=True):
    regs = prog.regions([xin])
    instrs = list(prog.instructions)
    if garbage:
        pre, data = garbage_prologue(prog.target)
        instrs = pre + instrs
        regs[GARBAGE_REG] = data
    out = DPUInterpreter(prog.target, instrs, regs, mode=mode).run()
    return prog.read_outputs(out)[0]


def assert_bit_exact(m, target: str, xs, tiling: str = "", mode: str = "reference"):
    """Compile `m` for `target`, run every input of `xs` through the program, compare with fix."""
    compile_module(m, target, tiling)
    (prog,) = load_programs(m)
    for x in xs:
        xin, ref = fix_reference(m, x)
        got = run_program(prog, xin, mode)
        np.testing.assert_array_equal(got.reshape(-1), ref.reshape(-1))
    return prog
