"""fixflow's model zoo: reference models, tiny bundled weights and the digits data.

Cheap to import (no torch): the public names below are loaded on first use.

    >>> from fixflow import zoo
    >>> zoo.list_models()                       # names
    >>> model = zoo.get_model("digits_cnn")     # torch nn.Module, trained weights, eval mode
    >>> x, y = zoo.load_digits("test", size=28) # float32 (N, 1, 28, 28), int64 (N,)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "list_models": "registry",
    "get_model": "registry",
    "get_spec": "registry",
    "describe": "registry",
    "gops": "registry",
    "count_macs": "registry",
    "float_accuracy": "registry",
    "load_data": "registry",
    "sample_inputs": "registry",
    "ModelSpec": "registry",
    "load_digits": "data",
    "batches": "data",
    "torch_loader": "data",
    "make_imbalanced": "imbalance",
    "ZooError": "errors",
    "UnknownModelError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'fixflow.zoo' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"fixflow.zoo.{mod}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
