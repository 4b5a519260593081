"""The 64-bit DPU fingerprint: ``type << 56 | isa << 48 | feature_code`` (48 bits).

For DPUCZDX8G ISA1 the feature code packs the hardware configuration (spec ``dpu-isa.md``;
AMD's ``target_factory`` decodes it the same way):

=========  ===========================================================================
bits       meaning
=========  ===========================================================================
0-3        ARCH: index into PP = 4,4,8,4,8,8,8,8 and ICP = OCP = 8,10,8,12,10,12,14,16
8-11       ALU_PP, the pixel parallelism of the ALU and element-wise engines
24-25      number of image (feature-map) bank groups
26         channel augmentation (the load engine folds a kernel's width into 2 * ICP channels)
28         LeakyReLU on the conv engine
29         LeakyReLU on the ALU (depthwise) engine
30         save engine argmax
32-33      log2 of the conv engine's write parallelism (limits ``stride_out_h``)
34-35      log2 of the ALU engine's write parallelism
=========  ===========================================================================

The remaining bits carry no meaning that fixflow (or AMD's factory) reads; they are kept in
``FeatureCode.other_bits`` so that decode -> encode gives back the same 64 bits.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import TargetError

#: DPU family type codes (the top byte of a fingerprint), as AMD's target_factory numbers them.
FAMILY_TYPES: dict[int, str] = {
    1: "DPUCZDX8G", 2: "DPUCAHX8H", 3: "DPUCAHX8L", 4: "DPUCZDI4G", 5: "DPUCVDX8H",
    6: "DPUCVDX8G", 7: "DPUCADF8H", 8: "IPU_PHX", 9: "DPUCV2DX8G", 10: "IPU_STRIX",
    11: "AutoDPU", 12: "DPUCV3DX8G",
}
DPUCZDX8G_TYPE = 1

#: PP and ICP (= OCP) per ARCH index; indexes 8-11 are AMD configurations below B512.
PP_MAP = (4, 4, 8, 4, 8, 8, 8, 8, 4, 2, 2, 2)
ICP_MAP = (8, 10, 8, 12, 10, 12, 14, 16, 4, 6, 8, 4)
#: The ARCH indexes of the eight supported sizes (B512 ... B4096).
SUPPORTED_ARCH = range(8)

_KNOWN_MASK = (0xF | 0xF << 8 | 0x3 << 24 | 1 << 26 | 1 << 28 | 1 << 29 | 1 << 30 | 0xF << 32)
_FEATURE_MASK = (1 << 48) - 1


@dataclass(frozen=True)
class FeatureCode:
    """The decoded fields of a DPUCZDX8G feature code (see the module docstring)."""

    arch: int
    alu_pp: int
    image_bank_groups: int
    channel_augmentation: bool
    conv_leaky_relu: bool
    alu_leaky_relu: bool
    save_argmax: bool
    conv_write_parallel_log2: int = 0
    alu_write_parallel_log2: int = 0
    other_bits: int = 0

    @classmethod
    def decode(cls, feature_code: int) -> "FeatureCode":
        """Split a 48-bit feature code into its fields."""
        if not 0 <= feature_code <= _FEATURE_MASK:
            raise TargetError(f"feature code 0x{feature_code:x} does not fit in 48 bits")
        fc = feature_code
        return cls(arch=fc & 0xF, alu_pp=(fc >> 8) & 0xF, image_bank_groups=(fc >> 24) & 3,
                   channel_augmentation=bool(fc >> 26 & 1), conv_leaky_relu=bool(fc >> 28 & 1),
                   alu_leaky_relu=bool(fc >> 29 & 1), save_argmax=bool(fc >> 30 & 1),
                   conv_write_parallel_log2=(fc >> 32) & 3, alu_write_parallel_log2=(fc >> 34) & 3,
                   other_bits=fc & ~_KNOWN_MASK & _FEATURE_MASK)

    def encode(self) -> int:
        """The 48-bit feature code; ``FeatureCode.decode(fc).encode() == fc``."""
        checks = (("arch", self.arch, 15), ("alu_pp", self.alu_pp, 15),
                  ("image_bank_groups", self.image_bank_groups, 3),
                  ("conv_write_parallel_log2", self.conv_write_parallel_log2, 3),
                  ("alu_write_parallel_log2", self.alu_write_parallel_log2, 3))
        for name, v, hi in checks:
            if not 0 <= v <= hi:
                raise TargetError(f"feature code field {name} = {v} is out of range 0-{hi}")
        if self.other_bits & (_KNOWN_MASK | ~_FEATURE_MASK):
            raise TargetError(f"feature code other_bits 0x{self.other_bits:x} overlap the known fields")
        return (self.arch | self.alu_pp << 8 | self.image_bank_groups << 24
                | int(self.channel_augmentation) << 26 | int(self.conv_leaky_relu) << 28
                | int(self.alu_leaky_relu) << 29 | int(self.save_argmax) << 30
                | self.conv_write_parallel_log2 << 32 | self.alu_write_parallel_log2 << 34
                | self.other_bits)


def split_fingerprint(fingerprint: int) -> tuple[int, int, int]:
    """``fingerprint`` -> ``(type, isa, feature_code)``."""
    if isinstance(fingerprint, bool) or not isinstance(fingerprint, int) or not 0 <= fingerprint < 2**64:
        raise TargetError(f"a fingerprint is an unsigned 64-bit integer, got {fingerprint!r}")
    return fingerprint >> 56, (fingerprint >> 48) & 0xFF, fingerprint & _FEATURE_MASK


def join_fingerprint(type_: int, isa: int, feature_code: int) -> int:
    """``(type, isa, feature_code)`` -> the 64-bit fingerprint."""
    if not (0 <= type_ <= 0xFF and 0 <= isa <= 0xFF and 0 <= feature_code <= _FEATURE_MASK):
        raise TargetError(f"fingerprint parts out of range: type {type_}, isa {isa}, "
                          f"feature code 0x{feature_code:x}")
    return type_ << 56 | isa << 48 | feature_code


def format_fingerprint(fingerprint: int) -> str:
    """``0x0101000056010407`` (16 hex digits, as vai_c_xir's arch.json writes it)."""
    return f"0x{fingerprint:016x}"


def parse_fingerprint(text: str) -> int:
    """Parse ``"0x0101000056010407"`` (or decimal digits) into an int."""
    s = text.strip() if isinstance(text, str) else ""
    try:
        v = int(s, 16) if s.lower().startswith("0x") else int(s, 10)
    except ValueError:
        raise TargetError(f"fingerprint {text!r} is not a number (expected e.g. 0x0101000056010407)") from None
    if not 0 <= v < 2**64:
        raise TargetError(f"fingerprint {text!r} does not fit in 64 bits")
    return v
