"""A tiny arith dialect (constants, integer add/sub/mul) with folding, for tests and benchmarks.

Op names and semantics follow MLIR's `arith` so that the text is also valid for `mlir-opt`.
"""

from __future__ import annotations

from ..ir.attributes import Attribute, IntegerAttr
from ..ir.core import Value
from ..ir.opdef import (ANY, Commutative, ConstantLike, Dialect, Op, Pure, SameOperandsAndResultType, attr,
                        operand, result)
from ..ir.types import IntegerType, Type

arith = Dialect("arith", "Integer arithmetic (MLIR-compatible subset).")


def _wrap(value: int, type: Type) -> int:
    """Two's-complement wrap-around to the integer type's width."""
    if isinstance(type, IntegerType):
        bits = type.width
        value &= (1 << bits) - 1
        if type.signedness != "unsigned" and value >= 1 << (bits - 1):
            value -= 1 << bits
    return value


@arith.op
class ConstantOp(Op):
    OP_NAME = "arith.constant"
    TRAITS = frozenset({Pure, ConstantLike})
    value = attr(ANY)
    out = result()

    def infer_types(self) -> list[Type]:
        return [self.value.type]

    def verify_(self) -> None:
        v = self.attributes["value"]
        if getattr(v, "type", None) is not self.results[0].type:
            raise self.error(f"value {v.text()} does not match the result type {self.results[0].type}")

    def fold(self) -> list[Attribute | Value]:
        return [self.attributes["value"]]


class _BinaryIntOp(Op):
    TRAITS = frozenset({Pure, SameOperandsAndResultType})
    lhs = operand(IntegerType)
    rhs = operand(IntegerType)
    out = result(IntegerType)

    @staticmethod
    def compute(a: int, b: int) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def _constant_operands(self) -> tuple[int | None, int | None]:
        vals = []
        for v in self._operands:
            owner = getattr(v, "op", None)
            a = owner.attributes.get("value") if isinstance(owner, ConstantOp) else None
            vals.append(a.value if isinstance(a, IntegerAttr) else None)
        return vals[0], vals[1]

    def fold(self) -> list[Attribute | Value] | None:
        a, b = self._constant_operands()
        t = self.results[0].type
        if a is not None and b is not None:
            return [IntegerAttr(_wrap(self.compute(a, b), t), t)]
        return self.fold_identity(a, b)

    def fold_identity(self, a: int | None, b: int | None) -> list[Attribute | Value] | None:
        return None


@arith.op
class AddIOp(_BinaryIntOp):
    OP_NAME = "arith.addi"
    TRAITS = frozenset({Pure, SameOperandsAndResultType, Commutative})

    @staticmethod
    def compute(a: int, b: int) -> int:
        return a + b

    def fold_identity(self, a, b):
        if b == 0:
            return [self.lhs]
        if a == 0:
            return [self.rhs]
        return None


@arith.op
class SubIOp(_BinaryIntOp):
    OP_NAME = "arith.subi"

    @staticmethod
    def compute(a: int, b: int) -> int:
        return a - b

    def fold_identity(self, a, b):
        if b == 0:
            return [self.lhs]
        if self.lhs is self.rhs:
            t = self.results[0].type
            return [IntegerAttr(0, t)]
        return None


@arith.op
class MulIOp(_BinaryIntOp):
    OP_NAME = "arith.muli"
    TRAITS = frozenset({Pure, SameOperandsAndResultType, Commutative})

    @staticmethod
    def compute(a: int, b: int) -> int:
        return a * b

    def fold_identity(self, a, b):
        t = self.results[0].type
        if b == 1:
            return [self.lhs]
        if a == 1:
            return [self.rhs]
        if a == 0 or b == 0:
            return [IntegerAttr(0, t)]
        return None


def _materialize(value: Attribute, type: Type, location) -> ConstantOp:
    return ConstantOp.build(value=value, result_types=[type], location=location)


arith.constant_builder = _materialize
