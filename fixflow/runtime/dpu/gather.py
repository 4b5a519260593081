"""The fast plan's gathers: index arrays stored as runs of consecutive value cells, and copied as one
void item per run at run time.

The value space (see :mod:`.fast`) starts with the 256 byte constants, then a block of ``RUN_MAX``
zeros and one of ``RUN_MAX`` -128 values, so that a run of padding cells can point into a block and be
copied like any other run.
"""

from __future__ import annotations

import numpy as np

ZERO, ONE, MIN = 0, 1, 128      # value cells 0..255 hold the byte constants: cell v = int8(v)
RUN_MAX = 4096                  # then a block of RUN_MAX zeros and one of RUN_MAX -128 (padding runs)
ZERO_BLOCK, MIN_BLOCK = 256, 256 + RUN_MAX
NCONST = 256 + 2 * RUN_MAX


def compact(x: np.ndarray) -> tuple[np.ndarray, int]:
    """(base, run) with x == base[..., None] + arange(run) over its last axis split in runs of `run`
    cells; a run is consecutive cells, or all padding (ZERO or MIN cells, which then point into the
    zero or -128 block). The longest run that works is the gcd of the positions where some row breaks
    (capped at RUN_MAX); run 1 keeps x as it is. Stored plans keep only the bases."""
    n = x.shape[-1]
    if n < 2:
        return x, 1
    a, b = x[..., :-1].reshape(-1, n - 1), x[..., 1:].reshape(-1, n - 1)
    cont = (b == a + 1) | ((a == b) & ((a == ZERO) | (a == MIN)))
    breaks = np.flatnonzero(~cont.all(axis=0)) + 1
    run = int(np.gcd.reduce(np.append(breaks, n)))
    run = max(d for d in range(1, min(run, RUN_MAX) + 1) if run % d == 0)
    if run == 1:
        return x, 1
    r = x.reshape(-1, run)
    zero = r[:, 0] == ZERO
    low = r[:, 0] == MIN
    pad = (r == r[:, :1]).all(axis=1)           # all-padding runs (a consecutive run never repeats)
    base = np.where(pad & zero, ZERO_BLOCK, np.where(pad & low, MIN_BLOCK, r[:, 0])).astype(x.dtype)
    return base.reshape(x.shape[:-1] + (n // run,)), run


def gather(v: np.ndarray, base: np.ndarray, run: int) -> np.ndarray:
    """v[:, cells] for the cells stored as runs (see `compact`), without materializing the full index
    array: each run is one item of a `run`-byte void dtype laid over overlapping windows of `v` (a
    C-contiguous (B, n) int8 array), so each index is one memcpy."""
    if run == 1:
        return v[:, base]
    vv = np.ndarray((v.shape[0], v.shape[1] - run + 1), dtype=f"V{run}", buffer=v,
                    strides=(v.strides[0], v.strides[1]))
    if v.shape[0] == 1:
        g = vv[0][base][None]
    else:
        g = np.empty((v.shape[0],) + base.shape, dtype=vv.dtype)
        for i in range(v.shape[0]):
            g[i] = vv[i][base]
    return g.view(np.int8).reshape((v.shape[0],) + base.shape[:-1] + (-1,))


def void_row(v: np.ndarray, run: int) -> np.ndarray:
    """Row `v` (a contiguous 1-D int8 array) as overlapping items of `run` bytes: item i = v[i:i+run]."""
    return np.ndarray((v.shape[0] - run + 1,), dtype=f"V{run}", buffer=v, strides=(1,))


def split_runs(base: np.ndarray, run: int) -> list[tuple[np.ndarray | None, np.ndarray, int]]:
    """Parts ``(rows, base, run)`` that together gather the (M, T) runs `base`: the rows where runs of
    several times `run` cells are consecutive (e.g. the interior pixels of a 7x7 convolution over a
    3-channel image, where each kernel row is one run of 21 bytes, while the border rows mix image and
    padding cells every 3 bytes) as one part with the longer runs, the other rows as another.
    ``rows`` is None when a part covers all rows in order. One part when no split pays."""
    m, t = base.shape
    n = t * run
    whole = [(None, base, run)]
    if m < 16 or t < 2:
        return whole
    # a break at position p (cells p-1, p not consecutive); a padding run points into a block of
    # consecutive zero / -128 cells, so only padding that stays inside one run looks consecutive
    ends = base[:, :-1] + run
    brk = base[:, 1:] != ends
    pos = np.arange(1, t, dtype=np.int64) * run
    rg = np.gcd(np.gcd.reduce(np.where(brk, pos, 0), axis=1), n)      # per row: longest run that works
    def cost(items: float, size: int) -> float:       # a copy costs a call per item plus its bytes
        return items * (1.0 + size / 32.0)

    whole_cost = cost(m * t, run)
    best = None
    for r in range(2 * run, min(n, RUN_MAX) + 1, run):
        if n % r:
            continue
        ok = rg % r == 0
        c = int(ok.sum())
        # the long runs, the other rows' short runs, and the copy of the long-run rows into place
        split = cost(c * (n // r), r) + cost((m - c) * t, run) + (cost(c, n) if c < m else 0.0)
        split += 2000.0                                   # a second part: its calls and temporaries
        if c and split < 0.7 * whole_cost and (best is None or split < best[1]):
            best = (r, split, ok)
    if best is None:
        return whole
    r, _, ok = best
    f = r // run
    main_rows = np.flatnonzero(ok)
    main = base[main_rows][:, ::f]
    if main_rows.size == m:
        return [(None, np.ascontiguousarray(main), r)]
    rest_rows = np.flatnonzero(~ok)
    return [(main_rows.astype(base.dtype), np.ascontiguousarray(main), r),
            (rest_rows.astype(base.dtype), np.ascontiguousarray(base[rest_rows]), run)]


def gather_parts(v: np.ndarray, parts: list[tuple[np.ndarray | None, np.ndarray, int]], k: int) -> np.ndarray:
    """The (M, k) int8 cells of `parts` (see `split_runs`) gathered from `v` (a contiguous 1-D row)."""
    if len(parts) == 1 and parts[0][0] is None:
        _, base, run = parts[0]
        if run == 1:
            return v[base]
        return void_row(v, run)[base].view(np.int8).reshape(base.shape[0], k)
    out = np.empty((sum(p[1].shape[0] for p in parts), k), dtype=np.int8)
    rows_v = out.view(f"V{k}")[:, 0]
    for rows, base, run in parts:
        g = void_row(v, run)[base]
        rows_v[rows] = g.view(f"V{k}")[:, 0]
    return out
