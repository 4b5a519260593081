"""Partition: which `fix` ops the target's DPU runs, and the maximal DPU / CPU subgraphs.

Per op, `placement(op, target)` gives the device and, for the CPU, the reason (op kind, an attribute,
or an engine limit of `fixflow.target`). Subgraphs: every op gets an epoch, the number of device
changes on its longest path from the inputs (`max(epoch(producer) + (device differs))`); DPU ops of
one epoch joined by DPU-to-DPU edges form one DPU subgraph. No path leaves a DPU subgraph through the
CPU and comes back to it (that would take two device changes), so subgraphs never form a cycle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ...dialects.fix.ops import fixed_type
from ...ir.core import Operation, Value
from ...dialects.fix.numerics import avgpool_multiplier
from .layers import dilation_phases
from .tiling import Geometry, TilingError, plan, plan_channels

DPU, CPU, USER = "DPU", "CPU", "USER"
NONLINEAR = {"NONE": None, "RELU": "relu", "LEAKYRELU": "leaky_relu", "RELU6": "relu6"}
SHIFT_BIAS_FIELD_MAX = 20      # AMD's simulator rejects more (dpu-semantics.md C10)
SHIFT_CUT_FIELD_MAX = 63       # 6-bit field
_CONSTS = ("fix.const", "graph.constant")   # constants follow their consumers (a float one: a CPU layer's weights)


@dataclass(eq=False)
class Subgraph:
    """A maximal group of ops on one device, in program order."""

    name: str
    device: str
    ops: list[Operation] = field(default_factory=list)
    inputs: list[Value] = field(default_factory=list)
    outputs: list[Value] = field(default_factory=list)


def _name(op: Operation) -> str:
    if op.results and op.results[0].name_hint:
        return op.results[0].name_hint
    return op.name


def _fp(v: Value) -> int:
    return v.type.element_type.fix_pos


def _bits_ok(op: Operation) -> str | None:
    from ...target.legality import bit_width_violation
    role = getattr(op, "operand_role", lambda i: "input")
    for v, r in [*((v, role(i)) for i, v in enumerate(op.operands)), *((v, "output") for v in op.results)]:
        ft = fixed_type(v.type)
        if ft is None:
            return f"a {v.type} operand or result is not fixed point"
        bad = bit_width_violation(ft.bit_width, r)
        if bad is not None:
            return f"{_name(op)}: {bad}"
    for r in op.results:
        if r.type.rank >= 1 and r.type.shape[0] != 1 and r.type.rank in (2, 4):
            return f"batch {r.type.shape[0]}: the DPU program runs one sample at a time (quantize with batch 1)"
    return None


def _window_reason(engine: str, kernel, stride, pad, lim, what: str) -> str | None:
    kh, kw = kernel
    sh, sw = stride
    pt, pb, pl, pr = pad
    if kh not in lim.kernel or kw not in lim.kernel:
        return f"{what} kernel {kh}x{kw} is outside the {engine} engine's {lim.kernel}"
    if sh not in lim.stride or sw not in lim.stride:
        return f"{what} stride {sh}x{sw} is outside the {engine} engine's {lim.stride}"
    if pt > 15 or pl > 15:
        return f"{what} top/left padding {pt}/{pl} is beyond the 4-bit pad fields (0-15)"
    if pb > kh - 1 or pr > kw - 1:
        return f"{what} bottom/right padding {pb}/{pr} is not below the kernel size (the engine encodes kernel-1-pad)"
    return None


def _tiling_reason(target, h, w, c, oh, ow, kernel, stride, pad, opl, alu: bool) -> str | None:
    cg = math.ceil(c / target.icp)
    sh, sw = (1 if oh == 1 else stride[0]), (1 if ow == 1 else stride[1])
    g = Geometry(h, w, cg, oh, ow, kernel[0], kernel[1], sh, sw, pad[0], pad[2], opl,
                 target.alu_pp if alu else target.pp, alu)
    try:
        (plan_channels if alu else plan)(g, target.pp, target.feature_map_groups[0].depth // 2)
    except TilingError as e:
        return f"no tiling fits the feature-map banks: {e}"
    return None


def _act_reason(op, engine: str, target) -> str | None:
    act = op.nonlinear
    name = NONLINEAR[act]
    if name is not None and name not in target.supported_nonlinear(engine):
        return f"{target.name}'s {engine} engine has no fused {act}"
    if act == "RELU6" and op.fp_out != 4:
        return (f"fused RELU6 clamps at 96 in hardware, which is 6.0 only at output fix_pos 4 "
                f"(this op's is {op.fp_out})")
    return None


def _shift_reason(op) -> str | None:
    sc, sb = op.shifts()
    if not 0 <= sc <= SHIFT_CUT_FIELD_MAX:
        return f"shift_cut {sc} does not fit the 6-bit field"
    if sb is not None and not 0 <= sb + 1 <= SHIFT_BIAS_FIELD_MAX:
        return f"shift_bias field {sb + 1} (fp_in + fp_w - fp_bias + 1) is outside 0-{SHIFT_BIAS_FIELD_MAX}"
    return None


def _alu_shift_ok(d: int) -> bool:
    """An ALU pool scales by 2**-d through shift_cut: 8 + d for d >= 0 (6-bit field), -d < 8 for d < 0."""
    return 8 + d <= SHIFT_CUT_FIELD_MAX if d >= 0 else -d <= 7


def _dense_source(op) -> tuple[int, int, int]:
    v = op.input
    p = v.op if hasattr(v, "op") else None
    if p is not None and p.name == "fix.reshape" and p.operands[0].type.rank == 4:
        _, h, w, c = p.operands[0].type.shape
        return h, w, c
    return 1, 1, v.type.shape[-1]


def dpu_reason(op: Operation, target) -> str | None:
    """None when `target`'s DPU runs `op`; else why it stays on the CPU."""
    kind = op.name
    if kind in ("fix.conv2d", "fix.dense", "fix.depthwise_conv2d", "fix.pool", "fix.eltwise"):
        maps = op.operands if kind == "fix.eltwise" else op.operands[:1]
        if any(getattr(getattr(v, "op", None), "name", None) == "fix.const" for v in maps):
            return "a constant feature-map operand is not lowered by fixflow's DPU compiler yet"
    if kind in ("fix.conv2d", "fix.dense", "fix.depthwise_conv2d", "fix.pool"):
        r = _bits_ok(op)
        if r:
            return r
    if kind == "fix.conv2d":
        kh, kw = op.kernel
        pad = tuple(op.pad)
        if tuple(op.dilation) != (1, 1):       # dh * dw undilated convs over pixel-stepped views
            phases = dilation_phases(op)
            if isinstance(phases, str):
                return phases
            pad = tuple(max(p[2][k] for p in phases) for k in range(4)) if phases else (0, 0, 0, 0)
        r = (_window_reason("conv", op.kernel, op.stride, pad, target.conv, "conv") or _act_reason(op, "conv", target)
             or _shift_reason(op))
        if r:
            return r
        ic = op.input.type.shape[3]
        if not target.fits_weight_bank(kw, kh, ic):
            return (f"{kh}x{kw}x{ic} weights need {target.conv_weight_lines(kw, kh, ic)} lines of a weight bank "
                    f"(depth {target.bank_group_named('CONVW').depth})")
        _, h, w, _ = op.input.type.shape
        _, oh, ow, _ = op.results[0].type.shape
        return _tiling_reason(target, h, w, ic, oh, ow, tuple(op.kernel), tuple(op.stride), pad, 1, False)
    if kind == "fix.dense":
        h, w, c = _dense_source(op)
        r = (_window_reason("conv", (h, w), (1, 1), (0, 0, 0, 0), target.conv, "dense (as a conv over the map)")
             or _act_reason(op, "conv", target) or _shift_reason(op))
        if r:
            return r
        if not target.fits_weight_bank(w, h, c):
            return f"dense weights need {target.conv_weight_lines(w, h, c)} lines of a weight bank"
        return _tiling_reason(target, h, w, c, 1, 1, (h, w), (1, 1), (0, 0, 0, 0), 1, False)
    if kind == "fix.depthwise_conv2d":
        if tuple(op.dilation) != (1, 1):
            return f"dilation {tuple(op.dilation)}: fixflow's DPU lowering handles dilation 1 only"
        pad = tuple(op.pad)
        r = (_window_reason("alu", op.kernel, op.stride, pad, target.alu, "depthwise conv")
             or _act_reason(op, "alu", target) or _shift_reason(op))
        if r:
            return r
        _, h, w, c = op.input.type.shape
        kh, kw = op.kernel
        if kh * kw * math.ceil(c / target.icp) > target.bank_group_named("DWCONVW").depth:
            return "depthwise weights exceed the depthwise weight bank"
        _, oh, ow, _ = op.results[0].type.shape
        cg = math.ceil(c / target.icp)
        return _tiling_reason(target, h, w, c, oh, ow, tuple(op.kernel), tuple(op.stride), pad, cg, True)
    if kind == "fix.pool":
        pad = tuple(op.pad)
        r = _window_reason("alu", op.kernel, op.stride, pad, target.alu, f"{op.type.lower()} pool")
        if r:
            return r
        fi, fo = _fp(op.input), op.fp_out
        if op.type == "MAX":
            if not _alu_shift_ok(fi - fo):
                return f"max pool rescale from fix_pos {fi} to {fo} is beyond the ALU shift_cut"
        else:
            mult, shift = avgpool_multiplier(op.kernel[0], op.kernel[1])
            if not 0 <= mult <= 127:
                return f"average pool multiplier {mult} does not fit the signed 8-bit multi_factor"
            if not _alu_shift_ok(shift + fi - fo):
                return f"average pool rescale 2^-{shift + fi - fo} is beyond the ALU shift_cut"
        _, h, w, c = op.input.type.shape
        _, oh, ow, _ = op.results[0].type.shape
        cg = math.ceil(c / target.icp)
        return _tiling_reason(target, h, w, c, oh, ow, tuple(op.kernel), tuple(op.stride), pad, cg, True)
    if kind == "fix.eltwise":
        return _eltwise_reason(op, target)
    if kind == "fix.concat":
        return _concat_reason(op, target)
    if kind == "fix.upsample":
        return _upsample_reason(op, target)
    if kind == "fix.pad":
        return _pad_reason(op, target)
    if kind == "fix.hard_sigmoid":
        return _hsigmoid_reason(op, target)
    if kind == "fix.transposed_conv2d":
        return _tconv_reason(op, target)
    reasons = {
        "fix.transpose": "the DPU has no transpose",
        "fix.hard_swish": "ISA1 DPUs have no hard-swish engine",
        "fix.float": "fixed-to-float conversion runs on the CPU (the DPU computes in fixed point only)",
        "fix.fix": "float/fixed conversion runs on the CPU",
    }
    if kind in reasons:
        return reasons[kind]
    if kind.startswith("fix."):
        return f"'{kind}' has no DPU lowering"
    return f"'{kind}' is a float op (CPU fallback)"


