"""Op definitions of the `fix` dialect: fixed-point, NHWC, XIR-like ops.

Tensors are `TensorType(shape, FixedPointType(bit_width, fix_pos))`; a rank-4 feature map is
NHWC. Inside the IR spatial attributes are (h, w) pairs and paddings (top, bottom, left, right);
the XIR (w, h) / {left, right, top, bottom} order is produced at export time.

Every op has two semantics that agree bit for bit (tested):
- `evaluate(inputs)`: the integer kernel of `kernels.py` (int arrays in, int arrays out);
  `fix.data` / `fix.fix` take floats and `fix.float` returns floats.
- `simulate(inputs)`: the float fake-quant twin, on dequantized values:
  ``simulate(dequantize(x)) == dequantize(evaluate(x))``.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ...ir.attributes import DenseElementsAttr, DenseResourceElementsAttr
from ...ir.opdef import (BOOL, ELEMENTS, I64_ARRAY, INT, ConstantLike, Dialect, Enum, Op, Pure, attr, operand,
                         optional_operand, result, variadic_operand)
from ...ir.types import FloatType, TensorType, Type, f32
from .._geometry import conv_out_size
from . import kernels as K
from .types import FixedPointType
from .numerics import (HSIGMOID_MIN_FP_IN, HSIGMOID_MIN_FP_OUT, HSWISH_MAX_FP_OUT_OVER_IN, HSWISH_MIN_FP_IN,
                       ROUND_MODES, NumericsError, conv_shifts, dequantize, fake_quantize, legalize_hsigmoid,
                       legalize_hswish, quantize)

fix = Dialect("fix", "Fixed-point ops with power-of-two scales (NHWC, XIR *-fix semantics).")
fix.type(FixedPointType)

CONV_NONLINEAR = ("NONE", "RELU", "LEAKYRELU", "RELU6")
ELEW_NONLINEAR = ("NONE", "RELU")
LAYOUTS = ("NHWC", "NCHW")
#: NCHW -> NHWC and back
TO_NHWC = (0, 2, 3, 1)
TO_NCHW = (0, 3, 1, 2)


# ---- helpers ----------------------------------------------------------------------------------
def fixed_type(t: Type) -> FixedPointType | None:
    """The fixed-point element type of a tensor type (None when it is not fixed-point)."""
    if isinstance(t, TensorType) and isinstance(t.element_type, FixedPointType):
        return t.element_type
    return None


def fix_tensor(shape: Sequence[int], bit_width: int, fix_pos: int) -> TensorType:
    """`tensor<shape x !fix.xint<bit_width, fix_pos>>`."""
    return TensorType(shape, FixedPointType(bit_width, fix_pos))


def _layout_shape(shape: tuple[int, ...], perm: Sequence[int]) -> tuple[int, ...]:
    return tuple(shape[p] for p in perm)


def _to_layout(x: np.ndarray, layout: str, perm: Sequence[int]) -> np.ndarray:
    return np.transpose(x, perm) if layout == "NCHW" and np.ndim(x) == 4 else x


class FixOp(Op):
    """Base of fix ops: operand/result format accessors and the verify/simulate protocol."""

    TRAITS = frozenset({Pure})
    #: operand indices that must be fixed-point (None = all)
    FIXED_OPERANDS: tuple[int, ...] | None = None
    FIXED_RESULT = True

    # -- formats
    def fmt(self, i: int) -> FixedPointType:
        """Fixed-point format of operand `i`."""
        return self._operands[i].type.element_type

    @property
    def out_fmt(self) -> FixedPointType:
        return self.results[0].type.element_type

    @property
    def fp_out(self) -> int:
        return self.out_fmt.fix_pos

    @property
    def bw(self) -> int:
        return self.out_fmt.bit_width

    # -- hooks
    def infer_shape(self) -> tuple[int, ...]:
        """Result shape from the operand shapes and attributes."""
        return self._operands[0].type.shape

    def check(self) -> None:
        """Op-specific checks; raise `self.error(...)`."""

    def infer_types(self) -> list[Type]:
        """Shape-preserving-format ops infer their result (others need result_types=)."""
        et = self._operands[0].type.element_type
        return [TensorType(self.infer_shape(), et)]

    def verify_(self) -> None:
        idx = range(len(self._operands)) if self.FIXED_OPERANDS is None else self.FIXED_OPERANDS
        for i in idx:
            if fixed_type(self._operands[i].type) is None:
                raise self.error(f"operand #{i} must be a fixed-point tensor, got {self._operands[i].type}")
        t = self.results[0].type
        if self.FIXED_RESULT and fixed_type(t) is None:
            raise self.error(f"result must be a fixed-point tensor, got {t}")
        self.check()
        try:
            shape = tuple(self.infer_shape())
        except (ValueError, NumericsError) as e:
            raise self.error(str(e)) from None
        if shape != t.shape:
            raise self.error(f"result shape {t.shape} does not match the inferred shape {shape}")

    def evaluate(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return [self.compute(inputs)]

    def simulate(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Float fake-quant twin of `evaluate` on dequantized inputs."""
        return [np.asarray(self.compute_sim(inputs), dtype=np.float32)]

    # -- the DPU
    def dpu_violation(self, target: Any = None) -> str | None:
        """The constraint of `target` (a `fixflow.target.Target`, default B4096) this op breaks, as a
        sentence, or None when the DPU can run it. Ops that break one stay on the CPU."""
        from ...target import legality  # on demand: the target tables are not needed to parse or run
        roles = [(v, self.operand_role(i)) for i, v in enumerate(self._operands)]
        for v, role in roles + [(r, "output") for r in self.results]:
            ft = fixed_type(v.type)
            bad = legality.bit_width_violation(ft.bit_width, role) if ft is not None else None
            if bad is not None:
                return bad
        return self.engine_violation(target)

    def in_widths(self) -> list[int]:
        """The bit width of each fixed-point operand (the float simulation snaps each input to its own grid)."""
        return [self.fmt(i).bit_width for i in range(len(self._operands))]

    def operand_role(self, i: int) -> str:
        """What operand `i` is to the DPU: "input" (a feature map) by default; conv-like ops' weights and bias."""
        return "input"

    def engine_violation(self, target: Any = None) -> str | None:
        """The engine limit this op breaks (rules of `fixflow.target.legality`); None by default."""
        return None

    def compute(self, inputs: list[np.ndarray]) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def compute_sim(self, inputs: list[np.ndarray]) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError


