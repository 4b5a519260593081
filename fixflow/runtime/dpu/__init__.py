"""The DPU interpreter: executes DPUCZDX8G machine code on a numpy model of the banks and DDR.

Two modes, bit-exact to each other and to AMD's functional simulator (``docs/dpu-interpreter.md``):
``reference`` (instruction by instruction; trace hook, stop and inspect banks) and ``fast`` (a cached
plan of large gathers, matrix products and scatters).

    from fixflow.runtime.dpu import DPUInterpreter, DPUSubgraph
    DPUInterpreter("DPUCZDX8G_ISA1_B4096", mc_code, regions, mode="fast").run()
    DPUSubgraph.from_xmodel("net.xmodel").run({"input": x_int8}, mode="reference")
"""

from .errors import DPUExecError
from .interpreter import MODES, DPUInterpreter
from .machine import Machine
from .reference import TraceEvent
from .xmodel import DDRTensor, DPUSubgraph

__all__ = ["MODES", "DDRTensor", "DPUExecError", "DPUInterpreter", "DPUSubgraph", "Machine", "TraceEvent"]