def _eltwise_reason(op, target) -> str | None:
    from ...dialects.fix.kernels import elew_shifts
    from ...dialects.fix.numerics import NumericsError
    r = _bits_ok(op)
    if r:
        return r
    shapes = {tuple(v.type.shape) for v in op.operands}
    if shapes != {tuple(op.results[0].type.shape)} or op.results[0].type.rank != 4:
        return f"element-wise inputs {sorted(shapes)} need broadcasting; the ELEW engine adds equal NHWC maps"
    name = NONLINEAR[op.nonlinear]
    if name is not None and name not in target.supported_nonlinear("elew"):
        return f"{target.name}'s elew engine has no fused {op.nonlinear}"
    try:
        elew_shifts([_fp(v) for v in op.operands], op.fp_out, op.type)
    except NumericsError as e:
        return f"element-wise shifts do not fit the ELEW fields: {e}"
    _, h, w, c = op.results[0].type.shape
    cg = math.ceil(c / target.icp)
    g = Geometry(h, w, cg, h, w, 1, 1, 1, 1, 0, 0, cg, target.alu_pp, True, len(op.operands))
    try:
        plan_channels(g, target.pp, target.feature_map_groups[0].depth // 2)
    except TilingError as e:
        return f"no tiling fits the feature-map banks: {e}"
    return None


def _concat_reason(op, target) -> str | None:
    """A channel concat runs by placement; an input that cannot be placed is copied by a 1x1 ALU max pool."""
    r = _bits_ok(op)
    if r:
        return r
    if op.results[0].type.rank != 4 or op._axis() != 3:
        return f"concat along axis {op.axis}: the DPU places inputs side by side along channels (NHWC axis 3) only"
    if any(getattr(getattr(v, "op", None), "name", None) == "fix.const" for v in op.operands):
        return "a constant feature-map operand is not lowered by fixflow's DPU compiler yet"
    fo = op.fp_out
    for k, v in enumerate(op.operands):
        if not _alu_shift_ok(_fp(v) - fo):
            return f"concat input {k} rescale from fix_pos {_fp(v)} to {fo} is beyond the ALU shift_cut"
        _, h, w, c = v.type.shape
        cg = math.ceil(c / target.icp)
        r = _tiling_reason(target, h, w, c, h, w, (1, 1), (1, 1), (0, 0, 0, 0), cg, True)
        if r:
            return r
    return None


def _upsample_reason(op, target) -> str | None:
    """Nearest upsample: sh * sw 1x1 ALU copies SAVEd with strides (row sh, pixel sw)."""
    r = _bits_ok(op)
    if r:
        return r
    if op.mode != "NEAREST":
        return f"{op.mode} upsampling: the DPU lowering does nearest neighbour only"
    _, h, w, c = op.input.type.shape
    sh, sw = op.scale
    if sw * c > 65536:
        return f"upsample pixel stride {sw}x{c} bytes exceeds SAVE's 16-bit jump_write"
    cg = math.ceil(c / target.icp)
    return _tiling_reason(target, h, w, c, h, w, (1, 1), (1, 1), (0, 0, 0, 0), cg, True)


def _pad_reason(op, target) -> str | None:
    """Constant pad: border SAVEd from a REG_0 row of the value, interior a 1x1 ALU copy."""
    r = _bits_ok(op)
    if r:
        return r
    if op.mode != "constant":
        return f"{op.mode} padding: the DPU lowering fills a constant only"
    _, h, w, c = op.input.type.shape
    if c > 4096:
        return f"pad of {c} channels: SAVE moves at most 4096 channels a pixel"
    cg = math.ceil(c / target.icp)
    return _tiling_reason(target, h, w, c, h, w, (1, 1), (1, 1), (0, 0, 0, 0), cg, True)


def _hsigmoid_reason(op, target) -> str | None:
    """ALU exec_mode HSIGMOID: max(0, x*2731 + 3*2731*2^fp_in) / 2^(14 + fp_in - fp_out) (equal to
    hard-sigmoid-fix at output fix_pos >= 7, which the op's verifier requires)."""
    r = _bits_ok(op)
    if r:
        return r
    if "hsigmoid" not in target.alu.alu_types:
        return f"{target.name}'s ALU has no hsigmoid mode"
    fi, fo = _fp(op.input), op.fp_out
    if not 0 <= fi <= SHIFT_BIAS_FIELD_MAX:
        return f"hard sigmoid input fix_pos {fi} does not fit the ALU shift_bias field (0-{SHIFT_BIAS_FIELD_MAX})"
    if not 0 <= 14 + fi - fo <= SHIFT_CUT_FIELD_MAX:
        return f"hard sigmoid shift 14 + {fi} - {fo} does not fit the ALU shift_cut field"
    _, h, w, c = op.input.type.shape
    cg = math.ceil(c / target.icp)
    return _tiling_reason(target, h, w, c, h, w, (1, 1), (1, 1), (0, 0, 0, 0), cg, True)


def _tconv_reason(op, target) -> str | None:
    """Transposed conv: zero-inserted input (fill + strided copy) and a stride-1 CONV with flipped weights."""
    from .layers import tconv_frame
    r = _bits_ok(op)
    if r:
        return r
    if tuple(op.dilation) != (1, 1):
        return f"dilation {tuple(op.dilation)}: fixflow's DPU lowering handles dilation 1 only"
    kh, kw = op.kernel
    top, left, zh, zw = tconv_frame(op)
    _, h, w, ic = op.input.type.shape
    if top < 0 or left < 0 or zh - top - (h - 1) * op.stride[0] - 1 < 0 or zw - left - (w - 1) * op.stride[1] - 1 < 0:
        return f"transposed conv padding {tuple(op.pad)} beyond kernel - 1 (the zero-inserted input would be cropped)"
    if op.stride[1] * ic > 65536 or ic > 4096:
        return f"transposed conv input of {ic} channels at stride {op.stride[1]} exceeds the LOAD/SAVE fields"
    r = (_window_reason("conv", op.kernel, (1, 1), (0, 0, 0, 0), target.conv, "transposed conv")
         or _act_reason(op, "conv", target) or _shift_reason(op))
    if r:
        return r
    if not target.fits_weight_bank(kw, kh, ic):
        return (f"{kh}x{kw}x{ic} weights need {target.conv_weight_lines(kw, kh, ic)} lines of a weight bank "
                f"(depth {target.bank_group_named('CONVW').depth})")
    _, oh, ow, _ = op.results[0].type.shape
    cg = math.ceil(ic / target.icp)
    return (_tiling_reason(target, h, w, ic, h, w, (1, 1), (1, 1), (0, 0, 0, 0), cg, True)
            or _tiling_reason(target, zh, zw, ic, oh, ow, (kh, kw), (1, 1), (0, 0, 0, 0), 1, False))


def placements(func: Operation, target) -> dict[Operation, tuple[str, str | None]]:
    """Device and CPU reason of every op of `func`'s body (constants follow their consumers)."""
    res: dict[Operation, tuple[str, str | None]] = {}
    for op in func.regions[0].blocks[0].ops:
        if op.name in ("func.return", "fix.const", "graph.constant"):
            continue
        if op.name == "fix.data":
            res[op] = (USER, None)
        elif op.name == "fix.reshape":
            p = op.operands[0].op if hasattr(op.operands[0], "op") else None
            on_dpu = p is not None and res.get(p, (CPU,))[0] == DPU
            res[op] = (DPU, None) if on_dpu and not _bits_ok(op) else (
                CPU, "a reshape joins its producer, which is not on the DPU")
        else:
            r = dpu_reason(op, target)
            res[op] = (DPU, None) if r is None else (CPU, r)
            if r is not None and op.name.startswith("fix.") and r == _bits_ok(op):   # a bit width: say so once
                from ...ir.diagnostics import emit_warning
                emit_warning(f"'{_name(op)}' ({op.name}) runs on the CPU: {r.split(': ', 1)[-1]}", op.location)
    for op in func.regions[0].blocks[0].ops:
        if op.name in _CONSTS:
            users = [u for r in op.results for u in r.users if u in res]
            dev = DPU if users and all(res[u][0] == DPU for u in users) else CPU
            res[op] = (dev, None if dev == DPU else "a constant of a CPU op")
    return res


def subgraphs(func: Operation, placed: dict[Operation, tuple[str, str | None]]) -> list[Subgraph]:
    """The maximal subgraphs (module docstring), in program order of their first op."""
    ops = [op for op in func.regions[0].blocks[0].ops if op in placed and op.name not in _CONSTS]
    epoch: dict[Operation, int] = {}
    for op in ops:
        e = 0
        for v in op.operands:
            p = getattr(v, "op", None)
            if p in epoch:
                e = max(e, epoch[p] + (placed[p][0] != placed[op][0]))
        epoch[op] = e
    parent: dict[Operation, Operation] = {op: op for op in ops}

    def find(o: Operation) -> Operation:
        while parent[o] is not o:
            parent[o] = parent[parent[o]]
            o = parent[o]
        return o

    for op in ops:
        for v in op.operands:
            p = getattr(v, "op", None)
            if p in epoch and placed[p][0] == placed[op][0] and epoch[p] == epoch[op]:
                parent[find(op)] = find(p)
    groups: dict[Operation, Subgraph] = {}
    order: list[Subgraph] = []
    for op in ops:
        root = find(op)
        if root not in groups:
            groups[root] = Subgraph(f"subgraph_{_name(op)}", placed[op][0])
            order.append(groups[root])
        groups[root].ops.append(op)
    member = {op: sg for sg in order for op in sg.ops}
    for op in func.regions[0].blocks[0].ops:            # constants join their (single) consumer subgraph
        if op.name == "fix.const" and placed.get(op, (CPU,))[0] == DPU:
            users = {member[u] for r in op.results for u in r.users if u in member}
            if len(users) == 1:
                sg = users.pop()
                sg.ops.insert(0, op)
                member[op] = sg
    for sg in order:
        sg.ops.sort(key=_index(func))
        inside = set(sg.ops)
        for op in sg.ops:
            for v in op.operands:
                if getattr(v, "op", None) not in inside and v not in sg.inputs:
                    sg.inputs.append(v)
            for r in op.results:
                if any(u not in inside for u in r.users) and r not in sg.outputs:
                    sg.outputs.append(r)
    return order


def _index(func: Operation):
    pos = {op: i for i, op in enumerate(func.regions[0].blocks[0].ops)}
    return lambda op: pos[op]


__all__ = ["Subgraph", "dpu_reason", "placements", "subgraphs", "DPU", "CPU", "USER"]
