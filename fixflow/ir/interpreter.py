"""The dialect-independent op-by-op interpreter: the one block executor of fixflow.

By default an op runs through `op.evaluate(inputs) -> outputs`: constants (ops with the
ConstantLike trait) yield their `value` attribute and `func.call` runs the callee of the enclosing
module. An executor of a level (e.g. `fixflow.runtime.fix_executor`'s simulation, calibration's
fake-quant runner) passes its own `evaluate(op, inputs)`; the interpreter keeps the walk, the
input checks, the observer and the freeing of dead values.
Any batch size runs: inputs are checked against the function type except for dimension 0.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .attributes import Attribute, BoolAttr, DenseElementsAttr, DenseResourceElementsAttr, FloatAttr, IntegerAttr
from .core import Operation, Value
from .diagnostics import FixflowError
from .opdef import ConstantLike, Terminator
from .types import TensorType, Type, numpy_dtype

Observer = Callable[[Operation, list[np.ndarray]], None]
Evaluate = Callable[[Operation, list[np.ndarray]], list[np.ndarray]]


class InterpreterError(FixflowError):
    """An op without semantics, inputs that do not fit the function, or an op failing at run time."""


def _is_func(op: Operation) -> bool:
    return op.name == "func.func"


def _constant_value(op: Operation) -> np.ndarray:
    attr: Attribute | None = op.attributes.get("value")
    if isinstance(attr, (DenseElementsAttr, DenseResourceElementsAttr)):
        try:
            return attr.array
        except ValueError as e:
            raise InterpreterError(f"'{op.name}': {e}", op.location) from None
    if isinstance(attr, (IntegerAttr, FloatAttr, BoolAttr)):
        t = op.results[0].type if op.results else None
        dtype = numpy_dtype(t) if t is not None and not isinstance(t, TensorType) else None
        return np.asarray(attr.value, dtype=dtype)
    raise InterpreterError(f"'{op.name}' is constant-like but has no usable value attribute", op.location)


def _shape_text(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _check_input(i: int, arg: Value, x: np.ndarray, func_op: Operation) -> np.ndarray:
    t: Type = arg.type
    name = f"input #{i}" + (f" '{arg.name_hint}'" if arg.name_hint else "")
    if not isinstance(t, TensorType):
        return x
    if x.ndim != t.rank:
        raise InterpreterError(f"{name}: expected shape {_shape_text(('N',) + t.shape[1:])} (a rank-{t.rank} "
                               f"tensor, any batch size), got {_shape_text(x.shape)}", func_op.location)
    for d in range(1, t.rank):
        if t.shape[d] >= 0 and x.shape[d] != t.shape[d]:
            what = "channels" if d == 1 and t.rank >= 3 else f"dimension {d}"
            raise InterpreterError(f"{name}: expected shape {_shape_text(('N',) + t.shape[1:])}, got "
                                   f"{_shape_text(x.shape)} ({what}: {x.shape[d]} instead of {t.shape[d]})",
                                   func_op.location)
    try:
        dtype = numpy_dtype(t.element_type)
    except (KeyError, ValueError, TypeError):
        return x
    return x if x.dtype == dtype else x.astype(dtype)


def _last_uses(ops: list[Operation]) -> dict[Value, int]:
    last: dict[Value, int] = {}
    for i, op in enumerate(ops):
        for v in op.operands:
            last[v] = i
    return last


def run_function(func_op: Operation, inputs: Sequence[np.ndarray], observer: Observer | None = None,
                 evaluate: Evaluate | None = None) -> list[np.ndarray]:
    """Evaluate a single-block function on numpy inputs and return its results.

    `evaluate(op, inputs) -> outputs` runs one op (default `evaluate_op`: the op's reference
    semantics). `observer(op, outputs)` is called after each evaluated op (constants included), e.g.
    to collect calibration statistics. Raises `InterpreterError` (a FixflowError, with the op's
    location) for ops without semantics, inputs that do not match, and ops failing at run time.
    """
    if not _is_func(func_op):
        raise InterpreterError(f"expected a func.func, got '{func_op.name}'", func_op.location)
    region = func_op.regions[0] if func_op.regions else None
    if region is None or not region.blocks:
        raise InterpreterError(f"function '{_func_name(func_op)}' has no body", func_op.location)
    if len(region.blocks) != 1:
        raise InterpreterError(f"function '{_func_name(func_op)}' has {len(region.blocks)} blocks; "
                               "the interpreter runs single-block functions only", func_op.location)
    block = region.blocks[0]
    args = block.args
    if len(inputs) != len(args):
        raise InterpreterError(f"function '{_func_name(func_op)}' takes {len(args)} input(s), got {len(inputs)}",
                               func_op.location)
    env: dict[Value, np.ndarray] = {}
    for i, (arg, x) in enumerate(zip(args, inputs)):
        env[arg] = _check_input(i, arg, np.asarray(x), func_op)
    ops = list(block.ops)
    last = _last_uses(ops)
    run_op = evaluate or evaluate_op
    for idx, op in enumerate(ops):
        if Terminator in op.TRAITS:
            if op.name != "func.return":
                raise InterpreterError(f"'{op.name}' has no reference semantics (only func.return ends a "
                                       "function)", op.location)
            return [env[v] for v in op.operands]
        outputs = _checked(op, run_op, [env[v] for v in op.operands])
        if observer is not None:
            observer(op, outputs)
        for r, y in zip(op.results, outputs):
            if r in last:
                env[r] = y
        for v in op.operands:
            if last.get(v) == idx:
                env.pop(v, None)
    raise InterpreterError(f"function '{_func_name(func_op)}' does not end with func.return", func_op.location)


def _func_name(func_op: Operation) -> str:
    sym = func_op.attributes.get("sym_name")
    return getattr(sym, "value", "?")


def evaluate_op(op: Operation, args: list[np.ndarray]) -> list[np.ndarray]:
    """An op's reference semantics: its constant value, the called function, or `op.evaluate(args)`."""
    if ConstantLike in op.TRAITS:
        return [_constant_value(op)]
    if op.name == "func.call":
        return _call(op, args)
    evaluate = getattr(op, "evaluate", None)
    if evaluate is None:
        raise InterpreterError(f"'{op.name}' has no reference semantics (no evaluate method"
                               f"{'; is its dialect registered?' if type(op) is Operation else ''})", op.location)
    return evaluate(args)


