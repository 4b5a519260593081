"""Running compiled models: the DPU interpreter (`fixflow.runtime.dpu`), fix-level execution
(`fix_executor`), whole graphs (`GraphRunner`), VART-style runners (`Runner`) and Ray scale-out
(`ray_eval`). See docs/runtime.md.

    from fixflow.runtime import GraphRunner, Runner, dpu_subgraphs
"""

from typing import Any

_EXPORTS = {
    "GraphRunner": "graph_runner", "TensorSpec": "graph_runner",
    "Runner": "runner", "RunnerTensor": "runner", "SubgraphRef": "runner", "dpu_subgraphs": "runner",
    "TIMEOUT": "runner", "RuntimeRunError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:   # lazy: `import fixflow.runtime.dpu` stays cheap
    if name in _EXPORTS:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
