"""Passes toward the `fix` level: calibration (the annotation contract is `annotations.py`),
fix-position legalization and the lowering `quantize` (graph -> fix)."""
