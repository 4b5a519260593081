"""Window geometry shared by the graph and fix dialects and the frontends: normalizing an int or a
pair to `(h, w)`, paddings to `(top, bottom, left, right)`, and the convolution output size.

(A module, not a dialect: names starting with `_` under fixflow/dialects/ are not dialects.)
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, Sequence

ErrorFactory = Callable[[str], Exception]


def pair(v: Any, name: str = "value", error: ErrorFactory = ValueError) -> tuple[int, int]:
    """An int or an `(h, w)` sequence (or a 1-sequence) as a pair of ints; `error(message)` otherwise."""
    if isinstance(v, numbers.Integral):
        return (int(v), int(v))
    t = tuple(int(e) for e in v)
    if len(t) == 1:
        return (t[0], t[0])
    if len(t) != 2:
        raise error(f"{name} must be an int or an (h, w) pair, got {t}")
    return t  # type: ignore[return-value]


def pad4(v: Any, name: str = "padding", error: ErrorFactory = ValueError) -> tuple[int, int, int, int]:
    """Padding as `(top, bottom, left, right)` from an int (all sides), an `(h, w)` pair (symmetric)
    or an explicit 4-tuple; `error(message)` otherwise."""
    if isinstance(v, numbers.Integral):
        p = int(v)
        return (p, p, p, p)
    t = tuple(int(e) for e in v)
    if len(t) == 1:
        return (t[0],) * 4  # type: ignore[return-value]
    if len(t) == 2:
        return (t[0], t[0], t[1], t[1])
    if len(t) != 4:
        raise error(f"{name} must be an int, an (h, w) pair or (top, bottom, left, right), got {t}")
    return t  # type: ignore[return-value]


def conv_out_size(size: int, kernel: int, stride: int, pad_lo: int, pad_hi: int, dilation: int = 1) -> int:
    """Output length of a convolution (or floor-mode pooling) window along one axis."""
    return (size + pad_lo + pad_hi - dilation * (kernel - 1) - 1) // stride + 1


def conv_pads(padding: Any, kernel: Sequence[int] | int, dilation: Sequence[int] | int) -> tuple[int, int, int, int]:
    """Conv padding (int, pair, 'valid' or 'same', as PyTorch takes it) as `(top, bottom, left, right)`;
    'same' puts the odd pixel last."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        out: list[int] = []
        for k, d in zip(pair(kernel), pair(dilation)):
            total = d * (k - 1)
            out += [total // 2, total - total // 2]
        return tuple(out)  # type: ignore[return-value]
    return pad4(padding)


__all__ = ["pair", "pad4", "conv_out_size", "conv_pads"]
