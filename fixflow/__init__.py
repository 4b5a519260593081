"""fixflow: a multi-level compiler framework for Xilinx-style DPUs.

Import cost is kept low: subpackages are imported on demand.
"""

__version__ = "0.1.0"