def dpu_violation(op: Any, target: Any = None) -> str | None:
    """The DPU constraint `op` breaks on `target` (default B4096), as a sentence, or None."""
    if not isinstance(op, FixOp):
        return f"'{op.name}' has no DPU implementation"
    return op.dpu_violation(target)


# ---- interface ops ------------------------------------------------------------------------------
@fix.op
class DataOp(FixOp):
    """A network input: float -> fixed point (``clamp(round_mode(x * 2^fp))``, std_round by default).

    `layout = "NCHW"` means the float input is NCHW (as the float graph) and is transposed to NHWC.
    """

    OP_NAME = "fix.data"
    FIXED_OPERANDS = ()
    input = operand(TensorType)
    output = result(TensorType)
    round_mode = attr(Enum(*ROUND_MODES), default="std_round")
    layout = attr(Enum(*LAYOUTS), default="NHWC")

    def infer_shape(self) -> tuple[int, ...]:
        s = self.input.type.shape
        return _layout_shape(s, TO_NHWC) if self.layout == "NCHW" and len(s) == 4 else s

    def check(self) -> None:
        if not isinstance(self.input.type.element_type, FloatType):
            raise self.error(f"input must be a float tensor, got {self.input.type}")

    @staticmethod
    def _no_nan(x: np.ndarray) -> np.ndarray:
        if np.isnan(x).any():
            raise ValueError("the input holds NaN values, which have no fixed-point representation")
        return x

    def compute(self, inputs):
        x = _to_layout(self._no_nan(np.asarray(inputs[0])), self.layout, TO_NHWC)
        return quantize(x, self.bw, self.fp_out, self.round_mode)

    def compute_sim(self, inputs):
        x = _to_layout(self._no_nan(np.asarray(inputs[0])), self.layout, TO_NHWC)
        return fake_quantize(x, self.bw, self.fp_out, self.round_mode)

    def dpu_violation(self, target: Any = None) -> str | None:
        return None  # an interface op runs where its neighbours run


@fix.op
class FixFixOp(FixOp):
    """Quantize a float tensor (round_mode, default half_up) or requantize a fixed-point one
    (half_up, saturating) to the result's format. `layout = "NCHW"`: a float NCHW input."""

    OP_NAME = "fix.fix"
    FIXED_OPERANDS = ()
    input = operand(TensorType)
    output = result(TensorType)
    round_mode = attr(Enum(*ROUND_MODES), default="half_up")
    layout = attr(Enum(*LAYOUTS), default="NHWC")

    def infer_shape(self) -> tuple[int, ...]:
        s = self.input.type.shape
        if fixed_type(self.input.type) is None and self.layout == "NCHW" and len(s) == 4:
            return _layout_shape(s, TO_NHWC)
        return s

    @property
    def requantizes(self) -> bool:
        return fixed_type(self.input.type) is not None

    def compute(self, inputs):
        if self.requantizes:
            return K.requantize(inputs[0], self.fmt(0).fix_pos, self.fp_out, self.bw)
        x = _to_layout(np.asarray(inputs[0]), self.layout, TO_NHWC)
        return quantize(x, self.bw, self.fp_out, self.round_mode)

    def compute_sim(self, inputs):
        mode = "half_up" if self.requantizes else self.round_mode
        x = inputs[0] if self.requantizes else _to_layout(np.asarray(inputs[0]), self.layout, TO_NHWC)
        return fake_quantize(x, self.bw, self.fp_out, mode)

    def dpu_violation(self, target: Any = None) -> str | None:
        return None  # an interface op runs where its neighbours run


