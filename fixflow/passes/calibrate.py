"""Post-training calibration of a graph-dialect module (numerics.md, "Calibration across batches").

`calibrate_module(module, batches)` runs a graph-level fake-quant interpreter over calibration
batches and writes the quantization annotations of the contract (`fix.out`, `fix.weight`,
`fix.bias` on ops, `fix.inputs` on the function, `fix.bias_corrected` / `fix.calib_batches`
on the module):

* quantization points: one per fused group; relu, relu6, leaky_relu, flatten, reshape,
  transpose, pad, upsample, dropout and identity join their producer's group (`quant_points`);
* weights and biases of conv2d / conv_transpose2d / linear: fix_pos once, from the first
  batch (std_round, the "diffs" search); a conv without bias gets a zero bias;
* the network input: scope 1 (maxmin), std_round; activations: one diffs fix_pos per batch
  (half_up), the modal value in force; later layers see activations fake-quantized with it;
* bias correction (on by default): per conv/dense the per-channel mean error of the
  quantized against the float-weight output (same input) is subtracted from the bias at
  rate 0.05, halved once the efficiency ``1.25 * log10(E[f^2] / E[err^2])`` exceeds 4.0,
  frozen above 4.3 or when stable. The corrected bias replaces the bias constant.

`FakeQuantRunner` is also the frozen fake-quant forward of an annotated module
(`FakeQuantRunner.from_annotations`).
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence

import attrs
import numpy as np

from ..dialects.graph import kernels as GK
from ..dialects.graph import (AdaptiveAvgPool2dOp, AvgPool2dOp, ConstantOp, Conv2dOp, ConvTranspose2dOp,
                              LeakyReluOp, LinearOp)
from ..dialects.graph.shapes import ShapeError
from ..dialects.fix.numerics import LEAKY_RELU_ALPHA, ModalFixPos, avgpool_multiplier, fake_quantize, fix_pos_diffs
from ..ir.attributes import ArrayAttr, BoolAttr, DenseArrayAttr, DenseResourceElementsAttr, IntegerAttr, StringAttr
from ..ir.core import Operation, Value
from ..ir.diagnostics import FixflowError, emit_warning
from ..ir.opdef import ConstantLike, Terminator
from ..ir.passes import Pass, register_pass
from ..ir.types import i64

__all__ = ["CalibrationError", "FakeQuantRunner", "calibrate_module", "quant_points", "conv_like_ops",
           "main_function", "fix_attr", "read_fix_attr", "load_calibration_data", "Calibrate", "GROUP_JOINERS",
           "CONV_LIKE", "BIAS_CORR_SUFFIX"]

#: ops that join their producer's quantization group (no quantization point of their own)
GROUP_JOINERS = frozenset({"graph.relu", "graph.relu6", "graph.leaky_relu", "graph.hardtanh", "graph.flatten",
                           "graph.reshape", "graph.transpose", "graph.pad", "graph.upsample", "graph.dropout",
                           "graph.identity"})
CONV_LIKE = (Conv2dOp, ConvTranspose2dOp, LinearOp)
METHODS = ("diffs", "maxmin")
BIAS_CORR_SUFFIX = "_biascorr"

# bias correction schedule (numerics.md)
BC_RATE = 0.05
BC_HALVE_ABOVE = 4.0
BC_STOP_ABOVE = 4.3


class CalibrationError(FixflowError):
    """Calibration cannot run: no data, bad options, inputs that do not fit the network."""


# ---------------------------------------------------------------------------------------- helpers
def main_function(module: Operation, function: str | None = None) -> Operation:
    """The function to calibrate: `function` by name, else the module's only (or @main) function."""
    funcs = [op for op in module.walk() if op.name == "func.func" and op.regions and op.regions[0].blocks]
    if function is not None:
        funcs = [f for f in funcs if f.attributes["sym_name"].value == function]
    elif len(funcs) > 1:
        funcs = [f for f in funcs if f.attributes["sym_name"].value == "main"] or funcs[:0]
    if len(funcs) != 1:
        raise CalibrationError("cannot pick the function to calibrate (expected one function, or @main)",
                               module.location)
    return funcs[0]


def fix_attr(bit_width: int, fix_pos: int) -> DenseArrayAttr:
    """`array<i64: BW, FP>`."""
    return DenseArrayAttr(i64, (int(bit_width), int(fix_pos)))


