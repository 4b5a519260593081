"""The pruner's user-facing error."""

from __future__ import annotations

from ..errors import QuantizerError


class PruningError(QuantizerError):
    """Bad ratio or MAC budget, nothing to prune, an exclude that names no layer, a stale spec, ..."""
