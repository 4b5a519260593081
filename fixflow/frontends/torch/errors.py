"""The PyTorch frontend's user-facing error."""

from __future__ import annotations

from fixflow.ir.diagnostics import FixflowError


class FrontendError(FixflowError):
    """A model the PyTorch frontend cannot import (unsupported op, data-dependent control flow, ...).

    The location is the user's source line (a `NameLoc(module_path, FileLineColLoc)` when known).
    """
