"""Value checks of an `_int.xmodel`'s ops before the reader interprets them.

The reader (`fix_xmodel._Importer`) takes an op's meaning from its type, attributes, arguments and
output tensor. Whatever it does not read must not contradict what it reads, and whatever it reads
must hold a value it implements: an attribute that disagrees with the tensor (a `bit_width` of 4 on
an XINT8 tensor, a `shape` that is not the tensor's), an unknown enumeration string (`round_mode`,
`pad_mode`, `mode`, `layout`), an argument the op type does not take or a single argument given
several producers is an `XModelError` naming the op and the attribute. Nothing is defaulted.
"""

from __future__ import annotations

from typing import Any

from .model import XModelError, XOp, XTensor

__all__ = ["check_xop", "XIR_ROUND_MODES", "FIX_POINT_RANGE"]

XIR_ROUND_MODES = ("STD_ROUND", "DPU_ROUND", "PY3_ROUND")
#: fix positions the reader accepts (calibration chooses within [-128, 15])
FIX_POINT_RANGE = (-128, 64)
_LAYOUTS = ("NHWC", "NCHW")
_PAD_MODES = ("FLOOR",)   # the reader implements explicit FLOOR padding; CEIL/SAME/VALID change the geometry
_XIR_PAD_MODES = ("FLOOR", "CEIL", "SAME", "VALID")
_TENSOR_PAD_MODES = ("CONSTANT", "REFLECT", "SYMMETRIC", "EDGE")
_CONV = {"input": 1, "weights": 1, "bias": 1}
_ONE = {"input": 1}
#: op type -> {argument: most producers (None: any number)}
ARGUMENTS: dict[str, dict[str, int | None]] = {
    "data-fix": {}, "const-fix": {}, "const": {},
    "conv2d-fix": _CONV, "depthwise-conv2d-fix": _CONV, "transposed-conv2d-fix": _CONV,
    "matmul-fix": _CONV, "inner-product-fix": _CONV,
    "pool-fix": _ONE, "reshape-fix": _ONE, "transpose": _ONE, "upsample-fix": _ONE, "pad-fix": _ONE,
    "hard-sigmoid-fix": _ONE, "hard-swish-fix": _ONE, "fix": _ONE, "fix2float": _ONE, "strided_slice-fix": _ONE,
    "eltwise-fix": {"input": None}, "concat-fix": {"input": None},
    "conv2d": _CONV, "pad": _ONE,   # float (CPU) ops: a conv left in float, Swin's window padding
    "maxpool2d": _ONE, "avgpool2d": _ONE, "resize": _ONE,   # float pools and upsampling (NHWC)
    "transposed-conv2d": _CONV,
}


