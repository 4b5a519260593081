"""Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization"), as numerics.md describes.

For every pair of layers A -> B where A is a conv2d (any groups, so depthwise too) or linear whose
only user is a ReLU / ReLU6 (or B itself) and that activation's only user is B (conv2d or linear, as
its input), each channel c between them is rescaled with

    s_c = r_a / sqrt(r_a * r_b)     (= sqrt(r_a / r_b); s_c = 1 when r_a + r_b < 0.5)

where ``r_a`` = max |output channel c of W_a| and ``r_b`` = max |input channel c of W_b|:
``W_a /= s``, ``b_a /= s``, ``W_b *= s``. One iteration over the pairs in program order. Since
ReLU(x / s) = ReLU(x) / s for s > 0, the float function is unchanged for ReLU (and conv -> conv)
chains; across ReLU6 the clamp moves (as in Vitis AI), so the function is preserved only where
the clamp is inactive.
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from ...dialects.graph import ConstantOp, Conv2dOp, LinearOp
from ...ir.attributes import DenseResourceElementsAttr
from ...ir.core import Operation, Value
from ...ir.passes import Pass, register_pass

__all__ = ["equalize", "equalization_pairs", "Equalize", "CLE_SUFFIX"]

CLE_SUFFIX = "_cle"
_ACTS = ("graph.relu", "graph.relu6")


def _const(v: Value | None) -> np.ndarray | None:
    owner = getattr(v, "op", None)
    if not isinstance(owner, ConstantOp):
        return None
    return np.asarray(owner.attributes["value"].array, dtype=np.float64)


def _only_user(v: Value) -> Operation | None:
    users = list(v.users)
    if len(users) != 1 or v.uses[users[0]] != 1:
        return None
    return users[0]


def equalization_pairs(module: Operation) -> list[tuple[Operation, Operation]]:
    """(A, B) layer pairs joined by a ReLU/ReLU6 (or directly), in program order."""
    pairs = []
    for a in module.walk((Conv2dOp, LinearOp)):
        v = a.output
        nxt = _only_user(v)
        if nxt is None or a.parent is None:
            continue
        if nxt.name in _ACTS:
            v = nxt.results[0]
            nxt = _only_user(v)
        if not isinstance(nxt, (Conv2dOp, LinearOp)) or type(nxt) is not type(a) or nxt.operands[0] is not v:
            continue
        if _const(a.weight) is None or _const(nxt.weight) is None:
            continue
        if a.bias is not None and _const(a.bias) is None:
            continue
        pairs.append((a, nxt))
    return pairs


def _input_channel_max(b: Operation, w: np.ndarray, channels: int) -> np.ndarray:
    """max |W_b| over everything that multiplies input channel c."""
    if isinstance(b, LinearOp):
        return np.abs(w).max(axis=0)
    g = b.groups
    cin_g = w.shape[1]
    oc_g = w.shape[0] // g
    a = np.abs(w).reshape(g, oc_g, cin_g, -1).max(axis=(1, 3))     # (g, cin_g)
    return a.reshape(channels)


def _scale_input_channels(b: Operation, w: np.ndarray, s: np.ndarray) -> np.ndarray:
    if isinstance(b, LinearOp):
        return w * s[None, :]
    g = b.groups
    oc_g, cin_g = w.shape[0] // g, w.shape[1]
    ws = w.reshape(g, oc_g, cin_g, *w.shape[2:]) * s.reshape(g, 1, cin_g, *(1,) * (w.ndim - 2))
    return ws.reshape(w.shape)


def _replace_const(op: Operation, index: int, array: np.ndarray, used: set[str]) -> None:
    v = op.operands[index]
    old = v.op
    attr = old.attributes["value"]
    base = attr.key if isinstance(attr, DenseResourceElementsAttr) else f"{op.results[0].name_hint or 'layer'}.{index}"
    if not base.endswith(CLE_SUFFIX):
        base += CLE_SUFFIX
    key, n = base, 1
    while key in used:
        n += 1
        key = f"{base}{n}"
    used.add(key)
    c = ConstantOp.from_array(array.astype(np.float32), key, old.location)
    c.result.name_hint = v.name_hint
    op.parent.insert_before(op, c)
    op.set_operand(index, c.result)
    if not old.results[0].uses:
        old.erase()


def equalize(module: Operation, threshold: float = 0.5) -> int:
    """Equalize every pair once; returns the number of pairs changed."""
    used = {op.attributes["value"].key for op in module.walk(ConstantOp)
            if isinstance(op.attributes["value"], DenseResourceElementsAttr)}
    changed = 0
    for a, b in equalization_pairs(module):
        wa, wb = _const(a.weight), _const(b.weight)
        c = wa.shape[0]
        if not _input_channel_max_shape_ok(b, wb, c):
            continue
        ra = np.abs(wa).reshape(c, -1).max(axis=1)
        rb = _input_channel_max(b, wb, c)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = ra / np.sqrt(ra * rb)
        s = np.where((ra + rb < threshold) | ~np.isfinite(s) | (s <= 0), 1.0, s)
        if np.all(s == 1.0):
            continue
        shape = (-1,) + (1,) * (wa.ndim - 1)
        _replace_const(a, 1, wa / s.reshape(shape), used)
        if a.bias is not None:
            _replace_const(a, 2, _const(a.bias) / s, used)
        _replace_const(b, 1, _scale_input_channels(b, wb, s), used)
        changed += 1
    return changed


def _input_channel_max_shape_ok(b: Operation, wb: np.ndarray, channels: int) -> bool:
    if isinstance(b, LinearOp):
        return wb.shape[1] == channels
    return wb.shape[1] * b.groups == channels


def _finite_non_negative(_obj, attribute, value) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"option '{attribute.name}' must be a finite number >= 0, got {value!r}")


@register_pass
class Equalize(Pass):
    NAME = "equalize"
    SUMMARY = "Cross-layer equalization of conv/linear pairs joined by ReLU/ReLU6 (one iteration)"

    @attrs.define
    class Options:
        threshold: float = attrs.field(default=0.5, validator=_finite_non_negative,
                                       metadata={"help": "s = 1 when r_a + r_b < threshold"})

    def run(self, module: Operation) -> None:
        equalize(module, self.options.threshold)