@fix.op
class FloatOp(FixOp):
    """Dequantize (``q * 2^-fp``, float32); `layout = "NCHW"` transposes a rank-4 result to NCHW."""

    OP_NAME = "fix.float"
    FIXED_RESULT = False
    input = operand(TensorType)
    output = result(TensorType)
    layout = attr(Enum(*LAYOUTS), default="NHWC")

    def infer_shape(self) -> tuple[int, ...]:
        s = self.input.type.shape
        return _layout_shape(s, TO_NCHW) if self.layout == "NCHW" and len(s) == 4 else s

    def infer_types(self) -> list[Type]:
        return [TensorType(self.infer_shape(), f32)]

    def check(self) -> None:
        if self.output.type.element_type != f32:
            raise self.error(f"result must be a f32 tensor, got {self.output.type}")

    def compute(self, inputs):
        return _to_layout(dequantize(inputs[0], self.fmt(0).fix_pos), self.layout, TO_NCHW)

    def compute_sim(self, inputs):
        return _to_layout(np.asarray(inputs[0], dtype=np.float32), self.layout, TO_NCHW)

    def dpu_violation(self, target: Any = None) -> str | None:
        return None  # an interface op runs where its neighbours run


@fix.op
class ConstOp(FixOp):
    """Fixed-point constant (weights, bias): integer values with the result's format."""

    OP_NAME = "fix.const"
    TRAITS = frozenset({Pure, ConstantLike})
    value = attr(ELEMENTS, doc="integer values; element type !fix.xint<bw, fp>")
    output = result(TensorType)

    @classmethod
    def from_ints(cls, q: np.ndarray, bit_width: int, fix_pos: int, key: str | None = None,
                  location=None) -> "ConstOp":
        """A constant of integer codes `q` (a dense_resource when `key` is given)."""
        et = FixedPointType(bit_width, fix_pos)
        q = np.asarray(q)
        lo, hi = et.qmin, et.qmax
        if q.size and (int(q.min()) < lo or int(q.max()) > hi):
            raise ValueError(f"constant values outside [{lo}, {hi}]")
        if key is not None:
            value = DenseResourceElementsAttr.from_array(key, q, et)
        else:
            value = DenseElementsAttr(TensorType(q.shape, et), q)
        return cls.build(value=value, location=location)

    def infer_types(self) -> list[Type]:
        return [self.attributes["value"].type]

    def infer_shape(self) -> tuple[int, ...]:
        return self.attributes["value"].type.shape

    def check(self) -> None:
        v = self.attributes["value"]
        if v.type is not self.results[0].type:
            raise self.error(f"value type {v.type} does not match the result type {self.results[0].type}")
        if isinstance(v, DenseResourceElementsAttr) and v.blob is None:
            raise self.error(f"dense_resource<{v.key}> has no data")

    @property
    def ints(self) -> np.ndarray:
        return self.attributes["value"].array

    def compute(self, inputs):
        return self.ints

    def compute_sim(self, inputs):
        return dequantize(self.ints, self.fp_out)

    def dpu_violation(self, target: Any = None) -> str | None:
        return None  # an interface op runs where its neighbours run


# ---- conv-like ----------------------------------------------------------------------------------
class _ConvLike(FixOp):
    input = operand(TensorType)
    weights = operand(TensorType)
    bias = optional_operand(TensorType)
    output = result(TensorType)
    nonlinear = attr(Enum(*CONV_NONLINEAR), default="NONE")

    def fps(self) -> dict[str, Any]:
        return {"fp_in": self.fmt(0).fix_pos, "fp_w": self.fmt(1).fix_pos,
                "fp_b": self.fmt(2).fix_pos if self.bias is not None else None,
                "fp_out": self.fp_out, "act": self.nonlinear, "bit_width": self.bw}

    def operand_role(self, i: int) -> str:
        return ("input", "weights", "bias")[i]

    def in_bits(self) -> dict[str, int | None]:
        """The input's, weights' and bias's own bit widths (for the float simulation)."""
        return {"bw_in": self.fmt(0).bit_width, "bw_w": self.fmt(1).bit_width,
                "bw_b": self.fmt(2).bit_width if self.bias is not None else None}

    def shifts(self) -> tuple[int, int | None]:
        """(shift_cut, shift_bias) as XIR defines them."""
        f = self.fps()
        return conv_shifts(f["fp_in"], f["fp_w"], f["fp_out"], f["fp_b"], check=False)

    def check(self) -> None:
        f = self.fps()
        try:
            conv_shifts(f["fp_in"], f["fp_w"], f["fp_out"], f["fp_b"], check=True)
        except NumericsError as e:
            raise self.error(f"{e} (run legalize-fix)") from None
        if self.bias is not None and self.bias.type.rank != 1:
            raise self.error(f"bias must be rank 1, got {self.bias.type}")

    def _args(self, inputs):
        return inputs[0], inputs[1], (inputs[2] if self.bias is not None else None)