def _err(xop: XOp, msg: str) -> XModelError:
    return XModelError(f"op {xop.name!r} ({xop.type}): {msg}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _enum(xop: XOp, key: str, allowed: tuple[str, ...], supported: tuple[str, ...] | None = None) -> None:
    if not xop.has_attr(key):
        return
    v = xop.attr(key)
    if not isinstance(v, str) or v not in allowed:
        raise _err(xop, f"attribute {key!r} = {v!r} is not one of {', '.join(allowed)}")
    if supported is not None and v not in supported:
        raise _err(xop, f"attribute {key!r} = {v!r} is not supported by the reader (only {', '.join(supported)})")


def _check_tensor(xop: XOp, t: XTensor) -> None:
    where = f"output tensor {t.name!r}"
    kind = t.data_type.rstrip("0123456789")
    if kind == "XINT":
        bw = t.bit_width
        if t.has_attr("bit_width") and (not _is_int(t.attr("bit_width")) or t.attr("bit_width") != bw):
            raise _err(xop, f"{where}: attribute 'bit_width' = {t.attr('bit_width')!r} contradicts its data type "
                            f"{t.data_type}")
        if not 1 <= bw <= 32:
            raise _err(xop, f"{where}: data type {t.data_type}: fixed-point bit widths are 1 to 32")
        if t.has_attr("fix_point"):
            fp = t.attr("fix_point")
            lo, hi = FIX_POINT_RANGE
            if not _is_int(fp) or not lo <= fp <= hi:
                raise _err(xop, f"{where}: attribute 'fix_point' must be an integer in [{lo}, {hi}], got {fp!r}")
        if t.has_attr("if_signed") and t.attr("if_signed") is not True:
            raise _err(xop, f"{where}: attribute 'if_signed' = {t.attr('if_signed')!r} contradicts its data type "
                            f"{t.data_type} (signed)")
        if t.has_attr("round_mode"):
            rm = t.attr("round_mode")
            if not isinstance(rm, str) or rm not in XIR_ROUND_MODES:
                raise _err(xop, f"{where}: attribute 'round_mode' = {rm!r} is not one of {', '.join(XIR_ROUND_MODES)}")
    elif any(t.has_attr(k) for k in ("fix_point", "if_signed")):
        k = "fix_point" if t.has_attr("fix_point") else "if_signed"
        raise _err(xop, f"{where}: attribute {k!r} on a {t.data_type} tensor (fixed-point attributes need XINT)")


def _check_arguments(xop: XOp, allowed: dict[str, int | None]) -> None:
    for arg, producers in xop.inputs.items():
        if arg not in allowed:
            known = ", ".join(allowed) or "none"
            raise _err(xop, f"argument {arg!r} is not an argument of {xop.type} (it takes: {known})")
        most = allowed[arg]
        if most is not None and len(producers) > most:
            raise _err(xop, f"argument {arg!r} takes {most} producer(s), got {len(producers)}: {producers}")
        if not producers and most is not None:
            raise _err(xop, f"argument {arg!r} has no producer")


def _same_shape(xop: XOp, key: str, want: list[int], *, batch_free: bool = False) -> None:
    if not xop.has_attr(key):
        return
    v = xop.attr(key)
    if not isinstance(v, (list, tuple)) or any(not _is_int(d) for d in v):
        raise _err(xop, f"attribute {key!r} must be a list of integers, got {v!r}")
    got = list(v)
    if batch_free and got and want and got[0] in (0, -1):
        got[0] = want[0]
    if got != list(want):
        raise _err(xop, f"attribute {key!r} = {list(v)} contradicts the output tensor's shape {list(want)}")


def check_xop(xop: XOp, arguments: dict[str, int | None] | None = None) -> None:
    """Check `xop`'s arguments, attribute values and output tensor; `XModelError` on the first problem.

    `arguments`: argument -> most producers, for op types not in `ARGUMENTS` (the float CPU ops).
    """
    t = xop.output
    _check_tensor(xop, t)
    allowed = ARGUMENTS.get(xop.type, arguments)
    if allowed is not None:
        _check_arguments(xop, allowed)
    if xop.type in ("data-fix", "const-fix", "const"):
        _same_shape(xop, "shape", t.shape)
        if xop.has_attr("data_type") and xop.attr("data_type") != t.data_type:
            raise _err(xop, f"attribute 'data_type' = {xop.attr('data_type')!r} contradicts the output tensor's "
                            f"{t.data_type}")
    if xop.type == "reshape-fix":
        _same_shape(xop, "shape", t.shape, batch_free=True)
    _enum(xop, "layout", _LAYOUTS)
    _enum(xop, "pad_mode", _XIR_PAD_MODES, ("FLOOR", "CEIL") if xop.type in ("maxpool2d", "avgpool2d") else _PAD_MODES)
    if xop.type == "pad-fix":
        _enum(xop, "mode", _TENSOR_PAD_MODES)
    if xop.type == "pad":
        _enum(xop, "mode", _TENSOR_PAD_MODES, ("CONSTANT", "REFLECT", "SYMMETRIC"))
    if xop.type == "fix":
        _enum(xop, "round_mode", XIR_ROUND_MODES)
    if xop.type in ("fix", "fix2float"):
        for key in ("bit_width", "fix_point"):
            if xop.has_attr(key) and not _is_int(xop.attr(key)):
                raise _err(xop, f"attribute {key!r} must be an integer, got {xop.attr(key)!r}")
        if xop.type == "fix" and t.data_type.startswith("XINT"):
            if xop.has_attr("bit_width") and xop.attr("bit_width") != t.bit_width:
                raise _err(xop, f"attribute 'bit_width' = {xop.attr('bit_width')} contradicts the output tensor's "
                                f"{t.data_type}")
            if xop.has_attr("fix_point") and t.has_attr("fix_point") and xop.attr("fix_point") != t.attr("fix_point"):
                raise _err(xop, f"attribute 'fix_point' = {xop.attr('fix_point')} contradicts the output tensor's "
                                f"fix_point {t.attr('fix_point')}")
        if xop.has_attr("if_signed") and xop.attr("if_signed") is not True:
            raise _err(xop, f"attribute 'if_signed' = {xop.attr('if_signed')!r}: fixflow's fixed-point values are "
                            "signed")
    for key in ("global", "transpose_a", "transpose_b"):
        if xop.has_attr(key) and not isinstance(xop.attr(key), bool):
            raise _err(xop, f"attribute {key!r} must be true or false, got {xop.attr(key)!r}")
    for key in ("group", "axis"):
        if key == "axis" and (xop.type.startswith("reduction_") or xop.type == "l2_normalize"):   # a list in XIR
            v = xop.attr(key)
            if not isinstance(v, (list, tuple)) or not all(_is_int(a) for a in v):
                raise _err(xop, f"attribute 'axis' must be a list of integers, got {v!r}")
            continue
        if xop.has_attr(key) and not _is_int(xop.attr(key)):
            raise _err(xop, f"attribute {key!r} must be an integer, got {xop.attr(key)!r}")
    if xop.has_attr("group") and xop.attr("group") < 1:
        raise _err(xop, f"attribute 'group' must be >= 1, got {xop.attr('group')}")
    for key in ("kernel", "stride", "dilation"):
        if xop.has_attr(key):
            v = xop.attr(key)
            if not isinstance(v, (list, tuple)) or any(not _is_int(d) or d < 1 for d in v):
                raise _err(xop, f"attribute {key!r} must be positive integers, got {v!r}")
    if xop.has_attr("pad") and xop.type not in ("pad-fix", "pad", "transposed-conv2d-fix",
                                                                      "transposed-conv2d"):
        v = xop.attr("pad")
        if not isinstance(v, (list, tuple)) or any(not _is_int(d) or d < 0 for d in v):
            raise _err(xop, f"attribute 'pad' must be non-negative integers, got {v!r}")
