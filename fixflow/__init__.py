"""fixflow: a multi-level compiler framework for Xilinx-style DPUs.

Import cost is kept low: subpackages are imported on demand. The root only fills the lazy name
tables of the dialect and pass registries (module names, nothing is imported through them yet).
"""

__version__ = "0.1.0"

from . import dialects as _dialects, passes as _passes  # noqa: E402,F401  (fill the lazy registries)