class _Conv2dBase(_ConvLike):
    kernel = attr(I64_ARRAY, doc="(kh, kw)")
    stride = attr(I64_ARRAY, default=(1, 1), doc="(h, w)")
    pad = attr(I64_ARRAY, default=(0, 0, 0, 0), doc="(top, bottom, left, right)")
    dilation = attr(I64_ARRAY, default=(1, 1), doc="(h, w)")

    def geometry(self) -> dict[str, Any]:
        return {"stride": tuple(self.stride), "padding": tuple(self.pad), "dilation": tuple(self.dilation)}

    def _kernel_of_weights(self) -> tuple[int, int]:
        s = self.weights.type.shape
        return (s[1], s[2])

    def check(self) -> None:
        super().check()
        for name, n in (("kernel", 2), ("stride", 2), ("pad", 4), ("dilation", 2)):
            if len(getattr(self, name)) != n:
                raise self.error(f"{name} must have {n} values, got {tuple(getattr(self, name))}")
        if min(self.stride) < 1 or min(self.dilation) < 1 or min(self.pad) < 0:
            raise self.error(f"bad stride {tuple(self.stride)}, dilation {tuple(self.dilation)} or pad "
                             f"{tuple(self.pad)}")
        if self.input.type.rank != 4 or self.weights.type.rank != 4:
            raise self.error(f"expected NHWC input and rank-4 weights, got {self.input.type} and {self.weights.type}")
        if tuple(self.kernel) != self._kernel_of_weights():
            raise self.error(f"kernel {tuple(self.kernel)} does not match the weights {self.weights.type.shape}")

    def infer_shape(self) -> tuple[int, ...]:
        n, h, w, _ = self.input.type.shape
        (kh, kw), (sh, sw), (pt, pb, pl, pr), (dh, dw) = self.kernel, self.stride, self.pad, self.dilation
        return (n, conv_out_size(h, kh, sh, pt, pb, dh), conv_out_size(w, kw, sw, pl, pr, dw), self.out_channels())

    def out_channels(self) -> int:
        return self.weights.type.shape[0]


@fix.op
class Conv2dOp(_Conv2dBase):
    """conv2d-fix: input NHWC, weights [OC, KH, KW, IC], bias [OC]; fused `nonlinear`."""

    OP_NAME = "fix.conv2d"
    group = attr(INT, default=1)

    def check(self) -> None:
        super().check()
        if self.group != 1:
            raise self.error("fix.conv2d supports group = 1 only (use fix.depthwise_conv2d)")
        if self.weights.type.shape[3] != self.input.type.shape[3]:
            raise self.error(f"weights {self.weights.type.shape} expect {self.weights.type.shape[3]} input "
                             f"channels, the input has {self.input.type.shape[3]}")

    def compute(self, inputs):
        return K.conv2d_fix(*self._args(inputs), **self.fps(), **self.geometry())

    def compute_sim(self, inputs):
        return K.conv2d_fix_sim(*self._args(inputs), **self.fps(), **self.geometry(), **self.in_bits())

    def engine_violation(self, target: Any = None) -> str | None:
        from ...target import legality
        return legality.conv_violation(self.kernel, self.stride, self.pad, self.input.type.shape[3], target)


@fix.op
class DepthwiseConv2dOp(_Conv2dBase):
    """depthwise-conv2d-fix: weights [1, KH, KW, C] (channel multiplier 1)."""

    OP_NAME = "fix.depthwise_conv2d"

    def check(self) -> None:
        super().check()
        s = self.weights.type.shape
        if s[0] != 1 or s[3] != self.input.type.shape[3]:
            raise self.error(f"depthwise weights must be [1, KH, KW, {self.input.type.shape[3]}], got {s}")

    def out_channels(self) -> int:
        return self.weights.type.shape[3]

    def compute(self, inputs):
        return K.depthwise_conv2d_fix(*self._args(inputs), **self.fps(), **self.geometry())

    def compute_sim(self, inputs):
        return K.depthwise_conv2d_fix_sim(*self._args(inputs), **self.fps(), **self.geometry(), **self.in_bits())

    def engine_violation(self, target: Any = None) -> str | None:
        from ...target import legality
        return legality.depthwise_violation(self.kernel, self.stride, self.pad, target)


