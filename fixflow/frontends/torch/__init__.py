"""The PyTorch frontend: `torch.nn.Module` -> `graph` dialect, via torch.fx symbolic tracing.

    >>> from fixflow.frontends.torch import import_module
    >>> module = import_module(model, (torch.randn(1, 1, 28, 28),))
    >>> print(print_module(module, print_locations=True))

Shapes come from running the example inputs through the traced graph; weights become
`graph.constant` ops holding `dense_resource<module.path.weight>` blobs; every op's location is
`NameLoc(module path, FileLineColLoc(user file, line, col))`. The imported function is the
model's inference (eval-mode) computation. Unsupported ops and data-dependent control flow raise
`FrontendError` with the user's source line.
"""

from __future__ import annotations

from typing import Any

from fixflow.dialects.builtin import ModuleOp

from .errors import FrontendError

__all__ = ["FrontendError", "import_module", "supported_ops"]


def import_module(model: Any, example_inputs: tuple, *, name: str | None = None) -> ModuleOp:
    """Trace `model` (a `torch.nn.Module`) and convert it to a `builtin.module` with one graph function.

    `example_inputs` is a tuple of float32 tensors (a single tensor is accepted too); the function is
    named `name` or the model's class name. The model is traced and run in eval mode; its training
    flags are restored afterwards. Raises `FrontendError` for models that cannot be imported.
    """
    import torch

    from .convert import Converter
    from .tracing import propagate, trace

    if not isinstance(model, torch.nn.Module):
        raise FrontendError(f"import_module expects a torch.nn.Module, got {type(model).__name__}")
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    example_inputs = tuple(example_inputs)
    for i, x in enumerate(example_inputs):
        if not isinstance(x, torch.Tensor):
            raise FrontendError(f"example input #{i} must be a torch.Tensor, got {type(x).__name__}")
    training = {m: m.training for m in model.modules()}
    model.eval()
    try:
        gm = trace(model, tuple(x.clone() for x in example_inputs))
        const, static, traced = propagate(gm, tuple(x.clone() for x in example_inputs))
        module = Converter(gm, const, static, name or type(model).__name__).convert()
        with torch.no_grad():
            eager = model(*(x.clone() for x in example_inputs))
        _check_same(traced, eager)
        return module
    finally:
        for m, flag in training.items():
            m.training = flag


def _tensors(out: Any) -> list:
    import torch
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _tensors(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _tensors(o)]
    return []


def _check_same(traced: Any, eager: Any) -> None:
    """The traced graph must compute what the model computes (fx drops some Python-side effects)."""
    import torch
    a, b = _tensors(traced), _tensors(eager)
    same = len(a) == len(b) and all(x.shape == y.shape and torch.allclose(x, y, rtol=1e-4, atol=1e-5, equal_nan=True)
                                    for x, y in zip(a, b))
    if not same:
        raise FrontendError("the torch.fx trace of the model computes a different result than the model itself on "
                            "the example inputs; tracing lost a Python-side effect such as an in-place update "
                            "through an alias (`y = x; y += 1`) or state kept between calls: write it out of place")


def supported_ops() -> dict[str, list[str]]:
    """Names of the supported nn.Module types, functions and tensor methods."""
    from .convert import supported_ops as _supported
    return _supported()
