"""The DSL's ops: friendly parameters, argument checking, and lowering to graph ops.

Each op is an `OpSpec`: positional tensor inputs, keyword parameters with kinds and defaults, and a
lowering function `(NetBuilder, Bound) -> Value`. `OPS` is the table the docs and error messages use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ...dialects._geometry import conv_pads
from ...ir.attributes import DenseElementsAttr
from ...ir.core import Value
from .lower import NetBuilder, did_you_mean, literal_array
from .syntax import Assign, Lit, Ref, Return

REQUIRED = object()

#: what each parameter kind accepts, in words (for error messages and docs)
KIND_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "pair": "an integer or an [h, w] pair",
    "pad": "an integer, [h, w], [top, bottom, left, right] or \"same\"",
    "ints": "a list of integers",
    "floats": "a number or a list of numbers",
    "tensor": "a tensor name or a nested list of numbers",
    "bias": "true, false, a tensor name or a list of numbers",
    "literal": "a number or a nested list of numbers",
}


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    default: Any = REQUIRED
    doc: str = ""
    choices: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass
class OpSpec:
    name: str
    summary: str
    inputs: tuple[str, ...]
    params: tuple[Param, ...]
    lower: Callable[[NetBuilder, "Bound"], Value]
    variadic: bool = False            # any number (>= 1) of tensor inputs (concat)
    scalar_inputs: bool = False       # a number may stand for an input tensor (add/sub/mul)
    positional_param: str | None = None   # a literal allowed positionally after the inputs
    graph_op: str = ""

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def signature(self) -> str:
        ins = ", ".join(self.inputs) + (", ..." if self.variadic else "")
        ps = []
        for p in self.params:
            if p.required:
                ps.append(f"{p.name}=<{p.kind}>")
            elif p.default is None:
                ps.append(f"{p.name}=none")
            else:
                ps.append(f"{p.name}={_show_default(p.default)}")
        return f"{self.name}({', '.join([ins] + ps) if ins else ', '.join(ps)})"


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    return str(v)


def _show_default(v: Any) -> str:
    """A default as the user would write it: (1, 1) -> 1, None -> none."""
    if v is None:
        return "none"
    if isinstance(v, tuple) and v and all(e == v[0] for e in v):
        return _show(v[0])
    return _show(v)


@dataclass
class Bound:
    """A statement's arguments after checking: `inputs` (Values) and `p` (parameter values)."""

    stmt: Assign
    inputs: list[Value]
    p: dict[str, Any] = field(default_factory=dict)
    pos: dict[str, Any] = field(default_factory=dict)   # parameter -> position of its value

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["p"][name]
        except KeyError:
            raise AttributeError(name) from None


OPS: dict[str, OpSpec] = {}


def op(name: str, summary: str, inputs: tuple[str, ...] = ("input",), params: tuple[Param, ...] = (),
       graph_op: str = "", **kw: Any) -> Callable:
    def deco(fn: Callable[[NetBuilder, Bound], Value]) -> Callable:
        OPS[name] = OpSpec(name, summary, inputs, params, fn, graph_op=graph_op or f"graph.{name}", **kw)
        return fn
    return deco


# ---- argument checking -----------------------------------------------------------------------
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _convert(nb: NetBuilder, spec: OpSpec, p: Param, v: Lit | Ref) -> Any:
    def bad(extra: str = "") -> Exception:
        got = f"'{v.name}'" if isinstance(v, Ref) else _show(v.py())
        return nb.error(f"'{p.name}' expects {KIND_WORDS[p.kind]}, got {got}{extra}", v.pos)

    if p.kind in ("tensor", "bias"):
        if isinstance(v, Ref):
            return nb.tensor(v)
        if p.kind == "bias" and isinstance(v.value, bool):
            return v.value
        if isinstance(v.value, list):
            literal_array(nb, v, p.name)  # checks it is numeric and rectangular
            return v
        raise bad()
    if p.kind == "literal":
        if isinstance(v, Lit) and (_is_num(v.value) or isinstance(v.value, list)):
            return v
        raise bad()
    if isinstance(v, Ref):
        if p.kind == "str":
            raise bad(f' (strings are quoted: "{v.name}")')
        raise bad()
    x = v.py()
    if p.default is None and x is None:
        return None
    if p.kind == "int" and _is_int(x):
        return x
    if p.kind == "float" and _is_num(x):
        return float(x)
    if p.kind == "bool" and isinstance(x, bool):
        return x
    if p.kind == "str" and isinstance(x, str):
        if p.choices and x not in p.choices:
            raise nb.error(f"'{p.name}' must be one of {', '.join(_show(c) for c in p.choices)}, got {_show(x)}",
                           v.pos)
        return x
    if p.kind == "pair":
        if _is_int(x):
            return (x, x)
        if isinstance(x, list) and len(x) in (1, 2) and all(_is_int(e) for e in x):
            return (x[0], x[-1])
    if p.kind == "pad":
        if _is_int(x):
            return (x, x, x, x)
        if isinstance(x, list) and all(_is_int(e) for e in x):
            if len(x) == 2:
                return (x[0], x[0], x[1], x[1])
            if len(x) == 4:
                return tuple(x)
        if x in ("same", "valid"):
            return x
    if p.kind == "ints":
        if _is_int(x):
            return [x]
        if isinstance(x, list) and all(_is_int(e) for e in x):
            return list(x)
    if p.kind == "floats":
        if _is_num(x):
            return [float(x)]
        if isinstance(x, list) and x and all(_is_num(e) for e in x):
            return [float(e) for e in x]
    raise bad()