def read_fix_attr(op: Operation, name: str) -> tuple[int, int] | None:
    """`(bit_width, fix_pos)` of a `fix.*` annotation, or None."""
    a = op.attributes.get(name)
    if a is None:
        return None
    return int(a[0]), int(a[1])


def conv_like_ops(func: Operation) -> list[Operation]:
    """conv2d / conv_transpose2d / linear ops of the function body, in program order."""
    return [op for op in func.regions[0].blocks[0].ops if isinstance(op, CONV_LIKE)]


def quant_points(func: Operation) -> list[Value]:
    """Op results that are quantization points (one per fused group), in program order.

    A result is *not* a point when its only user is a group joiner (relu, reshape, ...) and it
    is not returned by the function; constants are never points.
    """
    block = func.regions[0].blocks[0]
    points = []
    for op in block.ops:
        if ConstantLike in op.TRAITS or Terminator in op.TRAITS:
            continue
        for r in op.results:
            users = list(r.users)
            if len(users) == 1 and r.uses.get(users[0], 0) == 1 and users[0].name in GROUP_JOINERS:
                continue
            points.append(r)
    return points


def _const_op(v: Value | None) -> ConstantOp | None:
    owner = getattr(v, "op", None)
    return owner if isinstance(owner, ConstantOp) else None


def _const_array(v: Value) -> np.ndarray:
    owner = _const_op(v)
    if owner is None:
        raise CalibrationError(f"the weights/bias of '{v.users[0].name if v.users else '?'}' are not constants",
                               getattr(getattr(v, "op", None), "location", None))
    return np.asarray(owner.attributes["value"].array, dtype=np.float32)


def _resource_key(v: Value) -> str | None:
    owner = _const_op(v)
    a = owner.attributes.get("value") if owner is not None else None
    return a.key if isinstance(a, DenseResourceElementsAttr) else None


def _out_channels(op: Operation) -> int:
    w = op.weight.type.shape
    if isinstance(op, ConvTranspose2dOp):
        return w[1] * op.groups
    return w[0]


def ensure_biases(func: Operation) -> int:
    """Give every conv-like op without bias a zero bias constant; returns how many were added."""
    n = 0
    for op in conv_like_ops(func):
        if op.bias is not None:
            continue
        key = _resource_key(op.weight)
        key = (key[: -len("weight")] + "bias" if key and key.endswith("weight")
               else f"{key or op.output.name_hint or 'conv'}.bias")
        b = ConstantOp.from_array(np.zeros(_out_channels(op), np.float32), key, op.location)
        op.parent.insert_before(op, b)
        new = type(op).build(op.input, op.weight, b.result, attributes=dict(op.attributes),
                             result_types=[op.output.type], location=op.location)
        new.result.name_hint = op.output.name_hint
        op.parent.insert_before(op, new)
        op.output.replace_all_uses_with(new.result)
        op.erase()
        n += 1
    return n


def legalize_leaky_relu(func: Operation) -> int:
    """Force every leaky_relu slope to the DPU's 26/256 with a warning naming the layer."""
    n = 0
    alpha = float(LEAKY_RELU_ALPHA)
    for op in func.walk(LeakyReluOp):
        if op.alpha != alpha:
            emit_warning(f"leaky_relu slope {op.alpha:g} changed to 26/256 = {alpha} (the DPU's only "
                         "LeakyReLU slope)", op.location)
            op.alpha = alpha
            n += 1
    return n


def _avgpool_factor(op: Operation, x: np.ndarray) -> float | None:
    """The DPU's ``mult / 2^shift * kh * kw`` correction of a float average pool (None: exact)."""
    if isinstance(op, AvgPool2dOp):
        if op.divisor_override is not None or (any(op.padding) and not op.count_include_pad):
            return None
        kh, kw = op.kernel
    elif isinstance(op, AdaptiveAvgPool2dOp):
        if tuple(op.output_size) != (1, 1):
            return None
        kh, kw = x.shape[2], x.shape[3]
    else:
        return None
    mult, shift = avgpool_multiplier(int(kh), int(kw))
    return mult / 2.0**shift * kh * kw


def _channel_axes(y: np.ndarray, op: Operation) -> tuple[int, ...]:
    if isinstance(op, LinearOp):
        return tuple(range(y.ndim - 1))
    return (0,) + tuple(range(2, y.ndim))


