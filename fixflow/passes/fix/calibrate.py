"""Post-training calibration of a graph-dialect module (numerics.md, "Calibration across batches").

`calibrate_module(module, batches)` runs a graph-level fake-quant interpreter (the op-by-op
interpreter of `fixflow.ir.interpreter` with a per-op hook) over calibration batches and writes the
quantization annotations of the contract (`annotations.py`):

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

from ...dialects.fix.numerics import ModalFixPos, avgpool_multiplier, fake_quantize, fix_pos_diffs
from ...dialects.graph import kernels as GK
from ...dialects.graph import AdaptiveAvgPool2dOp, AvgPool2dOp, ConstantOp, Conv2dOp, LinearOp
from ...dialects.graph.shapes import ShapeError
from ...ir.attributes import ArrayAttr, BoolAttr, IntegerAttr, StringAttr
from ...ir.core import Operation, Value
from ...ir.interpreter import find_function, run_function
from ...ir.opdef import ConstantLike
from ...ir.passes import Pass, register_pass
from ..graph.transforms import ensure_biases, resource_key
from .annotations import (BIAS_CORR_SUFFIX, CONV_LIKE, BitWidths, CalibrationError, conv_like_ops, fix_attr,
                          keep_float_reason, quant_points, read_fix_attr)
from ..data import DATASET_ENTRY_POINTS  # named data sets: name -> f(input_shape) -> array (re-exported)
from .legalize import legalize_leaky_relu

__all__ = ["CalibrationError", "FakeQuantRunner", "calibrate_module", "load_calibration_data", "Calibrate",
           "DATASET_ENTRY_POINTS"]

METHODS = ("diffs", "maxmin")
#: the bit widths calibration supports (as the quantizer's `bitwidth`)
BIT_WIDTH_MIN, BIT_WIDTH_MAX = 2, 16

# bias correction schedule (numerics.md)
BC_RATE = 0.05
BC_HALVE_ABOVE = 4.0
BC_STOP_ABOVE = 4.3


# ---------------------------------------------------------------------------------------- helpers
def _const_op(v: Value | None) -> ConstantOp | None:
    owner = getattr(v, "op", None)
    return owner if isinstance(owner, ConstantOp) else None


def _const_array(v: Value) -> np.ndarray:
    owner = _const_op(v)
    if owner is None:
        raise CalibrationError(f"the weights/bias of '{v.users[0].name if v.users else '?'}' are not constants",
                               getattr(getattr(v, "op", None), "location", None))
    return np.asarray(owner.attributes["value"].array, dtype=np.float32)


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
                 method: str = "diffs", scope: int = 5, bias_correction: bool = True,
                 bit_widths: BitWidths | None = None):
        if method not in METHODS:
            raise CalibrationError(f"unknown calibration method {method!r} (expected one of: {', '.join(METHODS)})")
        if not isinstance(scope, int) or isinstance(scope, bool) or scope < 1:
            raise CalibrationError(f"calibration scope must be an integer >= 1, got {scope!r}")
        bits = bit_widths if bit_widths is not None else BitWidths.uniform(bit_width)
        for bw in sorted(bits.all_widths() | {bit_width}, key=repr):
            if not isinstance(bw, int) or isinstance(bw, bool) or not BIT_WIDTH_MIN <= bw <= BIT_WIDTH_MAX:
                raise CalibrationError(f"bit_width must be an integer in [{BIT_WIDTH_MIN}, {BIT_WIDTH_MAX}], "
                                       f"got {bw!r}")
        self.module = module
        self.func = find_function(module, function)
        self.bit_width = bit_width
        self.bits = bits
        self.scope = 1 if method == "maxmin" else scope
        self.bias_correction = bias_correction
        legalize_leaky_relu(self.func)
        ensure_biases(self.func)
        self.points = set(quant_points(self.func))
        self.modal: dict[Value, ModalFixPos] = {v: ModalFixPos() for v in self.points}
        self.input_modal = [ModalFixPos() for _ in self.args]
        self.input_bits = [bits.default_input for _ in self.args]
        self.fixed: dict[Value, int] = {}          # frozen fix_pos (from annotations)
        self.fixed_inputs: list[int | None] = [None] * len(self.args)
        self.fp_w: dict[Operation, int] = {}
        self.fp_b: dict[Operation, int] = {}
        self.bc: dict[Operation, _BiasCorr] = {}
        self._qparams: dict[Operation, tuple[np.ndarray, np.ndarray]] = {}
        self._wq: dict[Operation, np.ndarray] = {}   # fake-quantized weights (fix_pos chosen once)
        self.batches = 0

    @property
    def args(self) -> list[Value]:
        return list(self.func.regions[0].blocks[0].args)

    # -- construction from an annotated module
    @classmethod
    def from_annotations(cls, module: Operation, function: str | None = None) -> "FakeQuantRunner":
        """A frozen runner that uses the `fix.*` annotations already in the module."""
        r = cls(module, function=function, bias_correction=False)
        ins = r.func.attributes.get("fix.inputs")
        if ins is None:
            raise CalibrationError("the module is not calibrated (no fix.inputs on the function)", r.func.location)
        r.fixed_inputs = [int(a[1]) for a in ins]
        r.input_bits = [int(a[0]) for a in ins]
        for v in r.points:
            fa = read_fix_attr(v.op, "fix.out")
            if fa is None:
                raise CalibrationError(f"'{v.op.name}' has no fix.out annotation", v.op.location)
            r.fixed[v] = fa[1]
            r.bits.activation[v] = fa[0]
        for op in conv_like_ops(r.func):
            if keep_float_reason(op) is not None:
                continue
            w, b = read_fix_attr(op, "fix.weight"), read_fix_attr(op, "fix.bias")
            if w is None or b is None:
                raise CalibrationError(f"'{op.name}' has no fix.weight/fix.bias annotation", op.location)
            r.fp_w[op], r.fp_b[op] = w[1], b[1]
            r.bits.weights[op], r.bits.bias[op] = w[0], b[0]
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
            if keep_float_reason(op) is not None:   # left in float: its parameters as they are
                self._qparams[op] = (w, self.corrected_bias(op))
                return self._qparams[op]
            bw = self.bits.of_weights(op)
            if op not in self.fp_w:
                self.fp_w[op] = fix_pos_diffs(w, bw, "std_round", self.scope)
            wq = self._wq[op] = fake_quantize(w, bw, self.fp_w[op], "std_round")
        b = self.corrected_bias(op)
        bb = self.bits.of_bias(op)
        if op not in self.fp_b:
            self.fp_b[op] = fix_pos_diffs(b, bb, "std_round", self.scope)
        q = (wq, fake_quantize(b, bb, self.fp_b[op], "std_round"))
        self._qparams[op] = q
        return q

    # -- execution
    def _run(self, inputs: Sequence[np.ndarray], update: bool,
             observer: Callable[[Operation, np.ndarray], None] | None = None) -> list[np.ndarray]:
        if len(inputs) != len(self.args):
            raise CalibrationError(f"the network takes {len(self.args)} input(s), got {len(inputs)}",
                                   self.func.location)
        xs = []
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
                self.input_modal[i].update(fix_pos_diffs(x, self.input_bits[i], "std_round", scope=1))
            xs.append(fake_quantize(x, self.input_bits[i], self.input_fix_pos(i), "std_round"))
        return run_function(self.func, xs, evaluate=lambda op, args: [self._op(op, args, update, observer)])

    def _op(self, op: Operation, args: list[np.ndarray], update: bool,
            observer: Callable[[Operation, np.ndarray], None] | None) -> np.ndarray:
        """One op of the fake-quant forward (the interpreter's per-op hook)."""
        if ConstantLike in op.TRAITS:
            y = np.asarray(op.attributes["value"].array, dtype=np.float32)
        elif isinstance(op, CONV_LIKE):
            y = self._conv(op, args, update)
        else:
            try:
                y = op.evaluate(args)[0]
            except (ValueError, TypeError, IndexError) as e:
                raise CalibrationError(f"'{op.name}' failed during calibration: {e}", op.location) from None
            f = _avgpool_factor(op, args[0]) if (op.name in ("graph.avg_pool2d", "graph.adaptive_avg_pool2d")
                                                 and keep_float_reason(op) is None) else None
            if f is not None:
                y = (y * np.float32(f)).astype(np.float32)
        r = op.results[0]
        if r in self.points:
            if update and r not in self.fixed:
                if not np.isfinite(y).all():
                    raise CalibrationError(f"'{op.name}' produced NaN or inf values during calibration",
                                           op.location)
                self.modal[r].update(fix_pos_diffs(y, self.bits.of_point(r), "half_up", self.scope))
            y = fake_quantize(y, self.bits.of_point(r), self.point_fix_pos(r), "half_up")
        if observer is not None:
            observer(op, y)
        return y

    def _conv(self, op: Operation, args: list[np.ndarray], update: bool) -> np.ndarray:
        wq, bq = self._params(op)
        x = args[0]
        st = self.bc.get(op)
        if (not (update and self.bias_correction and (st is None or not st.stopped))
                or keep_float_reason(op) is not None):
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
                key = resource_key(op.bias) or op.output.name_hint or op.name
                out[key] = st.correction.astype(np.float32)
        return out

    def write_annotations(self) -> None:
        """Store the calibration state in the module (and the corrected biases in the constants)."""
        if self.batches == 0 and not self.fixed:
            raise CalibrationError("no calibration batches were run", self.func.location)
        corrected = False
        used = {k for c in self.func.walk(ConstantOp) if (k := resource_key(c.result)) is not None}
        for op in conv_like_ops(self.func):
            st = self.bc.get(op)
            if st is not None and np.any(st.correction):
                new_b = self.corrected_bias(op)
                base = resource_key(op.bias) or f"{op.output.name_hint or 'conv'}.bias"
                if not base.endswith(BIAS_CORR_SUFFIX):
                    base += BIAS_CORR_SUFFIX
                key, n = base, 1
                while key in used:   # a bias shared by several call sites: one corrected constant each
                    n += 1
                    key = f"{base}{n}"
                used.add(key)
                c = ConstantOp.from_array(new_b, key, op.bias.op.location)
                old = op.bias.op
                op.parent.insert_before(op, c)
                op.set_operand(2, c.result)
                if not old.results[0].uses:
                    old.erase()
                # the bias fix_pos was chosen once; lower it if the corrected bias would overflow
                self.fp_b[op] = min(self.fp_b[op], fix_pos_diffs(new_b, self.bits.of_bias(op), "std_round", 1))
                st.correction = np.zeros_like(st.correction)
                self._qparams.pop(op, None)
                corrected = True
            self._params(op)
            if keep_float_reason(op) is not None:
                op.attributes.pop("fix.weight", None)
                op.attributes.pop("fix.bias", None)
                continue
            op.attributes["fix.weight"] = fix_attr(self.bits.of_weights(op), self.fp_w[op])
            op.attributes["fix.bias"] = fix_attr(self.bits.of_bias(op), self.fp_b[op])
        for v in self.points:
            v.op.attributes["fix.out"] = fix_attr(self.bits.of_point(v), self.point_fix_pos(v))
        self.func.attributes["fix.inputs"] = ArrayAttr([fix_attr(self.input_bits[i], self.input_fix_pos(i))
                                                        for i in range(len(self.args))])
        m = self.module.attributes
        prev = m.get("fix.bias_corrected")
        m["fix.bias_corrected"] = BoolAttr(bool(corrected or (prev is not None and prev.value)))
        m["fix.calib_batches"] = IntegerAttr(self.batches)
        m["fix.calib_scope"] = IntegerAttr(self.scope)


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
    """Calibration images of the network input's shape, from the one input loader
    (`fixflow.passes.data.load_inputs`): a named data set (`fixflow.datasets` entry points, e.g.
    "digits"), a `.npy`, a `.npz` (`x`/`inputs`/`images` or its first array) or a folder of images."""
    from ..data import DataError, load_inputs
    try:
        return load_inputs(data, input_shape, what="calibrate{data=...}").x
    except DataError as e:
        raise CalibrationError(e.message) from None


@register_pass
class Calibrate(Pass):
    NAME = "calibrate"
    SUMMARY = "Choose fix positions on calibration data (+ bias correction) and annotate the graph (fix.*)"

    @attrs.define
    class Options:
        data: str = attrs.field(default="digits", metadata={"help": "a named data set ('digits'), a .npy or .npz "
                                                                    "of inputs, or a folder of images"})
        batches: int = attrs.field(default=10, validator=attrs.validators.ge(1),
                                   metadata={"help": "number of calibration batches"})
        batch_size: int = attrs.field(default=32, validator=attrs.validators.ge(1),
                                      metadata={"help": "images per batch"})
        method: str = attrs.field(default="diffs", validator=attrs.validators.in_(METHODS),
                                  metadata={"help": "diffs | maxmin"})
        scope: int = attrs.field(default=5, validator=attrs.validators.ge(1),
                                 metadata={"help": "fix positions tried by diffs"})
        bias_correction: bool = attrs.field(default=True, metadata={"help": "correct biases"})
        bit_width: int = attrs.field(default=8, validator=[attrs.validators.ge(BIT_WIDTH_MIN),
                                                           attrs.validators.le(BIT_WIDTH_MAX)],
                                     metadata={"help": f"bit width ({BIT_WIDTH_MIN} to {BIT_WIDTH_MAX})"})

    def run(self, module: Operation) -> None:
        o = self.options
        if o.batches < 1 or o.batch_size < 1:
            raise CalibrationError("calibrate: batches and batch_size must be >= 1", module.location)
        func = find_function(module)
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
