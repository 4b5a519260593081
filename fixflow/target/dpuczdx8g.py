"""DPUCZDX8G ISA1 targets: parallelism, on-chip banks and engine limits, from a fingerprint.

Everything is derived from the fingerprint by the rules of spec ``dpu-isa.md`` (the same rules
as AMD's target factory): ``PP`` image banks per feature-map group, each line ``ICP`` bytes wide;
``OCP`` conv-weight banks; one depthwise-weight bank and one bias bank; every bank 2048 lines;
bank ids numbered consecutively in that order.  Names: ``DPUCZDX8G_ISA1_B<peak ops/cycle>``
for the eight shipped fingerprints, with ``_<16 hex digits>`` appended for any other one.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .errors import TargetError
from .fingerprint import (DPUCZDX8G_TYPE, FAMILY_TYPES, ICP_MAP, PP_MAP, SUPPORTED_ARCH, FeatureCode,
                          format_fingerprint, join_fingerprint, parse_fingerprint, split_fingerprint)

BANK_DEPTH = 2048
ISA_VERSION = 1

#: The feature codes AMD ships for the eight ISA1 sizes (target_factory's prototxt files).
SHIPPED_FEATURE_CODES: dict[int, int] = {
    512: 0x000056010200, 800: 0x000056010201, 1024: 0x000056010402, 1152: 0x000056010203,
    1600: 0x000056010404, 2304: 0x000056010405, 3136: 0x000056010406, 4096: 0x000056010407,
}
SIZES: tuple[int, ...] = tuple(SHIPPED_FEATURE_CODES)
SUPPORTED_NAMES: tuple[str, ...] = tuple(f"DPUCZDX8G_ISA1_B{s}" for s in SIZES)


def _supported_list() -> str:
    return ", ".join(SUPPORTED_NAMES)


@dataclass(frozen=True)
class Range:
    """An inclusive integer range, printed as AMD's target files do (``"1-16"``)."""

    lo: int
    hi: int

    def __contains__(self, v: object) -> bool:
        return isinstance(v, int) and self.lo <= v <= self.hi

    def __str__(self) -> str:
        return f"{self.lo}-{self.hi}"


@dataclass(frozen=True)
class BankGroup:
    """A group of on-chip banks: ids ``first_id .. first_id + count - 1``, each ``depth`` lines of
    ``width_bytes`` bytes.  ``kind`` is ``feature_map``, ``conv_weights``, ``dwconv_weights`` or
    ``bias``; ``amd_type`` is the target file's ``Virtual``/``Param``."""

    name: str
    kind: str
    first_id: int
    count: int
    width_bytes: int
    depth: int

    @property
    def amd_type(self) -> str:
        return "Virtual" if self.kind == "feature_map" else "Param"

    @property
    def last_id(self) -> int:
        return self.first_id + self.count - 1

    @property
    def ids(self) -> range:
        return range(self.first_id, self.first_id + self.count)

    @property
    def bank_bytes(self) -> int:
        return self.width_bytes * self.depth

    @property
    def size_bytes(self) -> int:
        return self.count * self.bank_bytes

    def __contains__(self, bank_id: object) -> bool:
        return isinstance(bank_id, int) and self.first_id <= bank_id <= self.last_id


@dataclass(frozen=True)
class ConvLimits:
    """The conv engine: kernel and stride ranges, ``stride_out_h``, supported activations."""

    kernel: Range
    stride: Range
    stride_out_h: Range
    nonlinear: tuple[str, ...]
    pixel_parallel: int
    input_channel_parallel: int
    output_channel_parallel: int


@dataclass(frozen=True)
class AluLimits:
    """The ALU engine (pooling, depthwise conv, ... on ISA1): kernel/stride/pad ranges."""

    kernel: Range
    stride: Range
    stride_out_h: Range
    pad_left: Range
    pad_top: Range
    pad_right: Range
    pad_bottom: Range
    nonlinear: tuple[str, ...]
    alu_types: tuple[str, ...]
    pixel_parallel: int
    channel_parallel: int


@dataclass(frozen=True)
class ElewLimits:
    """The element-wise engine: add/mult with an optional relu."""

    nonlinear: tuple[str, ...]
    elew_types: tuple[str, ...]
    pixel_parallel: int
    channel_parallel: int


#: Activation names used by ``*.nonlinear`` (AMD's ``relu_six`` is written ``relu6``).
NONLINEAR_NAMES = ("relu", "leaky_relu", "relu6")
#: ALU modes in ``ALUINIT exec_mode`` order (spec ``dpu-isa.md``).
ALU_TYPES = ("dwconv", "prelu", "avg_pool", "max_pool", "leaky_relu", "max_reduce",
             "dwconv_no_bias", "hsigmoid", "w16b0")
