"""Errors of the runtime (graph runner, VART-style runners, scale-out helpers)."""

from __future__ import annotations

from ..ir.diagnostics import FixflowError


class RuntimeRunError(FixflowError):
    """A user error while loading or running a model: wrong inputs, an unsupported graph, a fingerprint
    mismatch, an unknown job id. One message naming the tensor, subgraph or job."""


__all__ = ["RuntimeRunError"]