def bind(nb: NetBuilder, spec: OpSpec, stmt: Assign) -> Bound:
    """Check a statement's arguments against the op's spec."""
    inputs: list[Value] = []
    b = Bound(stmt, inputs)
    given: dict[str, Any] = {}
    tensor_params = [p for p in spec.params if p.kind in ("tensor", "bias")]
    n_pos = 0
    for arg in stmt.args:
        if arg.key is None:
            if n_pos < len(spec.inputs) or spec.variadic:
                v = arg.value
                if isinstance(v, Ref):
                    inputs.append(nb.tensor(v))
                elif spec.scalar_inputs and isinstance(v, Lit) and _is_num(v.value):
                    inputs.append(v)  # materialized by the lowering (needs the other operand's type)
                else:
                    what = spec.inputs[min(n_pos, len(spec.inputs) - 1)] if spec.inputs else "input"
                    raise nb.error(f"'{what}' must be a tensor name, got {_show(v.py())}", v.pos)
                n_pos += 1
                continue
            extra = n_pos - len(spec.inputs)
            target = None
            is_tensor = isinstance(arg.value, Ref) or (isinstance(arg.value, Lit) and isinstance(arg.value.value, list))
            if is_tensor and extra < len(tensor_params) and not spec.positional_param:
                target = tensor_params[extra]
            elif spec.positional_param and spec.positional_param not in given:
                target = spec.param(spec.positional_param)
            if target is not None and target.name in given:
                raise nb.error(f"'{target.name}' is given twice", arg.pos)
            if target is None:
                raise nb.error(f"too many positional arguments; {spec.name} takes "
                               f"{len(spec.inputs)}: {spec.signature()}", arg.pos)
            given[target.name] = arg.value
            n_pos += 1
            continue
        p = spec.param(arg.key)
        if p is None:
            names = [q.name for q in spec.params]
            takes = f"; it takes {', '.join(names)}" if names else "; it takes no parameters"
            raise nb.error(f"unknown parameter '{arg.key}'{did_you_mean(arg.key, names)}{takes}", arg.pos)
        if p.name in given:
            raise nb.error(f"'{p.name}' is given twice", arg.pos)
        given[p.name] = arg.value
    if n_pos < len(spec.inputs) or (spec.variadic and not inputs):
        need = len(spec.inputs) if not spec.variadic else 1
        raise nb.error(f"expects {need} tensor input{'s' if need > 1 else ''} "
                       f"({', '.join(spec.inputs)}), got {len(inputs)}: {spec.signature()}", stmt.op_pos)
    for p in spec.params:
        if p.name in given:
            b.p[p.name] = _convert(nb, spec, p, given[p.name])
            b.pos[p.name] = given[p.name].pos
        elif p.required:
            raise nb.error(f"missing parameter '{p.name}' ({p.doc or KIND_WORDS[p.kind]}): {spec.signature()}",
                           stmt.op_pos)
        else:
            b.p[p.name] = p.default
    return b


def lower_statement(nb: NetBuilder, stmt: Assign) -> Value:
    spec = OPS.get(stmt.op)
    if spec is None and stmt.op in nb.nets:
        return inline_net(nb, stmt)
    if spec is None:
        names = sorted(OPS)
        nets = f"; or call one of the nets {', '.join(sorted(nb.nets))}" if nb.nets else ""
        raise nb.fail(f"unknown op '{stmt.op}'{did_you_mean(stmt.op, names + sorted(nb.nets))}; the ops are: "
                      f"{', '.join(names)}{nets}", stmt.op_pos)
    return spec.lower(nb, bind(nb, spec, stmt))


def inline_net(nb: NetBuilder, stmt: Assign) -> Value:
    """`y = Block(a, b)`: the statements of net `Block` inlined here, each named and keyed `y.<stmt>`."""
    callee = nb.nets[stmt.op]
    if callee.name == nb.net.name or any(c == callee.name for c, _ in nb.calls):
        raise nb.fail(f"net '{callee.name}' calls itself (recursion is not allowed)", stmt.op_pos)
    args: list[Value] = []
    for arg in stmt.args:
        if arg.key is not None or not isinstance(arg.value, Ref):
            raise nb.fail(f"a call to net '{callee.name}' takes tensor names only "
                          f"({', '.join(i.name for i in callee.inputs)})", arg.pos)
        args.append(nb.tensor(arg.value))
    if len(args) != len(callee.inputs):
        raise nb.fail(f"net '{callee.name}' takes {len(callee.inputs)} input(s) "
                      f"({', '.join(i.name for i in callee.inputs)}), got {len(args)}", stmt.op_pos)
    child = nb.child(callee, stmt)
    for inp, v, arg in zip(callee.inputs, args, stmt.args):
        s = nb.shape(v)
        if len(s) != len(inp.shape) or s[1:] != inp.shape[1:]:
            raise nb.fail(f"net '{callee.name}' input '{inp.name}' is {type_text(inp.shape)} "
                          f"but '{arg.value.name}' is {type_text(s)}", arg.pos)
        child.env[inp.name] = (v, inp.pos)
    ret = None
    for s_ in callee.body:
        if isinstance(s_, Return):
            ret = s_
            break
        child.stmt = s_
        value = lower_statement(child, s_)
        child.stmt = None
        child.define(s_.target, value, s_.pos)
    if ret is None:
        raise nb.fail(f"net '{callee.name}' has no 'return' statement", stmt.op_pos)
    if len(ret.names) != 1:
        raise nb.fail(f"net '{callee.name}' returns {len(ret.names)} values; a call needs exactly one",
                      stmt.op_pos)
    name, pos = ret.names[0]
    result = child.tensor(Ref(name, pos))
    if all(result is not a for a in args):
        result.name_hint = nb.qual(stmt.target)
    return result


# ---- shape helpers ------------------------------------------------------------------------
def type_text(shape: tuple[int, ...]) -> str:
    return "f32[" + ", ".join(str(d) for d in shape) + "]"


def _rank(nb: NetBuilder, b: Bound, v: Value, ranks: tuple[int, ...], what: str) -> tuple[int, ...]:
    s = nb.shape(v)
    if len(s) not in ranks:
        r = " or ".join(f"{r}-D" for r in ranks)
        raise nb.error(f"expects a {r} {what} input, got {type_text(s)}")
    return s


