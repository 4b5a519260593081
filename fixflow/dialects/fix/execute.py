"""Run a `fix`-dialect module: integer execution (`run_quantized`) and float simulation
(`simulate_quantized`). Both take float inputs (as the function's arguments expect) and return
float outputs; a function result that is still fixed point is dequantized.

Graph-dialect ops kept in the module as CPU fallbacks run on floats in both modes (their
`evaluate`), so the two modes agree bit for bit on every op.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ...ir.core import Operation, Value
from ...ir.opdef import ConstantLike, Terminator
from ...runtime.interpreter import InterpreterError, run_function, run_module
from .numerics import dequantize
from .ops import FixOp, fixed_type


def _target(module: Operation, function: str | None) -> Operation:
    funcs = [op for op in module.regions[0].blocks[0].ops if op.name == "func.func"]
    for f in funcs:
        name = f.attributes["sym_name"].value
        if (function is not None and name == function) or (function is None and name == "main"):
            return f
    if function is None and len(funcs) == 1:
        return funcs[0]
    raise InterpreterError(f"no function {'@' + function if function else '@main'} in the module "
                           f"(functions: {', '.join('@' + f.attributes['sym_name'].value for f in funcs)})",
                           module.location)


def _dequantize_outputs(func: Operation, outputs: list[np.ndarray]) -> list[np.ndarray]:
    ret = func.regions[0].blocks[0].terminator
    res = []
    for v, y in zip(ret.operands, outputs):
        ft = fixed_type(v.type)
        res.append(dequantize(y, ft.fix_pos) if ft is not None else np.asarray(y))
    return res


def run_quantized(module: Operation, inputs: Sequence[np.ndarray], function: str | None = None,
                  observer=None) -> list[np.ndarray]:
    """Integer execution of a quantized module on float inputs; returns float outputs.

    `fix.data` quantizes the inputs (its round mode, std_round by default), every fix op runs its
    integer kernel, `fix.float` (or this function, for fixed-point results) dequantizes.
    """
    func = _target(module, function)
    return _dequantize_outputs(func, run_function(func, inputs, observer))


def simulate_quantized(module: Operation, inputs: Sequence[np.ndarray], function: str | None = None,
                       observer=None) -> list[np.ndarray]:
    """Float fake-quant simulation of a quantized module (every fix op's `simulate`).

    Equal bit for bit to `run_quantized` (the invariant the tests check).
    """
    func = _target(module, function)
    block = func.regions[0].blocks[0]
    if len(inputs) != len(block.args):
        raise InterpreterError(f"the function takes {len(block.args)} input(s), got {len(inputs)}", func.location)
    env: dict[Value, np.ndarray] = {}
    for i, (a, x) in enumerate(zip(block.args, inputs)):
        x = np.asarray(x, dtype=np.float32)
        shape = getattr(a.type, "shape", None)
        if shape is not None and (x.ndim != len(shape) or any(
                d >= 0 and x.shape[k] != d for k, d in enumerate(shape) if k > 0)):
            name = f"input #{i}" + (f" '{a.name_hint}'" if a.name_hint else "")
            raise InterpreterError(f"{name}: expected shape ({', '.join(['N'] + [str(d) for d in shape[1:]])}), "
                                   f"got {tuple(x.shape)}", func.location)
        env[a] = x
    for op in block.ops:
        if Terminator in op.TRAITS:
            return [np.asarray(env[v], dtype=np.float32) for v in op.operands]
        args = [env[v] for v in op.operands]
        try:
            if isinstance(op, FixOp):
                outs = op.simulate(args)
            elif ConstantLike in op.TRAITS:
                outs = [np.asarray(op.attributes["value"].array)]
            else:
                outs = op.evaluate(args)
        except (ValueError, TypeError, IndexError) as e:
            raise InterpreterError(f"'{op.name}' failed in simulation: {e}", op.location) from None
        for r, y in zip(op.results, outs):
            env[r] = y
    raise InterpreterError("the function does not end with func.return", func.location)


__all__ = ["run_quantized", "simulate_quantized", "run_module"]
