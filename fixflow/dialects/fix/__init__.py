"""The `fix` dialect: fixed-point tensors with power-of-two scales, NHWC, XIR-like ops.

Importing this package registers the dialect (ops in `ops.py`, the `!fix.xint` type in `types.py`).
`numerics.py` holds the number format and the legalization rules, `kernels.py` the bit-exact integer
kernels and their float twins. Each op says which DPU engine rule of `fixflow.target.legality` applies
to it (`dpu_violation`); `fixflow.runtime.fix_executor` runs a module (integer or simulated).
"""

from .ops import *  # noqa: F401,F403
from .ops import __all__ as _ops_all

__all__ = list(_ops_all)