@fix.op
class ConvTranspose2dOp(_Conv2dBase):
    """transposed-conv2d-fix with PyTorch geometry: weights [OC, KH, KW, IC] (= torch W[ic, oc, kh, kw]),
    `pad` the torch padding, `output_padding` extra rows/columns at the bottom/right."""

    OP_NAME = "fix.transposed_conv2d"
    output_padding = attr(I64_ARRAY, default=(0, 0))

    def geometry(self) -> dict[str, Any]:
        return {**super().geometry(), "output_padding": tuple(self.output_padding)}

    def check(self) -> None:
        super().check()
        if self.weights.type.shape[3] != self.input.type.shape[3]:
            raise self.error("transposed conv weights do not match the input channels")

    def infer_shape(self) -> tuple[int, ...]:
        n, h, w, _ = self.input.type.shape
        (kh, kw), (sh, sw), (pt, pb, pl, pr), (dh, dw) = self.kernel, self.stride, self.pad, self.dilation
        oph, opw = self.output_padding
        return (n, (h - 1) * sh - pt - pb + dh * (kh - 1) + 1 + oph,
                (w - 1) * sw - pl - pr + dw * (kw - 1) + 1 + opw, self.weights.type.shape[0])

    def compute(self, inputs):
        return K.transposed_conv2d_fix(*self._args(inputs), **self.fps(), **self.geometry())

    def compute_sim(self, inputs):
        return K.transposed_conv2d_fix_sim(*self._args(inputs), **self.fps(), **self.geometry(), **self.in_bits())

    def engine_violation(self, target: Any = None) -> str | None:
        from ...target import legality
        return legality.conv_violation(self.kernel, self.stride, self.pad, self.input.type.shape[3], target)


@fix.op
class DenseOp(_ConvLike):
    """Inner product: input [..., IN], weights [OUT, IN], bias [OUT]; fused `nonlinear`."""

    OP_NAME = "fix.dense"

    def check(self) -> None:
        super().check()
        w = self.weights.type.shape
        if len(w) != 2 or w[1] != self.input.type.shape[-1]:
            raise self.error(f"weights {w} do not match the input {self.input.type.shape} ([OUT, IN] expected)")

    def infer_shape(self) -> tuple[int, ...]:
        return self.input.type.shape[:-1] + (self.weights.type.shape[0],)

    def compute(self, inputs):
        return K.dense_fix(*self._args(inputs), **self.fps())

    def compute_sim(self, inputs):
        return K.dense_fix_sim(*self._args(inputs), **self.fps(), **self.in_bits())

    def engine_violation(self, target: Any = None) -> str | None:
        from ...target import legality
        return legality.dense_violation(self.input.type.shape[-1], target)


# ---- pooling / element-wise ---------------------------------------------------------------------
@fix.op
class PoolOp(FixOp):
    """pool-fix: MAX (exact) or AVG (the DPU multiplier, padding counted); `global` = whole H x W."""

    OP_NAME = "fix.pool"
    input = operand(TensorType)
    output = result(TensorType)
    type = attr(Enum("MAX", "AVG"), default="MAX")
    kernel = attr(I64_ARRAY, doc="(kh, kw)")
    stride = attr(I64_ARRAY, default=(1, 1))
    pad = attr(I64_ARRAY, default=(0, 0, 0, 0), doc="(top, bottom, left, right)")
    is_global = attr(BOOL, default=False, doc="global pooling (kernel = input H x W)")

    def check(self) -> None:
        if self.input.type.rank != 4:
            raise self.error(f"expected an NHWC input, got {self.input.type}")
        if len(self.kernel) != 2 or len(self.stride) != 2 or len(self.pad) != 4:
            raise self.error("kernel and stride need 2 values, pad 4")
        if self.is_global and tuple(self.kernel) != tuple(self.input.type.shape[1:3]):
            raise self.error(f"global pool kernel {tuple(self.kernel)} must equal the input size "
                             f"{self.input.type.shape[1:3]}")
        if min(self.kernel) < 1 or min(self.stride) < 1 or min(self.pad) < 0:
            raise self.error("kernel and stride must be positive, pad non-negative")

    def infer_shape(self) -> tuple[int, ...]:
        n, h, w, c = self.input.type.shape
        (kh, kw), (sh, sw), (pt, pb, pl, pr) = self.kernel, self.stride, self.pad
        return (n, conv_out_size(h, kh, sh, pt, pb), conv_out_size(w, kw, sw, pl, pr), c)

    def _kw(self) -> dict[str, Any]:
        return {"kernel": tuple(self.kernel), "stride": tuple(self.stride), "padding": tuple(self.pad),
                "pool_type": self.type, "fp_in": self.fmt(0).fix_pos, "fp_out": self.fp_out, "bit_width": self.bw}

    def compute(self, inputs):
        return K.pool_fix(inputs[0], **self._kw())

    def compute_sim(self, inputs):
        return K.pool_fix_sim(inputs[0], **self._kw(), bw_in=self.fmt(0).bit_width)

    def engine_violation(self, target: Any = None) -> str | None:
        from ...target import legality
        return legality.pool_violation(self.kernel, self.stride, self.pad, target)