def _channel_view(c: np.ndarray, y: np.ndarray, op: Operation) -> np.ndarray:
    if isinstance(op, LinearOp):
        return c
    return c.reshape((1, -1) + (1,) * (y.ndim - 2))


# ---------------------------------------------------------------------------------------- runner
@attrs.define
class _BiasCorr:
    correction: np.ndarray
    rate: float = BC_RATE
    halved: bool = False
    stopped: bool = False
    batches: int = 0
    efficiency: float = 0.0


class FakeQuantRunner:
    """Graph-level fake-quant interpreter with calibration state.

    `step(inputs)` calibrates on one batch (updating the statistics) and returns the
    fake-quantized outputs; `forward(inputs)` runs with the state frozen; `write_annotations()`
    stores the state in the module (the contract's `fix.*` attributes).
    """

    def __init__(self, module: Operation, *, function: str | None = None, bit_width: int = 8,
                 method: str = "diffs", scope: int = 5, bias_correction: bool = True):
        if method not in METHODS:
            raise CalibrationError(f"unknown calibration method {method!r} (expected one of: {', '.join(METHODS)})")
        if scope < 1:
            raise CalibrationError(f"calibration scope must be >= 1, got {scope}")
        self.module = module
        self.func = main_function(module, function)
        self.bit_width = bit_width
        self.scope = 1 if method == "maxmin" else scope
        self.bias_correction = bias_correction
        legalize_leaky_relu(self.func)
        ensure_biases(self.func)
        self._refresh()
        self.points = set(quant_points(self.func))
        self.modal: dict[Value, ModalFixPos] = {v: ModalFixPos() for v in self.points}
        self.input_modal = [ModalFixPos() for _ in self.args]
        self.fixed: dict[Value, int] = {}          # frozen fix_pos (from annotations)
        self.fixed_inputs: list[int | None] = [None] * len(self.args)
        self.fp_w: dict[Operation, int] = {}
        self.fp_b: dict[Operation, int] = {}
        self.bc: dict[Operation, _BiasCorr] = {}
        self._qparams: dict[Operation, tuple[np.ndarray, np.ndarray]] = {}
        self._wq: dict[Operation, np.ndarray] = {}   # fake-quantized weights (fix_pos chosen once)
        self.batches = 0

    def _refresh(self) -> None:
        block = self.func.regions[0].blocks[0]
        self.ops = list(block.ops)
        self.args = list(block.args)
        last: dict[Value, int] = {}
        for i, op in enumerate(self.ops):
            for v in op.operands:
                last[v] = i
        self._last = last

    # -- construction from an annotated module
    @classmethod
    def from_annotations(cls, module: Operation, function: str | None = None) -> "FakeQuantRunner":
        """A frozen runner that uses the `fix.*` annotations already in the module."""
        r = cls(module, function=function, bias_correction=False)
        ins = r.func.attributes.get("fix.inputs")
        if ins is None:
            raise CalibrationError("the module is not calibrated (no fix.inputs on the function)", r.func.location)
        r.fixed_inputs = [int(a[1]) for a in ins]
        for v in r.points:
            fa = read_fix_attr(v.op, "fix.out")
            if fa is None:
                raise CalibrationError(f"'{v.op.name}' has no fix.out annotation", v.op.location)
            r.fixed[v] = fa[1]
        for op in conv_like_ops(r.func):
            w, b = read_fix_attr(op, "fix.weight"), read_fix_attr(op, "fix.bias")
            if w is None or b is None:
                raise CalibrationError(f"'{op.name}' has no fix.weight/fix.bias annotation", op.location)
            r.fp_w[op], r.fp_b[op] = w[1], b[1]
        return r

    # -- state
    def input_fix_pos(self, i: int) -> int | None:
        return self.fixed_inputs[i] if self.fixed_inputs[i] is not None else self.input_modal[i].value

    def point_fix_pos(self, v: Value) -> int | None:
        return self.fixed[v] if v in self.fixed else self.modal[v].value

    def corrected_bias(self, op: Operation) -> np.ndarray:
        b = _const_array(op.bias)
        c = self.bc.get(op)
        return b if c is None else (b - c.correction).astype(np.float32)

    def _params(self, op: Operation) -> tuple[np.ndarray, np.ndarray]:
        cached = self._qparams.get(op)
        if cached is not None:
            return cached
        wq = self._wq.get(op)
        if wq is None:
            w = _const_array(op.weight)
            if not (np.isfinite(w).all() and np.isfinite(_const_array(op.bias)).all()):
                raise CalibrationError(f"'{op.name}': the weights or bias hold NaN or inf values", op.location)
            if op not in self.fp_w:
                self.fp_w[op] = fix_pos_diffs(w, self.bit_width, "std_round", self.scope)
            wq = self._wq[op] = fake_quantize(w, self.bit_width, self.fp_w[op], "std_round")
        b = self.corrected_bias(op)
        if op not in self.fp_b:
            self.fp_b[op] = fix_pos_diffs(b, self.bit_width, "std_round", self.scope)
        q = (wq, fake_quantize(b, self.bit_width, self.fp_b[op], "std_round"))
        self._qparams[op] = q
        return q

    # -- execution
    def _run(self, inputs: Sequence[np.ndarray], update: bool,
             observer: Callable[[Operation, np.ndarray], None] | None = None) -> list[np.ndarray]:
        if len(inputs) != len(self.args):
            raise CalibrationError(f"the network takes {len(self.args)} input(s), got {len(inputs)}",
                                   self.func.location)
        env: dict[Value, np.ndarray] = {}
        for i, (arg, x) in enumerate(zip(self.args, inputs)):
            x = np.asarray(x, dtype=np.float32)
            t = arg.type
            if x.ndim != t.rank or tuple(x.shape[1:]) != tuple(t.shape[1:]):
                raise CalibrationError(f"input #{i} '{arg.name_hint}': expected shape (N, "
                                       f"{', '.join(map(str, t.shape[1:]))}), got {tuple(x.shape)}",
                                       self.func.location)
            if update and x.size == 0:
                raise CalibrationError(f"input #{i} '{arg.name_hint}': empty calibration batch {tuple(x.shape)}",
                                       self.func.location)
            if update and not np.isfinite(x).all():
                raise CalibrationError(f"input #{i} '{arg.name_hint}': the calibration batch holds NaN or inf "
                                       "values", self.func.location)
            if update and self.fixed_inputs[i] is None:
                self.input_modal[i].update(fix_pos_diffs(x, self.bit_width, "std_round", scope=1))
            env[arg] = fake_quantize(x, self.bit_width, self.input_fix_pos(i), "std_round")
        for idx, op in enumerate(self.ops):
            if Terminator in op.TRAITS:
                return [env[v] for v in op.operands]
            args = [env[v] for v in op.operands]
            if ConstantLike in op.TRAITS:
                y = np.asarray(op.attributes["value"].array, dtype=np.float32)
            elif isinstance(op, CONV_LIKE):
                y = self._conv(op, args, update)
            else:
                try:
                    y = op.evaluate(args)[0]
                except (ValueError, TypeError, IndexError) as e:
                    raise CalibrationError(f"'{op.name}' failed during calibration: {e}", op.location) from None
                f = _avgpool_factor(op, args[0]) if op.name in ("graph.avg_pool2d",
                                                                  "graph.adaptive_avg_pool2d") else None
                if f is not None:
                    y = (y * np.float32(f)).astype(np.float32)
            r = op.results[0] if op.results else None
            if r is not None and r in self.points:
                if update and r not in self.fixed:
                    if not np.isfinite(y).all():
                        raise CalibrationError(f"'{op.name}' produced NaN or inf values during calibration",
                                               op.location)
                    self.modal[r].update(fix_pos_diffs(y, self.bit_width, "half_up", self.scope))
                y = fake_quantize(y, self.bit_width, self.point_fix_pos(r), "half_up")
            if observer is not None:
                observer(op, y)
            if r is not None and r in self._last:
                env[r] = y
            for v in op.operands:
                if self._last.get(v) == idx:
                    env.pop(v, None)
        raise CalibrationError("the function does not end with func.return", self.func.location)

    def _conv(self, op: Operation, args: list[np.ndarray], update: bool) -> np.ndarray:
        wq, bq = self._params(op)
        x = args[0]
        st = self.bc.get(op)
        if not (update and self.bias_correction and (st is None or not st.stopped)):
            return op.evaluate([x, wq, bq])[0]
        if isinstance(op, Conv2dOp):   # one im2col for the quantized and the float-weight conv
            try:
                y, yf = GK.conv2d_multi(x, [wq, args[1]], [bq, args[2]], **op.kernel_args())
            except ShapeError as e:
                raise CalibrationError(f"'{op.name}' failed during calibration: {e}", op.location) from None
        else:
            y, yf = op.evaluate([x, wq, bq])[0], op.evaluate([x, args[1], args[2]])[0]
        self._correct_bias(op, yf, y, args[2])
        return y

    def _correct_bias(self, op: Operation, yf: np.ndarray, yq: np.ndarray, b: np.ndarray) -> None:
        """One bias-correction step from the float-weight output `yf` and the quantized `yq`."""
        st = self.bc.get(op)
        if st is None:
            st = self.bc[op] = _BiasCorr(np.zeros(b.shape, np.float64))
        err = np.subtract(yq, yf, dtype=np.float64)
        sq = np.square(err)
        noise = float(np.mean(sq))
        np.square(yf, out=sq, dtype=np.float64)
        st.efficiency = 1.25 * math.log10(max(float(np.mean(sq)), 1e-30) / noise) if noise > 0 else math.inf
        del sq
        st.batches += 1
        if st.efficiency > BC_STOP_ABOVE:
            st.stopped = True
            return
        if st.efficiency > BC_HALVE_ABOVE and not st.halved:
            st.rate /= 2
            st.halved = True
        delta = st.rate * err.mean(axis=_channel_axes(yf, op))
        st.correction = st.correction + delta
        scale = max(float(np.abs(b).max()), float(np.abs(st.correction).max()), 1e-12)
        if float(np.abs(delta).max()) <= 1e-6 * scale:
            st.stopped = True
        self._qparams.pop(op, None)   # re-quantize the corrected bias (same fix_pos)

    def step(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Calibrate on one batch; returns the fake-quantized outputs computed with the new state."""
        out = self._run(inputs, update=True)
        self.batches += 1
        return out

    def forward(self, inputs: Sequence[np.ndarray],
                observer: Callable[[Operation, np.ndarray], None] | None = None) -> list[np.ndarray]:
        """Fake-quant forward with the current (frozen) state."""
        if self.batches == 0 and not self.fixed and self.points:
            raise CalibrationError("no calibration data seen yet: calibrate first", self.func.location)
        return self._run(inputs, update=False, observer=observer)

    # -- results
    def corrections(self) -> dict[str, np.ndarray]:
        """Bias corrections (subtracted from the bias), keyed by the weight's resource key / op name."""
        out = {}
        for op, st in self.bc.items():
            if np.any(st.correction):
                key = _resource_key(op.bias) or op.output.name_hint or op.name
                out[key] = st.correction.astype(np.float32)
        return out

    def write_annotations(self) -> None:
        """Store the calibration state in the module (and the corrected biases in the constants)."""
        if self.batches == 0 and not self.fixed:
            raise CalibrationError("no calibration batches were run", self.func.location)
        bw = self.bit_width
        corrected = False
        for op in conv_like_ops(self.func):
            st = self.bc.get(op)
            if st is not None and np.any(st.correction):
                new_b = self.corrected_bias(op)
                key = _resource_key(op.bias) or f"{op.output.name_hint or 'conv'}.bias"
                if not key.endswith(BIAS_CORR_SUFFIX):
                    key += BIAS_CORR_SUFFIX
                c = ConstantOp.from_array(new_b, key, op.bias.op.location)
                old = op.bias.op
                op.parent.insert_before(op, c)
                op.set_operand(2, c.result)
                if not old.results[0].uses:
                    old.erase()
                # the bias fix_pos was chosen once; lower it if the corrected bias would overflow
                self.fp_b[op] = min(self.fp_b[op], fix_pos_diffs(new_b, bw, "std_round", 1))
                st.correction = np.zeros_like(st.correction)
                self._qparams.pop(op, None)
                corrected = True
            self._params(op)
            op.attributes["fix.weight"] = fix_attr(bw, self.fp_w[op])
            op.attributes["fix.bias"] = fix_attr(bw, self.fp_b[op])
        for v in self.points:
            v.op.attributes["fix.out"] = fix_attr(bw, self.point_fix_pos(v))
        self.func.attributes["fix.inputs"] = ArrayAttr([fix_attr(bw, self.input_fix_pos(i))
                                                        for i in range(len(self.args))])
        m = self.module.attributes
        prev = m.get("fix.bias_corrected")
        m["fix.bias_corrected"] = BoolAttr(bool(corrected or (prev is not None and prev.value)))
        m["fix.calib_batches"] = IntegerAttr(self.batches)
        m["fix.calib_scope"] = IntegerAttr(self.scope)
        self._refresh()


def calibrate_module(module: Operation, batches: Iterable[Sequence[np.ndarray]], *, function: str | None = None,
                     bit_width: int = 8, method: str = "diffs", scope: int = 5, bias_correction: bool = True,
                     progress: bool = False) -> FakeQuantRunner:
    """Calibrate `module` on `batches` (each a list of numpy inputs, one per function argument) and
    write the annotations; returns the runner (its `corrections()` are the bias corrections)."""
    runner = FakeQuantRunner(module, function=function, bit_width=bit_width, method=method, scope=scope,
                             bias_correction=bias_correction)
    it = batches
    if progress:
        from tqdm import tqdm
        it = tqdm(batches, desc="Calibrating", unit="batch", leave=False)
    for batch in it:
        if isinstance(batch, np.ndarray):
            batch = [batch]
        runner.step(list(batch))
    if runner.batches == 0:
        raise CalibrationError("no calibration batches (the data source is empty)", module.location)
    runner.write_annotations()
    return runner


# ---------------------------------------------------------------------------------------- the pass
def load_calibration_data(data: str, input_shape: Sequence[int]) -> np.ndarray:
    """Calibration images: "digits" (the train split at the network's input size) or a `.npz` file
    (its first array, or the array named `x`/`input`)."""
    shape = tuple(int(d) for d in input_shape)
    if data == "digits":
        from ..zoo.data import load_digits
        if len(shape) != 4 or shape[1] != 1 or shape[2] != shape[3]:
            raise CalibrationError(f"'digits' data is 1-channel square images; the network input is {shape}")
        x, _ = load_digits("train", size=shape[2])
        return np.asarray(x, np.float32)
    try:
        with np.load(data) as z:
            names = list(z.files)
            if not names:
                raise CalibrationError(f"calibration data {data}: the .npz file is empty")
            key = next((k for k in ("x", "input", "inputs", "images") if k in names), names[0])
            x = np.asarray(z[key], np.float32)
    except (OSError, ValueError) as e:
        raise CalibrationError(f"cannot read calibration data {data!r}: {e}") from None
    if x.ndim != len(shape) or x.shape[1:] != shape[1:]:
        raise CalibrationError(f"calibration data {data}: array shape {x.shape} does not fit the network input "
                               f"(N, {', '.join(map(str, shape[1:]))})")
    return x


@register_pass
class Calibrate(Pass):
    NAME = "calibrate"
    SUMMARY = "Choose fix positions on calibration data (+ bias correction) and annotate the graph (fix.*)"

    @attrs.define
    class Options:
        data: str = attrs.field(default="digits", metadata={"help": "'digits' or a .npz file of inputs"})
        batches: int = attrs.field(default=10, metadata={"help": "number of calibration batches"})
        batch_size: int = attrs.field(default=32, metadata={"help": "images per batch"})
        method: str = attrs.field(default="diffs", metadata={"help": "diffs | maxmin"})
        scope: int = attrs.field(default=5, metadata={"help": "fix positions tried by diffs"})
        bias_correction: bool = attrs.field(default=True, metadata={"help": "correct biases"})
        bit_width: int = attrs.field(default=8, metadata={"help": "bit width"})

    def run(self, module: Operation) -> None:
        o = self.options
        if o.batches < 1 or o.batch_size < 1:
            raise CalibrationError("calibrate: batches and batch_size must be >= 1", module.location)
        func = main_function(module)
        args = func.regions[0].blocks[0].args
        if len(args) != 1:
            raise CalibrationError("calibrate{data=...} feeds single-input networks; use calibrate_module() "
                                   "from Python for several inputs", func.location)
        x = load_calibration_data(o.data, args[0].type.shape)
        n = min(len(x), o.batches * o.batch_size)
        batches = [[x[i:i + o.batch_size]] for i in range(0, n, o.batch_size)]
        calibrate_module(module, batches, bit_width=o.bit_width, method=o.method, scope=o.scope,
                         bias_correction=o.bias_correction)
        module.attributes["fix.calib_data"] = StringAttr(o.data)
