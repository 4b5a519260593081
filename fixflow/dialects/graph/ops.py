"""Op definitions of the float `graph` dialect (NCHW, float32, PyTorch semantics).

Each op declares its operands, attributes and traits; shape inference and verification go through
`shapes.py`, the numpy semantics (`evaluate`) through `kernels.py`. The op contract is
`docs/graph-dialect.md`: attribute names and defaults are fixed there.

`evaluate` works for any batch size N even though the IR types carry the traced batch: no
attribute depends on the batch (`graph.reshape` uses 0 = "copy the input's dimension").
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ...ir.attributes import Attribute, DenseElementsAttr, DenseResourceElementsAttr
from ...ir.core import Value
from ...ir.location import Location
from ...ir.opdef import (BOOL, ELEMENTS, F64_ARRAY, FLOAT, I64_ARRAY, INT, ConstantLike, Dialect, Enum, Op, Pure,
                         SameOperandsAndResultType, attr, operand, optional_operand, result, variadic_operand)
from ...ir.types import FloatType, TensorType, Type, f32
from . import kernels as K
from . import shapes as S
from .shapes import ShapeError

graph = Dialect("graph", "Float neural-network ops (NCHW, float32, PyTorch semantics).")

#: the largest tensor dimension (MLIR's int64 shapes)
_MAX_DIM = 2**63 - 1
#: constant folding creates `graph.constant`s only for results up to this many elements
FOLD_MAX_ELEMENTS = 4096


def _short(op_name: str) -> str:
    return op_name.split(".", 1)[1]


# ---- constants ------------------------------------------------------------------------------
@graph.op
class ConstantOp(Op):
    """A constant tensor: weights as `dense_resource<key>` (keyed by module path), small values as `dense<...>`."""

    OP_NAME = "graph.constant"
    TRAITS = frozenset({Pure, ConstantLike})
    value = attr(ELEMENTS, doc="DenseResourceElementsAttr (weights) or DenseElementsAttr (small constants)")
    output = result(TensorType)

    @classmethod
    def from_array(cls, array: np.ndarray, key: str | None = None, location: Location | None = None) -> "ConstantOp":
        """A float32 constant: a `dense_resource<key>` when `key` is given, else `dense<...>`."""
        arr = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
        value = DenseResourceElementsAttr.from_array(key, arr) if key is not None else DenseElementsAttr.from_array(arr)
        return cls.build(value=value, location=location)

    @property
    def value_attr(self) -> DenseElementsAttr | DenseResourceElementsAttr:
        return self.attributes["value"]

    def infer_types(self) -> list[Type]:
        return [self.attributes["value"].type]

    def verify_(self) -> None:
        v = self.attributes["value"]
        if v.type is not self.results[0].type:
            raise self.error(f"value type {v.type} does not match the result type {self.results[0].type}")
        if isinstance(v, DenseResourceElementsAttr) and v.blob is None:
            raise self.error(f"dense_resource<{v.key}> has no data (missing from the dialect_resources section)")

    def fold(self) -> list[Attribute | Value]:
        return [self.attributes["value"]]

    def evaluate(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return [self.attributes["value"].array]


# ---- the common base of computing ops ---------------------------------------------------------
class GraphOp(Op):
    """Base of graph ops with a shape function and a numpy kernel.

    Subclasses set `KERNEL` (the name in `kernels.KERNELS` / `shapes.SHAPE_FUNCTIONS`) and override
    `kernel_args()` (attributes as kernel keywords) and `check_attrs()` where needed.
    """

    TRAITS = frozenset({Pure})
    KERNEL: str = ""

    # -- hooks
    def kernel_args(self) -> dict[str, Any]:
        """The op's attributes as keyword arguments of its kernel and shape function."""
        return {}

    def check_attrs(self) -> None:
        """Attribute checks beyond their kinds (lengths, ranges); raise ShapeError."""

    def output_shape(self, shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
        return tuple(S.SHAPE_FUNCTIONS[self.KERNEL](*shapes, **self.kernel_args()))

    def compute(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        return K.KERNELS[self.KERNEL](*inputs, **self.kernel_args())

    # -- helpers
    def _attr_len(self, name: str, n: int, what: str) -> None:
        v = getattr(self, name)
        if v is not None and len(v) != n:
            raise ShapeError(f"{_short(self.name)}: {name} must have {n} values ({what}), got {tuple(v)}")

    def _message(self, e: Exception) -> str:
        """A kernel/shape message, prefixed with this op's short name."""
        msg = str(e)
        head, sep, rest = msg.partition(": ")
        short = _short(self.name)
        if sep and head != short and (head in S.SHAPE_FUNCTIONS or head in ("permute", "graph", "broadcast")):
            msg = f"{short}: {rest}"
        return msg

    def _operand_shapes(self) -> list[tuple[int, ...]]:
        shapes = []
        for i, v in enumerate(self._operands):
            t = v.type
            if not isinstance(t, TensorType):
                raise self.error(f"operand #{i} must be a tensor, got {t}")
            shapes.append(t.shape)
        return shapes

    def _element_type(self) -> Type:
        return self._operands[0].type.element_type if self._operands else f32

    def inferred_shape(self) -> tuple[int, ...]:
        """The result shape from the operand types (raises VerifyError with a clear message)."""
        shapes = self._operand_shapes()
        try:
            self.check_attrs()
            shape = self.output_shape(shapes)
        except (ShapeError, TypeError, OverflowError) as e:
            raise self.error(self._message(e)) from None
        if any(d > _MAX_DIM for d in shape):
            raise self.error(f"{_short(self.name)}: the result shape {shape} has a dimension beyond the 64-bit range")
        return shape

    # -- Op interface
    def infer_types(self) -> list[Type]:
        return [TensorType(self.inferred_shape(), self._element_type())]

    def verify_(self) -> None:
        for i, v in enumerate(self._operands):
            t = v.type
            if not isinstance(t, TensorType) or not isinstance(t.element_type, FloatType):
                raise self.error(f"operand #{i} must be a float tensor, got {t}")
        expected = TensorType(self.inferred_shape(), self._element_type())
        got = self.results[0].type
        if got is not expected:
            raise self.error(f"result type {got} does not match the inferred type {expected}")

    def evaluate(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Numpy reference semantics (any batch size); raises ShapeError on bad inputs."""
        try:
            self.check_attrs()
            return [self.compute(inputs)]
        except ShapeError as e:
            raise ShapeError(self._message(e)) from None

    def fold(self) -> list[Attribute | Value] | None:
        """Constant folding: an op whose operands are all `graph.constant`s (small result) folds to a constant."""
        if not self._operands:
            return None
        t = self.results[0].type
        if not isinstance(t, TensorType) or t.num_elements > FOLD_MAX_ELEMENTS:
            return None
        arrays = []
        for v in self._operands:
            owner = getattr(v, "op", None)
            if not isinstance(owner, ConstantOp):
                return None
            arrays.append(owner.attributes["value"].array)
        try:
            out = self.evaluate(arrays)[0]
        except ShapeError:
            return None  # the verifier reports the problem
        if out.shape != t.shape:
            return None
        return [DenseElementsAttr(t, out)]

    @classmethod
    def canonicalization_patterns(cls) -> list:
        from .canonicalize import patterns_for
        return patterns_for(cls)


# ---- convolutions and matrix products --------------------------------------------------------
class _ConvBase(GraphOp):
    input = operand(TensorType)
    weight = operand(TensorType)
    bias = optional_operand(TensorType)
    output = result(TensorType)
    stride = attr(I64_ARRAY, default=(1, 1), doc="(h, w)")
    padding = attr(I64_ARRAY, default=(0, 0, 0, 0), doc="(top, bottom, left, right)")

    def check_attrs(self) -> None:
        self._attr_len("stride", 2, "h, w")
        self._attr_len("padding", 4, "top, bottom, left, right")
        self._attr_len("dilation", 2, "h, w")


@graph.op
class Conv2dOp(_ConvBase):
    """2-D cross-correlation (`F.conv2d`): input (N, C, H, W), weight (O, C/groups, KH, KW), bias (O,)."""

    OP_NAME = "graph.conv2d"
    KERNEL = "conv2d"
    dilation = attr(I64_ARRAY, default=(1, 1))
    groups = attr(INT, default=1)

    def kernel_args(self) -> dict[str, Any]:
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation, "groups": self.groups}


@graph.op
class ConvTranspose2dOp(_ConvBase):
    """Transposed convolution (`F.conv_transpose2d`): weight (C, O/groups, KH, KW)."""

    OP_NAME = "graph.conv_transpose2d"
    KERNEL = "conv_transpose2d"
    output_padding = attr(I64_ARRAY, default=(0, 0))
    dilation = attr(I64_ARRAY, default=(1, 1))
    groups = attr(INT, default=1)

    def check_attrs(self) -> None:
        super().check_attrs()
        self._attr_len("output_padding", 2, "h, w")

    def kernel_args(self) -> dict[str, Any]:
        return {"stride": self.stride, "padding": self.padding, "output_padding": self.output_padding,
                "dilation": self.dilation, "groups": self.groups}


@graph.op
class LinearOp(GraphOp):
    """`F.linear`: input (..., in) times weight (out, in) transposed, plus bias (out,)."""

    OP_NAME = "graph.linear"
    KERNEL = "linear"
    input = operand(TensorType)
    weight = operand(TensorType)
    bias = optional_operand(TensorType)
    output = result(TensorType)


@graph.op
class MatmulOp(GraphOp):
    """`torch.matmul` (batched, broadcasting)."""

    OP_NAME = "graph.matmul"
    KERNEL = "matmul"
    lhs = operand(TensorType)
    rhs = operand(TensorType)
    output = result(TensorType)


@graph.op
class BatchNormOp(GraphOp):
    """Inference batch norm over axis 1: (x - mean) / sqrt(var + eps) * gamma + beta."""

    OP_NAME = "graph.batch_norm"
    KERNEL = "batch_norm"
    input = operand(TensorType)
    mean = operand(TensorType)
    var = operand(TensorType)
    gamma = operand(TensorType)
    beta = operand(TensorType)
    output = result(TensorType)
    eps = attr(FLOAT, default=1e-5)

    def kernel_args(self) -> dict[str, Any]:
        return {"eps": self.eps}

    def output_shape(self, shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
        return tuple(S.batch_norm_shape(*shapes))

    def check_attrs(self) -> None:
        if not self.eps >= 0:
            raise ShapeError(f"batch_norm: eps must be non-negative, got {self.eps}")


# ---- activations ---------------------------------------------------------------------------
class _UnaryOp(GraphOp):
    TRAITS = frozenset({Pure, SameOperandsAndResultType})
    input = operand(TensorType)
    output = result(TensorType)


@graph.op
class ReluOp(_UnaryOp):
    OP_NAME = "graph.relu"
    KERNEL = "relu"


@graph.op
class Relu6Op(_UnaryOp):
    OP_NAME = "graph.relu6"
    KERNEL = "relu6"


@graph.op
class SigmoidOp(_UnaryOp):
    OP_NAME = "graph.sigmoid"
    KERNEL = "sigmoid"


@graph.op
class TanhOp(_UnaryOp):
    OP_NAME = "graph.tanh"
    KERNEL = "tanh"


@graph.op
class SiluOp(_UnaryOp):
    OP_NAME = "graph.silu"
    KERNEL = "silu"


@graph.op
class HardSigmoidOp(_UnaryOp):
    OP_NAME = "graph.hardsigmoid"
    KERNEL = "hardsigmoid"


@graph.op
class HardSwishOp(_UnaryOp):
    OP_NAME = "graph.hardswish"
    KERNEL = "hardswish"


@graph.op
class LeakyReluOp(_UnaryOp):
    """x if x > 0 else alpha * x."""

    OP_NAME = "graph.leaky_relu"
    KERNEL = "leaky_relu"
    alpha = attr(FLOAT, default=0.01)

    def kernel_args(self) -> dict[str, Any]:
        return {"negative_slope": self.alpha}


@graph.op
class PreluOp(GraphOp):
    """`F.prelu`: slope has one element or one per channel."""

    OP_NAME = "graph.prelu"
    KERNEL = "prelu"
    input = operand(TensorType)
    slope = operand(TensorType)
    output = result(TensorType)


@graph.op
class IdentityOp(_UnaryOp):
    """The input itself (removed by canonicalize and remove-dropout)."""

    OP_NAME = "graph.identity"
    KERNEL = "identity"

    def fold(self) -> list[Attribute | Value] | None:
        return [self.input] if self.input.type is self.output.type else None


@graph.op
class DropoutOp(_UnaryOp):
    """Dropout at inference: the identity (removed by canonicalize and remove-dropout)."""

    OP_NAME = "graph.dropout"
    KERNEL = "identity"
    p = attr(FLOAT, default=0.5)

    def check_attrs(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ShapeError(f"dropout: p must be in [0, 1], got {self.p}")

    def fold(self) -> list[Attribute | Value] | None:
        return [self.input] if self.input.type is self.output.type else None


# ---- pooling --------------------------------------------------------------------------------
@graph.op
class MaxPool2dOp(GraphOp):
    """`F.max_pool2d` with (top, bottom, left, right) padding."""

    OP_NAME = "graph.max_pool2d"
    KERNEL = "max_pool2d"
    input = operand(TensorType)
    output = result(TensorType)
    kernel = attr(I64_ARRAY, doc="(kh, kw)")
    stride = attr(I64_ARRAY, default=None, doc="(h, w); absent = kernel")
    padding = attr(I64_ARRAY, default=(0, 0, 0, 0))
    dilation = attr(I64_ARRAY, default=(1, 1))
    ceil_mode = attr(BOOL, default=False)

    def check_attrs(self) -> None:
        self._attr_len("kernel", 2, "kh, kw")
        self._attr_len("stride", 2, "h, w")
        self._attr_len("padding", 4, "top, bottom, left, right")
        self._attr_len("dilation", 2, "h, w")

    def kernel_args(self) -> dict[str, Any]:
        return {"kernel_size": self.kernel, "stride": self.stride, "padding": self.padding,
                "dilation": self.dilation, "ceil_mode": self.ceil_mode}


@graph.op
class AvgPool2dOp(GraphOp):
    """`F.avg_pool2d` with (top, bottom, left, right) padding."""

    OP_NAME = "graph.avg_pool2d"
    KERNEL = "avg_pool2d"
    input = operand(TensorType)
    output = result(TensorType)
    kernel = attr(I64_ARRAY, doc="(kh, kw)")
    stride = attr(I64_ARRAY, default=None, doc="(h, w); absent = kernel")
    padding = attr(I64_ARRAY, default=(0, 0, 0, 0))
    ceil_mode = attr(BOOL, default=False)
    count_include_pad = attr(BOOL, default=True)
    divisor_override = attr(INT, default=None)

    def check_attrs(self) -> None:
        self._attr_len("kernel", 2, "kh, kw")
        self._attr_len("stride", 2, "h, w")
        self._attr_len("padding", 4, "top, bottom, left, right")

    def kernel_args(self) -> dict[str, Any]:
        return {"kernel_size": self.kernel, "stride": self.stride, "padding": self.padding,
                "ceil_mode": self.ceil_mode, "count_include_pad": self.count_include_pad,
                "divisor_override": self.divisor_override}


@graph.op
class AdaptiveAvgPool2dOp(GraphOp):
    """`F.adaptive_avg_pool2d`."""

    OP_NAME = "graph.adaptive_avg_pool2d"
    KERNEL = "adaptive_avg_pool2d"
    input = operand(TensorType)
    output = result(TensorType)
    output_size = attr(I64_ARRAY, doc="(oh, ow)")

    def check_attrs(self) -> None:
        self._attr_len("output_size", 2, "oh, ow")

    def kernel_args(self) -> dict[str, Any]:
        return {"output_size": self.output_size}


# ---- elementwise binary ----------------------------------------------------------------------
class _BinaryOp(GraphOp):
    lhs = operand(TensorType)
    rhs = operand(TensorType)
    output = result(TensorType)


@graph.op
class AddOp(_BinaryOp):
    OP_NAME = "graph.add"
    KERNEL = "add"


@graph.op
class SubOp(_BinaryOp):
    OP_NAME = "graph.sub"
    KERNEL = "sub"


@graph.op
class MulOp(_BinaryOp):
    OP_NAME = "graph.mul"
    KERNEL = "mul"


# ---- data movement ----------------------------------------------------------------------------
@graph.op
class ConcatOp(GraphOp):
    """`torch.cat` along `axis`."""

    OP_NAME = "graph.concat"
    KERNEL = "concat"
    inputs = variadic_operand(TensorType)
    output = result(TensorType)
    axis = attr(INT, default=1)

    def output_shape(self, shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
        return tuple(S.concat_shape(shapes, self.axis))

    def compute(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        return K.concat(list(inputs), axis=self.axis)


def resolve_reshape(in_shape: Sequence[int], shape: Sequence[int]) -> tuple[int, ...]:
    """Replace each 0 of a reshape target by the input's dimension at that position (ONNX rule)."""
    out = []
    for i, d in enumerate(shape):
        if d == 0:
            if i >= len(in_shape):
                raise ShapeError(f"reshape: shape entry 0 at position {i} copies a dimension that the "
                                 f"rank-{len(in_shape)} input {tuple(in_shape)} does not have")
            d = in_shape[i]
        out.append(int(d))
    return tuple(out)


@graph.op
class ReshapeOp(GraphOp):
    """Row-major reshape; -1 is inferred, 0 copies the input's dimension (so any batch size runs)."""

    OP_NAME = "graph.reshape"
    KERNEL = "reshape"
    input = operand(TensorType)
    output = result(TensorType)
    shape = attr(I64_ARRAY)

    def output_shape(self, shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
        return tuple(S.reshape_shape(shapes[0], resolve_reshape(shapes[0], self.shape)))

    def compute(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        x = np.asarray(inputs[0])
        return K.reshape(x, resolve_reshape(x.shape, self.shape))

    def fold(self) -> list[Attribute | Value] | None:
        t = self.input.type
        if t is self.output.type and all(d in (0, -1) or (i > 0 and d == t.shape[i])
                                         for i, d in enumerate(self.shape)):
            return [self.input]  # a no-op at every batch size
        return super().fold()


@graph.op
class FlattenOp(GraphOp):
    """`torch.flatten(x, start_dim, end_dim)`."""

    OP_NAME = "graph.flatten"
    KERNEL = "flatten"
    input = operand(TensorType)
    output = result(TensorType)
    start_dim = attr(INT, default=1)
    end_dim = attr(INT, default=-1)

    def kernel_args(self) -> dict[str, Any]:
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}


@graph.op
class TransposeOp(GraphOp):
    """Permute dimensions (`x.permute(perm)`)."""

    OP_NAME = "graph.transpose"
    KERNEL = "permute"
    input = operand(TensorType)
    output = result(TensorType)
    perm = attr(I64_ARRAY)

    def kernel_args(self) -> dict[str, Any]:
        return {"perm": self.perm}

    def fold(self) -> list[Attribute | Value] | None:
        rank = len(self.perm)
        if [p % max(rank, 1) for p in self.perm] == list(range(rank)):
            return [self.input]
        return super().fold()


@graph.op
class PadOp(GraphOp):
    """`F.pad`: pads in F.pad order (last dim first: left, right, top, bottom, ...)."""

    OP_NAME = "graph.pad"
    KERNEL = "pad"
    input = operand(TensorType)
    output = result(TensorType)
    pads = attr(I64_ARRAY)
    mode = attr(Enum("constant", "reflect", "replicate"), default="constant")
    value = attr(FLOAT, default=0.0)

    def _pairs(self, ndim: int) -> list[tuple[int, int]]:
        return K.torch_pad_to_pairs(self.pads, ndim)

    def output_shape(self, shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
        x = shapes[0]
        return tuple(S.pad_shape(x, self._pairs(len(x)), self.mode, self.value))

    def compute(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        x = np.asarray(inputs[0])
        return K.pad(x, self._pairs(x.ndim), self.mode, self.value)


@graph.op
class UpsampleOp(GraphOp):
    """`F.interpolate` (nearest or bilinear) to `size`; with `scale_factor` the kernel uses the factor."""

    OP_NAME = "graph.upsample"
    KERNEL = "upsample"
    input = operand(TensorType)
    output = result(TensorType)
    mode = attr(Enum("nearest", "bilinear"), default="nearest")
    size = attr(I64_ARRAY, doc="(h, w) output size")
    align_corners = attr(BOOL, default=False)
    scale_factor = attr(F64_ARRAY, default=None)

    def check_attrs(self) -> None:
        self._attr_len("size", 2, "h, w")
        self._attr_len("scale_factor", 2, "h, w")
        if self.align_corners and self.mode == "nearest":
            raise ShapeError("upsample: align_corners is only valid for mode 'bilinear'")

    def _kw(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"mode": self.mode}
        if self.mode == "bilinear":
            kw["align_corners"] = self.align_corners
        if self.scale_factor is not None:
            kw["scale_factor"] = self.scale_factor
        else:
            kw["size"] = self.size
        return kw

    def output_shape(self, shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
        x = shapes[0]
        out = tuple(S.upsample_shape(x, **self._kw()))
        if tuple(out[2:]) != tuple(self.size):
            raise ShapeError(f"upsample: size {tuple(self.size)} does not match floor(input size "
                             f"{tuple(x[2:])} * scale_factor {tuple(self.scale_factor)}) = {tuple(out[2:])}")
        return out

    def compute(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        return K.upsample(inputs[0], **self._kw())


@graph.op
class SoftmaxOp(GraphOp):
    OP_NAME = "graph.softmax"
    KERNEL = "softmax"
    input = operand(TensorType)
    output = result(TensorType)
    axis = attr(INT, default=-1)

    def kernel_args(self) -> dict[str, Any]:
        return {"axis": self.axis}


@graph.op
class MeanOp(GraphOp):
    """`torch.mean(x, axes, keepdim)`."""

    OP_NAME = "graph.mean"
    KERNEL = "mean"
    input = operand(TensorType)
    output = result(TensorType)
    axes = attr(I64_ARRAY)
    keepdim = attr(BOOL, default=False)

    def kernel_args(self) -> dict[str, Any]:
        return {"axes": self.axes, "keepdim": self.keepdim}


class _ReduceOp(GraphOp):
    """A reduction over `axes` (torch semantics: negative axes count from the end)."""

    input = operand(TensorType)
    output = result(TensorType)
    axes = attr(I64_ARRAY)
    keepdim = attr(BOOL, default=False)

    def kernel_args(self) -> dict[str, Any]:
        return {"axes": self.axes, "keepdim": self.keepdim}


@graph.op
class SumOp(_ReduceOp):
    """`torch.sum(x, axes, keepdim)`."""

    OP_NAME = "graph.sum"
    KERNEL = "sum"


@graph.op
class AmaxOp(_ReduceOp):
    """`torch.amax(x, axes, keepdim)` (the values of `x.max(dim)`)."""

    OP_NAME = "graph.amax"
    KERNEL = "amax"


@graph.op
class AminOp(_ReduceOp):
    """`torch.amin(x, axes, keepdim)`."""

    OP_NAME = "graph.amin"
    KERNEL = "amin"


#: `ends` entry meaning "to the end of the dimension" (any larger value is clamped the same way)
SLICE_END = 2**63 - 1


@graph.op
class SliceOp(GraphOp):
    """Strided slice `x[..., start:end:step, ...]` on `axes` (Python index rules: negative starts/ends count
    from the end, out-of-range bounds are clamped; steps >= 1). Unlisted axes are kept whole."""

    OP_NAME = "graph.slice"
    KERNEL = "slice"
    input = operand(TensorType)
    output = result(TensorType)
    axes = attr(I64_ARRAY)
    starts = attr(I64_ARRAY)
    ends = attr(I64_ARRAY)
    steps = attr(I64_ARRAY, default=None, doc="absent = all 1")

    def kernel_args(self) -> dict[str, Any]:
        return {"axes": self.axes, "starts": self.starts, "ends": self.ends, "steps": self.steps}

    def fold(self) -> list[Attribute | Value] | None:
        t = self.input.type
        if t is self.output.type and t.rank:
            steps = self.steps or (1,) * len(self.axes)
            whole = all(a % t.rank != 0 and st == 1 and (s == 0 or s <= -t.shape[a]) and e >= t.shape[a]
                        for a, s, e, st in zip(self.axes, self.starts, self.ends, steps))
            if whole:
                return [self.input]  # whole non-batch axes: a no-op at every batch size
        return super().fold()


@graph.op
class ExpandOp(GraphOp):
    """`x.expand(shape)` (broadcast_to): -1 keeps the input's dimension, 0 takes the `like` operand's
    dimension at that position (e.g. the batch of the tensor a class token joins); new leading
    dimensions may be added; only size-1 dimensions grow."""

    OP_NAME = "graph.expand"
    KERNEL = "expand"
    input = operand(TensorType)
    like = optional_operand(TensorType, doc="gives the dimensions marked 0 in `shape` (its values are unused)")
    output = result(TensorType)
    shape = attr(I64_ARRAY)

    def kernel_args(self) -> dict[str, Any]:
        return {"shape": self.shape}

    def output_shape(self, shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
        return tuple(S.expand_shape(shapes[0], shapes[1] if len(shapes) > 1 else None, self.shape))

    def compute(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        return K.expand(inputs[0], inputs[1] if len(inputs) > 1 else None, shape=self.shape)


@graph.op
class TileOp(GraphOp):
    """`x.repeat(repeats)` (numpy `tile`): dimension i is repeated repeats[i] times (new leading
    dimensions when repeats is longer than the rank)."""

    OP_NAME = "graph.tile"
    KERNEL = "tile"
    input = operand(TensorType)
    output = result(TensorType)
    repeats = attr(I64_ARRAY)

    def kernel_args(self) -> dict[str, Any]:
        return {"repeats": self.repeats}


@graph.op
class LayerNormOp(GraphOp):
    """`F.layer_norm`: normalize over the trailing `normalized_shape` dimensions (biased variance),
    then `* weight + bias` (both of shape `normalized_shape`)."""

    OP_NAME = "graph.layer_norm"
    KERNEL = "layer_norm"
    input = operand(TensorType)
    weight = operand(TensorType)
    bias = operand(TensorType)
    output = result(TensorType)
    normalized_shape = attr(I64_ARRAY)
    eps = attr(FLOAT, default=1e-5)

    def check_attrs(self) -> None:
        if not self.eps >= 0:
            raise ShapeError(f"layer_norm: eps must be non-negative, got {self.eps}")

    def kernel_args(self) -> dict[str, Any]:
        return {"normalized_shape": self.normalized_shape, "eps": self.eps}


@graph.op
class GroupNormOp(GraphOp):
    """`F.group_norm`: x (N, C, ...) in `groups` channel groups, each normalized over its channels and
    positions, then a per-channel `* weight + bias` (C,). InstanceNorm is groups = C."""

    OP_NAME = "graph.group_norm"
    KERNEL = "group_norm"
    input = operand(TensorType)
    weight = operand(TensorType)
    bias = operand(TensorType)
    output = result(TensorType)
    groups = attr(INT)
    eps = attr(FLOAT, default=1e-5)

    def check_attrs(self) -> None:
        if not self.eps >= 0:
            raise ShapeError(f"group_norm: eps must be non-negative, got {self.eps}")

    def kernel_args(self) -> dict[str, Any]:
        return {"groups": self.groups, "eps": self.eps}


@graph.op
class GeluOp(_UnaryOp):
    """`F.gelu`: x * Phi(x) (approximate = "none") or its tanh approximation (approximate = "tanh")."""

    OP_NAME = "graph.gelu"
    KERNEL = "gelu"
    approximate = attr(Enum("none", "tanh"), default="none")

    def kernel_args(self) -> dict[str, Any]:
        return {"approximate": self.approximate}


@graph.op
class MishOp(_UnaryOp):
    """`F.mish`: x * tanh(softplus(x))."""

    OP_NAME = "graph.mish"
    KERNEL = "mish"


@graph.op
class RollOp(GraphOp):
    """`torch.roll(x, shifts, dims)`: elements shifted cyclically along each of `axes`."""

    OP_NAME = "graph.roll"
    KERNEL = "roll"
    TRAITS = frozenset({Pure, SameOperandsAndResultType})
    input = operand(TensorType)
    output = result(TensorType)
    shifts = attr(I64_ARRAY)
    axes = attr(I64_ARRAY)

    def kernel_args(self) -> dict[str, Any]:
        return {"shifts": self.shifts, "axes": self.axes}


@graph.op
class NormalizeOp(_UnaryOp):
    """`F.normalize`: x / max(||x||_p, eps) along `axis` (Swin V2's cosine attention)."""

    OP_NAME = "graph.normalize"
    KERNEL = "normalize"
    axis = attr(INT, default=1)
    p = attr(FLOAT, default=2.0)
    eps = attr(FLOAT, default=1e-12)

    def kernel_args(self) -> dict[str, Any]:
        return {"axis": self.axis, "p": self.p, "eps": self.eps}


def _materialize_constant(value: Attribute, type: Type, location: Location) -> ConstantOp | None:
    if not isinstance(value, (DenseElementsAttr, DenseResourceElementsAttr)) or value.type is not type:
        return None
    return ConstantOp.build(value=value, location=location)


graph.constant_builder = _materialize_constant

__all__ = ["graph", "GraphOp", "ConstantOp", "Conv2dOp", "ConvTranspose2dOp", "LinearOp", "MatmulOp",
           "BatchNormOp", "ReluOp", "Relu6Op", "SigmoidOp", "TanhOp", "SiluOp", "HardSigmoidOp", "HardSwishOp",
           "LeakyReluOp", "PreluOp", "IdentityOp", "DropoutOp", "MaxPool2dOp", "AvgPool2dOp",
           "AdaptiveAvgPool2dOp", "AddOp", "SubOp", "MulOp", "ConcatOp", "ReshapeOp", "FlattenOp", "TransposeOp",
           "PadOp", "UpsampleOp", "SoftmaxOp", "MeanOp", "SumOp", "AmaxOp", "AminOp", "SliceOp", "SLICE_END",
           "ExpandOp", "TileOp", "LayerNormOp", "GroupNormOp", "GeluOp", "MishOp", "RollOp", "NormalizeOp",
           "resolve_reshape"]
