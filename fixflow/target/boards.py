"""Board presets: how many DPU cores of which target, at what clock, with what DDR bandwidth.

Clock and core counts are those of AMD's Vitis AI 3.0 board images (spec ``dpu-isa.md``). DDR
bandwidth is the theoretical peak of the processing system's 64-bit DDR4 interface that the DPU
reaches through its AXI ports: data rate (MT/s) x 8 bytes.  Each board's vai_c_xir ``arch.json``
ships with the package (``Board.arch_json_path``).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .dpuczdx8g import Target
from .errors import TargetError


@dataclass(frozen=True)
class Board:
    """A board: ``cores`` DPU instances of ``target`` at ``clock_mhz``, sharing ``ddr_bandwidth_gbps``."""

    name: str
    cores: int
    target_name: str
    clock_mhz: float
    ddr_mt_per_s: int
    ddr_bus_bytes: int = 8

    @property
    def target(self) -> Target:
        return Target.from_arch_json(self.arch_json_path)

    @property
    def ddr_bandwidth_gbps(self) -> float:
        """Peak DDR bandwidth in GB/s (10^9 bytes per second)."""
        return self.ddr_mt_per_s * self.ddr_bus_bytes / 1000.0

    @property
    def ddr_bytes_per_second(self) -> float:
        return self.ddr_mt_per_s * 1e6 * self.ddr_bus_bytes

    @property
    def clock_hz(self) -> float:
        return self.clock_mhz * 1e6

    @property
    def peak_ops_per_second(self) -> float:
        """All cores together: ``cores * peak_ops * clock``."""
        return self.cores * self.target.peak_ops * self.clock_hz

    @property
    def arch_json_path(self) -> Path:
        """The board's ``arch.json`` inside the installed package."""
        return Path(str(resources.files("fixflow.target").joinpath("arch", f"{self.name}.json")))


#: The presets, by lower-case name.
BOARDS: dict[str, Board] = {
    "zcu102": Board("zcu102", 3, "DPUCZDX8G_ISA1_B4096", 281.0, 2133),  # PS DDR4-2133 SODIMM
    "zcu104": Board("zcu104", 2, "DPUCZDX8G_ISA1_B4096", 300.0, 2400),  # PS DDR4-2400
    "kv260": Board("kv260", 1, "DPUCZDX8G_ISA1_B4096", 300.0, 2400),    # K26 SOM DDR4-2400
}


def get_board(name: str) -> Board:
    """The preset called ``name`` (``zcu102``, ``zcu104``, ``kv260``; case-insensitive)."""
    b = BOARDS.get(name.strip().lower()) if isinstance(name, str) else None
    if b is None:
        raise TargetError(f"unknown board {name!r}; fixflow knows {', '.join(BOARDS)}")
    return b
