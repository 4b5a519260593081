"""Run a `fix`-dialect module: integer execution (`run_quantized`) and float simulation
(`simulate_quantized`). Both take float inputs (as the function's arguments expect) and return
float outputs; a function result that is still fixed point is dequantized.

Both run on the one op-by-op interpreter (`fixflow.ir.interpreter`); simulation only swaps each fix
op's integer `evaluate` for its float `simulate`. Graph-dialect ops kept in the module as CPU
fallbacks run on floats in both modes (their `evaluate`), so the two modes agree bit for bit.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..dialects.fix.numerics import dequantize
from ..dialects.fix.ops import FixOp, fixed_type
from ..ir.core import Operation
from ..ir.interpreter import Observer, evaluate_op, find_function, run_function


def _dequantize_outputs(func: Operation, outputs: list[np.ndarray]) -> list[np.ndarray]:
    ret = func.regions[0].blocks[0].terminator
    res = []
    for v, y in zip(ret.operands, outputs):
        ft = fixed_type(v.type)
        res.append(dequantize(y, ft.fix_pos) if ft is not None else np.asarray(y))
    return res


def run_quantized(module: Operation, inputs: Sequence[np.ndarray], function: str | None = None,
                  observer: Observer | None = None) -> list[np.ndarray]:
    """Integer execution of a quantized module on float inputs; returns float outputs.

    `fix.data` quantizes the inputs (its round mode, std_round by default), every fix op runs its
    integer kernel, `fix.float` (or this function, for fixed-point results) dequantizes.
    """
    func = find_function(module, function)
    return _dequantize_outputs(func, run_function(func, inputs, observer))


def _simulate_op(op: Operation, args: list[np.ndarray]) -> list[np.ndarray]:
    return op.simulate(args) if isinstance(op, FixOp) else evaluate_op(op, args)


def simulate_quantized(module: Operation, inputs: Sequence[np.ndarray], function: str | None = None,
                       observer: Observer | None = None) -> list[np.ndarray]:
    """Float fake-quant simulation of a quantized module (every fix op's `simulate`).

    Equal bit for bit to `run_quantized` (the invariant the tests check).
    """
    func = find_function(module, function)
    outs = run_function(func, [np.asarray(x, dtype=np.float32) for x in inputs], observer, _simulate_op)
    return [np.asarray(y, dtype=np.float32) for y in outs]


__all__ = ["run_quantized", "simulate_quantized"]