@fix.op
class EltwiseOp(FixOp):
    """eltwise-fix: ADD (1-4 inputs) or MUL (2 inputs) with numpy broadcasting; `nonlinear` NONE/RELU."""

    OP_NAME = "fix.eltwise"
    inputs = variadic_operand(TensorType)
    output = result(TensorType)
    type = attr(Enum("ADD", "MUL"), default="ADD")
    nonlinear = attr(Enum(*ELEW_NONLINEAR), default="NONE")

    def check(self) -> None:
        n = len(self._operands)
        if self.type == "MUL" and n != 2:
            raise self.error(f"eltwise MUL takes 2 inputs, got {n}")
        if not 1 <= n <= 4:
            raise self.error(f"eltwise ADD takes 1 to 4 inputs, got {n}")
        try:
            K.elew_shifts(self._fps(), self.fp_out, self.type)
        except NumericsError as e:
            raise self.error(f"{e} (fix positions of the inputs and output are too far apart)") from None

    def _fps(self) -> list[int]:
        return [self.fmt(i).fix_pos for i in range(len(self._operands))]

    def infer_shape(self) -> tuple[int, ...]:
        return tuple(np.broadcast_shapes(*(v.type.shape for v in self._operands)))

    def _kw(self):
        return {"fps_in": self._fps(), "fp_out": self.fp_out, "op": self.type, "act": self.nonlinear,
                "bit_width": self.bw}

    def compute(self, inputs):
        return K.eltwise_fix(list(inputs), **self._kw())

    def compute_sim(self, inputs):
        return K.eltwise_fix_sim(list(inputs), **self._kw(), bws_in=self.in_widths())


@fix.op
class ConcatOp(FixOp):
    """concat-fix along `axis` (NHWC axis for feature maps); inputs are requantized to the output."""

    OP_NAME = "fix.concat"
    inputs = variadic_operand(TensorType)
    output = result(TensorType)
    axis = attr(INT, default=3)

    def _axis(self) -> int:
        r = self._operands[0].type.rank
        a = self.axis
        if not -r <= a < r:
            raise self.error(f"axis {a} out of range for rank {r}")
        return a % r

    def infer_shape(self) -> tuple[int, ...]:
        a = self._axis()
        shapes = [v.type.shape for v in self._operands]
        base = list(shapes[0])
        for s in shapes[1:]:
            if len(s) != len(base) or any(x != y for i, (x, y) in enumerate(zip(s, base)) if i != a):
                raise ValueError(f"concat inputs {shapes} differ outside axis {a}")
        base[a] = sum(s[a] for s in shapes)
        return tuple(base)

    def _kw(self):
        return {"fps_in": [self.fmt(i).fix_pos for i in range(len(self._operands))], "fp_out": self.fp_out,
                "axis": self._axis(), "bit_width": self.bw}

    def compute(self, inputs):
        return K.concat_fix(list(inputs), **self._kw())

    def compute_sim(self, inputs):
        return K.concat_fix_sim(list(inputs), **self._kw(), bws_in=self.in_widths())


# ---- data movement (the output keeps the input's format) ----------------------------------------
class _SameFormat(FixOp):
    def check(self) -> None:
        if self.out_fmt != self.fmt(0):
            raise self.error(f"result format {self.out_fmt} must equal the input format {self.fmt(0)}")


def resolve_shape(in_shape: Sequence[int], shape: Sequence[int]) -> tuple[int, ...]:
    """Reshape target: 0 copies the input's dimension, one -1 is inferred."""
    out = [int(in_shape[i]) if d == 0 and i < len(in_shape) else int(d) for i, d in enumerate(shape)]
    total = math.prod(in_shape)
    if out.count(-1) > 1:
        raise ValueError(f"reshape: more than one -1 in {tuple(shape)}")
    if -1 in out:
        rest = math.prod(d for d in out if d != -1)
        if rest == 0 or total % rest:
            raise ValueError(f"reshape: cannot infer -1 in {tuple(shape)} for input {tuple(in_shape)}")
        out[out.index(-1)] = total // rest
    if math.prod(out) != total:
        raise ValueError(f"reshape: {tuple(in_shape)} cannot become {tuple(out)}")
    return tuple(out)


