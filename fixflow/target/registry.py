"""One entry point for every way a user names a target."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .boards import BOARDS
from .dpuczdx8g import Target
from .errors import TargetError
from .fingerprint import parse_fingerprint


def get_target(spec: "str | int | os.PathLike[str] | Target") -> Target:
    """The target named by ``spec``.

    Accepts a :class:`Target` (returned as is), a fingerprint (``int`` or ``"0x..."``), a target
    name (``DPUCZDX8G_ISA1_B4096``), a board name (``kv260``) or the path of an ``arch.json``.
    Anything else, including another DPU family, is one :class:`TargetError` listing what is
    supported.
    """
    if isinstance(spec, Target):
        return spec
    if isinstance(spec, int) and not isinstance(spec, bool):
        return Target.from_fingerprint(spec)
    if isinstance(spec, os.PathLike):
        return Target.from_arch_json(spec)
    if not isinstance(spec, str):
        raise TargetError(f"cannot make a target from {spec!r}: give a target name, a fingerprint, "
                          "a board name or an arch.json path")
    s = spec.strip()
    if re.fullmatch(r"0[xX][0-9a-fA-F]+", s):
        return Target.from_fingerprint(parse_fingerprint(s))
    if s.lower() in BOARDS:
        return BOARDS[s.lower()].target
    if s.lower().endswith(".json") or (os.sep in s and Path(s).exists()):
        return Target.from_arch_json(s)
    try:
        return Target.from_name(s)
    except TargetError as e:
        raise TargetError(f"{e.message} (or a board: {', '.join(BOARDS)})") from None
