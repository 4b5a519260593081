"""The float `graph` dialect: NN ops in NCHW float32 with PyTorch semantics.

Ops are declared in `ops.py` (shape functions in `shapes.py`, numpy kernels in `kernels.py`,
canonicalization patterns in `canonicalize.py`). Importing this package registers the dialect.
"""

from .ops import *  # noqa: F401,F403
from .ops import __all__ as _ops_all

__all__ = list(_ops_all)
