"""The fix dialect's element type: `!fix.xint<bit_width, fix_pos>` (signed) / `!fix.xuint<...>`."""

from __future__ import annotations

import numpy as np

from ...ir.types import DialectType


class FixedPointType(DialectType):
    """Fixed-point element type: `value = q * 2^-fix_pos`, q a `bit_width`-bit integer.

    Printed as `!fix.xint<8, 4>` (signed) or `!fix.xuint<8, 4>`; the textual namespace is `fix`
    because upstream MLIR registers `quant` itself.
    """

    __slots__ = ("bit_width", "fix_pos", "signed")
    DIALECT = "fix"
    MNEMONICS = ("xint", "xuint")

    def __new__(cls, bit_width: int, fix_pos: int, signed: bool = True):
        return super().__new__(cls, int(bit_width), int(fix_pos), bool(signed))

    def _init(self, bit_width: int, fix_pos: int, signed: bool) -> None:
        if bit_width < 1 or bit_width > 32:
            raise ValueError(f"fixed-point bit width must be in [1, 32], got {bit_width}")
        self.bit_width = bit_width
        self.fix_pos = fix_pos
        self.signed = signed

    @property
    def qmin(self) -> int:
        return -(1 << (self.bit_width - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        return (1 << (self.bit_width - 1)) - 1 if self.signed else (1 << self.bit_width) - 1

    def _text(self) -> str:
        return f"!fix.{'xint' if self.signed else 'xuint'}<{self.bit_width}, {self.fix_pos}>"

    def _args(self) -> tuple:
        return (self.bit_width, self.fix_pos, self.signed)

    def storage_dtype(self) -> np.dtype:
        width = 8 if self.bit_width <= 8 else 16 if self.bit_width <= 16 else 32
        return np.dtype(f"{'i' if self.signed else 'u'}{width // 8}")

    @classmethod
    def parse(cls, mnemonic: str, parameters: str | None) -> "FixedPointType":
        text = f"!fix.{mnemonic}<{parameters}>" if parameters is not None else f"!fix.{mnemonic}"
        parts = [p.strip() for p in (parameters or "").split(",")]
        try:
            bw, fp = int(parts[0]), int(parts[1])
        except (ValueError, IndexError):
            raise ValueError(f"bad fixed-point type {text}: expected <bit_width, fix_pos>") from None
        if len(parts) != 2 or not 1 <= bw <= 32:
            raise ValueError(f"bad fixed-point type {text}: expected <bit_width, fix_pos> "
                             f"with a bit width in [1, 32]")
        return cls(bw, fp, mnemonic == "xint")


__all__ = ["FixedPointType"]
