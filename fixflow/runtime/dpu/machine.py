"""The interpreter's view of a DPUCZDX8G target: parallelism, banks and what each engine accepts.

All banks of an ISA1 target have the same width (ICP bytes) and depth (2048 lines), so the on-chip
memory is modelled as one flat int8 array: bank ``b`` occupies ``[b * bank_bytes, (b + 1) * bank_bytes)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: act_type codes (spec dpu-isa.md) and the target-file names of the activations
ACT_NONE, ACT_RELU, ACT_PRELU, ACT_LEAKY, ACT_RELU6 = 0, 1, 2, 3, 4
_ACT_BY_NAME = {"relu": ACT_RELU, "leaky_relu": ACT_LEAKY, "relu6": ACT_RELU6, "relu_six": ACT_RELU6,
                "prelu": ACT_PRELU}


@dataclass(frozen=True)
class Machine:
    """Geometry and engine capabilities of one target (built with :meth:`from_target`)."""

    name: str
    pp: int                      # conv pixel parallelism = banks per feature-map group
    icp: int                     # input channel parallelism = bank line width in bytes
    ocp: int                     # output channel parallelism = number of conv weight banks
    alu_pp: int                  # ALU and ELEW pixel parallelism
    image_groups: int = 2
    depth: int = 2048
    conv_acts: frozenset = frozenset({ACT_NONE, ACT_RELU, ACT_LEAKY, ACT_RELU6})
    alu_acts: frozenset = frozenset({ACT_NONE, ACT_RELU, ACT_RELU6})
    elew_acts: frozenset = frozenset({ACT_NONE, ACT_RELU})
    save_argmax: bool = True
    conv_kernel_max: int = 16
    conv_stride_max: int = 8
    alu_kernel_max: int = 256
    alu_stride_max: int = 256

    @classmethod
    def from_target(cls, target: Any) -> Machine:
        """From a :class:`fixflow.target.Target`, a target name, a fingerprint or a `Machine`."""
        if isinstance(target, Machine):
            return target
        if isinstance(target, (str, int)):
            from ...target import get_target
            target = get_target(target)

        def acts(names) -> frozenset:
            return frozenset({ACT_NONE} | {_ACT_BY_NAME[n] for n in names if n in _ACT_BY_NAME})

        return cls(name=target.name, pp=target.pp, icp=target.icp, ocp=target.ocp, alu_pp=target.alu_pp,
                   image_groups=len(target.feature_map_groups), depth=target.banks[0].depth,
                   conv_acts=acts(target.conv.nonlinear), alu_acts=acts(target.alu.nonlinear),
                   elew_acts=acts(target.elew.nonlinear), save_argmax=bool(target.save_argmax),
                   conv_kernel_max=target.conv.kernel.hi, conv_stride_max=target.conv.stride.hi,
                   alu_kernel_max=target.alu.kernel.hi, alu_stride_max=target.alu.stride.hi)

    # -- banks ------------------------------------------------------------------------------
    @property
    def width(self) -> int:
        return self.icp

    @property
    def bank_bytes(self) -> int:
        return self.depth * self.icp

    @property
    def convw_base(self) -> int:
        return self.image_groups * self.pp

    @property
    def dwconvw_bank(self) -> int:
        return self.convw_base + self.ocp

    @property
    def bias_bank(self) -> int:
        return self.dwconvw_bank + 1

    @property
    def num_banks(self) -> int:
        return self.bias_bank + 1

    @property
    def memory_bytes(self) -> int:
        return self.num_banks * self.bank_bytes

    def is_image_bank(self, bank: int) -> bool:
        return 0 <= bank < self.convw_base

    def bank_group_name(self, bank: int) -> str:
        if self.is_image_bank(bank):
            return f"VB{bank // self.pp}"
        if bank < self.dwconvw_bank:
            return "CONVW"
        return "DWCONVW" if bank == self.dwconvw_bank else "BIAS"
