"""`export_torch_script()` and `export_onnx_model()` of a test-mode Quantizer (vai_q_pytorch's names).

- TorchScript: the generated `<Model>.py` (bit-exact with test mode) traced at the example inputs and
  saved as `<Model>_int.pt`; it computes what test mode computes, bit for bit.
- ONNX: the lowered fix module as standard ONNX ops, every fixed-point tensor a
  QuantizeLinear/DequantizeLinear pair with a power-of-two scale `2^-fix_pos` (zero point 0), weights and
  biases stored as integer codes behind a DequantizeLinear; DPU arithmetic kept where ONNX has it (the
  average pool's DPU factor, LeakyReLU 26/256, hard sigmoid 2731/2^14, the element-wise floors). ONNX's
  QuantizeLinear rounds ties to even where the DPU rounds them up, so each tensor is first rounded to its
  grid the DPU's way (Floor/Where nodes, exact in float32) and the pair then changes nothing. onnxruntime
  computes in float32: with `graph_optimization_level=ORT_ENABLE_BASIC` the model equals test mode bit for
  bit (while accumulations stay below 2^24 units; tests/quantizer/test_exports.py). Its default level fuses
  DequantizeLinear -> Conv -> QuantizeLinear into integer kernels (QLinearConv) that requantize with their
  own rounding: outputs then drift from test mode, more with depth (docs/quantization.md has the numbers).
  Opset 19 (21 when a tensor has 16 bits).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..dialects.fix import ops as Q
from ..dialects.fix.numerics import avgpool_multiplier
from ..dialects.graph import ConstantOp
from ..ir.core import Operation, Value
from ..ir.interpreter import find_function
from ..ir.location import NameLoc
from ..ir.opdef import Terminator
from .errors import QuantizerError

if TYPE_CHECKING:
    from .api import Quantizer

__all__ = ["export_torch_script", "export_onnx_model", "ONNX_OPSET", "ONNX_OPSET_INT16"]

#: the opset written when every tensor has at most 8 bits; 16-bit tensors need int16 QuantizeLinear (21)
ONNX_OPSET, ONNX_OPSET_INT16 = 19, 21


def _test_mode(q: "Quantizer", what: str) -> None:
    if q.mode != "test":
        raise QuantizerError(f"{what}() needs mode='test' (this quantizer is in {q.mode!r} mode)")


def export_torch_script(q: "Quantizer", output_dir: str | Path | None = None, verbose: bool = False) -> Path:
    """Trace the generated module to TorchScript: `<output_dir>/<Model>_int.pt` (bit-exact with test mode)."""
    import importlib.util

    import torch

    from .codegen import render_quant_module
    _test_mode(q, "export_torch_script")
    gen = render_quant_module(q.fix_module, q.name, q.graph_md5)
    if gen.numpy_ops:
        raise QuantizerError("export_torch_script(): these CPU ops have no torch form computing the same values as "
                             f"test mode, so the module cannot be traced: {', '.join(gen.numpy_ops)}")
    src = q.output_dir / f"{q.name}.py"
    if not src.exists():
        q._generate_source()
    spec = importlib.util.spec_from_file_location(f"_fixflow_generated_{q.name}", src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    net = getattr(mod, gen.source.split("\nclass ", 1)[1].split("(", 1)[0])().eval()
    out = Path(output_dir) if output_dir is not None else q.output_dir
    out.mkdir(parents=True, exist_ok=True)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)   # torch.jit.trace: still the TorchScript path
        traced = torch.jit.trace(net, tuple(q._example_tensors), check_trace=False)
    path = out / f"{q.name}_int.pt"
    traced.save(str(path))
    if verbose:
        q._log(str(traced.graph))
    q._log(f"[fixflow] TorchScript of the quantized '{q.name}' is exported.({path})")
    return path


# ----------------------------------------------------------------------------------------------- ONNX
class _OnnxWriter:
    def __init__(self, func: Operation, name: str):
        import onnx
        from onnx import TensorProto, helper, numpy_helper
        self.onnx, self.TP, self.h, self.nh = onnx, TensorProto, helper, numpy_helper
        self.func = func
        self.model_name = name
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.names: dict[Value, str] = {}
        self.consts: dict[Value, tuple[np.ndarray, int | None]] = {}
        self.n = 0
        self.max_bw = 8
        self._cache: dict[tuple, str] = {}

    # -- small builders
    def fresh(self, base: str) -> str:
        self.n += 1
        return f"{base}__{self.n}"

    def init(self, arr: np.ndarray, base: str) -> str:
        name = self.fresh(base)
        self.inits.append(self.nh.from_array(np.asarray(arr), name))
        return name

    def scalar(self, v: float | int, dtype: Any = np.float32) -> str:
        key = (float(v), np.dtype(dtype).str)
        if key not in self._cache:
            self._cache[key] = self.init(np.array(v, dtype=dtype), "c")
        return self._cache[key]

    def node(self, op_type: str, inputs: list[str], base: str, **attrs: Any) -> str:
        out = self.fresh(base)
        self.nodes.append(self.h.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def round_to_grid(self, x: str, fp: int, mode: str, base: str) -> str:
        """x rounded to a multiple of 2^-fp with the DPU's rounding (QuantizeLinear alone rounds ties to even):
        half_up r = f + (s - f >= 0.5) with f = floor(s), s = x * 2^fp (all exact in float32); std_round the same
        on |s|, with the sign put back."""
        s = self.node("Mul", [x, self.scalar(2.0 ** fp)], base + "_scale")
        a = self.node("Abs", [s], base + "_abs") if mode == "std_round" else s
        f = self.node("Floor", [a], base + "_floor")
        up = self.node("GreaterOrEqual", [self.node("Sub", [a, f], base + "_frac"), self.scalar(0.5)], base + "_tie")
        r = self.node("Where", [up, self.node("Add", [f, self.scalar(1.0)], base + "_up"), f], base + "_round")
        if mode == "std_round":
            r = self.node("Mul", [r, self.node("Sign", [s], base + "_sign")], base + "_signed")
        return self.node("Mul", [r, self.scalar(2.0 ** -fp)], base + "_grid")

    def qdq(self, x: str, bw: int, fp: int, base: str, mode: str = "half_up") -> str:
        """QuantizeLinear/DequantizeLinear with scale 2^-fp (8-bit: int8; up to 16: int16; other widths clipped
        first), after rounding to the grid as the DPU rounds (so QuantizeLinear's own rounding never applies)."""
        if mode in ("half_up", "std_round"):
            x = self.round_to_grid(x, fp, mode, base)
        if bw not in (8, 16):
            lo, hi = -(2 ** (bw - 1)), 2 ** (bw - 1) - 1
            x = self.node("Clip", [x, self.scalar(lo * 2.0 ** -fp), self.scalar(hi * 2.0 ** -fp)], base + "_clip")
        zdt = np.int8 if bw <= 8 else np.int16
        self.max_bw = max(self.max_bw, bw)
        s, z = self.scalar(2.0 ** -fp), self.scalar(0, zdt)
        q = self.node("QuantizeLinear", [x, s, z], base + "_q")
        return self.node("DequantizeLinear", [q, s, z], base + "_dq")

    def dq_const(self, codes: np.ndarray, fp: int, base: str) -> str:
        dt = np.int8 if codes.dtype.itemsize == 1 else np.int16 if codes.dtype.itemsize == 2 else np.int32
        c = self.init(codes.astype(dt), base + "_codes")
        return self.node("DequantizeLinear", [c, self.scalar(2.0 ** -fp), self.scalar(0, dt)], base + "_w")

    def nchw(self, x: str, base: str) -> str:
        return self.node("Transpose", [x], base + "_nchw", perm=[0, 3, 1, 2])

    def nhwc(self, x: str, base: str) -> str:
        return self.node("Transpose", [x], base + "_nhwc", perm=[0, 2, 3, 1])

    def act(self, y: str, act: str, base: str) -> str:
        if act == "RELU":
            return self.node("Relu", [y], base + "_relu")
        if act == "LEAKYRELU":
            return self.node("LeakyRelu", [y], base + "_leaky", alpha=26.0 / 256.0)
        if act == "RELU6":
            return self.node("Clip", [y, self.scalar(0.0), self.scalar(6.0)], base + "_relu6")
        return y

    # -- the function
    def run(self, dynamic_batch: bool, opset: int | None) -> Any:
        h, TP = self.h, self.TP
        block = self.func.regions[0].blocks[0]
        inputs, outputs = [], []
        for i, a in enumerate(block.args):
            name = a.name_hint or f"input_{i}"
            self.names[a] = name
            shape = list(a.type.shape)
            if dynamic_batch and shape:
                shape[0] = "batch"
            inputs.append(h.make_tensor_value_info(name, TP.FLOAT, shape))
        for op in block.ops:
            if Terminator in op.TRAITS:
                for k, v in enumerate(op.operands):
                    out = self.node("Identity", [self.names[v]], f"output_{k}")
                    shape = list(v.type.shape)
                    if dynamic_batch and shape:
                        shape[0] = "batch"
                    outputs.append(h.make_tensor_value_info(out, TP.FLOAT, shape))
                break
            if isinstance(op, Q.ConstOp):
                self.consts[op.results[0]] = (np.asarray(op.ints), op.fp_out)
                continue
            if isinstance(op, ConstantOp):
                self.names[op.results[0]] = self.init(np.asarray(op.attributes["value"].array, np.float32), "const")
                continue
            self.names[op.results[0]] = self.emit(op)
        graph = h.make_graph(self.nodes, self.model_name, inputs, outputs, self.inits)
        need = ONNX_OPSET if self.max_bw <= 8 else ONNX_OPSET_INT16
        if opset is not None and int(opset) < need:
            raise QuantizerError(f"export_onnx_model(): opset {opset} is too old: "
                                 f"{'16-bit QuantizeLinear needs' if need > ONNX_OPSET else 'fixflow writes'} {need}")
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", int(opset or need))], producer_name="fixflow")
        model.ir_version = 10
        return model

    def operand(self, v: Value, base: str) -> str:
        if v in self.names:
            return self.names[v]
        codes, fp = self.consts[v]           # a fixed-point constant used as a feature map (an add's operand)
        self.names[v] = self.dq_const(codes, fp, base)
        return self.names[v]

    def emit(self, op: Operation) -> str:
        loc = op.location
        base = (loc.name if isinstance(loc, NameLoc) else op.results[0].name_hint or op.name.split(".")[1])
        base = base.replace("#", "_")
        n = op.name
        ft = Q.fixed_type(op.results[0].type)
        bw, fp = (ft.bit_width, ft.fix_pos) if ft is not None else (None, None)
        if n in ("fix.data", "fix.fix"):
            x = self.operand(op.operands[0], base)
            if n == "fix.fix" and op.requantizes:
                return self.qdq(x, bw, fp, base)
            if op.layout == "NCHW" and op.operands[0].type.rank == 4:
                x = self.nhwc(x, base)
            return self.qdq(x, bw, fp, base, op.round_mode)
        if n == "fix.float":
            x = self.operand(op.operands[0], base)
            return self.nchw(x, base) if op.layout == "NCHW" and op.operands[0].type.rank == 4 else x
        if n in ("fix.conv2d", "fix.depthwise_conv2d", "fix.transposed_conv2d"):
            return self.conv(op, base)
        if n == "fix.dense":
            f = op.fps()
            codes, _ = self.consts[op.weights]
            w = self.dq_const(codes.T.copy(), f["fp_w"], base + "_weight")
            y = self.node("MatMul", [self.operand(op.input, base), w], base + "_matmul")
            if op.bias is not None:
                codes_b, _ = self.consts[op.bias]
                y = self.node("Add", [y, self.dq_const(codes_b.astype(np.int32), f["fp_b"], base + "_bias")], base)
            return self.qdq(self.act(y, op.nonlinear, base), bw, fp, base)
        if n == "fix.pool":
            x = self.nchw(self.operand(op.input, base), base)
            t, b, l, r = (int(p) for p in op.pad)
            kw = dict(kernel_shape=[int(k) for k in op.kernel], strides=[int(s) for s in op.stride], pads=[t, l, b, r])
            if op.type == "MAX":
                y = self.node("MaxPool", [x], base + "_maxpool", **kw)
            else:
                kh, kwd = (int(k) for k in op.kernel)
                mult, shift = avgpool_multiplier(kh, kwd)
                y = self.node("AveragePool", [x], base + "_avgpool", count_include_pad=1, **kw)
                # the DPU multiplies the window sum by mult / 2^shift, not by 1 / (kh * kw)
                y = self.node("Mul", [y, self.scalar(kh * kwd * mult / 2.0 ** shift)], base + "_dpu_factor")
            return self.qdq(self.nhwc(y, base), bw, fp, base)
        if n == "fix.eltwise":
            fps = [Q.fixed_type(v.type).fix_pos for v in op.operands]
            exps = [min(fps) + 2] * len(fps) if op.type == "ADD" else [f + 2 for f in fps]
            ts = []
            for v, e in zip(op.operands, exps):
                t = self.node("Mul", [self.operand(v, base), self.scalar(2.0 ** e)], base + "_prescale")
                t = self.node("Floor", [t], base + "_floor")
                ts.append(self.node("Mul", [t, self.scalar(2.0 ** -e)], base + "_unscale"))
            y = ts[0]
            for t in ts[1:]:
                y = self.node("Add" if op.type == "ADD" else "Mul", [y, t], base + "_" + op.type.lower())
            return self.qdq(self.act(y, op.nonlinear, base), bw, fp, base)
        if n == "fix.concat":
            parts = [self.qdq(self.operand(v, base), bw, fp, base + "_in") for v in op.operands]
            return self.qdq(self.node("Concat", parts, base + "_concat", axis=op._axis()), bw, fp, base)
        if n == "fix.reshape":
            shape = self.init(np.array([int(d) for d in op.shape], np.int64), base + "_shape")
            return self.qdq(self.node("Reshape", [self.operand(op.input, base), shape], base + "_reshape"), bw, fp, base)
        if n == "fix.transpose":
            return self.qdq(self.node("Transpose", [self.operand(op.input, base)], base + "_transpose",
                                      perm=[int(p) for p in op.perm]), bw, fp, base)
        if n == "fix.upsample":
            sh, sw = (int(s) for s in op.scale)
            scales = self.init(np.array([1, sh, sw, 1], np.float32), base + "_scales")
            y = self.node("Resize", [self.operand(op.input, base), "", scales], base + "_resize", mode="nearest",
                          coordinate_transformation_mode="asymmetric", nearest_mode="floor")
            return self.qdq(y, bw, fp, base)
        if n == "fix.pad":
            t, b, l, r = (int(p) for p in op.pad)
            pads = self.init(np.array([0, t, l, 0, 0, b, r, 0], np.int64), base + "_pads")
            mode = {"constant": "constant", "reflect": "reflect", "edge": "edge"}.get(op.mode)
            if mode is None:
                raise QuantizerError(f"export_onnx_model(): {op.mode} padding has no ONNX form ({base})")
            ins = [self.operand(op.input, base), pads]
            if mode == "constant":
                ins.append(self.scalar(int(op.value) * 2.0 ** -fp))
            return self.qdq(self.node("Pad", ins, base + "_pad", mode=mode), bw, fp, base)
        if n in ("fix.hard_sigmoid", "fix.hard_swish"):
            x = self.operand(op.input, base)
            y = self.node("Add", [x, self.scalar(3.0)], base + "_add3")
            y = self.node("Clip", [y, self.scalar(0.0), self.scalar(6.0)], base + "_relu6")
            y = self.node("Mul", [y, self.scalar(2731 / 2.0 ** 14)], base + "_hsigmoid")
            if n == "fix.hard_swish":
                y = self.node("Mul", [x, self.qdq(y, 8, 7, base + "_hs")], base + "_hswish")
            return self.qdq(y, bw, fp, base)
        return self.cpu_op(op, base)

    def conv(self, op: Operation, base: str) -> str:
        f = op.fps()
        codes, _ = self.consts[op.weights]
        t, b, l, r = (int(p) for p in op.pad)
        attrs = dict(strides=[int(s) for s in op.stride], dilations=[int(d) for d in op.dilation], pads=[t, l, b, r])
        if op.name == "fix.conv2d":
            w, typ = codes.transpose(0, 3, 1, 2), "Conv"
        elif op.name == "fix.depthwise_conv2d":
            w, typ = codes[0].transpose(2, 0, 1)[:, None], "Conv"
            attrs["group"] = int(codes.shape[-1])
        else:
            w, typ = codes.transpose(3, 0, 1, 2), "ConvTranspose"
            attrs["output_padding"] = [int(p) for p in op.output_padding]
        ins = [self.nchw(self.operand(op.input, base), base),
               self.dq_const(np.ascontiguousarray(w), f["fp_w"], base + "_weight")]
        if op.bias is not None:
            codes_b, _ = self.consts[op.bias]
            ins.append(self.dq_const(codes_b.astype(np.int32), f["fp_b"], base + "_bias"))
        y = self.node(typ, ins, base + "_" + typ.lower(), **attrs)
        return self.qdq(self.nhwc(self.act(y, op.nonlinear, base), base), op.bw, op.fp_out, base)

    def cpu_op(self, op: Operation, base: str) -> str:
        n = op.name
        a = [self.operand(v, base) for v in op.operands]
        simple = {"graph.relu": "Relu", "graph.sigmoid": "Sigmoid", "graph.tanh": "Tanh", "graph.add": "Add",
                  "graph.sub": "Sub", "graph.mul": "Mul", "graph.identity": "Identity", "graph.dropout": "Identity"}
        if n in simple:
            return self.node(simple[n], a, base + "_" + simple[n].lower())
        if n == "graph.silu":
            return self.node("Mul", [a[0], self.node("Sigmoid", a, base + "_sigmoid")], base + "_silu")
        if n == "graph.relu6":
            return self.node("Clip", [a[0], self.scalar(0.0), self.scalar(6.0)], base + "_relu6")
        if n == "graph.softmax":
            return self.node("Softmax", a, base + "_softmax", axis=int(op.axis))
        if n in ("graph.reshape", "graph.flatten"):
            shape = self.init(np.array(op.results[0].type.shape, np.int64), base + "_shape")
            return self.node("Reshape", [a[0], shape], base + "_reshape")
        raise QuantizerError(f"export_onnx_model(): the CPU op '{n}' ({base}) has no ONNX form here")


def export_onnx_model(q: "Quantizer", output_dir: str | Path | None = None, verbose: bool = False,
                      dynamic_batch: bool = False, opset_version: int | None = None) -> Path:
    """Write `<output_dir>/<Model>_int.onnx`: QuantizeLinear/DequantizeLinear pairs with power-of-two scales."""
    _test_mode(q, "export_onnx_model")
    try:
        import onnx
    except ImportError:
        raise QuantizerError("export_onnx_model() needs the 'onnx' package (pip install onnx)") from None
    model = _OnnxWriter(find_function(q.fix_module), q.name).run(dynamic_batch, opset_version)
    onnx.checker.check_model(model)
    out = Path(output_dir) if output_dir is not None else q.output_dir
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{q.name}_int.onnx"
    onnx.save(model, str(path))
    if verbose:
        q._log(onnx.helper.printable_graph(model.graph))
    q._log(f"[fixflow] ONNX model of the quantized '{q.name}' is exported.({path})")
    return path