@fix.op
class ReshapeOp(_SameFormat):
    """reshape-fix: row-major reshape of the stored tensor (0 copies a dimension, -1 is inferred)."""

    OP_NAME = "fix.reshape"
    input = operand(TensorType)
    output = result(TensorType)
    shape = attr(I64_ARRAY)

    def infer_shape(self) -> tuple[int, ...]:
        return resolve_shape(self.input.type.shape, self.shape)

    def compute(self, inputs):
        x = np.asarray(inputs[0])
        return K.reshape_fix(x, resolve_shape(x.shape, self.shape))

    def compute_sim(self, inputs):
        x = np.asarray(inputs[0])
        return K.reshape_fix_sim(x, resolve_shape(x.shape, self.shape), fp=self.fp_out, bit_width=self.bw)


@fix.op
class TransposeOp(_SameFormat):
    """transpose (XIR `transpose`, `order`): permute dimensions of a fixed-point tensor."""

    OP_NAME = "fix.transpose"
    input = operand(TensorType)
    output = result(TensorType)
    perm = attr(I64_ARRAY)

    def check(self) -> None:
        super().check()
        if sorted(self.perm) != list(range(self.input.type.rank)):
            raise self.error(f"perm {tuple(self.perm)} is not a permutation of the input's {self.input.type.rank} dims")

    def infer_shape(self) -> tuple[int, ...]:
        return _layout_shape(self.input.type.shape, self.perm)

    def compute(self, inputs):
        return np.transpose(inputs[0], self.perm)

    def compute_sim(self, inputs):
        return fake_quantize(np.transpose(inputs[0], self.perm), self.bw, self.fp_out, "half_up")

    def engine_violation(self, target: Any = None) -> str | None:
        return "a transpose of a feature map is a CPU op"


@fix.op
class StridedSliceOp(_SameFormat):
    """strided_slice-fix: ``x[begin[0]:end[0]:strides[0], ...]``, one entry per dimension of the stored
    tensor (NHWC for a feature map); bounds are normalized (0 <= begin <= end <= dim), strides >= 1."""

    OP_NAME = "fix.strided_slice"
    input = operand(TensorType)
    output = result(TensorType)
    begin = attr(I64_ARRAY)
    end = attr(I64_ARRAY)
    strides = attr(I64_ARRAY)

    def check(self) -> None:
        super().check()
        shape = self.input.type.shape
        if not len(self.begin) == len(self.end) == len(self.strides) == len(shape):
            raise self.error(f"begin, end and strides need one entry per dimension ({len(shape)}), got "
                             f"{len(self.begin)}, {len(self.end)} and {len(self.strides)}")
        for d, b, e, s in zip(shape, self.begin, self.end, self.strides):
            if not (0 <= b <= e <= d and s >= 1):
                raise self.error(f"slice [{b}:{e}:{s}] of a dimension of size {d}: need 0 <= begin <= end <= size "
                                 "and stride >= 1")

    def _index(self) -> tuple[slice, ...]:
        # a whole dimension is `:` so that a batch other than the traced one passes through whole
        return tuple(slice(None) if (b, e, s) == (0, d, 1) else slice(int(b), int(e), int(s))
                     for b, e, s, d in zip(self.begin, self.end, self.strides, self.input.type.shape))

    def infer_shape(self) -> tuple[int, ...]:
        return tuple(len(range(*sl.indices(d))) for sl, d in zip(self._index(), self.input.type.shape))

    def compute(self, inputs):
        return np.ascontiguousarray(np.asarray(inputs[0])[self._index()])

    def compute_sim(self, inputs):
        return fake_quantize(np.asarray(inputs[0])[self._index()], self.bw, self.fp_out, "half_up")

    def engine_violation(self, target: Any = None) -> str | None:
        return "fixflow's DPU compiler does not lower strided_slice-fix (a CPU op)"


@fix.op
class UpsampleOp(_SameFormat):
    """upsample-fix, nearest neighbour by integer factors `scale` = (sh, sw)."""

    OP_NAME = "fix.upsample"
    input = operand(TensorType)
    output = result(TensorType)
    scale = attr(I64_ARRAY, doc="(sh, sw) integer factors")
    mode = attr(Enum("NEAREST"), default="NEAREST")

    def check(self) -> None:
        super().check()
        if len(self.scale) != 2 or min(self.scale) < 1:
            raise self.error(f"scale must be two positive integers, got {tuple(self.scale)}")

    def infer_shape(self) -> tuple[int, ...]:
        n, h, w, c = self.input.type.shape
        return (n, h * self.scale[0], w * self.scale[1], c)

    def compute(self, inputs):
        return K.upsample_fix(inputs[0], tuple(self.scale), fp_in=self.fp_out, bit_width=self.bw)

    def compute_sim(self, inputs):
        return K.upsample_fix_sim(inputs[0], tuple(self.scale), fp_in=self.fp_out, bit_width=self.bw)


