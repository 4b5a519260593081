"""Tiling of a sliding-window layer (CONV or ALU) into bands that fit the feature-map banks.

Layout of one band in a feature-map bank group (PP banks of `depth` lines, ICP bytes a line):
- the band covers output rows [oh0, oh1) and output columns [ow0, ow1); its input window starts at
  input row `r_lo = oh0*sh - pt` and column `c_lo = ow0*sw - pl` (padding rows/columns are never
  loaded: the engine's pad fields zero them);
- input row r is virtual row v = r - r_lo; block b = v // sh lives in bank b % PP at line
  `in_base + (b // PP)*sh*RL + (v % sh)*RL + (c - c_lo)*cg` (RL = lines a row, cg = lines a pixel),
  the layout the engines' row-to-bank map reads (dpu-semantics.md (2).3);
- output row q = oh - oh0 lives in bank q % PP at line `out_base + (q // PP)*ORL + (ow - ow0)*opl`.
A strip is what one instruction computes: up to `strip` (PP for CONV, ALU_PP for ALU) output rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

#: field limits the layouts must respect (logical values, from the ISA1 field table)
CONV_ENDL_MAX = 1024      # CONVINIT jump_read_endl / jump_write_endl (10 bits, minus)
ALU_ENDL_MAX = 8192       # ALUINIT jump_read_endl / jump_write_endl (13 bits, minus)
LENGTH_MAX = 1024         # CONV length, LOAD/SAVE length (10 bits, minus)
JUMP_MAX = 1024           # jump_read / jump_write of CONVINIT/ALUINIT (10 bits, minus)
MAX_ADDR_GROUPS = 4       # bank_addr_in, _in_1, _in_2, _in_3
MAX_CHANNEL_GROUPS = 256  # channel_group of CONV / ALUINIT / ELEW (8 bits, minus)


class TilingError(ValueError):
    """A layer that no band layout fits (reported as a CPU placement or a compile error)."""


@dataclass(frozen=True)
class Geometry:
    """What the tiler needs to know about one layer."""

    h: int
    w: int
    cg: int              # input lines per pixel (ceil(C / ICP))
    oh: int
    ow: int
    kh: int
    kw: int
    sh: int
    sw: int
    pt: int
    pl: int
    opl: int             # output lines per pixel
    strip: int           # rows per instruction (PP or ALU_PP)
    alu: bool
    n_inputs: int = 1    # maps loaded side by side in the input region (ELEW)
    extra_regions: int = 0  # output-sized regions beside the input window and the output (a conv fused with
                            # an ELEW: the ELEW's other inputs and its result), in either half


@dataclass(frozen=True)
class Band:
    """Output rows [oh0, oh1) x columns [ow0, ow1) computed from one loaded input window."""

    oh0: int
    oh1: int
    ow0: int
    ow1: int


@dataclass(frozen=True)
class Plan:
    """A layer's tiling: uniform bands of `rows` output rows and `cols` output columns."""

    geom: Geometry
    rows: int
    cols: int
    pp: int
    half: int

    def bands(self) -> list[Band]:
        g = self.geom
        return [Band(r, min(r + self.rows, g.oh), c, min(c + self.cols, g.ow))
                for r in range(0, g.oh, self.rows) for c in range(0, g.ow, self.cols)]

    @property
    def step(self) -> int:
        """Output rows of one instruction: the engine's strip, or fewer when a band is shorter."""
        return min(self.geom.strip, self.rows)

    def strips(self, band: Band) -> list[tuple[int, int]]:
        """(first output row, valid rows) of each instruction of a band."""
        s = self.step
        return [(q, min(s, band.oh1 - q)) for q in range(band.oh0, band.oh1, s)]


def in_rows(g: Geometry, n_out: int) -> int:
    """Virtual input rows of a window of `n_out` output rows."""
    return (n_out - 1) * g.sh + g.kh


def in_cols(g: Geometry, n_out: int) -> int:
    return (n_out - 1) * g.sw + g.kw


def row_lines(g: Geometry, cols: int) -> int:
    """RL: bank lines one stored input row takes."""
    return in_cols(g, cols) * g.cg


def in_lines(g: Geometry, rows: int, cols: int, pp: int) -> int:
    """Lines a band's input takes in each bank."""
    blocks = math.ceil(in_rows(g, rows) / g.sh)
    return math.ceil(blocks / pp) * g.sh * row_lines(g, cols)


def out_lines(g: Geometry, rows: int, cols: int, pp: int) -> int:
    return math.ceil(rows / pp) * cols * g.opl


