"""DPU targets: DPUCZDX8G ISA1 sizes B512-B4096, their fingerprints, banks and engine limits,
and board presets.

    from fixflow.target import get_target, get_board
    t = get_target("DPUCZDX8G_ISA1_B4096")      # or 0x0101000056010407, "kv260", "arch.json"
    t.pp, t.icp, t.ocp, t.alu_pp, t.peak_ops    # 8, 16, 16, 4, 4096
    t.bank_group(17).name                       # "CONVW"
    t.conv.kernel, t.alu.pad_left, t.supported_nonlinear("elew")
    t.fits_weight_bank(3, 3, 64)                # kw * kh * ceil(ic / ICP) <= 2048
    get_board("zcu104").cores                   # 2

Every error is a :class:`TargetError` (a ``FixflowError``) with one message.
"""

from .boards import BOARDS, Board, get_board
from .dpuczdx8g import (ALU_TYPES, BANK_DEPTH, NONLINEAR_NAMES, SHIPPED_FEATURE_CODES, SIZES, SUPPORTED_NAMES,
                        AluLimits, BankGroup, ConvLimits, ElewLimits, Range, Target, all_targets)
from .errors import TargetError
from .fingerprint import (FAMILY_TYPES, FeatureCode, format_fingerprint, join_fingerprint, parse_fingerprint,
                          split_fingerprint)
from .registry import get_target

__all__ = [
    "BOARDS", "Board", "get_board", "ALU_TYPES", "BANK_DEPTH", "NONLINEAR_NAMES", "SHIPPED_FEATURE_CODES",
    "SIZES", "SUPPORTED_NAMES", "AluLimits", "BankGroup", "ConvLimits", "ElewLimits", "Range", "Target",
    "all_targets", "TargetError", "FAMILY_TYPES", "FeatureCode", "format_fingerprint", "join_fingerprint",
    "parse_fingerprint", "split_fingerprint", "get_target",
]