@fix.op
class PadOp(_SameFormat):
    """pad-fix on H and W of NHWC: `pad` (top, bottom, left, right); constant `value` is an integer code."""

    OP_NAME = "fix.pad"
    input = operand(TensorType)
    output = result(TensorType)
    pad = attr(I64_ARRAY, doc="(top, bottom, left, right)")
    mode = attr(Enum("constant", "reflect", "edge", "symmetric"), default="constant")
    value = attr(INT, default=0)

    def infer_shape(self) -> tuple[int, ...]:
        n, h, w, c = self.input.type.shape
        pt, pb, pl, pr = self.pad
        return (n, h + pt + pb, w + pl + pr, c)

    def check(self) -> None:
        super().check()
        if len(self.pad) != 4 or min(self.pad) < 0 or self.input.type.rank != 4:
            raise self.error("pad needs an NHWC input and 4 non-negative values (top, bottom, left, right)")
        f = self.out_fmt
        if not f.qmin <= self.value <= f.qmax:
            raise self.error(f"pad value {self.value} is outside [{f.qmin}, {f.qmax}]")

    def compute(self, inputs):
        return K.pad_fix(inputs[0], tuple(self.pad), self.value, self.mode)

    def compute_sim(self, inputs):
        return K.pad_fix_sim(inputs[0], tuple(self.pad), fp=self.fp_out, value=self.value, mode=self.mode,
                             bit_width=self.bw)


# ---- hard sigmoid / swish -------------------------------------------------------------------------
@fix.op
class HardSigmoidOp(FixOp):
    """hard-sigmoid-fix: ``relu6(x + 3) * 2731 / 2^14`` (input fp >= 0, output fp >= 7)."""

    OP_NAME = "fix.hard_sigmoid"
    input = operand(TensorType)
    output = result(TensorType)

    def check(self) -> None:
        if legalize_hsigmoid(self.fmt(0).fix_pos, self.fp_out)[2]:
            raise self.error(f"hard sigmoid needs input fix_pos >= {HSIGMOID_MIN_FP_IN} and output fix_pos >= "
                             f"{HSIGMOID_MIN_FP_OUT}, got {self.fmt(0).fix_pos} and {self.fp_out} (run legalize-fix)")

    def compute(self, inputs):
        return K.hard_sigmoid_fix(inputs[0], fp_in=self.fmt(0).fix_pos, fp_out=self.fp_out, bit_width=self.bw)

    def compute_sim(self, inputs):
        return K.hard_sigmoid_fix_sim(inputs[0], fp_in=self.fmt(0).fix_pos, fp_out=self.fp_out, bit_width=self.bw,
                                      bw_in=self.fmt(0).bit_width)


@fix.op
class HardSwishOp(FixOp):
    """hard-swish-fix: ``x * hsig(x)`` (input fp >= 0, output fp <= input fp + 7)."""

    OP_NAME = "fix.hard_swish"
    input = operand(TensorType)
    output = result(TensorType)

    def check(self) -> None:
        fi = self.fmt(0).fix_pos
        if legalize_hswish(fi, self.fp_out)[2]:
            raise self.error(f"hard swish needs input fix_pos >= {HSWISH_MIN_FP_IN} and output fix_pos <= input + "
                             f"{HSWISH_MAX_FP_OUT_OVER_IN}, got {fi} and {self.fp_out} (run legalize-fix)")

    def compute(self, inputs):
        return K.hard_swish_fix(inputs[0], fp_in=self.fmt(0).fix_pos, fp_out=self.fp_out, bit_width=self.bw)

    def compute_sim(self, inputs):
        return K.hard_swish_fix_sim(inputs[0], fp_in=self.fmt(0).fix_pos, fp_out=self.fp_out, bit_width=self.bw,
                                    bw_in=self.fmt(0).bit_width)


__all__ = ["fix", "FixOp", "DataOp", "FixFixOp", "FloatOp", "ConstOp", "Conv2dOp", "DepthwiseConv2dOp",
           "ConvTranspose2dOp", "DenseOp", "PoolOp", "EltwiseOp", "ConcatOp", "ReshapeOp", "TransposeOp",
           "StridedSliceOp", "UpsampleOp", "PadOp", "HardSigmoidOp", "HardSwishOp", "fixed_type", "fix_tensor", "resolve_shape",
           "CONV_NONLINEAR", "ELEW_NONLINEAR", "TO_NHWC", "TO_NCHW", "conv_out_size", "FixedPointType", "dpu_violation"]