ENGINES = ("conv", "alu", "elew")


@dataclass(frozen=True)
class Target:
    """One DPUCZDX8G ISA1 configuration, fully determined by its 64-bit ``fingerprint``.

    Construct with :meth:`from_fingerprint`, :meth:`from_name`, :meth:`from_arch_json` or
    :func:`get_target`.  Equality and hashing go by fingerprint.
    """

    fingerprint: int
    features: FeatureCode = field(compare=False, repr=False)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_fingerprint(cls, fingerprint: int) -> "Target":
        """Decode a 64-bit fingerprint; another DPU family or ISA is a :class:`TargetError`."""
        type_, isa, fc = split_fingerprint(fingerprint)
        fp = format_fingerprint(fingerprint)
        if type_ != DPUCZDX8G_TYPE:
            family = FAMILY_TYPES.get(type_, f"an unknown DPU type {type_}")
            raise TargetError(f"fingerprint {fp} is {family} (type {type_}): not supported; "
                              f"fixflow supports DPUCZDX8G ISA1 targets: {_supported_list()}")
        if isa != ISA_VERSION:
            raise TargetError(f"fingerprint {fp} is DPUCZDX8G ISA{isa}: not supported; "
                              f"fixflow supports DPUCZDX8G ISA1 targets: {_supported_list()}")
        feat = FeatureCode.decode(fc)
        if feat.arch not in SUPPORTED_ARCH:
            what = (f"PP {PP_MAP[feat.arch]} x ICP {ICP_MAP[feat.arch]}" if feat.arch < len(PP_MAP)
                    else "an invalid ARCH")
            raise TargetError(f"fingerprint {fp}: ARCH {feat.arch} ({what}) is not a supported size; "
                              f"fixflow supports {_supported_list()}")
        if feat.image_bank_groups == 0:
            raise TargetError(f"fingerprint {fp} has no feature-map bank groups (bits 24-25 are 0)")
        if feat.alu_pp == 0:
            raise TargetError(f"fingerprint {fp} has ALU pixel parallelism 0 (bits 8-11)")
        return cls(fingerprint, feat)

    @classmethod
    def from_features(cls, features: FeatureCode) -> "Target":
        """The ISA1 target with these feature-code fields (encode; see :class:`FeatureCode`)."""
        return cls.from_fingerprint(join_fingerprint(DPUCZDX8G_TYPE, ISA_VERSION, features.encode()))

    @classmethod
    def from_name(cls, name: str) -> "Target":
        """``DPUCZDX8G_ISA1_B4096`` or ``DPUCZDX8G_ISA1_B4096_0101000016010407``."""
        if not isinstance(name, str):
            raise TargetError(f"a target name is a string, got {name!r}")
        m = re.fullmatch(r"DPUCZDX8G_ISA1_B(\d+)(?:_([0-9A-Fa-f]{16}))?", name.strip())
        if m is None:
            family = next((f for f in FAMILY_TYPES.values() if name.strip().upper().startswith(f.upper())), None)
            what = ("not a supported DPUCZDX8G target (only ISA1 sizes are)" if family == "DPUCZDX8G"
                    else f"{family} targets are not supported" if family else "unknown target")
            raise TargetError(f"target {name!r}: {what}; fixflow supports {_supported_list()}")
        peak = int(m.group(1))
        if m.group(2) is None:
            if peak not in SHIPPED_FEATURE_CODES:
                raise TargetError(f"target {name!r}: unknown size B{peak}; fixflow supports {_supported_list()}")
            return cls.from_fingerprint(join_fingerprint(DPUCZDX8G_TYPE, ISA_VERSION,
                                                         SHIPPED_FEATURE_CODES[peak]))
        t = cls.from_fingerprint(int(m.group(2), 16))
        if t.peak_ops != peak:
            raise TargetError(f"target {name!r}: its fingerprint is a B{t.peak_ops}, not a B{peak}")
        return t

    @classmethod
    def from_arch_json(cls, path: str | os.PathLike[str]) -> "Target":
        """Read vai_c_xir's ``arch.json``: ``{"target": NAME}`` or ``{"fingerprint": "0x..."}``."""
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise TargetError(f"{os.fspath(path)}: cannot read arch.json: "
                              f"{getattr(e, 'strerror', None) or e}") from None
        return cls.from_arch_dict(_load_json(text, os.fspath(path)), os.fspath(path))

    @classmethod
    def from_arch_dict(cls, arch: Any, where: str = "arch.json") -> "Target":
        """The target of an already-parsed arch.json object."""
        if not isinstance(arch, dict):
            raise TargetError(f"{where}: expected a JSON object with \"target\" or \"fingerprint\"")
        keys = [k for k in ("target", "fingerprint") if k in arch]
        if len(keys) != 1:
            raise TargetError(f"{where}: expected exactly one of \"target\" or \"fingerprint\", "
                              f"got keys {sorted(arch)}")
        v = arch[keys[0]]
        try:
            if keys[0] == "target":
                if not isinstance(v, str):
                    raise TargetError(f"\"target\" must be a string, got {json.dumps(v)}")
                return cls.from_name(v)
            if isinstance(v, int) and not isinstance(v, bool):
                return cls.from_fingerprint(v)
            if not isinstance(v, str):
                raise TargetError(f"\"fingerprint\" must be a hex string like \"0x0101000056010407\", "
                                  f"got {json.dumps(v)}")
            return cls.from_fingerprint(parse_fingerprint(v))
        except TargetError as e:
            raise TargetError(f"{where}: {e.message}") from None

    # -- identity -------------------------------------------------------------------------
    @property
    def type(self) -> str:
        return "DPUCZDX8G"

    @property
    def isa(self) -> int:
        """The ISA version (1)."""
        return (self.fingerprint >> 48) & 0xFF

    @property
    def feature_code(self) -> int:
        return self.fingerprint & ((1 << 48) - 1)

    @property
    def is_shipped(self) -> bool:
        """True for the eight fingerprints AMD ships (names without a hex suffix)."""
        return SHIPPED_FEATURE_CODES.get(self.peak_ops) == self.feature_code

    @property
    def base_name(self) -> str:
        """``DPUCZDX8G_ISA1_B<peak>`` without any fingerprint suffix."""
        return f"DPUCZDX8G_ISA{self.isa}_B{self.peak_ops}"

    @property
    def name(self) -> str:
        """AMD's name: ``DPUCZDX8G_ISA1_B4096``; ``..._<16 HEX>`` for a non-shipped fingerprint."""
        return self.base_name if self.is_shipped else f"{self.base_name}_{self.fingerprint:016X}"

    @property
    def fingerprint_hex(self) -> str:
        """``0x0101000056010407``."""
        return format_fingerprint(self.fingerprint)

    def __repr__(self) -> str:
        return f"Target({self.name}, {self.fingerprint_hex})"

    def __str__(self) -> str:
        return self.name

    # -- parallelism ----------------------------------------------------------------------
    @property
    def pp(self) -> int:
        """Pixel parallelism of the conv engine (output rows per CONV)."""
        return PP_MAP[self.features.arch]

    @property
    def icp(self) -> int:
        """Input-channel parallelism (= bytes per bank line)."""
        return ICP_MAP[self.features.arch]

    @property
    def ocp(self) -> int:
        """Output-channel parallelism (= number of conv-weight banks)."""
        return ICP_MAP[self.features.arch]

    @property
    def alu_pp(self) -> int:
        """Pixel parallelism of the ALU and element-wise engines."""
        return self.features.alu_pp

    @property
    def macs_per_cycle(self) -> int:
        return self.pp * self.icp * self.ocp

    @property
    def peak_ops(self) -> int:
        """Peak operations per cycle, ``2 * PP * ICP * OCP`` (the size number)."""
        return 2 * self.macs_per_cycle

    @property
    def channel_augmentation(self) -> int | None:
        """``2 * ICP`` channels when the load engine can fold a kernel's width into channels."""
        return 2 * self.icp if self.features.channel_augmentation else None

    @property
    def save_argmax(self) -> bool:
        return self.features.save_argmax

    # -- banks ----------------------------------------------------------------------------
    @cached_property
    def banks(self) -> tuple[BankGroup, ...]:
        """Bank groups VB0, VB1 (one per image group), CONVW, DWCONVW, BIAS, in id order."""
        groups: list[BankGroup] = []
        nxt = 0
        for i in range(self.features.image_bank_groups):
            groups.append(BankGroup(f"VB{i}", "feature_map", nxt, self.pp, self.icp, BANK_DEPTH))
            nxt += self.pp
        for name, kind, count in (("CONVW", "conv_weights", self.ocp), ("DWCONVW", "dwconv_weights", 1),
                                  ("BIAS", "bias", 1)):
            groups.append(BankGroup(name, kind, nxt, count, self.icp, BANK_DEPTH))
            nxt += count
        return tuple(groups)

    @property
    def num_banks(self) -> int:
        return self.banks[-1].last_id + 1

    @property
    def feature_map_groups(self) -> tuple[BankGroup, ...]:
        return tuple(g for g in self.banks if g.kind == "feature_map")

    def bank_group(self, bank_id: int) -> BankGroup:
        """The group holding global bank ``bank_id``; :class:`TargetError` if there is none."""
        for g in self.banks:
            if bank_id in g:
                return g
        raise TargetError(f"{self.name} has no bank {bank_id} (bank ids are 0-{self.num_banks - 1})")

    def bank_group_named(self, name: str) -> BankGroup:
        """The group called ``name`` (``VB0``, ``CONVW``, ...)."""
        for g in self.banks:
            if g.name == name:
                return g
        raise TargetError(f"{self.name} has no bank group {name!r} "
                          f"(it has {', '.join(g.name for g in self.banks)})")

    # -- engines --------------------------------------------------------------------------
    def _stride_out_h(self, wp_log2: int) -> Range:
        wp = 2 ** wp_log2
        return Range(1, 4 if wp == 1 or self.pp // wp >= 4 else self.pp // wp)

    @cached_property
    def conv(self) -> ConvLimits:
        nl = ("relu", "leaky_relu", "relu6") if self.features.conv_leaky_relu else ("relu", "relu6")
        return ConvLimits(Range(1, 16), Range(1, 8), self._stride_out_h(self.features.conv_write_parallel_log2),
                          nl, self.pp, self.icp, self.ocp)

    @cached_property
    def alu(self) -> AluLimits:
        nl = ("relu", "leaky_relu", "relu6") if self.features.alu_leaky_relu else ("relu", "relu6")
        return AluLimits(Range(1, 256), Range(1, 256), self._stride_out_h(self.features.alu_write_parallel_log2),
                         Range(0, 15), Range(0, 15), Range(0, 255), Range(0, 255), nl, ALU_TYPES,
                         self.alu_pp, self.icp)

    @cached_property
    def elew(self) -> ElewLimits:
        return ElewLimits(("relu",), ("add", "mult"), self.alu_pp, self.icp)

    def supported_nonlinear(self, engine: str) -> tuple[str, ...]:
        """Activations the ``conv``, ``alu`` or ``elew`` engine can fuse (besides none)."""
        if engine not in ENGINES:
            raise TargetError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
        return getattr(self, engine).nonlinear

    def conv_weight_lines(self, kernel_w: int, kernel_h: int, in_channels: int) -> int:
        """Lines of one CONVW bank an output channel's weights take: ``kw * kh * ceil(ic / ICP)``."""
        return kernel_w * kernel_h * math.ceil(in_channels / self.icp)

    def fits_weight_bank(self, kernel_w: int, kernel_h: int, in_channels: int) -> bool:
        """The weight-bank limit ``kw * kh * ceil(ic / ICP) <= depth`` of the CONVW banks."""
        return self.conv_weight_lines(kernel_w, kernel_h, in_channels) <= self.bank_group_named("CONVW").depth

    # -- output ---------------------------------------------------------------------------
    def arch_json(self, by: str = "target") -> dict[str, str]:
        """vai_c_xir's arch.json object, ``by`` ``"target"`` (the name) or ``"fingerprint"``."""
        if by == "target":
            return {"target": self.name}
        if by == "fingerprint":
            return {"fingerprint": self.fingerprint_hex}
        raise TargetError(f"arch_json(by={by!r}): expected 'target' or 'fingerprint'")

    def describe(self) -> str:
        """A few human-readable lines: sizes, banks, engines."""
        lines = [f"{self.name}  fingerprint {self.fingerprint_hex}",
                 f"  PP {self.pp} x ICP {self.icp} x OCP {self.ocp}, ALU_PP {self.alu_pp}, "
                 f"peak {self.peak_ops} ops/cycle"]
        for g in self.banks:
            lines.append(f"  {g.name:8} {g.kind:15} banks {g.first_id}-{g.last_id}  "
                         f"{g.width_bytes} B x {g.depth} lines")
        c, a = self.conv, self.alu
        lines.append(f"  conv: kernel {c.kernel}, stride {c.stride}, stride_out_h {c.stride_out_h}, "
                     f"nonlinear {'/'.join(c.nonlinear)}"
                     + (f", channel augmentation {self.channel_augmentation}" if self.channel_augmentation else ""))
        lines.append(f"  alu: kernel {a.kernel}, stride {a.stride}, pad l/t {a.pad_left} r/b {a.pad_right}, "
                     f"nonlinear {'/'.join(a.nonlinear)}")
        lines.append(f"  elew: {'/'.join(self.elew.elew_types)}, nonlinear {'/'.join(self.elew.nonlinear)}")
        return "\n".join(lines)


def _load_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise TargetError(f"{where}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from None


def all_targets() -> tuple[Target, ...]:
    """The eight shipped ISA1 targets, smallest first."""
    return tuple(Target.from_name(n) for n in SUPPORTED_NAMES)