def _nchw(nb: NetBuilder, b: Bound) -> tuple[int, ...]:
    return _rank(nb, b, b.inputs[0], (4,), "NCHW")


def _same_pad(nb: NetBuilder, b: Bound, kernel: tuple[int, int], stride: tuple[int, int],
              dilation: tuple[int, int], name: str = "pad") -> tuple[int, int, int, int]:
    pad = b.p[name]
    if pad == "valid":
        return (0, 0, 0, 0)
    if pad == "same":
        if stride != (1, 1):
            raise nb.error(f'{name}="same" needs stride 1, got {list(stride)}', b.pos.get(name))
        return conv_pads("same", kernel, dilation)
    return pad


def _weight_shape(nb: NetBuilder, b: Bound) -> tuple[int, ...] | None:
    w = b.p.get("weight")
    if isinstance(w, Value):
        return nb.shape(w)
    if isinstance(w, Lit):
        return literal_array(nb, w, "weight").shape
    return None


def _bias(nb: NetBuilder, b: Bound, n: int, fan_in: int) -> Value | None:
    bias = b.p.get("bias", True)
    if bias is False:
        return None
    return nb.param("bias", (n,), "bias", fan_in, None if bias is True else bias)


# ---- convolutions and products ----------------------------------------------------------------
_CONV_PARAMS = (
    Param("out", "int", None, "output channels (taken from 'weight' when given)"),
    Param("kernel", "pair", None, "kernel size (taken from 'weight' when given)"),
    Param("stride", "pair", (1, 1), "step (h, w)"),
    Param("pad", "pad", (0, 0, 0, 0), "padding: n, [h, w], [top, bottom, left, right] or \"same\""),
    Param("dilation", "pair", (1, 1), "spacing between kernel taps"),
    Param("groups", "int", 1, "channel groups; groups = input channels gives a depthwise conv"),
    Param("weight", "tensor", None, "the weights [out, in/groups, kh, kw] (default: weights file or random)"),
    Param("bias", "bias", True, "false for none, or the bias values"),
)


