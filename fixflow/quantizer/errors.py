"""The Quantizer's user-facing error."""

from __future__ import annotations

from ..ir.diagnostics import FixflowError


class QuantizerError(FixflowError):
    """Bad mode, bad config, missing or mismatched quant_info.json, export before calibration, ..."""
