"""The profiler: a cycle model of the DPU from the instruction stream and the board.

    from fixflow.runtime.profiler import profile_xmodel, profile_program, host_profile
    p = profile_xmodel("net.xmodel", board="kv260")       # plain data (dicts, lists, numbers)

``cycles.py`` charges each instruction on its unit, ``timeline.py`` overlaps the four units under the
``dpdon``/``dpdby`` tokens, ``attribution.py`` finds the super-layers in a release-mode stream,
``profile.py`` aggregates per layer and per subgraph, multi-core throughput and host wall times.
The constants are in ``constants.py``; docs/profiler.md explains the model and its validation.
"""

from .constants import DDR_LATENCY_NS, ISSUE_CYCLES, LINES_PER_CYCLE, ModelConstants
from .cycles import UNITS, Cost, Machine, costs, unit_of
from .host import host_profile, layer_times
from .profile import (layer_workload, machine_info, profile_compiled_program, profile_dpu_subgraph,
                      profile_module, profile_program, profile_xmodel, throughput)
from .timeline import ProfileError, Slot, timeline

__all__ = ["DDR_LATENCY_NS", "ISSUE_CYCLES", "LINES_PER_CYCLE", "ModelConstants", "UNITS", "Cost", "Machine",
           "costs", "unit_of", "host_profile", "layer_times", "layer_workload", "machine_info", "profile_compiled_program",
           "profile_dpu_subgraph", "profile_module", "profile_program", "profile_xmodel", "throughput", "ProfileError", "Slot",
           "timeline"]