def _conv_common(nb: NetBuilder, b: Bound, transpose: bool) -> Value:
    x = b.inputs[0]
    n, c, h, w = _nchw(nb, b)
    groups = b.groups
    ws = _weight_shape(nb, b)
    out, kernel = b.out, b.kernel
    if ws is not None:
        if len(ws) != 4:
            raise nb.error(f"'weight' must be 4-D, got {type_text(ws)}", b.pos.get("weight"))
        w_out = ws[1] * groups if transpose else ws[0]
        out = w_out if out is None else out
        kernel = (ws[2], ws[3]) if kernel is None else kernel
    if ws is None and not transpose and nb.store.resized is not None and out is not None and kernel is not None:
        out, groups = _pruned_out(nb, b, c, out, groups, kernel)
    if groups < 1 or c % groups:
        raise nb.error(f"groups={groups} must divide the {c} input channels", b.pos.get("groups"))
    if out is None:
        raise nb.error(f"missing parameter 'out' (the number of output channels): {OPS[b.stmt.op].signature()}",
                       b.stmt.op_pos)
    if kernel is None:
        raise nb.error(f"missing parameter 'kernel' (the kernel size): {OPS[b.stmt.op].signature()}",
                       b.stmt.op_pos)
    if out < 1 or out % groups:
        raise nb.error(f"out={out} must be a positive multiple of groups={groups}", b.pos.get("out"))
    if min(kernel) < 1:
        raise nb.error(f"kernel must be positive, got {list(kernel)}", b.pos.get("kernel"))
    if transpose:
        if b.pad in ("same", "valid") and b.pad != "valid":
            raise nb.error('pad="same" is not supported for conv_transpose2d', b.pos.get("pad"))
        pad = (0, 0, 0, 0) if b.pad == "valid" else b.pad
        wshape = (c, out // groups, kernel[0], kernel[1])
        fan_in = (c // groups) * kernel[0] * kernel[1] // max(b.stride[0] * b.stride[1], 1)
    else:
        pad = _same_pad(nb, b, kernel, b.stride, b.dilation)
        wshape = (out, c // groups, kernel[0], kernel[1])
        fan_in = (c // groups) * kernel[0] * kernel[1]
    weight = nb.param("weight", wshape, "kaiming", fan_in, b.weight)
    bias = _bias(nb, b, out, fan_in)
    if transpose:
        return nb.emit("graph.conv_transpose2d", x, weight, bias, stride=b.stride, padding=pad,
                       output_padding=b.output_pad, dilation=b.dilation, groups=groups)
    return nb.emit("graph.conv2d", x, weight, bias, stride=b.stride, padding=pad, dilation=b.dilation,
                   groups=groups)


def _pruned_out(nb: NetBuilder, b: Bound, c: int, out: int, groups: int,
                kernel: tuple[int, int]) -> tuple[int, int]:
    """(out, groups) of a conv2d whose weights entry is a channel-pruned layer's: fewer output channels
    than `out`, the same kernel; a depthwise conv (groups = out, one input channel per group) keeps
    groups = its (pruned) input channels. Otherwise (out, groups) unchanged."""
    ws = nb.store.peek_shape(nb.owner, nb.qual(b.stmt.target), "weight")
    if ws is None or len(ws) != 4 or tuple(ws[2:]) != tuple(kernel) or not 1 <= ws[0] <= out:
        return out, groups
    new_groups = c if groups > 1 and groups == out and ws[1] == 1 else groups
    if (ws[0], new_groups) == (out, groups):
        return out, groups
    nb.store.resized.append(nb.qual(b.stmt.target))
    return ws[0], new_groups


@op("conv2d", "2-D convolution (torch.nn.Conv2d); in channels come from the input", params=_CONV_PARAMS)
def _conv2d(nb: NetBuilder, b: Bound) -> Value:
    return _conv_common(nb, b, transpose=False)


@op("depthwise_conv2d", "depthwise convolution: conv2d with groups = in channels, out = in * multiplier",
    params=(Param("kernel", "pair", None, "kernel size (taken from 'weight' when given)"),
            Param("stride", "pair", (1, 1), "step (h, w)"),
            Param("pad", "pad", (0, 0, 0, 0), "as for conv2d"),
            Param("dilation", "pair", (1, 1), "spacing between kernel taps"),
            Param("multiplier", "int", 1, "output channels per input channel"),
            Param("weight", "tensor", None, "[in * multiplier, 1, kh, kw]"),
            Param("bias", "bias", True, "false for none, or the bias values")),
    graph_op="graph.conv2d")
def _depthwise(nb: NetBuilder, b: Bound) -> Value:
    c = _nchw(nb, b)[1]
    if b.multiplier < 1:
        raise nb.error(f"multiplier must be positive, got {b.multiplier}", b.pos.get("multiplier"))
    b.p.update(groups=c, out=c * b.multiplier)
    return _conv_common(nb, b, transpose=False)


@op("conv_transpose2d", "transposed convolution (torch.nn.ConvTranspose2d)",
    params=_CONV_PARAMS[:-2] + (
        Param("output_pad", "pair", (0, 0), "extra rows/columns at the bottom/right of the output"),
        Param("weight", "tensor", None, "[in, out/groups, kh, kw]"), _CONV_PARAMS[-1]))
def _conv_transpose2d(nb: NetBuilder, b: Bound) -> Value:
    return _conv_common(nb, b, transpose=True)


@op("linear", "fully connected layer (torch.nn.Linear) on a 2-D [batch, features] input",
    params=(Param("out", "int", None, "output features (taken from 'weight' when given)"),
            Param("weight", "tensor", None, "[out, in]"),
            Param("bias", "bias", True, "false for none, or the bias values")))
def _linear(nb: NetBuilder, b: Bound) -> Value:
    x = b.inputs[0]
    s = nb.shape(x)
    if len(s) != 2:
        raise nb.error(f"expects a 2-D [batch, features] input, got {type_text(s)}; flatten it first")
    ws = _weight_shape(nb, b)
    out = b.out if b.out is not None else (ws[0] if ws is not None and len(ws) == 2 else None)
    if out is None:
        raise nb.error(f"missing parameter 'out' (the number of output features): {OPS['linear'].signature()}",
                       b.stmt.op_pos)
    if out < 1:
        raise nb.error(f"out must be positive, got {out}", b.pos.get("out"))
    weight = nb.param("weight", (out, s[1]), "kaiming", s[1], b.weight)
    return nb.emit("graph.linear", x, weight, _bias(nb, b, out, s[1]))


@op("matmul", "matrix product (torch.matmul, batched and broadcasting)", inputs=("lhs", "rhs"))
def _matmul(nb: NetBuilder, b: Bound) -> Value:
    return nb.emit("graph.matmul", *b.inputs)


@op("batch_norm", "inference batch norm over channels (axis 1)",
    params=(Param("eps", "float", 1e-5, "added to the variance"), Param("mean", "tensor", None, "running mean [C]"),
            Param("var", "tensor", None, "running variance [C]"), Param("gamma", "tensor", None, "scale [C]"),
            Param("beta", "tensor", None, "shift [C]")))
def _batch_norm(nb: NetBuilder, b: Bound) -> Value:
    x = b.inputs[0]
    s = nb.shape(x)
    if len(s) < 2:
        raise nb.error(f"expects an input with a channel axis (rank >= 2), got {type_text(s)}")
    if b.eps <= 0:
        raise nb.error(f"eps must be positive, got {b.eps}", b.pos.get("eps"))
    c = s[1]
    mean = nb.param("mean", (c,), "bn_shift", given=b.mean)
    var = nb.param("var", (c,), "bn_var", given=b.var)
    gamma = nb.param("gamma", (c,), "bn_gamma", given=b.gamma)
    beta = nb.param("beta", (c,), "bn_shift", given=b.beta)
    if isinstance(b.var, Lit) and (literal_array(nb, b.var, "var") < 0).any():
        raise nb.error("'var' must not be negative", b.pos.get("var"))
    return nb.emit("graph.batch_norm", x, mean, var, gamma, beta, eps=b.eps)


# ---- activations ------------------------------------------------------------------------------
def _unary(name: str, summary: str) -> None:
    def lower(nb: NetBuilder, b: Bound) -> Value:
        return nb.emit(f"graph.{name}", b.inputs[0])
    op(name, summary)(lower)


for _name, _summary in [("relu", "max(x, 0)"), ("relu6", "min(max(x, 0), 6)"), ("sigmoid", "1 / (1 + exp(-x))"),
                        ("tanh", "tanh(x)"), ("silu", "x * sigmoid(x)"),
                        ("hardsigmoid", "relu6(x + 3) / 6 (torch.nn.Hardsigmoid)"),
                        ("hardswish", "x * relu6(x + 3) / 6"), ("identity", "x (a no-op)")]:
    _unary(_name, _summary)


@op("leaky_relu", "x if x >= 0 else alpha * x", params=(Param("alpha", "float", 0.01, "negative slope"),))
def _leaky_relu(nb: NetBuilder, b: Bound) -> Value:
    return nb.emit("graph.leaky_relu", b.inputs[0], alpha=b.alpha)


@op("prelu", "leaky ReLU with a learned slope (torch.nn.PReLU; slope 0.25 unless given)",
    params=(Param("per_channel", "bool", False, "one slope per channel instead of one in all"),
            Param("slope", "tensor", None, "the slopes [1] or [C]")))
def _prelu(nb: NetBuilder, b: Bound) -> Value:
    x = b.inputs[0]
    s = nb.shape(x)
    n = 1
    if b.per_channel:
        if len(s) < 2:
            raise nb.error(f"per_channel needs an input with a channel axis, got {type_text(s)}")
        n = s[1]
    if isinstance(b.slope, Value):
        slope = b.slope
    else:
        shape = (n,)
        if isinstance(b.slope, Lit) and not b.per_channel:
            shape = literal_array(nb, b.slope, "slope").shape
        slope = nb.param("slope", shape, "const:0.25", given=b.slope)
    return nb.emit("graph.prelu", x, slope)


@op("dropout", "identity at inference (kept for fidelity to the source model)",
    params=(Param("p", "float", 0.5, "drop probability in training"),))
def _dropout(nb: NetBuilder, b: Bound) -> Value:
    if not 0.0 <= b.p["p"] <= 1.0:
        raise nb.error(f"p must be in [0, 1], got {b.p['p']}", b.pos.get("p"))
    return nb.emit("graph.dropout", b.inputs[0], p=b.p["p"])


@op("softmax", "softmax along an axis", params=(Param("axis", "int", -1, "the axis that sums to 1"),))
def _softmax(nb: NetBuilder, b: Bound) -> Value:
    return nb.emit("graph.softmax", b.inputs[0], axis=b.axis)


# ---- pooling ---------------------------------------------------------------------------------
_POOL_PARAMS = (
    Param("kernel", "pair", REQUIRED, "window size"),
    Param("stride", "pair", None, "default: the kernel size"),
    Param("pad", "pad", (0, 0, 0, 0), "padding: n, [h, w], [top, bottom, left, right] or \"same\""),
    Param("ceil_mode", "bool", False, "round the output size up"),
)


@op("max_pool2d", "max pooling (torch.nn.MaxPool2d)",
    params=_POOL_PARAMS[:3] + (Param("dilation", "pair", (1, 1), "spacing between window taps"),) + _POOL_PARAMS[3:])
def _max_pool2d(nb: NetBuilder, b: Bound) -> Value:
    _nchw(nb, b)
    stride = b.stride or b.kernel
    pad = _same_pad(nb, b, b.kernel, stride, b.dilation)
    return nb.emit("graph.max_pool2d", b.inputs[0], kernel=b.kernel, stride=stride, padding=pad,
                   dilation=b.dilation, ceil_mode=b.ceil_mode)


@op("avg_pool2d", "average pooling (torch.nn.AvgPool2d)",
    params=_POOL_PARAMS + (Param("count_include_pad", "bool", True, "count padded zeros in the average"),
                           Param("divisor", "int", None, "divide by this instead of the window size")))
def _avg_pool2d(nb: NetBuilder, b: Bound) -> Value:
    _nchw(nb, b)
    stride = b.stride or b.kernel
    pad = _same_pad(nb, b, b.kernel, stride, (1, 1))
    if b.divisor is not None and b.divisor < 1:
        raise nb.error(f"divisor must be positive, got {b.divisor}", b.pos.get("divisor"))
    return nb.emit("graph.avg_pool2d", b.inputs[0], kernel=b.kernel, stride=stride, padding=pad,
                   ceil_mode=b.ceil_mode, count_include_pad=b.count_include_pad, divisor_override=b.divisor)


@op("adaptive_avg_pool2d", "average pooling to a fixed output size (torch.nn.AdaptiveAvgPool2d)",
    params=(Param("size", "pair", REQUIRED, "output size (h, w)"),))
def _adaptive_avg_pool2d(nb: NetBuilder, b: Bound) -> Value:
    _nchw(nb, b)
    return nb.emit("graph.adaptive_avg_pool2d", b.inputs[0], output_size=b.size)


@op("global_avg_pool2d", "average over H and W, keeping [N, C, 1, 1] (adaptive_avg_pool2d(size=1))",
    graph_op="graph.adaptive_avg_pool2d")
def _global_avg_pool2d(nb: NetBuilder, b: Bound) -> Value:
    _nchw(nb, b)
    return nb.emit("graph.adaptive_avg_pool2d", b.inputs[0], output_size=(1, 1))


# ---- elementwise and shape ops --------------------------------------------------------------
def _binary(name: str, summary: str) -> None:
    def lower(nb: NetBuilder, b: Bound) -> Value:
        ops = list(b.inputs)
        if all(isinstance(v, Lit) for v in ops):
            raise nb.error("needs at least one tensor operand", ops[0].pos)
        for i, v in enumerate(ops):
            if isinstance(v, Lit):
                ops[i] = nb.emit("graph.constant", value=DenseElementsAttr.from_array(
                    np.asarray(v.value, dtype=np.float32)), name=f"{nb.qual(b.stmt.target)}.scalar")
        return nb.emit(f"graph.{name}", *ops)
    op(name, summary + " (numpy broadcasting; a number may stand for either operand)", inputs=("lhs", "rhs"),
       scalar_inputs=True)(lower)


for _name, _summary in [("add", "lhs + rhs"), ("sub", "lhs - rhs"), ("mul", "lhs * rhs")]:
    _binary(_name, _summary)


@op("concat", "concatenate tensors along an axis", inputs=("inputs",), variadic=True,
    params=(Param("axis", "int", 1, "the axis to join along"),))
def _concat(nb: NetBuilder, b: Bound) -> Value:
    return nb.emit("graph.concat", list(b.inputs), axis=b.axis)


@op("reshape", "reshape (-1 = inferred, 0 = keep that input dimension); a leading dimension equal to the "
    "input's batch is kept as the batch", params=(Param("shape", "ints", REQUIRED, "the new shape"),),
    positional_param="shape")
def _reshape(nb: NetBuilder, b: Bound) -> Value:
    x = b.inputs[0]
    s = nb.shape(x)
    shape = list(b.shape)
    if shape and s and shape[0] == s[0]:
        shape[0] = 0  # the batch dimension: any batch size runs
    return nb.emit("graph.reshape", x, shape=shape)


@op("flatten", "flatten dimensions start_dim..end_dim into one", params=(Param("start_dim", "int", 1, "first dimension to merge"),
                                                                       Param("end_dim", "int", -1, "last dimension to merge")))
def _flatten(nb: NetBuilder, b: Bound) -> Value:
    return nb.emit("graph.flatten", b.inputs[0], start_dim=b.start_dim, end_dim=b.end_dim)


@op("transpose", "permute dimensions (torch.permute)", params=(Param("perm", "ints", REQUIRED, "the new order"),),
    positional_param="perm")
def _transpose(nb: NetBuilder, b: Bound) -> Value:
    return nb.emit("graph.transpose", b.inputs[0], perm=b.perm)


@op("pad", "pad with a constant or by reflecting/replicating the edges (torch.nn.functional.pad)",
    params=(Param("pads", "ints", REQUIRED, "F.pad order: (left, right, top, bottom, ...) from the last dim"),
            Param("mode", "str", "constant", "how to fill the border", choices=("constant", "reflect", "replicate")),
            Param("value", "float", 0.0, "fill value for mode \"constant\"")),
    positional_param="pads")
def _pad(nb: NetBuilder, b: Bound) -> Value:
    if len(b.pads) % 2:
        raise nb.error(f"pads needs an even number of values (pairs), got {len(b.pads)}", b.pos.get("pads"))
    return nb.emit("graph.pad", b.inputs[0], pads=b.pads, mode=b.mode, value=b.value)


@op("upsample", "resize by a scale factor or to a size (torch.nn.functional.interpolate)",
    params=(Param("scale", "floats", None, "scale factor, or [sh, sw]"),
            Param("size", "pair", None, "output size (h, w)"),
            Param("mode", "str", "nearest", "interpolation", choices=("nearest", "bilinear")),
            Param("align_corners", "bool", False, "bilinear only")))
def _upsample(nb: NetBuilder, b: Bound) -> Value:
    n, c, h, w = _nchw(nb, b)
    if (b.scale is None) == (b.size is None):
        raise nb.error("give exactly one of 'scale' and 'size'")
    if b.align_corners and b.mode != "bilinear":
        raise nb.error('align_corners=true needs mode="bilinear"', b.pos.get("align_corners"))
    scale = None
    if b.scale is not None:
        scale = list(b.scale)
        if len(scale) == 1:
            scale *= 2
        if len(scale) != 2 or min(scale) <= 0:
            raise nb.error(f"scale must be a positive number or [sh, sw], got {scale}", b.pos.get("scale"))
        size = (int(math.floor(h * scale[0])), int(math.floor(w * scale[1])))
        if min(size) < 1:
            raise nb.error(f"scale {scale} gives an empty output for a {h}x{w} input", b.pos.get("scale"))
    else:
        size = b.size
        if min(size) < 1:
            raise nb.error(f"size must be positive, got {list(size)}", b.pos.get("size"))
    return nb.emit("graph.upsample", b.inputs[0], mode=b.mode, size=size, align_corners=b.align_corners,
                   scale_factor=scale)


@op("mean", "average over axes", params=(Param("axes", "ints", REQUIRED, "the axes to reduce"),
                                         Param("keepdim", "bool", False, "keep reduced axes with size 1")))
def _mean(nb: NetBuilder, b: Bound) -> Value:
    return nb.emit("graph.mean", b.inputs[0], axes=b.axes, keepdim=b.keepdim)


# ---- slicing, broadcasting, reductions, normalization (issue 15) -------------------------------------
_END = 2**63 - 1  # graph.SLICE_END: "to the end"


def _axis(nb: NetBuilder, b: Bound, rank: int, name: str = "axis") -> int:
    a = b.p[name]
    if not -rank <= a < rank:
        raise nb.error(f"{name} {a} is out of range for a rank-{rank} input", b.pos.get(name))
    return a % rank


@op("slice", "strided slice x[..., start:end:step, ...] on the listed axes (Python index rules: negative "
    "values count from the end, bounds are clamped)",
    params=(Param("axes", "ints", REQUIRED, "the axes to slice"),
            Param("starts", "ints", None, "first index per axis (default 0)"),
            Param("ends", "ints", None, "end index (exclusive) per axis (default: to the end)"),
            Param("steps", "ints", None, "positive step per axis (default 1)")))
def _slice(nb: NetBuilder, b: Bound) -> Value:
    n = len(b.axes)
    starts = b.starts if b.starts is not None else [0] * n
    ends = b.ends if b.ends is not None else [_END] * n
    for name, v in (("starts", starts), ("ends", ends), ("steps", b.steps)):
        if v is not None and len(v) != n:
            raise nb.error(f"'{name}' needs one value per axis ({n}), got {len(v)}", b.pos.get(name))
    return nb.emit("graph.slice", b.inputs[0], axes=b.axes, starts=starts, ends=ends, steps=b.steps)


def _pieces(nb: NetBuilder, b: Bound, sizes: list[int], axis: int) -> Value:
    if not 0 <= b.index < len(sizes):
        raise nb.error(f"index {b.index} is out of range for {len(sizes)} pieces", b.pos.get("index"))
    start = sum(sizes[:b.index])
    return nb.emit("graph.slice", b.inputs[0], axes=[axis], starts=[start], ends=[start + sizes[b.index]])


@op("chunk", "piece `index` of torch.chunk(input, chunks, axis): pieces of ceil(size / chunks), the last "
    "one smaller", params=(Param("chunks", "int", REQUIRED, "how many pieces"),
                           Param("index", "int", REQUIRED, "which piece (from 0)"),
                           Param("axis", "int", 1, "the axis to cut")), graph_op="graph.slice")
def _chunk(nb: NetBuilder, b: Bound) -> Value:
    s = nb.shape(b.inputs[0])
    axis = _axis(nb, b, len(s))
    if b.chunks < 1:
        raise nb.error(f"chunks must be positive, got {b.chunks}", b.pos.get("chunks"))
    step = -(-s[axis] // b.chunks)
    sizes = [min(step, s[axis] - i) for i in range(0, s[axis], step)] if step else []
    return _pieces(nb, b, sizes, axis)


@op("split", "piece `index` of torch.split(input, sizes, axis)",
    params=(Param("sizes", "ints", REQUIRED, "the size of each piece, or one size for equal pieces (the last "
                  "one smaller)"),
            Param("index", "int", REQUIRED, "which piece (from 0)"),
            Param("axis", "int", 1, "the axis to cut")), graph_op="graph.slice")
def _split(nb: NetBuilder, b: Bound) -> Value:
    s = nb.shape(b.inputs[0])
    axis = _axis(nb, b, len(s))
    sizes = list(b.sizes)
    if any(v < 1 for v in sizes):
        raise nb.error(f"sizes must be positive, got {sizes}", b.pos.get("sizes"))
    if len(sizes) == 1:
        sizes = [min(sizes[0], s[axis] - i) for i in range(0, s[axis], sizes[0])]
    elif sum(sizes) != s[axis]:
        raise nb.error(f"sizes {sizes} add up to {sum(sizes)}, but axis {b.axis} has size {s[axis]}",
                       b.pos.get("sizes"))
    return _pieces(nb, b, sizes, axis)


@op("select", "x[..., index, ...] on one axis, which is removed (one result of torch.unbind)",
    params=(Param("index", "int", REQUIRED, "the index (negative counts from the end)"),
            Param("axis", "int", 1, "the axis")), graph_op="graph.slice")
def _select(nb: NetBuilder, b: Bound) -> Value:
    x = b.inputs[0]
    s = nb.shape(x)
    axis = _axis(nb, b, len(s))
    if not -s[axis] <= b.index < s[axis]:
        raise nb.error(f"index {b.index} is out of range for axis {b.axis} of size {s[axis]}", b.pos.get("index"))
    i = b.index % s[axis]
    y = nb.emit("graph.slice", x, axes=[axis], starts=[i], ends=[i + 1])
    out = list(s[:axis]) + list(s[axis + 1:])
    if axis > 0:
        out[0] = 0
    return nb.emit("graph.reshape", y, shape=out)


@op("expand", "broadcast size-1 dimensions (torch Tensor.expand): -1 keeps a dimension, 0 takes the 'like' "
    "tensor's dimension (e.g. its batch); new leading dimensions may be added",
    params=(Param("shape", "ints", REQUIRED, "the new shape"),
            Param("like", "tensor", None, "the tensor whose dimensions the 0 entries take")),
    positional_param="shape")
def _expand(nb: NetBuilder, b: Bound) -> Value:
    like = b.like
    if like is not None and not isinstance(like, Value):
        raise nb.error("'like' must be a tensor name", b.pos.get("like"))
    return nb.emit("graph.expand", b.inputs[0], like, shape=b.shape)


@op("tile", "repeat the tensor along each dimension (torch Tensor.repeat)",
    params=(Param("repeats", "ints", REQUIRED, "copies per dimension (more entries add leading dimensions)"),),
    positional_param="repeats")
def _tile(nb: NetBuilder, b: Bound) -> Value:
    return nb.emit("graph.tile", b.inputs[0], repeats=b.repeats)


def _reduction(name: str, summary: str) -> None:
    def lower(nb: NetBuilder, b: Bound) -> Value:
        return nb.emit(f"graph.{name}", b.inputs[0], axes=b.axes, keepdim=b.keepdim)
    op(name, summary, params=(Param("axes", "ints", REQUIRED, "the axes to reduce"),
                              Param("keepdim", "bool", False, "keep reduced axes with size 1")))(lower)


for _name, _summary in [("sum", "sum over axes"), ("amax", "maximum over axes"), ("amin", "minimum over axes")]:
    _reduction(_name, _summary)


_NORM_AFFINE = (Param("eps", "float", 1e-5, "added to the variance"),
                Param("weight", "tensor", None, "scale (default: weights file, else ones)"),
                Param("bias", "tensor", None, "shift (default: weights file, else zeros)"))


def _affine(nb: NetBuilder, b: Bound, shape: tuple[int, ...]) -> tuple[Value, Value]:
    if b.eps < 0:
        raise nb.error(f"eps must be non-negative, got {b.eps}", b.pos.get("eps"))
    return nb.param("weight", shape, "ones", given=b.weight), nb.param("bias", shape, "zeros", given=b.bias)


@op("layer_norm", "layer normalization over the trailing dimensions (torch.nn.LayerNorm)",
    params=(Param("dims", "int", 1, "how many trailing dimensions to normalize"),) + _NORM_AFFINE)
def _layer_norm(nb: NetBuilder, b: Bound) -> Value:
    s = nb.shape(b.inputs[0])
    if not 1 <= b.dims <= len(s):
        raise nb.error(f"dims must be between 1 and the rank {len(s)}, got {b.dims}", b.pos.get("dims"))
    ns = tuple(s[len(s) - b.dims:])
    w, bias = _affine(nb, b, ns)
    return nb.emit("graph.layer_norm", b.inputs[0], w, bias, normalized_shape=ns, eps=b.eps)


@op("group_norm", "group normalization over channel groups and positions (torch.nn.GroupNorm)",
    params=(Param("groups", "int", REQUIRED, "channel groups (must divide the channels)"),) + _NORM_AFFINE)
def _group_norm(nb: NetBuilder, b: Bound) -> Value:
    s = _rank(nb, b, b.inputs[0], (3, 4, 5), "(N, C, ...)")
    if b.groups < 1 or s[1] % b.groups:
        raise nb.error(f"groups={b.groups} must divide the {s[1]} channels", b.pos.get("groups"))
    w, bias = _affine(nb, b, (s[1],))
    return nb.emit("graph.group_norm", b.inputs[0], w, bias, groups=b.groups, eps=b.eps)


@op("instance_norm", "instance normalization: each channel over its positions (torch.nn.InstanceNorm2d; "
    "group_norm with one group per channel)", params=_NORM_AFFINE, graph_op="graph.group_norm")
def _instance_norm(nb: NetBuilder, b: Bound) -> Value:
    s = _rank(nb, b, b.inputs[0], (3, 4, 5), "(N, C, ...)")
    w, bias = _affine(nb, b, (s[1],))
    return nb.emit("graph.group_norm", b.inputs[0], w, bias, groups=s[1], eps=b.eps)


@op("gelu", "x * Phi(x), or its tanh approximation (torch.nn.GELU)",
    params=(Param("approximate", "str", "none", "exact or the tanh formula", choices=("none", "tanh")),))
def _gelu(nb: NetBuilder, b: Bound) -> Value:
    return nb.emit("graph.gelu", b.inputs[0], approximate=b.approximate)


@op("mish", "x * tanh(softplus(x)) (torch.nn.Mish)")
def _mish(nb: NetBuilder, b: Bound) -> Value:
    return nb.emit("graph.mish", b.inputs[0])


@op("roll", "shift elements cyclically along axes (torch.roll)",
    params=(Param("shifts", "ints", REQUIRED, "shift per axis"), Param("axes", "ints", REQUIRED, "the axes")))
def _roll(nb: NetBuilder, b: Bound) -> Value:
    return nb.emit("graph.roll", b.inputs[0], shifts=b.shifts, axes=b.axes)


@op("normalize", "x / max(||x||_p, eps) along an axis (torch.nn.functional.normalize)",
    params=(Param("axis", "int", 1, "the axis of the norm"), Param("p", "float", 2.0, "the norm's exponent"),
            Param("eps", "float", 1e-12, "smallest divisor")))
def _normalize(nb: NetBuilder, b: Bound) -> Value:
    return nb.emit("graph.normalize", b.inputs[0], axis=b.axis, p=b.p["p"], eps=b.eps)


@op("channel_shuffle", "ShuffleNet's channel shuffle (torch.nn.ChannelShuffle): view as (N, groups, C/groups, "
    "...), swap those two axes, view back", params=(Param("groups", "int", REQUIRED, "must divide the channels"),),
    graph_op="graph.reshape, graph.transpose")
def _channel_shuffle(nb: NetBuilder, b: Bound) -> Value:
    x = b.inputs[0]
    s = _rank(nb, b, x, (3, 4, 5), "(N, C, ...)")
    g = b.groups
    if g < 1 or s[1] % g:
        raise nb.error(f"groups={g} must divide the {s[1]} channels", b.pos.get("groups"))
    rest = list(s[2:])
    name = nb.qual(b.stmt.target)
    y = nb.emit("graph.reshape", x, shape=[0, g, s[1] // g] + rest, name=f"{name}.groups")
    y = nb.emit("graph.transpose", y, perm=[0, 2, 1] + list(range(3, 3 + len(rest))), name=f"{name}.swap")
    return nb.emit("graph.reshape", y, shape=[0, s[1]] + rest)


# ---- constants ------------------------------------------------------------------------------
@op("const", "a constant tensor: const([[1, 2], [3, 4]]) inline, or const(shape=[..]) from the weights file "
    "(key <name>) or seeded-random", inputs=(),
    params=(Param("value", "literal", None, "the values (nested lists)"),
            Param("shape", "ints", None, "the shape, when the values come from the weights or are random"),
            Param("init", "str", "normal", "random values when not in the weights",
                  choices=("normal", "uniform", "zeros", "ones"))),
    positional_param="value", graph_op="graph.constant")
def _const(nb: NetBuilder, b: Bound) -> Value:
    if (b.value is None) == (b.shape is None):
        raise nb.error("give exactly one of a value (const([...])) and shape=[...]")
    if b.value is not None:
        arr = literal_array(nb, b.value, "value")
        return nb.constant(arr, None, resource=arr.size > 16)
    if any(d < 1 for d in b.shape):
        raise nb.error(f"shape must be positive, got {b.shape}", b.pos.get("shape"))
    hit = nb.store.lookup(nb.owner, nb.qual(b.stmt.target), "value") or _const_key(nb, nb.qual(b.stmt.target))
    if hit is not None:
        key, arr = hit
        if tuple(arr.shape) != tuple(b.shape):
            raise nb.error(f"weights entry '{key}' has shape {list(arr.shape)} but {b.shape} is needed")
        return nb.constant(arr, None)
    arr = nb.random_array("value", tuple(b.shape), b.init)
    return nb.constant(arr, None)


def _const_key(nb: NetBuilder, name: str) -> tuple[str, np.ndarray] | None:
    """A const's entry in the weights: key `<name>` (or `<net>.<name>`)."""
    for key in (f"{nb.owner}.{name}", name):
        if key in nb.store.weights:
            nb.store.used.add(key)
            return key, np.asarray(nb.store.weights[key])
    return None


def reference_markdown() -> str:
    """The op reference of docs/dsl.md, generated from `OPS` (a test keeps the docs in sync)."""
    lines = []
    for name in sorted(OPS):
        spec = OPS[name]
        lines.append(f"### `{spec.signature()}`")
        lines.append("")
        lines.append(f"{spec.summary}. Lowers to `{spec.graph_op}`.")
        if spec.params:
            lines.append("")
            lines.append("| parameter | accepts | default | meaning |")
            lines.append("|---|---|---|---|")
            for p in spec.params:
                default = "required" if p.required else _show_default(p.default)
                accepts = KIND_WORDS[p.kind]
                if p.choices:
                    accepts = " / ".join(_show(c) for c in p.choices)
                lines.append(f"| `{p.name}` | {accepts} | `{default}` | {p.doc} |".replace("`required`", "required"))
        lines.append("")
    return "\n".join(lines)