def _addr_groups_ok(g: Geometry, pp: int) -> bool:
    # the worst strip starts at bank (pp - strip) of the group (ALU strips of ALU_PP rows)
    first = 0 if g.strip == pp else pp - g.strip
    blocks = math.ceil(in_rows(g, g.strip) / g.sh)
    return math.ceil((first + blocks) / pp) <= MAX_ADDR_GROUPS


def fits(g: Geometry, rows: int, cols: int, pp: int, half: int) -> bool:
    """Whether a band of rows x cols output pixels fits the per-band budget `half` lines."""
    endl = ALU_ENDL_MAX if g.alu else CONV_ENDL_MAX
    return (cols <= LENGTH_MAX and row_lines(g, cols) <= endl and cols * g.opl <= endl
            and g.n_inputs * in_lines(g, rows, cols, pp) <= half and out_lines(g, rows, cols, pp) <= half
            and len(extra_regions(g, rows, cols, pp, half)) >= g.extra_regions)


def extra_regions(g: Geometry, rows: int, cols: int, pp: int, half: int) -> list[int]:
    """First lines of the output-sized regions that fit beside a band's input window (in the lower half,
    after it) and its output (in the upper half, after it), at most `g.extra_regions`."""
    ol = out_lines(g, rows, cols, pp)
    if g.extra_regions == 0 or ol == 0:
        return []
    lo = g.n_inputs * in_lines(g, rows, cols, pp)
    res = [lo + k * ol for k in range((half - lo) // ol)] + [half + ol + k * ol for k in range((half - ol) // ol)]
    return res[:g.extra_regions]


def plan(g: Geometry, pp: int, half: int, rows: int | None = None, cols: int | None = None) -> Plan:
    """The tiling with the widest columns, then the most rows (multiples of the strip), that fits.

    `rows`/`cols` force a tiling (a pass option, for experiments); it must fit.
    """
    if g.cg > MAX_CHANNEL_GROUPS:
        raise TilingError(f"{g.cg} channel groups a pixel: the channel_group field holds at most {MAX_CHANNEL_GROUPS}")
    if g.cg > JUMP_MAX or g.opl > JUMP_MAX:
        raise TilingError(f"{g.cg * 1} lines a pixel is beyond the {JUMP_MAX}-line jump fields")
    if not _addr_groups_ok(g, pp):
        raise TilingError(f"a {g.kh}-row kernel with stride {g.sh} spans more than {MAX_ADDR_GROUPS} bank "
                          f"rounds of the {pp} feature-map banks")
    if rows is not None or cols is not None:
        r = min(rows or g.strip, g.oh)
        c = min(cols or g.ow, g.ow)
        if r % g.strip and r > g.strip and r != g.oh:
            raise TilingError(f"band rows {r} must be a multiple of {g.strip} (or fewer)")
        if not fits(g, r, c, pp, half):
            raise TilingError(f"a band of {r} rows x {c} columns does not fit the feature-map banks")
        return Plan(g, r, c, pp, half)
    rows = min(g.strip, g.oh)
    cols = 0
    while rows >= 1:                  # widest columns for a full strip; fewer rows if even 1 column fails
        cols = g.ow
        while cols >= 1 and not fits(g, rows, cols, pp, half):
            cols = cols - 1 if cols <= 8 else math.ceil(cols / 2)
        if cols >= 1:
            break
        rows -= 1
    if rows < 1:
        raise TilingError("not even one output pixel's input window fits the feature-map banks")
    # balance the column tiles
    n = math.ceil(g.ow / cols)
    cols = math.ceil(g.ow / n)
    if rows == min(g.strip, g.oh):
        while rows < g.oh and fits(g, min(rows + g.strip, g.oh), cols, pp, half):
            rows = min(rows + g.strip, g.oh)
    return Plan(g, rows, cols, pp, half)


def plan_channels(g: Geometry, pp: int, half: int, rows: int | None = None,
                  cols: int | None = None) -> Plan:
    """`plan` for a channel-independent layer (ALU, ELEW): when no band of all the channels fits, the
    channels are split into tiles of fewer lines a pixel (`Plan.geom.cg`), halving until one fits."""
    cgt = min(g.cg, MAX_CHANNEL_GROUPS)
    while True:
        try:
            return plan(replace(g, cg=cgt, opl=cgt), pp, half, rows, cols)
        except TilingError:
            if cgt == 1:
                raise
            cgt = math.ceil(cgt / 2)


__all__ = ["Geometry", "Band", "Plan", "plan", "plan_channels", "fits", "extra_regions", "in_rows", "in_cols", "row_lines", "in_lines",
           "out_lines", "TilingError"]
