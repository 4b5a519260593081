"""The quantized model as an XIR graph: `fix` dialect module <-> `XGraph` (the `_int.xmodel`).

XIR conventions (spec/xmodel.md): one op per IR op, in program order, each with one output tensor
named after it; feature maps NHWC; `kernel` / `stride` / `dilation` width first, `pad`
{left, right, top, bottom}; tensors carry `fix_point`, `bit_width`, `if_signed`, `round_mode`;
`const-fix` holds little-endian integer bytes.

| fix op | XIR op type | notes |
|---|---|---|
| fix.data | data-fix | the function argument; `layout = "NCHW"` when the float input is NCHW |
| fix.const | const-fix | `data`: int8 (or int16/int32) little-endian |
| fix.conv2d / depthwise_conv2d | conv2d-fix / depthwise-conv2d-fix | depthwise weights [1, KH, KW, C] |
| fix.transposed_conv2d | transposed-conv2d-fix | XIR weights are spatially flipped, `pad` = XIR's k-1-actual |
| fix.dense | matmul-fix | `transpose_a = false`, `transpose_b = true` (XIR has no `inner-product-fix`) |
| fix.pool / eltwise / concat / reshape / upsample / pad | pool-fix / eltwise-fix / concat-fix / reshape-fix / upsample-fix / pad-fix | |
| fix.hard_sigmoid / hard_swish | hard-sigmoid-fix / hard-swish-fix | |
| fix.transpose | transpose (`order`) | |
| fix.strided_slice | strided_slice-fix (`begin`, `end`, `strides`: one entry per NHWC dimension) | |
| graph.gelu / mish / layer_norm / group_norm / sum / amax / amin (CPU) | gelu / mish / layernorm / groupnorm / reduction_sum / reduction_max / reduction_min | XIR's attributes (`axis`, `epsilon`, `num_groups`, `keep_dims`, ...) computed from the op, beside the graph's own |
| fix.fix / fix.float | fix / fix2float | |
| graph.constant | const | float32 `data`; a scalar is written with shape [1] (XIR needs a non-empty shape) |
| graph.* (CPU fallback) | XIR's float op: sigmoid, tanh, swish, softmax, prelu, sub, matmul | float tensors, XIR argument names (:data:`XIR_FLOAT_OPS`) |
| graph.linear (a layer left in float) | matmul (input = [x, weight], bias, transpose_b = true) | float tensors |
| graph.conv2d (a layer left in float) | transpose `<c>_nhwc`, conv2d `<c>` (NHWC, `const` weights OHWI), transpose `<c>_nchw` | XIR's float conv is NHWC; read back as graph transposes around graph.conv2d |
| graph.pad (CPU: not an H/W pad of an NCHW map) | pad (`paddings` per dimension, `mode` CONSTANT / REFLECT / SYMMETRIC, `constant_values`) | the graph's `mode` is not written (XIR's values differ) |
| graph.leaky_relu / mean (CPU) | leaky-relu (`alpha`) / reduction_mean (`axis`, `keep_dims`) | |
| graph.relu / relu6 / hardswish / hardsigmoid (a layer left in float) | relu / relu6 / hard-swish / hard-sigmoid | element-wise: the NCHW map as it is |
| graph.max_pool2d / avg_pool2d / adaptive_avg_pool2d / upsample / conv_transpose2d (left in float) | transpose `<op>_nhwc`, maxpool2d / avgpool2d / resize / transposed-conv2d `<op>` (NHWC), transpose `<op>_nchw` | as a float conv (:data:`NHWC_FLOAT_OPS`); an adaptive pool needs even windows; transposed-conv2d weights OHWI spatially flipped |

A fix.reshape whose 0 / -1 (a batch-following dimension) is past the first dimension keeps that shape in
`__fixflow_shape` beside XIR's static `shape`; the reader uses it, or else infers only the first dimension.

Every type is one of XIR's built-in op types (amd/xir `src/xir/op/built_in_ops.cpp`) with the
attributes and argument names its definition requires: AMD's XIR ignores the `op_defs` stored in
a file, so an unknown type does not load there.

`device` and `fix.reason` op attributes are kept. Graph attributes `__fixflow_function`,
`__fixflow_inputs` and `__fixflow_outputs` (private keys) restore the function signature.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ...dialects.builtin import FuncOp, ModuleOp, ReturnOp
from ...dialects.fix import ops as Q
from ...ir.attributes import (BoolAttr, DenseArrayAttr, DenseElementsAttr, DenseResourceElementsAttr, FloatAttr,
                              IntegerAttr, StringAttr)
from ...ir.builder import Builder
from ...ir.core import Block, Operation, Value
from ...ir.location import UNKNOWN_LOC, NameLoc
from ...ir.opdef import BOOL, FLOAT, I32, INT, Op, lookup_op_class
from ...dialects.fix.types import FixedPointType
from ...dialects.graph.kernels import torch_pad_to_pairs
from ...ir.types import FloatType, TensorType, f32
from .int_validate import ARGUMENTS, check_xop
from .model import XAttr, XGraph, XModelError, XOp, XSubgraph, XTensor
from .serial import read_xmodel, write_xmodel

ROUND_TO_XIR = {"std_round": "STD_ROUND", "half_up": "DPU_ROUND", "half_even": "PY3_ROUND"}
ROUND_FROM_XIR = {v: k for k, v in ROUND_TO_XIR.items()}
PAD_MODES = {"constant": "CONSTANT", "reflect": "REFLECT", "symmetric": "SYMMETRIC", "edge": "EDGE"}
_FIX_TYPES = {
    "fix.conv2d": "conv2d-fix", "fix.depthwise_conv2d": "depthwise-conv2d-fix",
    "fix.transposed_conv2d": "transposed-conv2d-fix", "fix.dense": "matmul-fix", "fix.pool": "pool-fix",
    "fix.eltwise": "eltwise-fix", "fix.concat": "concat-fix", "fix.reshape": "reshape-fix",
    "fix.upsample": "upsample-fix", "fix.pad": "pad-fix", "fix.hard_sigmoid": "hard-sigmoid-fix",
    "fix.hard_swish": "hard-swish-fix", "fix.transpose": "transpose", "fix.fix": "fix", "fix.float": "fix2float",
    "fix.const": "const-fix", "fix.data": "data-fix", "fix.strided_slice": "strided_slice-fix",
}
_KEEP = ("device", "fix.reason")
#: reshape-fix's shape as fix.reshape has it (0 copies, -1 infers) when a dimension past the first follows
#: the batch; without it the reader infers only the first dimension
RESHAPE_SHAPE = "__fixflow_shape"
#: float (CPU) graph ops -> (XIR built-in type, {graph operand: XIR argument}, fixed XIR attributes).
#: Operands mapped to the same argument (XIR's repeated `input`) keep their order.
XIR_FLOAT_OPS: dict[str, tuple[str, dict[str, str], dict[str, Any]]] = {
    "graph.sigmoid": ("sigmoid", {}, {}),
    "graph.tanh": ("tanh", {}, {}),
    "graph.silu": ("swish", {}, {}),
    "graph.softmax": ("softmax", {}, {}),
    "graph.prelu": ("prelu", {"slope": "weight"}, {}),
    "graph.sub": ("sub", {"lhs": "input", "rhs": "input"}, {}),
    "graph.matmul": ("matmul", {"lhs": "input", "rhs": "input"}, {"transpose_a": False, "transpose_b": False}),
    # issue 15's CPU ops; a callable gives an XIR attribute from the op (the graph's own attributes are kept too)
    "graph.leaky_relu": ("leaky-relu", {}, {"alpha": lambda op: XAttr("float", float(op.alpha))}),
    # activations of layers left in float (element-wise: the NCHW map is written as it is)
    "graph.relu": ("relu", {}, {}),
    "graph.relu6": ("relu6", {}, {}),
    "graph.hardsigmoid": ("hard-sigmoid", {}, {}),
    "graph.hardswish": ("hard-swish", {}, {}),
    "graph.gelu": ("gelu", {}, {}),
    "graph.mish": ("mish", {}, {}),
    "graph.layer_norm": ("layernorm", {"weight": "weights"},
                         {"axis": lambda op: op.input.type.rank - len(op.normalized_shape),
                          "epsilon": lambda op: XAttr("float", float(op.eps))}),   # XIR reads a C++ float
    "graph.group_norm": ("groupnorm", {"weight": "weights"},
                         {"num_groups": lambda op: int(op.groups), "num_channels": lambda op: op.input.type.shape[1],
                          "eps": lambda op: XAttr("float", float(op.eps)), "affine": True}),
    "graph.sum": ("reduction_sum", {}, {"axis": lambda op: XAttr("int32_vec", [int(a) for a in op.axes]),
                                        "keep_dims": lambda op: bool(op.keepdim)}),
    "graph.mean": ("reduction_mean", {}, {"axis": lambda op: XAttr("int32_vec", [int(a) for a in op.axes]),
                                          "keep_dims": lambda op: bool(op.keepdim)}),
    "graph.amax": ("reduction_max", {}, {"axis": lambda op: XAttr("int32_vec", [int(a) for a in op.axes]),
                                         "keep_dims": lambda op: bool(op.keepdim)}),
    "graph.amin": ("reduction_min", {}, {"axis": lambda op: XAttr("int32_vec", [int(a) for a in op.axes]),
                                         "keep_dims": lambda op: bool(op.keepdim)}),
    # XIR: x / sqrt(max(sum x^2, epsilon)); torch: x / max(||x||_2, eps), the same for eps = sqrt(epsilon)
    "graph.normalize": ("l2_normalize", {}, {"axis": lambda op: XAttr("int32_vec", [int(op.axis)]),
                                             "epsilon": lambda op: _l2_epsilon(op)}),
}


def _xir_float_pad(op: Operation, where: str) -> dict[str, Any]:
    """XIR's float `pad`: `paddings` (before, after) per dimension in the tensor's order, `mode` in XIR's
    spelling (its `mode` is not the graph op's: the graph attributes are not copied), `constant_values`."""
    pairs = torch_pad_to_pairs(op.pads, op.input.type.rank)
    if min(min(p) for p in pairs) < 0:
        raise XModelError(f"{where}: a negative padding (a crop) has no XIR pad form")
    if op.mode == "replicate" and max(max(p) for p in pairs) > 1:
        raise XModelError(f"{where}: replicate padding wider than 1 has no XIR pad mode (SYMMETRIC repeats "
                          "the edge only for width 1)")
    flat = [int(v) for p in pairs for v in p]
    mode = {"constant": "CONSTANT", "reflect": "REFLECT", "replicate": "SYMMETRIC"}[op.mode]
    return {"paddings": XAttr("int32_vec", flat), "mode": mode,
            "constant_values": XAttr("float_vec", [float(op.value)] * len(flat))}


#: float (CPU) graph ops on NCHW maps whose XIR op is NHWC: written between transposes `<op>_nhwc` / `<op>_nchw`
NHWC_FLOAT_OPS = {"graph.conv2d": "conv2d", "graph.max_pool2d": "maxpool2d", "graph.avg_pool2d": "avgpool2d",
                  "graph.adaptive_avg_pool2d": "avgpool2d", "graph.upsample": "resize",
                  "graph.conv_transpose2d": "transposed-conv2d"}
#: the output size of an adaptive average pool written as XIR's avgpool2d (read back as the adaptive pool)
ADAPTIVE_SIZE = "__fixflow_adaptive_output_size"
#: true on a resize whose graph op gives only the output size: its `scale` is out / in (XIR's shape inference
#: needs it), not a factor torch computes with
RESIZE_BY_SIZE = "__fixflow_resize_by_size"


def _xir_float_pool(op: Operation, where: str) -> dict[str, Any]:
    """XIR's float maxpool2d / avgpool2d attributes of a graph pool (an adaptive pool only with even windows)."""
    if op.name == "graph.adaptive_avg_pool2d":
        (h, w), (oh, ow) = op.input.type.shape[2:], op.output.type.shape[2:]
        if h % oh or w % ow:
            raise XModelError(f"{where}: an adaptive average pool from {h}x{w} to {oh}x{ow} has uneven windows, "
                              "which XIR's avgpool2d cannot hold (only even windows: H and W multiples of the "
                              "output size)")
        k = (h // oh, w // ow)
        return {"kernel": _wh(k), "stride": _wh(k), "pad": XAttr("int32_vec", [0, 0, 0, 0]), "pad_mode": "FLOOR",
                "global": (oh, ow) == (1, 1), "count_include_pad": True, "count_include_invalid": True,
                ADAPTIVE_SIZE: XAttr("int32_vec", [int(oh), int(ow)])}
    if op.name == "graph.max_pool2d" and tuple(op.dilation) != (1, 1):
        raise XModelError(f"{where}: a dilated max pool has no XIR maxpool2d form (XIR's has no dilation)")
    if op.name == "graph.avg_pool2d" and op.divisor_override is not None:
        raise XModelError(f"{where}: an average pool with divisor_override has no XIR avgpool2d form")
    attrs: dict[str, Any] = {"kernel": _wh(op.kernel), "stride": _wh(op.stride or op.kernel),
                             "pad": XAttr("int32_vec", _lrtb(op.padding)),
                             "pad_mode": "CEIL" if op.ceil_mode else "FLOOR", "global": False}
    if op.name == "graph.avg_pool2d":   # a ceil-mode window past the padded input does not count that part
        attrs.update(count_include_pad=bool(op.count_include_pad), count_include_invalid=not op.ceil_mode)
    return attrs


def _xir_float_tconv(op: Operation, where: str) -> dict[str, Any]:
    """XIR's float transposed-conv2d attributes of a graph.conv_transpose2d (groups 1, dilation 1)."""
    if int(op.groups) != 1 or tuple(op.dilation) != (1, 1):
        raise XModelError(f"{where}: a grouped or dilated transposed conv left in float has no XIR "
                          "transposed-conv2d form written (only groups = 1, dilation = 1)")
    t, b, l, r = (int(v) for v in op.padding)
    oph, opw = (int(v) for v in op.output_padding)
    # XIR pads the stride-dilated input by kernel - 1 - pad: pad = torch's, less the output padding
    return {"kernel": _wh(op.weight.type.shape[2:]), "stride": _wh(op.stride), "dilation": [1, 1],
            "pad": XAttr("int32_vec", [l, r - opw, t, b - oph]), "pad_mode": "FLOOR"}


def _xir_float_conv(op: Operation, where: str) -> dict[str, Any]:
    return {"kernel": _wh(op.weight.type.shape[2:]), "stride": _wh(op.stride), "dilation": _wh(op.dilation),
            "pad": XAttr("int32_vec", _lrtb(op.padding)), "pad_mode": "FLOOR", "group": int(op.groups)}


def float_op_refusal(op: Operation) -> str | None:
    """Why the `_int.xmodel` writer refuses the float (CPU) graph op `op`, or None when it writes it (its kind
    has an XIR float form and its attributes fit it)."""
    if op.name in XIR_FLOAT_OPS or op.name in ("graph.linear", "graph.pad"):
        return None
    if op.name not in NHWC_FLOAT_OPS:
        return f"no XIR built-in op type for a float {op.name}"
    try:
        _NHWC_ATTRS[op.name](op, f"'{op.name}'")
    except XModelError as e:
        return e.message
    return None


def _xir_resize(op: Operation, where: str) -> dict[str, Any]:
    """XIR's float resize of a graph.upsample: nearest = NEAREST, bilinear = BILINEAR with half-pixel centers
    unless align_corners; `scale` (w, h) only when the graph op has a scale factor (torch then uses it)."""
    attrs: dict[str, Any] = {"mode": op.mode.upper(), "align_corners": bool(op.align_corners),
                             "half_pixel_centers": op.mode == "bilinear" and not op.align_corners}
    if op.scale_factor is not None:
        sh, sw = (float(v) for v in op.scale_factor)
    else:   # XIR infers the output as int(in * scale) in float32: the smallest float32 scale that gives `out`
        (h, w), (oh, ow) = op.input.type.shape[2:], op.output.type.shape[2:]
        sh, sw = _size_scale(h, oh), _size_scale(w, ow)
        attrs[RESIZE_BY_SIZE] = True
    attrs["scale"] = XAttr("float_vec", [sw, sh])
    return attrs


_NHWC_ATTRS = {"graph.conv2d": _xir_float_conv, "graph.max_pool2d": _xir_float_pool,
               "graph.avg_pool2d": _xir_float_pool, "graph.adaptive_avg_pool2d": _xir_float_pool,
               "graph.upsample": _xir_resize, "graph.conv_transpose2d": _xir_float_tconv}


def _size_scale(n: int, out: int) -> float:
    s = np.float32(out / n)
    while int(np.float32(n) * s) < out:
        s = np.nextafter(s, np.float32(np.inf))
    return float(s)


def _l2_epsilon(op: Operation) -> float:
    if float(op.p) != 2.0:
        raise XModelError(f"'{op.name}': an L{op.p} normalization has no XIR op type (XIR's l2_normalize is L2)")
    return float(op.eps) ** 2
_GRAPH_FROM_XIR = {xt: (g.split(".", 1)[1], args) for g, (xt, args, _) in XIR_FLOAT_OPS.items()}


def _wh(pair) -> list[int]:
    return [int(pair[1]), int(pair[0])]


def _lrtb(pad) -> list[int]:
    t, b, l, r = (int(p) for p in pad)
    return [l, r, t, b]


def _tblr(pad) -> tuple[int, int, int, int]:
    l, r, t, b = (int(p) for p in pad)
    return (t, b, l, r)


def _tensor(name: str, t: TensorType, round_mode: str = "DPU_ROUND") -> XTensor:
    ft = Q.fixed_type(t)
    if ft is not None:
        return XTensor(name, list(t.shape), f"XINT{ft.bit_width}",
                       {"fix_point": ft.fix_pos, "bit_width": ft.bit_width, "if_signed": True,
                        "round_mode": round_mode})
    et = t.element_type
    if not isinstance(et, FloatType):
        raise XModelError(f"tensor {name!r}: cannot export element type {et}")
    return XTensor(name, list(t.shape), f"FLOAT{et.width}")


def _int_bytes(q: np.ndarray, bit_width: int) -> bytes:
    dt = "<i1" if bit_width <= 8 else "<i2" if bit_width <= 16 else "<i4"
    return np.ascontiguousarray(q, dtype=dt).tobytes()


def _xir_round(mode: str, where: str) -> str:
    try:
        return ROUND_TO_XIR[mode]
    except KeyError:
        raise XModelError(f"{where}: round mode {mode!r} has no XIR name (STD_ROUND, DPU_ROUND, PY3_ROUND)") from None


def _plain_attr(name: str, a, where: str) -> Any:
    if isinstance(a, BoolAttr):
        return a.value
    if isinstance(a, IntegerAttr):
        return int(a.value)
    if isinstance(a, FloatAttr):
        return float(a.value)
    if isinstance(a, StringAttr):
        return a.value
    if isinstance(a, DenseArrayAttr):
        vals = list(a.value)
        if isinstance(a.element_type, FloatType):
            return XAttr("double_vec", [float(v) for v in vals])
        return XAttr("int32_vec", [int(v) for v in vals])
    raise XModelError(f"{where}: attribute {name!r} ({a.text()}) cannot be exported")


# ---- module -> XGraph ----------------------------------------------------------------------------
class _Exporter:
    def __init__(self, func: Operation):
        self.func = func
        self.names: dict[Value, str] = {}
        self.used: set[str] = set()
        self.ops: list[XOp] = []
        self.inputs: list[str] = []

    def name(self, v: Value, default: str, base: str | None = None) -> str:
        if v in self.names:
            return self.names[v]
        base = (base or v.name_hint or default).replace(" ", "_")
        n, i = base, 1
        while n in self.used:
            i += 1
            n = f"{base}_{i}"
        self.used.add(n)
        self.names[v] = n
        return n

    def ref(self, v: Value, op: Operation) -> str:
        if v not in self.names:
            raise XModelError(f"'{op.name}': an operand is a function argument not read by fix.data "
                              "(only quantized inputs can be exported)")
        return self.names[v]

    def run(self) -> tuple[list[XOp], list[str], list[str]]:
        for op in self.func.regions[0].blocks[0].ops:
            if op.name == "func.return":
                return self.ops, self.inputs, [self.ref(v, op) for v in op.operands]
            self.export(op)
        raise XModelError("the function has no func.return")

    def export(self, op: Operation) -> None:
        out = op.results[0]
        # an input op is named after the function argument it reads: the same name whether the module comes
        # from the Quantizer (data op and argument both `x`) or from text (the printer renames the op `x_1`)
        arg_name = op.operands[0].name_hint if op.name == "fix.data" and op.operands else None
        name = self.name(out, op.name.split(".")[-1], arg_name)
        where = f"op {name!r} ({op.name})"
        attrs: dict[str, Any] = {k: op.attributes[k].value for k in _KEEP if k in op.attributes}
        inputs: dict[str, list[str]] = {}
        rmode = "DPU_ROUND"
        otype = out.type
        typ = _FIX_TYPES.get(op.name)
        if op.name == "fix.data":
            if not isinstance(op.input, Value) or op.input not in self.func.regions[0].blocks[0].args:
                raise XModelError(f"{where}: fix.data must read a function argument")
            attrs.update(shape=list(out.type.shape), data_type=f"XINT{op.bw}")
            if op.layout == "NCHW":
                attrs["layout"] = "NCHW"
            rmode = _xir_round(op.round_mode, where)
            self.inputs.append(name)
        elif op.name == "fix.const":
            q = op.ints
            if op.name == "fix.const" and self._tconv_weight(op):
                q = q[:, ::-1, ::-1, :]
            if q.ndim == 0:   # XIR needs a non-empty shape: a scalar is written with shape [1] (it broadcasts alike)
                q = q.reshape(1)
                otype = TensorType((1,), out.type.element_type)
            attrs.update(data=_int_bytes(q, op.bw), shape=list(q.shape), data_type=f"XINT{op.bw}")
            rmode = "STD_ROUND"
        elif op.name in ("fix.conv2d", "fix.depthwise_conv2d", "fix.transposed_conv2d", "fix.dense"):
            inputs = {"input": [self.ref(op.input, op)], "weights": [self.ref(op.weights, op)]}
            if op.bias is not None:
                inputs["bias"] = [self.ref(op.bias, op)]
            attrs["nonlinear"] = op.nonlinear
            if op.name == "fix.dense":
                attrs.update(transpose_a=False, transpose_b=True)   # weights are [OUT, IN]
            else:
                pad = tuple(op.pad)
                if op.name == "fix.transposed_conv2d":
                    (kh, kw), (dh, dw), (oph, opw) = op.kernel, op.dilation, op.output_padding
                    t, b, l, r = pad
                    # XIR pad = kernel - 1 - (the padding of the equivalent conv on the dilated input)
                    pad = (kh - 1 - (dh * (kh - 1) - t), kh - 1 - (dh * (kh - 1) - b + oph),
                           kw - 1 - (dw * (kw - 1) - l), kw - 1 - (dw * (kw - 1) - r + opw))
                attrs.update(kernel=_wh(op.kernel), stride=_wh(op.stride), dilation=_wh(op.dilation),
                             pad=XAttr("int32_vec", _lrtb(pad)), pad_mode="FLOOR")
                if op.name == "fix.conv2d":
                    attrs["group"] = int(op.group)
        elif op.name == "fix.pool":
            inputs = {"input": [self.ref(op.input, op)]}
            attrs.update(type=op.type, kernel=_wh(op.kernel), stride=_wh(op.stride),
                         pad=XAttr("int32_vec", _lrtb(op.pad)), pad_mode="FLOOR", **{"global": bool(op.is_global)})
        elif op.name in ("fix.eltwise", "fix.concat"):
            inputs = {"input": [self.ref(v, op) for v in op.operands]}
            if op.name == "fix.eltwise":
                attrs.update(type=op.type, nonlinear=op.nonlinear)
            else:
                attrs["axis"] = int(op.axis)
        elif op.name == "fix.reshape":
            inputs = {"input": [self.ref(op.input, op)]}
            attrs["shape"] = list(out.type.shape)
            if any(d in (0, -1) for d in op.shape[1:]):   # a batch-following dim past the first: kept as written
                attrs[RESHAPE_SHAPE] = XAttr("int32_vec", [int(d) for d in op.shape])
        elif op.name == "fix.transpose":
            inputs = {"input": [self.ref(op.input, op)]}
            attrs["order"] = [int(p) for p in op.perm]
        elif op.name == "fix.strided_slice":
            inputs = {"input": [self.ref(op.input, op)]}
            attrs.update(begin=XAttr("int32_vec", [int(v) for v in op.begin]),
                         end=XAttr("int32_vec", [int(v) for v in op.end]),
                         strides=XAttr("int32_vec", [int(v) for v in op.strides]))
        elif op.name == "fix.upsample":
            inputs = {"input": [self.ref(op.input, op)]}
            attrs.update(mode="NEAREST", scale=XAttr("float_vec", [float(s) for s in _wh(op.scale)]))
        elif op.name == "fix.pad":
            inputs = {"input": [self.ref(op.input, op)]}
            t, b, l, r = op.pad
            attrs.update(paddings=XAttr("int32_vec", [0, 0, t, b, l, r, 0, 0]), mode=PAD_MODES[op.mode],
                         constant_values=bytes([int(op.value) & 0xFF] * 8))
        elif op.name in ("fix.hard_sigmoid", "fix.hard_swish"):
            inputs = {"input": [self.ref(op.input, op)]}
        elif op.name in ("fix.fix", "fix.float"):
            inputs = {"input": [self.ref(op.input, op)]}
            ft = op.fmt(0) if op.name == "fix.float" else op.out_fmt
            mode = op.round_mode if op.name == "fix.fix" and not op.requantizes else "half_up"
            attrs.update(fix_point=ft.fix_pos, bit_width=ft.bit_width, if_signed=True,
                         round_mode=_xir_round(mode, where))
            if op.layout == "NCHW":
                attrs["layout"] = "NCHW"
        elif op.name == "graph.constant":
            arr = np.asarray(op.attributes["value"].array, dtype=np.float32)
            typ = "const"
            if self._float_conv_weight(op, where, "graph.conv2d"):   # XIR's float conv2d takes OHWI weights
                arr = np.ascontiguousarray(arr.transpose(0, 2, 3, 1))
                otype = TensorType(arr.shape, out.type.element_type)
            elif self._float_conv_weight(op, where, "graph.conv_transpose2d"):   # IOHW -> OHWI, spatially flipped
                arr = np.ascontiguousarray(arr.transpose(1, 2, 3, 0)[:, ::-1, ::-1, :])
                otype = TensorType(arr.shape, out.type.element_type)
            if arr.ndim == 0:   # XIR needs a non-empty shape: a scalar is written as [1] (it broadcasts alike)
                arr = arr.reshape(1)
                otype = TensorType((1,), out.type.element_type)
            attrs.update(data=arr.astype("<f4").tobytes(), shape=list(arr.shape), data_type="FLOAT32")
        elif op.name == "graph.linear":   # a layer left in float: XIR's float matmul with the weight transposed
            typ = "matmul"
            inputs = {"input": [self.ref(op.input, op), self.ref(op.weight, op)]}
            if op.bias is not None:
                inputs["bias"] = [self.ref(op.bias, op)]
            attrs.update(transpose_a=False, transpose_b=True)
        elif op.name == "graph.pad":
            typ = "pad"
            inputs = {"input": [self.ref(op.input, op)]}
            attrs.update(_xir_float_pad(op, where))
        elif op.name in NHWC_FLOAT_OPS:
            self._float_nhwc(op, name, attrs, where)
            return
        elif op.name in XIR_FLOAT_OPS:
            typ, args, fixed = XIR_FLOAT_OPS[op.name]
            for d, v in zip(type(op).OPERANDS, op.operands):
                inputs.setdefault(args.get(d.name, d.name), []).append(self.ref(v, op))
            for k, a in op.attributes.items():
                if k not in _KEEP and k != "operandSegmentSizes":
                    attrs[k] = _plain_attr(k, a, where)
            attrs.update({k: (v(op) if callable(v) else v) for k, v in fixed.items()})
        elif op.name.startswith("graph."):
            raise XModelError(f"{where}: no XIR built-in op type for a float {op.name} (the CPU ops XIR files "
                              f"can hold: {', '.join(sorted(XIR_FLOAT_OPS))})")
        else:
            raise XModelError(f"{where}: no XIR equivalent")
        self.ops.append(XOp(name, typ, attrs, inputs, output=_tensor(name, otype, rmode)))

    def _float_conv_weight(self, op: Operation, where: str, kind: str) -> bool:
        """Is this float constant the weight of a float (CPU) `kind` (graph.conv2d or graph.conv_transpose2d)?
        (then it is written OHWI, and a transposed conv's spatially flipped)"""
        users = op.results[0].users
        conv = [u.name == kind and u.operands[1] is op.results[0] and
                all(v is not op.results[0] for i, v in enumerate(u.operands) if i != 1) for u in users]
        if any(conv) and not all(conv):
            raise XModelError(f"{where}: the weight of a float {kind} is also read by another op (XIR's float "
                              "convolutions take OHWI weights: the constant cannot be written for both)")
        return bool(users) and all(conv)

    def _float_nhwc(self, op: Operation, name: str, attrs: dict[str, Any], where: str) -> None:
        """A float op on an NCHW map whose XIR op is NHWC (a conv left in float: OHWI weights; pools; resize):
        the map is transposed to NHWC (`<name>_nhwc`), the XIR op (`<name>`, NHWC) runs, and its result is
        transposed back (`<name>_nchw`, the value its users read)."""
        out = op.results[0]
        x = op.input
        if x.type.rank != 4 or out.type.rank != 4:
            raise XModelError(f"{where}: XIR's {NHWC_FLOAT_OPS[op.name]} takes a rank-4 feature map, got "
                              f"{list(x.type.shape)}")
        base = self.names.pop(out)
        to_nhwc, back = self._fresh(f"{base}_nhwc"), self._fresh(f"{base}_nchw")
        n, c, h, w = x.type.shape
        et = x.type.element_type
        self.ops.append(XOp(to_nhwc, "transpose", {"order": [0, 2, 3, 1]}, {"input": [self.ref(x, op)]},
                            output=_tensor(to_nhwc, TensorType((n, h, w, c), et))))
        inputs = {"input": [to_nhwc]}
        if op.name in ("graph.conv2d", "graph.conv_transpose2d"):
            inputs["weights"] = [self.ref(op.weight, op)]
            if op.bias is not None:
                inputs["bias"] = [self.ref(op.bias, op)]
        attrs.update(_NHWC_ATTRS[op.name](op, where))
        on, oc, oh, ow = out.type.shape
        self.ops.append(XOp(name, NHWC_FLOAT_OPS[op.name], attrs, inputs,
                            output=_tensor(name, TensorType((on, oh, ow, oc), et))))
        self.ops.append(XOp(back, "transpose", {"order": [0, 3, 1, 2]}, {"input": [name]},
                            output=_tensor(back, out.type)))
        self.names[out] = back

    def _fresh(self, base: str) -> str:
        n, i = base, 1
        while n in self.used:
            i += 1
            n = f"{base}_{i}"
        self.used.add(n)
        return n

    def _tconv_weight(self, op: Operation) -> bool:
        return any(u.name == "fix.transposed_conv2d" and u.operands[1] is op.results[0] for u in op.results[0].users)


def _the_function(module: Operation) -> Operation:
    funcs = [op for op in module.regions[0].blocks[0].ops if op.name == "func.func" and op.regions[0].blocks]
    if len(funcs) != 1:
        raise XModelError(f"an _int.xmodel holds one function, the module has {len(funcs)}")
    return funcs[0]


def module_to_xgraph(module: Operation, name: str | None = None) -> XGraph:
    """The quantized function of `module` as an `XGraph` (XIR `*-fix` ops, NHWC)."""
    func = _the_function(module)
    ops, ins, outs = _Exporter(func).run()
    fname = func.attributes["sym_name"].value
    attrs = {"origin": "fixflow", "__fixflow_function": fname}
    if ins:
        attrs["__fixflow_inputs"] = ins
    if outs:
        attrs["__fixflow_outputs"] = outs
    # The quantizer's output is not partitioned yet (that is the compiler's job): one leaf root, as the
    # vai_q_pytorch _int.xmodel has.
    return XGraph(name or fname, ops, attrs, root=XSubgraph("root", [o.name for o in ops]))


def write_int_xmodel(module: Operation, path: str | os.PathLike, name: str | None = None) -> None:
    """Write the quantized module as an `_int.xmodel`."""
    write_xmodel(module_to_xgraph(module, name), path)


# ---- XGraph -> module ----------------------------------------------------------------------------
def _need(xop: XOp, key: str) -> Any:
    if not xop.has_attr(key):
        raise XModelError(f"op {xop.name!r} ({xop.type}) has no attribute {key!r}")
    return xop.attr(key)


def _hw(v) -> tuple[int, int]:
    return (int(v[1]), int(v[0]))


def _ints(xop: XOp, key: str, n: int | None = None, default: Any = None) -> list[int]:
    """The integer-list attribute `key` (exactly `n` entries if given); `XModelError` if it is anything else."""
    v = _need(xop, key) if default is None else xop.attr(key, default)
    if (not isinstance(v, (list, tuple)) or any(not isinstance(e, int) or isinstance(e, bool) for e in v)
            or (n is not None and len(v) != n)):
        want = f"{n} integers" if n is not None else "a list of integers"
        raise XModelError(f"op {xop.name!r} ({xop.type}): attribute {key!r} must be {want}, got {v!r}")
    return list(v)


def _int(xop: XOp, key: str, default: int | None = None) -> int:
    """The integer attribute `key`; `XModelError` if it is anything else."""
    v = _need(xop, key) if default is None else xop.attr(key, default)
    if not isinstance(v, int) or isinstance(v, bool):
        raise XModelError(f"op {xop.name!r} ({xop.type}): attribute {key!r} must be an integer, got {v!r}")
    return v


def _fix_type_of(xop: XOp) -> TensorType:
    t = xop.output
    if t.data_type.startswith("FLOAT"):
        return TensorType(t.shape, f32)
    if not t.data_type.startswith("XINT"):
        raise XModelError(f"op {xop.name!r}: tensor data type {t.data_type} is not supported")
    if not t.has_attr("fix_point"):
        raise XModelError(f"op {xop.name!r}: XINT tensor without a fix_point attribute")
    return Q.fix_tensor(t.shape, t.bit_width, int(t.attr("fix_point")))


class _Importer:
    def __init__(self, g: XGraph):
        self.g = g
        self.values: dict[str, Value] = {}
        self.body = Block()  # the function's ops, moved into it once its signature is known
        self.builder = Builder.at_end(self.body)
        self.args: list[tuple[str, TensorType]] = []

    def val(self, xop: XOp, arg: str, i: int = 0) -> Value:
        names = xop.inputs.get(arg, [])
        if len(names) <= i:
            raise XModelError(f"op {xop.name!r} ({xop.type}) has no input {arg!r}")
        return self.values[names[i]]

    def opt(self, xop: XOp, arg: str) -> Value | None:
        names = xop.inputs.get(arg, [])
        return self.values[names[0]] if names else None

    def add(self, xop: XOp, op: Operation) -> None:
        for k in _KEEP:
            if xop.has_attr(k):
                op.attributes[k] = StringAttr(str(xop.attr(k)))
        op.results[0].name_hint = xop.name
        self.builder.insert(op)
        self.values[xop.name] = op.results[0]

    def build(self, cls, xop: XOp, *operands, **attrs) -> Operation:
        try:
            return cls.build(*operands, result_types=[_fix_type_of(xop)], location=NameLoc(xop.name, UNKNOWN_LOC),
                             **attrs)
        except (ValueError, TypeError, KeyError, IndexError) as e:
            raise XModelError(f"op {xop.name!r} ({xop.type}): {e}") from None

    def run(self) -> ModuleOp:
        from ...ir.diagnostics import FixflowError
        arg_values: list[tuple[Value, Operation]] = []
        func_name = str(self.g.attr("__fixflow_function", self.g.name)) or "main"
        pending_args = []
        for xop in self.g.ops:
            missing = [p for p in xop.input_ops() if p not in self.values]
            if missing:
                raise XModelError(f"op {xop.name!r} reads {missing[0]!r}, which is not defined before it")
            check_xop(xop, None if xop.type in ARGUMENTS else _graph_arguments(xop.type))
            try:
                self.convert(xop, pending_args)
            except FixflowError as e:
                if isinstance(e, XModelError):
                    raise
                raise XModelError(f"op {xop.name!r} ({xop.type}): {e.message}") from None
            except (ValueError, TypeError, IndexError, KeyError, AttributeError) as e:
                raise XModelError(f"op {xop.name!r} ({xop.type}): malformed attributes ({e})") from None
        func = FuncOp.create_function(func_name, [t for t, _ in pending_args], [])
        for arg, (_, data_op) in zip(func.body.args, pending_args):
            data_op.set_operand(0, arg)
            arg.name_hint = data_op.results[0].name_hint
        for op in list(self.body.ops):
            op.detach()
            func.body.append(op)
        outs = self.g.attr("__fixflow_outputs")
        if outs is None:
            consumers = self.g.consumers()
            outs = [o.name for o in self.g.ops if not consumers.get(o.name) and o.type not in ("const-fix", "const")]
        try:
            func.body.append(ReturnOp.build([self.values[n] for n in outs]))
        except KeyError as e:
            raise XModelError(f"graph output {e.args[0]!r} is not an op") from None
        func.update_function_type()
        m = ModuleOp.empty()
        m.body.append(func)
        try:
            m.verify()
        except FixflowError as e:
            raise XModelError(f"the graph does not form a valid quantized module: {e.message}") from None
        return m

    def convert(self, xop: XOp, pending_args: list) -> None:
        t = xop.type
        if t == "data-fix":
            ft = _fix_type_of(xop)
            layout = str(xop.attr("layout", "NHWC"))
            shape = ft.shape if layout != "NCHW" or len(ft.shape) != 4 else tuple(ft.shape[p] for p in Q.TO_NCHW)
            placeholder = Operation("fixflow.placeholder", [], [TensorType(shape, f32)])
            op = self.build(Q.DataOp, xop, placeholder.results[0], layout=layout,
                            round_mode=ROUND_FROM_XIR.get(str(xop.output.attr("round_mode", "STD_ROUND")),
                                                          "std_round"))
            pending_args.append((TensorType(shape, f32), op))
            self.add(xop, op)
        elif t == "const-fix":
            ft = _fix_type_of(xop)
            bw = ft.element_type.bit_width
            dt = "<i1" if bw <= 8 else "<i2" if bw <= 16 else "<i4"
            data = _need(xop, "data")
            n = int(np.prod(ft.shape))
            if len(data) != n * np.dtype(dt).itemsize:
                raise XModelError(f"op {xop.name!r}: data has {len(data)} bytes, shape {list(ft.shape)} needs "
                                  f"{n * np.dtype(dt).itemsize}")
            q = np.frombuffer(data, dtype=dt).reshape(ft.shape).astype(np.dtype(dt).newbyteorder("="))
            consumers = [self.g.op(c) for c in self.g.consumers().get(xop.name, [])]
            if any(c.type == "transposed-conv2d-fix" and c.inputs.get("weights") == [xop.name] for c in consumers):
                q = q[:, ::-1, ::-1, :]
            self.add(xop, Q.ConstOp.from_ints(np.ascontiguousarray(q), bw, ft.element_type.fix_pos, key=xop.name,
                                              location=NameLoc(xop.name, UNKNOWN_LOC)))
        elif t == "const":
            from ...dialects.graph import ConstantOp
            arr = np.frombuffer(_need(xop, "data"), dtype="<f4").reshape(xop.output.shape).astype(np.float32)
            consumers = [self.g.op(c) for c in self.g.consumers().get(xop.name, [])]
            if any(c.type == "conv2d" and c.inputs.get("weights") == [xop.name] for c in consumers):
                if arr.ndim != 4:
                    raise XModelError(f"op {xop.name!r}: the weights of a float conv2d must be rank 4 (OHWI), "
                                      f"got shape {list(arr.shape)}")
                arr = np.ascontiguousarray(arr.transpose(0, 3, 1, 2))   # XIR's OHWI -> the graph's OIHW
            elif any(c.type == "transposed-conv2d" and c.inputs.get("weights") == [xop.name] for c in consumers):
                if arr.ndim != 4:
                    raise XModelError(f"op {xop.name!r}: the weights of a float transposed-conv2d must be rank 4 "
                                      f"(OHWI), got shape {list(arr.shape)}")
                arr = np.ascontiguousarray(arr[:, ::-1, ::-1, :].transpose(3, 0, 1, 2))   # flipped OHWI -> IOHW
            self.add(xop, ConstantOp.from_array(arr, key=xop.name, location=NameLoc(xop.name, UNKNOWN_LOC)))
        elif t in ("conv2d-fix", "depthwise-conv2d-fix", "transposed-conv2d-fix"):
            cls = {"conv2d-fix": Q.Conv2dOp, "depthwise-conv2d-fix": Q.DepthwiseConv2dOp,
                   "transposed-conv2d-fix": Q.ConvTranspose2dOp}[t]
            kernel, stride = _hw(_ints(xop, "kernel", 2)), _hw(_ints(xop, "stride", 2))
            dil = _hw(_ints(xop, "dilation", 2, [1, 1]))
            pad = _tblr(_ints(xop, "pad", 4, [0, 0, 0, 0]))
            kw: dict[str, Any] = {}
            if t == "transposed-conv2d-fix":
                (kh, kwd), (dh, dw) = kernel, dil
                xt, xb, xl, xr = pad
                top, left = dh * (kh - 1) - (kh - 1 - xt), dw * (kwd - 1) - (kwd - 1 - xl)
                bot, right = dh * (kh - 1) - (kh - 1 - xb), dw * (kwd - 1) - (kwd - 1 - xr)
                kw["output_padding"] = (max(0, -bot), max(0, -right))
                pad = (top, max(0, bot), left, max(0, right))
            if t == "conv2d-fix":
                kw["group"] = _int(xop, "group", 1)
            self.add(xop, self.build(cls, xop, self.val(xop, "input"), self.val(xop, "weights"),
                                     self.opt(xop, "bias"), kernel=kernel, stride=stride, dilation=dil, pad=pad,
                                     nonlinear=str(xop.attr("nonlinear", "NONE")) or "NONE", **kw))
        elif t in ("matmul-fix", "inner-product-fix"):   # inner-product-fix: files of fixflow <= 0.1
            if t == "matmul-fix" and (not xop.inputs.get("weights") or xop.attr("transpose_a", False) is not False
                                      or xop.attr("transpose_b", True) is not True):
                raise XModelError(f"op {xop.name!r} (matmul-fix): only a product with constant weights "
                                  "(`weights`, transpose_a = false, transpose_b = true) is supported")
            self.add(xop, self.build(Q.DenseOp, xop, self.val(xop, "input"), self.val(xop, "weights"),
                                     self.opt(xop, "bias"), nonlinear=str(xop.attr("nonlinear", "NONE")) or "NONE"))
        elif t == "pool-fix":
            self.add(xop, self.build(Q.PoolOp, xop, self.val(xop, "input"), type=str(_need(xop, "type")),
                                     kernel=_hw(_ints(xop, "kernel", 2)), stride=_hw(_ints(xop, "stride", 2)),
                                     pad=_tblr(_ints(xop, "pad", 4, [0, 0, 0, 0])), is_global=bool(xop.attr("global", False))))
        elif t == "eltwise-fix":
            ins = [self.values[n] for n in xop.inputs.get("input", [])]
            self.add(xop, self.build(Q.EltwiseOp, xop, ins, type=str(xop.attr("type", "ADD")),
                                     nonlinear=str(xop.attr("nonlinear", "NONE")) or "NONE"))
        elif t == "concat-fix":
            ins = [self.values[n] for n in xop.inputs.get("input", [])]
            self.add(xop, self.build(Q.ConcatOp, xop, ins, axis=_int(xop, "axis")))
        elif t == "reshape-fix":
            x = self.val(xop, "input")
            shape = _ints(xop, "shape")
            if xop.has_attr(RESHAPE_SHAPE):
                shape = _ints(xop, RESHAPE_SHAPE, len(shape))
            elif shape and x.type.rank and shape[0] == x.type.shape[0]:
                shape[0] = 0
            elif shape and x.type.rank and x.type.shape[0] and shape[0] and (
                    shape[0] % x.type.shape[0] == 0 or x.type.shape[0] % shape[0] == 0):
                shape[0] = -1   # a batch folded into (or out of) the first dim, Swin's windows: inferred at any batch
            self.add(xop, self.build(Q.ReshapeOp, xop, x, shape=shape))
        elif t == "transpose":
            x = self.val(xop, "input")
            if Q.fixed_type(x.type) is None:   # a float transpose (around a float conv2d)
                from ...dialects.graph import TransposeOp
                self.add(xop, self.build(TransposeOp, xop, x, perm=_ints(xop, "order")))
            else:
                self.add(xop, self.build(Q.TransposeOp, xop, x, perm=_ints(xop, "order")))
        elif t == "pad":
            self.add(xop, self.float_pad(xop))
        elif t == "conv2d":
            self.float_conv(xop)
        elif t in ("maxpool2d", "avgpool2d", "resize", "transposed-conv2d"):
            self.float_nhwc(xop)
        elif t == "strided_slice-fix":
            self.add(xop, self.build(Q.StridedSliceOp, xop, self.val(xop, "input"), begin=_ints(xop, "begin"),
                                     end=_ints(xop, "end"), strides=_ints(xop, "strides")))
        elif t == "upsample-fix":
            sw, sh = (float(s) for s in _need(xop, "scale"))
            if sw != int(sw) or sh != int(sh) or str(xop.attr("mode", "NEAREST")) != "NEAREST":
                raise XModelError(f"op {xop.name!r}: only NEAREST upsampling by integer factors is supported")
            self.add(xop, self.build(Q.UpsampleOp, xop, self.val(xop, "input"), scale=(int(sh), int(sw))))
        elif t == "pad-fix":
            p = _ints(xop, "paddings")
            if len(p) != 8 or any(p[:2]) or any(p[6:]):
                raise XModelError(f"op {xop.name!r}: only H/W padding of NHWC feature maps is supported")
            modes = {v: k for k, v in PAD_MODES.items()}
            cv = bytes(xop.attr("constant_values", b"\x00"))
            value = int(np.frombuffer(cv[:1] or b"\x00", dtype=np.int8)[0])
            self.add(xop, self.build(Q.PadOp, xop, self.val(xop, "input"), pad=(p[2], p[3], p[4], p[5]),
                                     mode=modes[_need(xop, "mode")], value=value))
        elif t in ("hard-sigmoid-fix", "hard-swish-fix"):
            cls = Q.HardSigmoidOp if t == "hard-sigmoid-fix" else Q.HardSwishOp
            self.add(xop, self.build(cls, xop, self.val(xop, "input")))
        elif t in ("fix", "fix2float"):
            x = self.val(xop, "input")
            layout = str(xop.attr("layout", "NHWC"))
            if t == "fix2float":
                op = Q.FloatOp.build(x, layout=layout, location=NameLoc(xop.name, UNKNOWN_LOC))
            else:
                mode = ROUND_FROM_XIR.get(str(xop.attr("round_mode", "DPU_ROUND")), "half_up")
                op = self.build(Q.FixFixOp, xop, x, layout=layout, round_mode=mode)
            self.add(xop, op)
        elif t == "matmul" and (xop.attr("transpose_b", False) is True or "bias" in xop.inputs):
            self.add(xop, self.linear_op(xop))
        else:
            self.add(xop, self.graph_op(xop))

    def float_pad(self, xop: XOp) -> Operation:
        """XIR's float pad -> graph.pad (F.pad order: last dimension first)."""
        from ...dialects.graph import PadOp
        x = self.val(xop, "input")
        p = _ints(xop, "paddings", 2 * x.type.rank)
        if min(p) < 0:
            raise XModelError(f"op {xop.name!r} (pad): attribute 'paddings' must be non-negative, got {p}")
        mode = {"CONSTANT": "constant", "REFLECT": "reflect", "SYMMETRIC": "replicate"}[str(_need(xop, "mode"))]
        if mode == "replicate" and max(p) > 1:
            raise XModelError(f"op {xop.name!r} (pad): SYMMETRIC padding wider than 1 is not supported by the reader")
        cv = xop.attr("constant_values", [0.0]) or [0.0]
        if not isinstance(cv, (list, tuple)) or len(set(float(v) for v in cv)) != 1:
            raise XModelError(f"op {xop.name!r} (pad): attribute 'constant_values' must hold one value, got {cv!r}")
        pads = [v for i in reversed(range(x.type.rank)) for v in (p[2 * i], p[2 * i + 1])]
        return self.build(PadOp, xop, x, pads=pads, mode=mode, value=float(cv[0]))

    def float_conv(self, xop: XOp) -> None:
        """XIR's float conv2d (NHWC input, OHWI weights) -> graph.transpose to NCHW, graph.conv2d, graph.transpose
        back to NHWC (the weights were turned back to OIHW when their const was read)."""
        from ...dialects.graph import Conv2dOp, TransposeOp
        x, wgt, b = self.val(xop, "input"), self.val(xop, "weights"), self.opt(xop, "bias")
        if x.type.rank != 4 or Q.fixed_type(x.type) is not None:
            raise XModelError(f"op {xop.name!r} (conv2d): the input of a float conv2d must be a float NHWC map")
        loc = NameLoc(xop.name, UNKNOWN_LOC)
        n, h, w, c = x.type.shape
        on, oh, ow, oc = xop.output.shape
        try:
            t = TransposeOp.build(x, perm=[0, 3, 1, 2], result_types=[TensorType((n, c, h, w), f32)], location=loc)
            self.builder.insert(t)
            conv = Conv2dOp.build(t.results[0], wgt, b, stride=_hw(_ints(xop, "stride", 2)),
                                  padding=_tblr(_ints(xop, "pad", 4, [0, 0, 0, 0])),
                                  dilation=_hw(_ints(xop, "dilation", 2, [1, 1])), groups=_int(xop, "group", 1),
                                  result_types=[TensorType((on, oc, oh, ow), f32)], location=loc)
            self.builder.insert(conv)
            conv.verify()
        except (ValueError, TypeError, KeyError) as e:
            raise XModelError(f"op {xop.name!r} (conv2d): {e}") from None
        if _hw(_ints(xop, "kernel", 2)) != tuple(wgt.type.shape[2:]):
            raise XModelError(f"op {xop.name!r} (conv2d): attribute 'kernel' {_ints(xop, 'kernel', 2)} contradicts "
                              f"the weights' shape {list(wgt.type.shape)} (OHWI)")
        self.add(xop, TransposeOp.build(conv.results[0], perm=[0, 2, 3, 1], result_types=[_fix_type_of(xop)],
                                        location=loc))

    def float_nhwc(self, xop: XOp) -> None:
        """XIR's float maxpool2d / avgpool2d / resize (NHWC) -> graph.transpose to NCHW, the graph op,
        graph.transpose back to NHWC."""
        from ...dialects.graph import (AdaptiveAvgPool2dOp, AvgPool2dOp, ConvTranspose2dOp, MaxPool2dOp,
                                       TransposeOp, UpsampleOp)
        x = self.val(xop, "input")
        if x.type.rank != 4 or Q.fixed_type(x.type) is not None:
            raise XModelError(f"op {xop.name!r} ({xop.type}): the input must be a float NHWC feature map")
        loc = NameLoc(xop.name, UNKNOWN_LOC)
        n, h, w, c = x.type.shape
        on, oh, ow, oc = xop.output.shape
        nchw = TensorType((on, oc, oh, ow), f32)
        t = xop.type
        try:
            tr = TransposeOp.build(x, perm=[0, 3, 1, 2], result_types=[TensorType((n, c, h, w), f32)], location=loc)
            self.builder.insert(tr)
            y = tr.results[0]
            if t == "transposed-conv2d":
                if _hw(_ints(xop, "dilation", 2, [1, 1])) != (1, 1):
                    raise XModelError(f"op {xop.name!r} (transposed-conv2d): only dilation 1 is supported by the "
                                      "reader")
                wgt = self.val(xop, "weights")
                if _hw(_ints(xop, "kernel", 2)) != tuple(wgt.type.shape[2:]):
                    raise XModelError(f"op {xop.name!r} (transposed-conv2d): attribute 'kernel' "
                                      f"{_ints(xop, 'kernel', 2)} contradicts the weights' shape")
                l, r, tp, b = _ints(xop, "pad", 4, [0, 0, 0, 0])
                if min(l, tp) < 0:
                    raise XModelError(f"op {xop.name!r} (transposed-conv2d): attribute 'pad' must have non-negative "
                                      f"left and top, got {[l, r, tp, b]}")
                out_pad = (max(0, tp - b), max(0, l - r))
                op = ConvTranspose2dOp.build(y, wgt, self.opt(xop, "bias"), stride=_hw(_ints(xop, "stride", 2)),
                                             padding=(tp, b + out_pad[0], l, r + out_pad[1]),
                                             output_padding=out_pad, result_types=[nchw], location=loc)
            elif t == "resize":
                mode = str(_need(xop, "mode"))
                if mode not in ("NEAREST", "BILINEAR"):
                    raise XModelError(f"op {xop.name!r} (resize): mode {mode!r} is not supported by the reader "
                                      "(NEAREST, BILINEAR)")
                align = bool(xop.attr("align_corners", False))
                if bool(xop.attr("half_pixel_centers", False)) != (mode == "BILINEAR" and not align):
                    raise XModelError(f"op {xop.name!r} (resize): half_pixel_centers must be true exactly for a "
                                      "BILINEAR resize without align_corners (the forms torch has)")
                kw: dict[str, Any] = {"mode": mode.lower(), "size": (oh, ow), "align_corners": align}
                scale = [] if xop.attr(RESIZE_BY_SIZE, False) is True else xop.attr("scale", [])
                if scale:
                    if len(scale) != 2:
                        raise XModelError(f"op {xop.name!r} (resize): attribute 'scale' must be (w, h), got {scale!r}")
                    kw["scale_factor"] = (float(scale[1]), float(scale[0]))
                op = UpsampleOp.build(y, result_types=[nchw], location=loc, **kw)
            elif xop.has_attr(ADAPTIVE_SIZE):
                op = AdaptiveAvgPool2dOp.build(y, output_size=_ints(xop, ADAPTIVE_SIZE, 2), result_types=[nchw],
                                               location=loc)
            else:
                glob = bool(xop.attr("global", False))
                kernel = (h, w) if glob else _hw(_ints(xop, "kernel", 2))
                stride = (h, w) if glob else _hw(_ints(xop, "stride", 2))
                pad = (0, 0, 0, 0) if glob else _tblr(_ints(xop, "pad", 4, [0, 0, 0, 0]))
                pm = str(_need(xop, "pad_mode"))
                if pm not in ("FLOOR", "CEIL"):
                    raise XModelError(f"op {xop.name!r} ({t}): pad_mode {pm!r} is not supported by the reader "
                                      "(FLOOR, CEIL)")
                kw = {"kernel": kernel, "stride": stride, "padding": pad, "ceil_mode": pm == "CEIL"}
                if t == "avgpool2d":
                    kw["count_include_pad"] = bool(xop.attr("count_include_pad", True))
                op = (MaxPool2dOp if t == "maxpool2d" else AvgPool2dOp).build(y, result_types=[nchw], location=loc,
                                                                               **kw)
            self.builder.insert(op)
            op.verify()
        except (ValueError, TypeError, KeyError) as e:
            raise XModelError(f"op {xop.name!r} ({t}): {e}") from None
        self.add(xop, TransposeOp.build(op.results[0], perm=[0, 2, 3, 1], result_types=[_fix_type_of(xop)],
                                        location=loc))

    def linear_op(self, xop: XOp) -> Operation:
        """XIR's float matmul with a transposed second input (and a bias): a float `graph.linear`."""
        from ...dialects.graph import LinearOp
        ins = xop.inputs.get("input", [])
        if len(ins) != 2 or xop.attr("transpose_a", False) is not False or xop.attr("transpose_b") is not True:
            raise XModelError(f"op {xop.name!r} (matmul): a matmul with a bias is read as a linear layer: two "
                              "inputs, transpose_a false and transpose_b true")
        bias = xop.inputs.get("bias", [])
        b = self.values[bias[0]] if bias else None
        try:
            return LinearOp.build(self.values[ins[0]], self.values[ins[1]], b, result_types=[_fix_type_of(xop)],
                                  location=NameLoc(xop.name, UNKNOWN_LOC))
        except (ValueError, TypeError, KeyError) as e:
            raise XModelError(f"op {xop.name!r} (matmul): {e}") from None

    def graph_op(self, xop: XOp) -> Operation:
        gname, args = _GRAPH_FROM_XIR.get(xop.type, (xop.type, {}))
        cls = lookup_op_class("graph." + gname)
        if cls is None:
            raise XModelError(f"op {xop.name!r}: op type {xop.type!r} is not supported by the reader")
        operands, taken = [], {}
        for d in cls.OPERANDS:
            arg = args.get(d.name, d.name)
            if arg not in xop.inputs:
                arg = d.name   # files of fixflow <= 0.1 used the graph operand names
            names = xop.inputs.get(arg, [])
            if d.kind != "variadic":
                i = taken[arg] = taken.get(arg, -1) + 1
                names = names[i:i + 1]
            vs = [self.values[n] for n in names]
            operands.append(vs if d.kind == "variadic" else (vs[0] if vs else None))
        attrs = {}
        for d in cls.ATTRS:
            if xop.has_attr(d.name):
                v = xop.attr(d.name)
                if d.kind in (INT, I32):
                    v = int(v[0]) if isinstance(v, (list, tuple)) and len(v) == 1 else int(v)   # XIR's [axis]
                elif d.kind is FLOAT:
                    v = float(v)
                elif d.kind is BOOL:
                    v = bool(v)
                elif isinstance(v, (list, tuple)):
                    v = list(v)
                attrs[d.name] = v
        try:
            return cls.build(*operands, result_types=[_fix_type_of(xop)], location=NameLoc(xop.name, UNKNOWN_LOC),
                             **attrs)
        except (ValueError, TypeError, KeyError) as e:
            raise XModelError(f"op {xop.name!r} ({xop.type}): {e}") from None


def _graph_arguments(xtype: str) -> dict[str, int | None] | None:
    """The XIR arguments of a float (CPU) op type and how many producers each takes (None: unknown type)."""
    gname, args = _GRAPH_FROM_XIR.get(xtype, (xtype, {}))
    cls = lookup_op_class("graph." + gname)
    if cls is None:
        return None
    out: dict[str, int | None] = {"bias": 1} if xtype == "matmul" else {}   # a linear layer left in float
    for d in cls.OPERANDS:
        for a in {args.get(d.name, d.name), d.name}:   # files of fixflow <= 0.1 used the graph operand names
            if d.kind == "variadic":
                out[a] = None
            elif out.get(a, 0) is not None:
                out[a] = out.get(a, 0) + 1
    return out


def xgraph_to_module(g: XGraph) -> ModuleOp:
    """Rebuild the quantized module from an `XGraph` written by `module_to_xgraph` (or XIR-alike)."""
    return _Importer(g).run()


def read_int_xmodel(path: str | os.PathLike) -> ModuleOp:
    """Read an `_int.xmodel` into a fix-dialect module; every problem is an `XModelError` naming the file."""
    g = read_xmodel(path)
    try:
        return xgraph_to_module(g)
    except XModelError as e:
        raise XModelError(f"{os.fspath(path)}: {e.message}") from None


__all__ = ["module_to_xgraph", "xgraph_to_module", "write_int_xmodel", "read_int_xmodel", "ROUND_TO_XIR"]