def _checked(op: Operation, run_op: Evaluate, args: list[np.ndarray]) -> list[np.ndarray]:
    try:
        outputs = run_op(op, args)
    except (FixflowError, ValueError, TypeError, IndexError) as e:
        if isinstance(e, FixflowError) and (e.location is not None or not isinstance(e, ValueError)):
            raise   # located already; a location-less ShapeError/NumericsError gets the op's location below
        shapes = ", ".join(_shape_text(np.shape(a)) for a in args)
        raise InterpreterError(f"'{op.name}' failed at run time on operand shapes {shapes}: {e}",
                               op.location) from None
    if len(outputs) != len(op.results):
        raise InterpreterError(f"'{op.name}' evaluate returned {len(outputs)} value(s) for {len(op.results)} "
                               "result(s)", op.location)
    return [np.asarray(y) for y in outputs]


def _call(op: Operation, args: list[np.ndarray]) -> list[np.ndarray]:
    callee = op.attributes.get("callee")
    name = getattr(callee, "root", None)
    module = op.parent_op
    while module is not None and module.name != "builtin.module":
        module = module.parent_op
    target = _lookup(module, name) if module is not None and name else None
    if target is None:
        raise InterpreterError(f"'func.call': no function @{name} in the enclosing module", op.location)
    return run_function(target, args)


def _lookup(module: Operation, name: str) -> Operation | None:
    for op in module.regions[0].blocks[0].ops:
        sym = op.attributes.get("sym_name")
        if _is_func(op) and sym is not None and sym.value == name:
            return op
    return None


def find_function(module: Operation, function: str | None = None) -> Operation:
    """The function of `module` to run (or calibrate, lower, ...): `function` by name, else `@main`,
    else the module's only function. Raises `InterpreterError` naming the functions there are."""
    funcs = [op for op in module.regions[0].blocks[0].ops if _is_func(op) and op.regions and op.regions[0].blocks]
    target = _lookup(module, function if function is not None else "main")
    if target is not None:
        return target
    names = ", ".join("@" + _func_name(f) for f in funcs) or "none"
    if function is not None:
        raise InterpreterError(f"no function @{function} in the module (functions: {names})", module.location)
    if len(funcs) != 1:
        raise InterpreterError(f"the module has {len(funcs)} functions ({names}) and none is @main: "
                               "choose one with function=", module.location)
    return funcs[0]


def run_module(module: Operation, inputs: Sequence[np.ndarray], function: str | None = None,
               observer: Observer | None = None, evaluate: Evaluate | None = None) -> list[np.ndarray]:
    """Run a function of `module` (see `find_function`) on numpy inputs."""
    return run_function(find_function(module, function), inputs, observer, evaluate)


__all__ = ["InterpreterError", "Observer", "Evaluate", "evaluate_op", "find_function", "run_function", "run_module"]
