"""The built-in passes, one folder per level, and their lazy registry.

    passes/generic.py   canonicalize, cse, dce, symbol-dce (any dialect)
    passes/graph/       float graph level (infer-shapes, fold-bn, remove-dropout, relu6-to-relu,
                        ensure-biases, equalize)
    passes/fix/         toward the fix level (calibrate, legalize-fix, quantize: graph -> fix;
                        annotations.py: the fix.* annotation contract they share)
    passes/dpu/         DPU level (partition, lowering, allocation, scheduling)

A module that defines passes (`@register_pass`) is listed in `PASS_MODULES`; it is imported only
when a pass is looked up by name or all passes are listed. A listed module that does not exist (yet)
is skipped. `index.py` holds every built-in pass's name, summary and options as text, so that
`fixflow-opt --help` lists them without importing them; after adding or changing a pass, regenerate it
with `python -m fixflow.passes.index` (a test compares it with the registry).
"""

from __future__ import annotations

from .. import _registry

PASS_MODULES = [
    "fixflow.passes.generic",
    "fixflow.passes.graph.transforms",
    "fixflow.passes.graph.equalize",
    "fixflow.passes.fix.calibrate",
    "fixflow.passes.fix.legalize",
    "fixflow.passes.fix.quantize",
    "fixflow.passes.dpu.passes",
]


def pass_modules() -> list[str]:
    """The listed modules that exist."""
    import importlib.util
    return [m for m in PASS_MODULES if importlib.util.find_spec(m) is not None]


_registry.add_pass_source(pass_modules)
