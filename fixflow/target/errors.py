"""The error raised for an unknown, unsupported or malformed target description."""

from fixflow.ir.diagnostics import FixflowError


class TargetError(FixflowError):
    """An unknown or unsupported target, a bad fingerprint or a malformed arch.json."""
