"""The `quantize` pass: a calibrated graph module (NCHW float, `fix.*` annotations as in the
quantization contract) -> the `fix` dialect (NHWC, integer semantics).

- Function inputs become `fix.data` (std_round, the `fix.inputs` positions, NCHW -> NHWC); results
  are dequantized by `fix.float` (back to NCHW for rank-4 tensors), so the quantized function takes
  and returns the same tensors as the float one.
- conv2d / depthwise / conv_transpose2d / linear take their `fix.weight` / `fix.bias` positions
  (std_round) with weights in XIR layout, and fuse a following relu / relu6 / leaky_relu into
  `nonlinear`; add (+ relu) / mul become `fix.eltwise`; pools, concat, pad, nearest upsample,
  hardsigmoid / hardswish map one to one; adaptive_avg_pool2d and mean over H, W become pools.
- Rank-4 values are stored NHWC; a flatten / reshape of a feature map keeps torch's (NCHW) element
  order: it folds the permutation into the following linear's weight columns when it can, else it
  transposes back to NCHW first (`fix.transpose`).
- Ops the DPU cannot run stay, with a warning naming the reason: fix ops that break an engine limit
  get `device = "CPU"` and `fix.reason`; ops without a fixed-point form (sigmoid, tanh, softmax...)
  are kept as float graph ops between `fix.float` and `fix.fix`, also marked.
- batch_norm must have been folded; any other op is an error naming it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ...dialects import graph as _graph  # noqa: F401  (registers the graph dialect)
from ...dialects.graph import kernels as GK
from ...dialects.builtin import FuncOp, ReturnOp
from ...dialects.fix import ops as Q
from ...dialects.fix.ops import dpu_violation
from ...dialects.fix.numerics import LEAKY_RELU_ALPHA, fix_pos_diffs, quantize
from ...ir.attributes import DenseResourceElementsAttr, StringAttr
from ...ir.core import BlockArgument, Operation, OpResult, Value
from ...ir.diagnostics import FixflowError, emit_warning
from ...ir.builder import Builder
from ...ir.passes import Pass, register_pass
from .annotations import GROUP_JOINERS, keep_float_reason

#: ops that join their producer's quantization group (numerics.md)
CONV_ACTS = {"graph.relu": "RELU", "graph.relu6": "RELU6", "graph.leaky_relu": "LEAKYRELU"}
#: graph ops without a fixed-point form: kept as float CPU ops
CPU_ONLY = {
    "graph.sigmoid": "sigmoid is not supported by the DPU",
    "graph.tanh": "tanh is not supported by the DPU",
    "graph.silu": "silu is not supported by the DPU",
    "graph.softmax": "softmax is not supported by the DPU",
    "graph.prelu": "prelu is not supported by this DPU configuration",
    "graph.sub": "the DPU element-wise engine has no subtraction",
    "graph.matmul": "a matmul of two feature maps is not supported by the DPU",
    "graph.gelu": "gelu is not supported by the DPU (DPUCZDX8G has no GELU engine)",
    "graph.mish": "mish is not supported by the DPU",
    "graph.layer_norm": "layer normalization is not supported by the DPU (statistics over each sample)",
    "graph.group_norm": "group / instance normalization is not supported by the DPU (statistics over each sample)",
    "graph.sum": "a sum over dimensions is not supported by the DPU",
    "graph.amax": "a max over dimensions is not supported by the DPU",
    "graph.amin": "a min over dimensions is not supported by the DPU",
    "graph.normalize": "an Lp normalization (statistics over each sample) is not supported by the DPU",
}
_NHWC_AXIS = {0: 0, 1: 3, 2: 1, 3: 2}


class QuantizeError(FixflowError):
    """The graph cannot be lowered to the fix dialect (missing annotation, unfolded batch_norm...)."""


def _const_array(v: Value | None) -> np.ndarray | None:
    if v is None:
        return None
    owner = v.op if isinstance(v, OpResult) else None
    if owner is None or owner.name != "graph.constant":
        return None
    return np.asarray(owner.attributes["value"].array, dtype=np.float64)


def _key_of(v: Value, fallback: str) -> str:
    owner = v.op if isinstance(v, OpResult) else None
    a = owner.attributes.get("value") if owner is not None else None
    return a.key if isinstance(a, DenseResourceElementsAttr) else fallback


def _pair_attr(op: Operation, name: str) -> tuple[int, int] | None:
    a = op.attributes.get(name)
    if a is None:
        return None
    vals = tuple(int(x) for x in a.value)
    if len(vals) != 2:
        raise QuantizeError(f"'{op.name}': attribute {name} must be [bit_width, fix_pos], got {a.text()}",
                            op.location)
    return vals


class _Lowering:
    """Lowers one graph function into a new function of fix ops."""

    def __init__(self, func: Operation, module: Operation):
        self.func = func
        self.module = module
        self.new = FuncOp.create_function(func.attributes["sym_name"].value,
                                          [a.type for a in func.body.args], [], func.location)
        for k, v in func.attributes.items():
            if k not in ("sym_name", "function_type"):
                self.new.attributes[k] = v
        self.builder = Builder.at_end(self.new.body)
        self.map: dict[Value, Value] = {}
        self.float_of: dict[Value, Value] = {}
        self.fused: set[Operation] = set()
        self.dense_perm: dict[Value, tuple[int, int, int]] = {}
        self.keys: set[str] = set()
        self.input_fmts = self._input_fmts()

    # ---- annotations ----------------------------------------------------------------------
    def _input_fmts(self) -> list[tuple[int, int] | None]:
        a = self.func.attributes.get("fix.inputs")
        n = len(self.func.body.args)
        if a is None:
            return [None] * n
        vals = [tuple(int(x) for x in e.value) for e in a.value]
        if len(vals) != n:
            raise QuantizeError(f"fix.inputs has {len(vals)} entries for {n} function arguments", self.func.location)
        return vals

    def fmt_or_none(self, v: Value) -> tuple[int, int] | None:
        """[bit_width, fix_pos] of the quantization point that `v` belongs to."""
        if isinstance(v, BlockArgument):
            return self.input_fmts[v.index]
        op = v.op
        f = _pair_attr(op, "fix.out")
        if f is not None:
            return f
        users = v.users
        if len(users) == 1 and v.num_uses == 1 and users[0].name in GROUP_JOINERS:
            return self.fmt_or_none(users[0].results[0])
        return None

    def fmt(self, v: Value, op: Operation) -> tuple[int, int]:
        f = self.fmt_or_none(v)
        if f is None:
            what = (f"input #{v.index}" if isinstance(v, BlockArgument) else f"the output of '{v.op.name}'")
            raise QuantizeError(f"{what} has no fix.out annotation (run calibrate before quantize)",
                                v.op.location if isinstance(v, OpResult) else op.location)
        return f

    # ---- emission ---------------------------------------------------------------------------
    def emit(self, cls, *operands, loc, hint: str | None = None, result_types=None, **attrs) -> Value:
        return self.builder.emit(cls, *operands, name=hint or None, location=loc, result_types=result_types, **attrs)

    def mark_cpu(self, value: Value, reason: str, loc) -> None:
        op = value.op
        op.attributes["device"] = StringAttr("CPU")
        op.attributes["fix.reason"] = StringAttr(reason)
        emit_warning(f"'{op.name}' stays on the CPU: {reason}", loc)

    def check_dpu(self, value: Value, loc) -> Value:
        reason = dpu_violation(value.op)
        if reason is not None:
            self.mark_cpu(value, reason, loc)
        return value

    def unique_key(self, key: str) -> str:
        k, i = key, 1
        while k in self.keys:
            i += 1
            k = f"{key}_{i}"
        self.keys.add(k)
        return k

    def const(self, q: np.ndarray, bw: int, fp: int, key: str, loc) -> Value:
        c = Q.ConstOp.from_ints(q, bw, fp, key=self.unique_key(key), location=loc)
        self.builder.insert(c)
        c.results[0].name_hint = key.replace(".", "_")
        return c.results[0]

    def requant(self, v: Value, f: tuple[int, int] | None, loc, hint=None) -> Value:
        """`v` converted to format `f` (a fix.fix when the formats differ)."""
        ft = Q.fixed_type(v.type)
        if f is None or (ft.bit_width, ft.fix_pos) == f:
            return v
        return self.emit(Q.FixFixOp, v, loc=loc, hint=hint, result_types=[Q.fix_tensor(v.type.shape, *f)])

    def bind_result(self, op: Operation, y: Value) -> None:
        """`op`'s (single) result becomes `y`, requantized to the result's calibrated format, with its name."""
        y = self.requant(y, self.fmt_or_none(op.results[0]), op.location)
        y.name_hint = op.results[0].name_hint
        self.map[op.results[0]] = y

    def fix_in(self, gv: Value, op: Operation) -> Value:
        """The lowered fixed-point value of graph value `gv`."""
        if gv in self.map:
            v = self.map[gv]
            if Q.fixed_type(v.type) is not None:
                return v
            f = self.fmt(gv, op)
            layout = "NCHW" if v.type.rank == 4 else "NHWC"
            shape = tuple(v.type.shape[p] for p in Q.TO_NHWC) if layout == "NCHW" else v.type.shape
            q = self.emit(Q.FixFixOp, v, loc=op.location, result_types=[Q.fix_tensor(shape, *f)], layout=layout)
            self.map[gv] = q
            self.float_of[q] = v
            return q
        arr = _const_array(gv)
        if arr is not None:
            return self.const_operand(gv, arr, op)
        raise QuantizeError(f"'{op.name}': operand is produced by an op that was not lowered", op.location)

    def const_operand(self, gv: Value, arr: np.ndarray, op: Operation) -> Value:
        """A graph.constant used as a feature map (e.g. an add's operand): its own fix position."""
        f = _pair_attr(gv.op, "fix.out") or (8, fix_pos_diffs(arr, 8, "std_round"))
        a = arr
        if a.ndim == 4:
            a = a.transpose(Q.TO_NHWC)
        c = self.const(quantize(a, f[0], f[1], "std_round"), f[0], f[1], _key_of(gv, gv.name_hint or "const"),
                       gv.op.location)
        self.map[gv] = c
        return c

    def float_in(self, gv: Value, op: Operation) -> Value:
        """The lowered float (graph layout) value of graph value `gv`."""
        if gv not in self.map:
            owner = gv.op if isinstance(gv, OpResult) else None
            if owner is not None and owner.name == "graph.constant":
                c = owner.clone()
                self.builder.insert(c)
                self.map[gv] = c.results[0]
                return c.results[0]
            raise QuantizeError(f"'{op.name}': operand is produced by an op that was not lowered", op.location)
        v = self.map[gv]
        if Q.fixed_type(v.type) is None:
            return v
        if v not in self.float_of:
            layout = "NCHW" if v.type.rank == 4 else "NHWC"
            self.float_of[v] = self.emit(Q.FloatOp, v, loc=op.location, layout=layout)
        return self.float_of[v]

    # ---- driver -------------------------------------------------------------------------------
    def run(self) -> FuncOp:
        for arg, new_arg in zip(self.func.body.args, self.new.body.args):
            new_arg.name_hint = arg.name_hint
            f = self.input_fmts[arg.index]
            if f is None:
                self.map[arg] = new_arg
                continue
            layout = "NCHW" if arg.type.rank == 4 else "NHWC"
            shape = tuple(arg.type.shape[p] for p in Q.TO_NHWC) if layout == "NCHW" else arg.type.shape
            self.map[arg] = self.emit(Q.DataOp, new_arg, loc=self.func.location, hint=arg.name_hint,
                                      result_types=[Q.fix_tensor(shape, *f)], layout=layout)
        for op in list(self.func.body.ops):
            if op in self.fused or op.name == "graph.constant":
                continue
            if op.name == "func.return":
                self.lower_return(op)
                continue
            handler = _HANDLERS.get(op.name)
            if keep_float_reason(op) is not None:
                self.cpu_op(op, keep_float_reason(op))
            elif op.name in CPU_ONLY:
                self.cpu_op(op, CPU_ONLY[op.name])
            elif handler is None:
                if op.name == "graph.batch_norm":
                    raise QuantizeError("graph.batch_norm must be folded into the preceding conv/linear before "
                                        "quantize (run fold-bn)", op.location)
                raise QuantizeError(f"'{op.name}' cannot be quantized (no fix-dialect lowering)", op.location)
            else:
                handler(self, op)
        return self.new

    def lower_return(self, op: Operation) -> None:
        outs = []
        for gv in op.operands:
            v = self.map.get(gv)
            if v is None:
                v = self.float_in(gv, op)
            elif Q.fixed_type(v.type) is not None:
                layout = "NCHW" if v.type.rank == 4 else "NHWC"
                v = self.emit(Q.FloatOp, v, loc=op.location, layout=layout,
                              hint=(gv.name_hint + "_float") if gv.name_hint else None)
            outs.append(v)
        self.builder.insert(ReturnOp.build(outs, location=op.location))
        self.new.update_function_type()

    def bind(self, op: Operation, value: Value) -> None:
        value.name_hint = op.results[0].name_hint or value.name_hint
        self.map[op.results[0]] = value

    def cpu_op(self, op: Operation, reason: str) -> None:
        """Keep a graph op as a float CPU op between fix.float and fix.fix."""
        vm = {gv: self.float_in(gv, op) for gv in op.operands}
        c = op.clone(vm)
        for k in [k for k in c.attributes if k.startswith("fix.")]:
            del c.attributes[k]
        self.builder.insert(c)
        self.mark_cpu(c.results[0], reason, op.location)
        out = c.results[0]
        f = self.fmt_or_none(op.results[0])
        if f is not None:
            layout = "NCHW" if out.type.rank == 4 else "NHWC"
            shape = tuple(out.type.shape[p] for p in Q.TO_NHWC) if layout == "NCHW" else out.type.shape
            q = self.emit(Q.FixFixOp, out, loc=op.location, result_types=[Q.fix_tensor(shape, *f)], layout=layout,
                          hint=op.results[0].name_hint)
            self.float_of[q] = out
            self.map[op.results[0]] = q
        else:
            self.map[op.results[0]] = out

    # ---- fused activation ---------------------------------------------------------------------
    def fused_act(self, op: Operation, allowed: dict[str, str]) -> tuple[str, Operation | None]:
        r = op.results[0]
        if "fix.out" in op.attributes or r.num_uses != 1:
            return "NONE", None
        user = r.users[0]
        if user.name not in allowed or keep_float_reason(user) is not None:
            return "NONE", None
        if user.name == "graph.leaky_relu" and abs(user.alpha - float(LEAKY_RELU_ALPHA)) > 1e-12:
            emit_warning(f"leaky_relu slope {user.alpha} is replaced by the DPU's 26/256 = 0.1015625", user.location)
        self.fused.add(user)
        return allowed[user.name], user

    def result_of(self, op: Operation, act_op: Operation | None) -> Value:
        return (act_op or op).results[0]


# ---- handlers ----------------------------------------------------------------------------------
_HANDLERS: dict[str, Callable[[_Lowering, Operation], None]] = {}


def _handles(*names: str):
    def deco(fn):
        for n in names:
            _HANDLERS[n] = fn
        return fn
    return deco


def _conv_params(L: _Lowering, op: Operation):
    w = _const_array(op.weight)
    if w is None:
        raise QuantizeError(f"'{op.name}': the weight must be a graph.constant", op.location)
    b = _const_array(op.bias)
    if op.bias is not None and b is None:
        raise QuantizeError(f"'{op.name}': the bias must be a graph.constant", op.location)
    fw = _pair_attr(op, "fix.weight")
    if fw is None:
        raise QuantizeError(f"'{op.name}' has no fix.weight annotation (run calibrate before quantize)", op.location)
    fb = _pair_attr(op, "fix.bias")
    if b is not None and fb is None:
        raise QuantizeError(f"'{op.name}' has no fix.bias annotation (run calibrate before quantize)", op.location)
    return w, b, fw, fb


def _emit_params(L: _Lowering, op: Operation, w_xir: np.ndarray, b, fw, fb) -> tuple[Value, Value | None]:
    name = op.results[0].name_hint or "conv"
    wc = L.const(quantize(w_xir, fw[0], fw[1], "std_round"), fw[0], fw[1], _key_of(op.weight, f"{name}.weight"),
                 op.location)
    bc = None
    if b is not None:
        bc = L.const(quantize(b, fb[0], fb[1], "std_round"), fb[0], fb[1], _key_of(op.bias, f"{name}.bias"),
                     op.location)
    return wc, bc


def _emit_weighted(L: _Lowering, op: Operation, cls: type, x: Value, w_xir: np.ndarray, b, fw, fb,
                   out_shape, **attrs) -> None:
    """Emit a conv-like fix op with its quantized weight and bias, fusing a following activation."""
    act, act_op = L.fused_act(op, CONV_ACTS)
    out = L.result_of(op, act_op)
    f = L.fmt(out, op)
    wc, bc = _emit_params(L, op, w_xir, b, fw, fb)
    y = L.emit(cls, x, wc, bc, loc=op.location, hint=out.name_hint,
               result_types=[Q.fix_tensor(out_shape, *f)], nonlinear=act, **attrs)
    L.check_dpu(y, op.location)
    L.map[op.results[0]] = y
    if act_op is not None:
        L.map[act_op.results[0]] = y


@_handles("graph.conv2d")
def _conv2d(L: _Lowering, op: Operation) -> None:
    w, b, fw, fb = _conv_params(L, op)
    x = L.fix_in(op.input, op)
    c_in = op.input.type.shape[1]
    oc = w.shape[0]
    g = op.groups
    if g == 1:
        cls, w_xir = Q.Conv2dOp, w.transpose(0, 2, 3, 1)
    elif g == c_in and oc == c_in and w.shape[1] == 1:
        cls, w_xir = Q.DepthwiseConv2dOp, w.transpose(1, 2, 3, 0)     # [1, KH, KW, C]
    else:
        _grouped_conv2d(L, op, x, w, b, fw, fb)
        return
    _emit_weighted(L, op, cls, x, w_xir, b, fw, fb, _nhwc(op.results[0].type.shape), kernel=w.shape[2:4], stride=op.stride,
                   pad=op.padding, dilation=op.dilation)


def _grouped_conv2d(L: _Lowering, op: Operation, x: Value, w: np.ndarray, b, fw, fb) -> None:
    """A grouped convolution (ResNeXt, RegNet) as one conv per group on its channel slice, concatenated:
    the groups share the op's weight, bias and output formats, so the result is the grouped conv's."""
    g = op.groups
    n, c_in, h, wd = op.input.type.shape
    oc = w.shape[0]
    ci, co = c_in // g, oc // g
    act, act_op = L.fused_act(op, CONV_ACTS)
    out = L.result_of(op, act_op)
    f = L.fmt(out, op)
    name = out.name_hint or "conv"
    out_shape = _nhwc(op.results[0].type.shape)
    parts = []
    for i in range(g):
        bounds = [(0, n, 1), (i * ci, (i + 1) * ci, 1), (0, h, 1), (0, wd, 1)]
        xs = L.check_dpu(_slice_fix(L, x, bounds, op.location), op.location)
        wq = quantize(w[i * co:(i + 1) * co].transpose(0, 2, 3, 1), fw[0], fw[1], "std_round")
        wc = L.const(wq, fw[0], fw[1], f"{_key_of(op.weight, name + '.weight')}.g{i}", op.location)
        bc = None
        if b is not None:
            bc = L.const(quantize(b[i * co:(i + 1) * co], fb[0], fb[1], "std_round"), fb[0], fb[1],
                         f"{_key_of(op.bias, name + '.bias')}.g{i}", op.location)
        y = L.emit(Q.Conv2dOp, xs, wc, bc, loc=op.location, hint=f"{name}_g{i}",
                   result_types=[Q.fix_tensor(out_shape[:3] + (co,), *f)], nonlinear=act, kernel=w.shape[2:4],
                   stride=op.stride, pad=op.padding, dilation=op.dilation)
        parts.append(L.check_dpu(y, op.location))
    y = L.emit(Q.ConcatOp, parts, loc=op.location, hint=name, result_types=[Q.fix_tensor(out_shape, *f)], axis=3)
    L.check_dpu(y, op.location)
    L.map[op.results[0]] = y
    if act_op is not None:
        L.map[act_op.results[0]] = y


@_handles("graph.batch_norm")
def _batch_norm(L: _Lowering, op: Operation) -> None:
    """A batch norm fold-bn cannot fold (DenseNet's norm before its conv, on a concatenation): the
    per-channel affine x * s + t as a 1x1 depthwise conv, s and t at their own diffs fix positions (as
    vai_q converts it). Calibration saw the float batch norm, so the quantization of s and t is the one
    error it did not see."""
    src = op.input.op if isinstance(op.input, OpResult) else None
    if src is not None and src.name in ("graph.conv2d", "graph.conv_transpose2d", "graph.linear") \
            and op.input.num_uses == 1:
        raise QuantizeError("graph.batch_norm must be folded into the preceding conv/linear before quantize (run "
                            "fold-bn)", op.location)
    arrs = [_const_array(v) for v in (op.mean, op.var, op.gamma, op.beta)]
    if op.input.type.rank != 4 or any(a is None for a in arrs):
        L.cpu_op(op, "a batch norm that is not after a conv (or has non-constant statistics) on a non-image tensor")
        return
    mean, var, gamma, beta = arrs
    scale = gamma / np.sqrt(var + op.eps)
    shift = beta - mean * scale
    x = L.fix_in(op.input, op)
    fw = (8, fix_pos_diffs(scale, 8, "std_round"))
    fb = (8, fix_pos_diffs(shift, 8, "std_round"))
    c = scale.shape[0]
    act, act_op = L.fused_act(op, CONV_ACTS)
    out = L.result_of(op, act_op)
    f = L.fmt(out, op)
    key = _key_of(op.gamma, (out.name_hint or "batch_norm") + ".gamma")
    wc = L.const(quantize(scale.reshape(1, 1, 1, c), *fw, "std_round"), *fw, key + "_scale", op.location)
    bc = L.const(quantize(shift, *fb, "std_round"), *fb, key + "_shift", op.location)
    y = L.emit(Q.DepthwiseConv2dOp, x, wc, bc, loc=op.location, hint=out.name_hint,
               result_types=[Q.fix_tensor(_nhwc(op.results[0].type.shape), *f)], nonlinear=act, kernel=(1, 1),
               stride=(1, 1), pad=(0, 0, 0, 0), dilation=(1, 1))
    L.check_dpu(y, op.location)
    L.map[op.results[0]] = y
    if act_op is not None:
        L.map[act_op.results[0]] = y


@_handles("graph.conv_transpose2d")
def _conv_transpose2d(L: _Lowering, op: Operation) -> None:
    if op.groups != 1:
        L.cpu_op(op, f"grouped transposed convolution (groups={op.groups}) is not supported by the DPU")
        return
    w, b, fw, fb = _conv_params(L, op)
    x = L.fix_in(op.input, op)
    w_xir = w.transpose(1, 2, 3, 0)  # [IC, OC, KH, KW] -> [OC, KH, KW, IC]
    _emit_weighted(L, op, Q.ConvTranspose2dOp, x, w_xir, b, fw, fb, _nhwc(op.results[0].type.shape), kernel=w.shape[2:4],
                   stride=op.stride, pad=op.padding, dilation=op.dilation, output_padding=op.output_padding)


@_handles("graph.linear")
def _linear(L: _Lowering, op: Operation) -> None:
    if op.input.type.rank == 3:
        _linear_tokens(L, op)
        return
    if op.input.type.rank != 2:
        L.cpu_op(op, f"inner product on a rank-{op.input.type.rank} input (the DPU takes [N, features])")
        return
    w, b, fw, fb = _conv_params(L, op)
    x = L.fix_in(op.input, op)
    perm = L.dense_perm.get(op.input)
    if perm is not None:  # the input is a feature map flattened in NHWC order
        c, h, wd = perm
        w = w.reshape(w.shape[0], c, h, wd).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
    _emit_weighted(L, op, Q.DenseOp, x, w, b, fw, fb, op.results[0].type.shape)


def _linear_tokens(L: _Lowering, op: Operation) -> None:
    """A linear layer on [N, T, D] (a transformer's tokens) as a 1x1 conv over an N x T x 1 x D feature map
    (reshapes around it keep the element order), which the DPU runs."""
    w, b, fw, fb = _conv_params(L, op)
    n, t, d = op.input.type.shape
    oc = w.shape[0]
    x = L.emit(Q.ReshapeOp, L.fix_in(op.input, op), loc=op.location, shape=(0, t, 1, d))
    _emit_weighted(L, op, Q.Conv2dOp, x, w.reshape(oc, 1, 1, d), b, fw, fb, (n, t, 1, oc), kernel=(1, 1),
                   stride=(1, 1), pad=(0, 0, 0, 0), dilation=(1, 1))
    y = L.map[op.results[0]]
    out = L.emit(Q.ReshapeOp, y, loc=op.location, shape=(0, t, oc), hint=y.name_hint)
    for k in [k for k, v in L.map.items() if v is y]:
        L.map[k] = out


@_handles("graph.relu", "graph.relu6", "graph.leaky_relu")
def _activation(L: _Lowering, op: Operation) -> None:
    if op.name != "graph.relu":
        L.cpu_op(op, f"a standalone {op.name.split('.')[1]} (not after a conv or inner product) is not "
                     "supported by the DPU")
        return
    x = L.fix_in(op.input, op)
    f = L.fmt(op.results[0], op)
    y = L.emit(Q.EltwiseOp, [x], loc=op.location, hint=op.results[0].name_hint,
               result_types=[Q.fix_tensor(x.type.shape, *f)], type="ADD", nonlinear="RELU")
    L.map[op.results[0]] = L.check_dpu(y, op.location)


@_handles("graph.identity", "graph.dropout")
def _identity(L: _Lowering, op: Operation) -> None:
    if op.input in L.map:
        L.map[op.results[0]] = L.map[op.input]
    else:
        L.map[op.results[0]] = L.fix_in(op.input, op)


def _nhwc(shape):
    return (shape[0], shape[2], shape[3], shape[1])


def _pool(L: _Lowering, op: Operation, ptype: str, kernel, stride, pad, is_global=False) -> None:
    x = L.fix_in(op.input, op)
    f = L.fmt(op.results[0], op)
    y = L.emit(Q.PoolOp, x, loc=op.location, hint=op.results[0].name_hint,
               result_types=[Q.fix_tensor(_nhwc(op.results[0].type.shape), *f)], type=ptype, kernel=kernel,
               stride=stride, pad=pad, is_global=is_global)
    L.map[op.results[0]] = L.check_dpu(y, op.location)


def _ceil_pad(op: Operation, kernel, stride, pad) -> tuple[int, int, int, int]:
    """Padding that gives the graph op's output size (extra bottom/right rows for ceil_mode)."""
    _, _, h, w = op.input.type.shape
    _, _, oh, ow = op.results[0].type.shape
    pt, pb, pl, pr = pad
    eh = max(0, (oh - 1) * stride[0] + kernel[0] - (h + pt + pb))
    ew = max(0, (ow - 1) * stride[1] + kernel[1] - (w + pl + pr))
    return (pt, pb + eh, pl, pr + ew)


@_handles("graph.max_pool2d")
def _max_pool(L: _Lowering, op: Operation) -> None:
    if tuple(op.dilation) != (1, 1):
        L.cpu_op(op, f"max pooling with dilation {tuple(op.dilation)} is not supported by the DPU")
        return
    k = tuple(op.kernel)
    s = tuple(op.stride) if op.stride is not None else k
    _pool(L, op, "MAX", k, s, _ceil_pad(op, k, s, tuple(op.padding)))


@_handles("graph.avg_pool2d")
def _avg_pool(L: _Lowering, op: Operation) -> None:
    k = tuple(op.kernel)
    s = tuple(op.stride) if op.stride is not None else k
    pad = tuple(op.padding)
    full = _ceil_pad(op, k, s, pad)
    if op.divisor_override is not None:
        L.cpu_op(op, "avg pooling with divisor_override is not supported by the DPU")
    elif full != pad:
        L.cpu_op(op, "avg pooling with ceil_mode windows is not supported by the DPU (it divides by k*k)")
    elif not op.count_include_pad and any(pad):
        L.cpu_op(op, "avg pooling with count_include_pad=False and padding is not supported by the DPU")
    else:
        _pool(L, op, "AVG", k, s, pad)


@_handles("graph.adaptive_avg_pool2d")
def _adaptive_avg_pool(L: _Lowering, op: Operation) -> None:
    _, _, h, w = op.input.type.shape
    oh, ow = op.output_size
    if oh % h == 0 and ow % w == 0 and (oh, ow) != (h, w):
        # every output window is one input pixel (e.g. AlexNet's 1x1 -> 6x6 on small inputs): a nearest upsample
        x = L.fix_in(op.input, op)
        y = L.emit(Q.UpsampleOp, x, loc=op.location, hint=op.results[0].name_hint, scale=(oh // h, ow // w))
        L.check_dpu(y, op.location)
        L.map[op.results[0]] = L.requant(y, L.fmt_or_none(op.results[0]), op.location)
        return
    if h % oh or w % ow:
        if h * w * oh * ow > _ADAPTIVE_CONV_LIMIT:
            L.cpu_op(op, f"adaptive avg pooling {h}x{w} -> {oh}x{ow} has uneven windows and its 1x1-conv form "
                         f"would need {h * w * oh * ow} weights (more than {_ADAPTIVE_CONV_LIMIT})")
            return
        _adaptive_avg_pool_conv(L, op)
        return
    k = (h // oh, w // ow)
    _pool(L, op, "AVG", k, k, (0, 0, 0, 0), is_global=(oh, ow) == (1, 1))


#: most weights of the 1x1 conv that stands for an adaptive average pool with uneven windows
_ADAPTIVE_CONV_LIMIT = 1 << 20


def adaptive_pool_matrix(size: int, out: int) -> np.ndarray:
    """PyTorch's adaptive average pooling along one axis as an (out, size) matrix: row i averages the
    window [floor(i * size / out), ceil((i + 1) * size / out))."""
    m = np.zeros((out, size))
    for i in range(out):
        s, e = (i * size) // out, -((-(i + 1) * size) // out)
        m[i, s:e] = 1.0 / (e - s)
    return m


def _adaptive_avg_pool_conv(L: _Lowering, op: Operation) -> None:
    """An adaptive average pool with uneven windows (VGG's 7x7 pool on a map smaller than 7x7) as a 1x1
    conv over the flattened map: NHWC -> (N, 1, C, H*W), a 1x1 `fix.conv2d` whose (OH*OW, H*W) weights
    are the pooling matrix, then back to (N, OH, OW, C). Weights are 1 / window size; for windows of 1, 2
    or 4 pixels (every window when the map is smaller than the output) they are exact at their fix position."""
    n, c, h, w = op.input.type.shape
    oh, ow = op.output_size
    m = np.kron(adaptive_pool_matrix(h, oh), adaptive_pool_matrix(w, ow))      # (OH*OW, H*W)
    fp = int(np.floor(np.log2(127.0 / m.max())))
    name = op.results[0].name_hint or "adaptive_avg_pool"
    f = L.fmt(op.results[0], op)
    x = L.fix_in(op.input, op)
    t = L.check_dpu(L.emit(Q.TransposeOp, x, loc=op.location, perm=Q.TO_NCHW), op.location)
    r = L.emit(Q.ReshapeOp, t, loc=op.location, shape=(0, 1, c, h * w))
    wc = L.const(quantize(m.reshape(oh * ow, 1, 1, h * w), 8, fp, "std_round"), 8, fp, f"{name}.pool_matrix",
                 op.location)
    y = L.emit(Q.Conv2dOp, r, wc, None, loc=op.location, hint=f"{name}_conv",
               result_types=[Q.fix_tensor((r.type.shape[0], 1, c, oh * ow), *f)], nonlinear="NONE", kernel=(1, 1),
               stride=(1, 1), pad=(0, 0, 0, 0), dilation=(1, 1))
    L.check_dpu(y, op.location)
    y = L.emit(Q.ReshapeOp, y, loc=op.location, shape=(0, c, oh, ow))
    y = L.check_dpu(L.emit(Q.TransposeOp, y, loc=op.location, perm=Q.TO_NHWC, hint=name), op.location)
    L.map[op.results[0]] = y


@_handles("graph.mean")
def _mean(L: _Lowering, op: Operation) -> None:
    r = op.input.type.rank
    axes = sorted(a % r for a in op.axes) if r else []
    if r != 4 or axes != [2, 3]:
        L.cpu_op(op, f"mean over axes {tuple(op.axes)} is not supported by the DPU (only over H and W)")
        return
    n, c, h, w = op.input.type.shape
    x = L.fix_in(op.input, op)
    f = L.fmt(op.results[0], op)
    y = L.emit(Q.PoolOp, x, loc=op.location, result_types=[Q.fix_tensor((n, 1, 1, c), *f)], type="AVG",
               kernel=(h, w), stride=(h, w), pad=(0, 0, 0, 0), is_global=True)
    L.check_dpu(y, op.location)
    if not op.keepdim:
        y = L.emit(Q.ReshapeOp, y, loc=op.location, shape=(0, c))
    y.name_hint = op.results[0].name_hint
    L.map[op.results[0]] = y


def _broadcast_operand(L: _Lowering, gv: Value, rank: int, op: Operation) -> Value:
    """A lower-rank operand of a rank-4 element-wise op, aligned as torch broadcasting does, in NHWC."""
    arr = _const_array(gv)
    if arr is not None and gv not in L.map:
        a = arr.reshape((1,) * (rank - arr.ndim) + arr.shape)
        return L.const_operand(gv, a, op)
    x = L.fix_in(gv, op)
    if x.type.rank == rank:
        return x
    shape4 = (1,) * (rank - x.type.rank) + x.type.shape
    y = L.emit(Q.ReshapeOp, x, loc=op.location, shape=shape4)
    if shape4[1] != 1 and shape4[2:] != (1, 1):
        y = L.emit(Q.TransposeOp, y, loc=op.location, perm=Q.TO_NHWC)
        L.check_dpu(y, op.location)
    else:
        y = L.emit(Q.ReshapeOp, y, loc=op.location, shape=_nhwc(shape4))
    return y


@_handles("graph.add", "graph.mul")
def _eltwise(L: _Lowering, op: Operation) -> None:
    rank = op.results[0].type.rank
    ins = []
    for gv in op.operands:
        if rank == 4 and gv.type.rank < 4:
            ins.append(_broadcast_operand(L, gv, rank, op))
        elif rank != 4 and gv.type.rank == 4 and gv not in L.map and _const_array(gv) is not None:
            # a rank-4 constant broadcast into a higher-rank result (MaxViT's position bias): torch's order
            arr = _const_array(gv)
            f = _pair_attr(gv.op, "fix.out") or (8, fix_pos_diffs(arr, 8, "std_round"))
            ins.append(L.const(quantize(arr, f[0], f[1], "std_round"), f[0], f[1], _key_of(gv, gv.name_hint or "const"),
                               gv.op.location))
        elif rank != 4 and gv.type.rank == 4 and gv in L.map:
            # a feature map (stored NHWC) broadcast into a higher-rank result: back to torch's order first
            ins.append(L.check_dpu(L.emit(Q.TransposeOp, L.fix_in(gv, op), loc=op.location, perm=Q.TO_NCHW),
                                   op.location))
        else:
            ins.append(L.fix_in(gv, op))
    typ = "ADD" if op.name == "graph.add" else "MUL"
    act, act_op = L.fused_act(op, {"graph.relu": "RELU"} if typ == "ADD" else {})
    out = L.result_of(op, act_op)
    f = L.fmt(out, op)
    shape = op.results[0].type.shape
    y = L.emit(Q.EltwiseOp, ins, loc=op.location, hint=out.name_hint,
               result_types=[Q.fix_tensor(_nhwc(shape) if rank == 4 else shape, *f)], type=typ, nonlinear=act)
    L.check_dpu(y, op.location)
    L.map[op.results[0]] = y
    if act_op is not None:
        L.map[act_op.results[0]] = y


@_handles("graph.concat")
def _concat(L: _Lowering, op: Operation) -> None:
    ins = [L.fix_in(gv, op) for gv in op.operands]
    rank = op.results[0].type.rank
    axis = op.axis % rank
    shape = op.results[0].type.shape
    if rank == 4:
        axis, shape = _NHWC_AXIS[axis], _nhwc(shape)
    f = L.fmt(op.results[0], op)
    y = L.emit(Q.ConcatOp, ins, loc=op.location, hint=op.results[0].name_hint,
               result_types=[Q.fix_tensor(shape, *f)], axis=axis)
    L.map[op.results[0]] = L.check_dpu(y, op.location)


def _reshape_to(L: _Lowering, op: Operation, out_shape: tuple[int, ...]) -> None:
    """Reshape with torch (NCHW) element order, on NHWC-stored rank-4 values."""
    x = L.fix_in(op.input, op)
    in_shape = op.input.type.shape
    batch_kept = len(out_shape) > 0 and len(in_shape) > 0 and out_shape[0] == in_shape[0]

    def target(shape):
        return (0,) + tuple(shape[1:]) if batch_kept else tuple(shape)

    y = x
    if len(in_shape) == 4:
        _, c, h, w = in_shape
        users = op.results[0].users
        fold = (len(out_shape) == 2 and batch_kept and
                all(u.name == "graph.linear" and u.input is op.results[0] and _const_array(u.weight) is not None
                    and keep_float_reason(u) is None for u in users) and users)
        if c == 1 or (h == 1 and w == 1):
            pass  # NHWC and NCHW orders agree
        elif fold:
            L.dense_perm[op.results[0]] = (c, h, w)
        else:
            y = L.emit(Q.TransposeOp, y, loc=op.location, perm=Q.TO_NCHW)
            L.check_dpu(y, op.location)
        logical = out_shape
    else:
        logical = out_shape
    if len(logical) == 4:
        _, c, h, w = logical
        req = tuple(op.shape) if op.name == "graph.reshape" else ()
        if len(req) == 4 and req[0] == -1 and not batch_kept:   # a batch unfolded from windows: keep the -1
            target = lambda shape: (-1,) + tuple(shape[1:])     # noqa: E731
        if c == 1 or (h == 1 and w == 1):
            y = L.emit(Q.ReshapeOp, y, loc=op.location, shape=target(_nhwc(logical)))
        else:
            y = L.emit(Q.ReshapeOp, y, loc=op.location, shape=target(logical))
            y = L.emit(Q.TransposeOp, y, loc=op.location, perm=Q.TO_NHWC)
            L.check_dpu(y, op.location)
    elif tuple(y.type.shape) != tuple(logical):
        req = tuple(op.shape) if op.name == "graph.reshape" else ()
        if len(req) == len(logical) and req.count(-1) == 1:
            # the graph's own -1 (a batch folded into a leading dim, e.g. Swin's B * windows) stays -1, so
            # the fixed-point program runs at any batch as the float one does
            y = L.emit(Q.ReshapeOp, y, loc=op.location, shape=req)
        else:
            y = L.emit(Q.ReshapeOp, y, loc=op.location, shape=target(logical))
    L.bind_result(op, y)


@_handles("graph.flatten", "graph.reshape")
def _reshape(L: _Lowering, op: Operation) -> None:
    _reshape_to(L, op, op.results[0].type.shape)


@_handles("graph.transpose")
def _transpose(L: _Lowering, op: Operation) -> None:
    x = L.fix_in(op.input, op)
    r = op.input.type.rank
    p = [a % r for a in op.perm]
    if r == 4:
        q = [Q.TO_NCHW[p[Q.TO_NHWC[i]]] for i in range(4)]
    else:
        q = p
    y = x
    if q != list(range(r)):
        y = L.emit(Q.TransposeOp, x, loc=op.location, perm=q)
        L.check_dpu(y, op.location)
    L.bind_result(op, y)


@_handles("graph.pad")
def _pad(L: _Lowering, op: Operation) -> None:
    r = op.input.type.rank
    pairs = [tuple(int(v) for v in p) for p in GK.torch_pad_to_pairs(op.pads, r)]
    if r != 4 or any(pairs[0]) or any(pairs[1]) or min(min(p) for p in pairs) < 0:
        L.cpu_op(op, "padding other than non-negative H/W padding of a feature map is not supported by the DPU")
        return
    x = L.fix_in(op.input, op)
    ft = Q.fixed_type(x.type)
    mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}[op.mode]
    value = int(quantize(op.value, ft.bit_width, ft.fix_pos, "half_up")) if mode == "constant" else 0
    if mode == "constant" and value * 2.0 ** -ft.fix_pos != op.value:
        emit_warning(f"pad value {op.value} is not representable at fix_pos {ft.fix_pos}; using "
                     f"{value * 2.0 ** -ft.fix_pos}", op.location)
    (pt, pb), (pl, pr) = pairs[2], pairs[3]
    y = L.emit(Q.PadOp, x, loc=op.location, hint=op.results[0].name_hint, pad=(pt, pb, pl, pr), mode=mode,
               value=value)
    L.check_dpu(y, op.location)
    L.map[op.results[0]] = L.requant(y, L.fmt_or_none(op.results[0]), op.location)


@_handles("graph.upsample")
def _upsample(L: _Lowering, op: Operation) -> None:
    _, _, h, w = op.input.type.shape
    _, _, oh, ow = op.results[0].type.shape
    if op.mode != "nearest" or oh % h or ow % w:
        L.cpu_op(op, f"{op.mode} resize {h}x{w} -> {oh}x{ow} is not supported by the DPU (nearest, integer "
                     "factors only)")
        return
    x = L.fix_in(op.input, op)
    y = L.emit(Q.UpsampleOp, x, loc=op.location, hint=op.results[0].name_hint, scale=(oh // h, ow // w))
    L.check_dpu(y, op.location)
    L.map[op.results[0]] = L.requant(y, L.fmt_or_none(op.results[0]), op.location)


@_handles("graph.hardsigmoid", "graph.hardswish")
def _hard(L: _Lowering, op: Operation) -> None:
    x = L.fix_in(op.input, op)
    f = L.fmt(op.results[0], op)
    cls = Q.HardSigmoidOp if op.name == "graph.hardsigmoid" else Q.HardSwishOp
    y = L.emit(cls, x, loc=op.location, hint=op.results[0].name_hint, result_types=[Q.fix_tensor(x.type.shape, *f)])
    L.map[op.results[0]] = L.check_dpu(y, op.location)


# ---- data movement of the frontend's new ops (issue 15): slices, roll, repeat / expand -------------
def _stored_axis(rank: int, axis: int) -> int:
    """The stored (NHWC for rank 4) axis of a graph (NCHW) axis."""
    axis %= rank
    return _NHWC_AXIS[axis] if rank == 4 else axis


def _slice_fix(L: _Lowering, x: Value, bounds: list[tuple[int, int, int]], loc) -> Value:
    """fix.strided_slice of `x` with per-graph-axis (begin, end, stride) bounds (reordered to NHWC)."""
    r = x.type.rank
    order = Q.TO_NHWC if r == 4 else tuple(range(r))
    b = tuple(bounds[a] for a in order)
    return L.emit(Q.StridedSliceOp, x, loc=loc, begin=[v[0] for v in b], end=[v[1] for v in b],
                  strides=[v[2] for v in b])


@_handles("graph.slice")
def _slice(L: _Lowering, op: Operation) -> None:
    shape = op.input.type.shape
    x = L.fix_in(op.input, op)
    bounds = [(0, d, 1) for d in shape]
    steps = op.steps or (1,) * len(op.axes)
    for a, st, en, sp in zip(op.axes, op.starts, op.ends, steps):
        a %= len(shape)
        b, e, s = slice(int(st), int(min(en, 2**62)), int(sp)).indices(shape[a])
        bounds[a] = (b, max(b, e), s)
    y = _slice_fix(L, x, bounds, op.location)
    L.check_dpu(y, op.location)
    L.bind_result(op, y)


@_handles("graph.roll")
def _roll(L: _Lowering, op: Operation) -> None:
    """torch.roll: per axis, the last `shift` entries then the others (two strided slices and a concat)."""
    shape = op.input.type.shape
    y = L.fix_in(op.input, op)
    for shift, axis in zip(op.shifts, op.axes):
        axis %= len(shape)
        d = shape[axis]
        k = int(shift) % d if d else 0
        if k == 0:
            continue
        full = [(0, n, 1) for n in shape]
        tail = list(full)
        tail[axis] = (d - k, d, 1)
        head = list(full)
        head[axis] = (0, d - k, 1)
        parts = [L.check_dpu(_slice_fix(L, y, tail, op.location), op.location),
                 L.check_dpu(_slice_fix(L, y, head, op.location), op.location)]
        y = L.emit(Q.ConcatOp, parts, loc=op.location, result_types=[y.type], axis=_stored_axis(len(shape), axis))
        L.check_dpu(y, op.location)
    L.bind_result(op, y)


def _lift_rank(L: _Lowering, x: Value, shape: tuple[int, ...], rank: int, loc) -> Value:
    """`x` (graph shape `shape`, stored NHWC when rank 4) with size-1 dimensions put in front up to `rank`,
    stored as the fix dialect stores that rank (a transpose where NHWC and torch's order differ)."""
    k = rank - len(shape)
    new = (1,) * k + tuple(shape)
    # the input's first dimension (a batch, if it has one) is inferred: it follows the run-time batch
    free = tuple(-1 if i == k else d for i, d in enumerate(new)) if shape and shape[0] > 0 else new
    if len(shape) == 4 and shape[1] != 1 and shape[2] * shape[3] != 1:
        x = L.check_dpu(L.emit(Q.TransposeOp, x, loc=loc, perm=Q.TO_NCHW), loc)
    if rank != 4:
        return L.emit(Q.ReshapeOp, x, loc=loc, shape=free, result_types=[_same_fix(x, new)])
    one = [d == 1 and not (i == k and free != new) for i, d in enumerate(new)]   # a batch there may be > 1
    if one[1] or (one[2] and one[3]):   # NHWC and NCHW orders agree
        return L.emit(Q.ReshapeOp, x, loc=loc, shape=_nhwc(free), result_types=[_same_fix(x, _nhwc(new))])
    y = L.emit(Q.ReshapeOp, x, loc=loc, shape=free, result_types=[_same_fix(x, new)])
    return L.check_dpu(L.emit(Q.TransposeOp, y, loc=loc, perm=Q.TO_NHWC), loc)


def _same_fix(x: Value, shape: tuple[int, ...]):
    """A fixed-point tensor type of `shape` in `x`'s format."""
    ft = Q.fixed_type(x.type)
    return Q.fix_tensor(shape, ft.bit_width, ft.fix_pos)


def _repeat(L: _Lowering, y: Value, reps: list[int], loc) -> Value:
    """`y` with each (graph) axis repeated reps[axis] times (numpy tile order): concats of copies."""
    r = len(reps)
    for axis, n in enumerate(reps):
        if n == 1:
            continue
        ax = _stored_axis(r, axis)
        shape = list(y.type.shape)
        shape[ax] *= n
        ft = Q.fixed_type(y.type)
        y = L.emit(Q.ConcatOp, [y] * n, loc=loc, result_types=[Q.fix_tensor(shape, ft.bit_width, ft.fix_pos)],
                   axis=ax)
        L.check_dpu(y, loc)
    return y


def _batch_of(L: _Lowering, y: Value, like: Value, op: Operation) -> Value:
    """`y` (batch 1) broadcast to the run-time batch of graph value `like`: y + 0 * like[:, :1, ...].

    An `_int.xmodel` cannot broadcast a constant to a batch known only at run time (XIR's expand takes
    the target shape as data); an element-wise ADD of zeros of the right batch does, exactly."""
    z = L.fix_in(like, op)
    r, rz = y.type.rank, z.type.rank
    ones = [(0, z.type.shape[0], 1)] + [(0, 1, 1)] * (rz - 1)
    s = L.check_dpu(_slice_fix(L, z, ones, op.location), op.location)
    if rz != r:
        s = L.emit(Q.ReshapeOp, s, loc=op.location, shape=(0,) + (1,) * (r - 1))
    ft = Q.fixed_type(y.type)
    zero = L.const(np.zeros((1,) * r, np.int64), ft.bit_width, ft.fix_pos, f"{op.results[0].name_hint or 'expand'}.zero",
                   op.location)
    m = L.emit(Q.EltwiseOp, [s, zero], loc=op.location, type="MUL", nonlinear="NONE",
               result_types=[Q.fix_tensor(s.type.shape, ft.bit_width, ft.fix_pos)])
    L.check_dpu(m, op.location)
    shape = tuple(np.broadcast_shapes(y.type.shape, m.type.shape))
    out = L.emit(Q.EltwiseOp, [y, m], loc=op.location, type="ADD", nonlinear="NONE",
                 result_types=[Q.fix_tensor(shape, ft.bit_width, ft.fix_pos)])
    return L.check_dpu(out, op.location)


@_handles("graph.tile", "graph.expand")
def _tile(L: _Lowering, op: Operation) -> None:
    """x.repeat / x.expand of the same rank: copies concatenated along the repeated axes (a batch taken
    from another tensor at run time: see `_batch_of`)."""
    a, b = op.input.type.shape, op.results[0].type.shape
    like = op.like if op.name == "graph.expand" else None
    y = L.fix_in(op.input, op)
    if len(a) < len(b):   # new leading dimensions (torch's expand and repeat put them in front)
        y = _lift_rank(L, y, tuple(a), len(b), op.location)
        a = (1,) * (len(b) - len(a)) + tuple(a)
    if len(a) != len(b) or any(m % n for m, n in zip(b, a) if n):
        L.cpu_op(op, f"{op.name.split('.')[1]} from {tuple(a)} to {tuple(b)} has no fixed-point form")
        return
    reps = [m // n if n else 1 for m, n in zip(b, a)]
    run_time_batch = like is not None and op.shape[0] == 0
    if run_time_batch:
        reps[0] = 1
    y = _repeat(L, y, reps, op.location)
    if run_time_batch:
        y = _batch_of(L, y, like, op)
    L.bind_result(op, y)


# ---- the pass ------------------------------------------------------------------------------------
def quantize_module(module: Operation) -> None:
    """Lower every function of a calibrated graph module to the fix dialect, in place."""
    body = module.regions[0].blocks[0]
    for func in [op for op in body.ops if op.name == "func.func" and op.regions and op.regions[0].blocks]:
        if len(func.regions[0].blocks) != 1:
            raise QuantizeError("quantize handles single-block functions only", func.location)
        new = _Lowering(func, module).run()
        body.insert_before(func, new)
        func.erase()


@register_pass
class Quantize(Pass):
    NAME = "quantize"
    SUMMARY = "Lower a calibrated graph module (fix.* annotations) to the fix dialect (NHWC, integer ops)"

    def run(self, module: Operation) -> None:
        quantize_module(module)


__all__ = ["Quantize", "QuantizeError", "quantize_module", "CPU_ONLY"]
