"""Fast mode: the convolutions whose weights and bias are constant and whose requantization provably
fits float32 or int32 (most layers of a compiled network), run in cache-sized blocks.

Per block: the input rows are gathered (int8, as runs of consecutive cells, see :mod:`.gather`) and
cast into a per-thread float32 buffer whose last column holds 1.0, so that the bias is one more row
of the (pre-scaled) weights; one float32 matrix product into a second per-thread buffer; then the
clip to the activation's bounds in place and the cast into the int8 output. The exactness argument is
the plan's (:mod:`.fast`): every partial sum is an integer multiple of 2^-s below 2^24 * 2^-s.
"""

from __future__ import annotations

import threading

import numpy as np

try:                            # the clip ufunc itself: np.clip's Python wrapper costs ~20 us a call
    from numpy._core.umath import clip as _uclip
except ImportError:             # numpy < 2
    from numpy.core.umath import clip as _uclip

from .gather import ONE, gather_parts, split_runs

BLOCK_BYTES = 1 << 22           # a conv's float32 input block is kept near this size (L2/L3-resident;
MIN_BLOCK_ROWS = 1024           # 4 MB: ResNet-18 batch 8 ~5% faster than 0.5 MB), at least this many rows

_TLS = threading.local()


def _scratch(slot: str, n: int, dtype) -> np.ndarray:
    """A per-thread buffer of at least n items (grown on demand, reused across kernels and runs)."""
    buf = getattr(_TLS, slot, None)
    if buf is None or buf.size < n:
        buf = np.empty(max(n, 1), dtype=dtype)
        setattr(_TLS, slot, buf)
    return buf[:n]


def plan_bands(k) -> None:
    """Cut kernel `k`'s rows into bands of about BLOCK_BYTES of float32 input (at least
    MIN_BLOCK_ROWS rows) and plan each band's gather (`split_runs`)."""
    if k.fbias_in_product and not k.ones_gathered and k.run == 1 and k.x.shape[1] <= 64:
        # a short reduction over single cells: the column of 1.0 is gathered too (cell ONE holds 1), so
        # the cast into the float32 buffer is one contiguous pass instead of short strided rows
        k.x = np.concatenate([k.x, np.full((k.x.shape[0], 1), ONE, k.x.dtype)], axis=1)
        k.ones_gathered = True
    rows, t = k.x.shape
    k_len = t * k.run
    rb = max(MIN_BLOCK_ROWS, BLOCK_BYTES // max(1, 4 * (k_len + 1)))
    k.band_rows = rb
    spans = [(0, rows)] if rows <= rb else [(r0, min(rows, r0 + rb)) for r0 in range(0, rows, rb)]
    k.bands = []
    for r0, r1 in spans:
        parts = split_runs(k.x[r0:r1], k.run)
        # one part in order is k.x's own rows: None, so that a pickled plan does not store them twice
        k.bands.append((r0, r1, None if len(parts) == 1 and parts[0][2] == k.run else parts))


def _blocks(k, batch: int):
    """(b0, b1, band): whole images grouped while small, else one band of one image."""
    if len(k.bands) == 1:
        rows = k.bands[0][1]
        g = max(1, k.band_rows // max(1, rows))
        for b0 in range(0, batch, g):
            yield b0, min(batch, b0 + g), k.bands[0]
    else:
        for b in range(batch):
            for band in k.bands:
                yield b, b + 1, band


def exec_conv_folded(k, v: np.ndarray, batch: int) -> None:
    """Run conv kernel `k` (``k.fbias`` or ``k.bias32`` set) on the batch of values `v` (B, n) int8."""
    k_len = k.x.shape[1] * k.run
    rows = k.x.shape[0]
    n_out = k.out_size // rows
    kp = k_len + 1 if k.fbias_in_product and not k.ones_gathered else k_len
    s = k.params["shift_cut"] + 1
    for b0, b1, (r0, r1, parts) in _blocks(k, batch):
        nr = r1 - r0
        n = (b1 - b0) * nr
        x = _scratch("x", n * kp, np.float32).reshape(n, kp)
        if parts is None:
            parts = [(None, k.x[r0:r1], k.run)]
        for i in range(b1 - b0):
            x[i * nr:(i + 1) * nr, :k_len] = gather_parts(v[b0 + i], parts, k_len)
        if kp > k_len:
            x[:, k_len] = 1.0
        acc = _scratch("acc", n * n_out, np.float32).reshape(n, n_out)
        dst = v[b0:b1, k.out_start + r0 * n_out:k.out_start + r1 * n_out]
        if k.fbias is not None:
            np.matmul(x, k.wchunks[0], out=acc)                    # (2*acc + bias + 2^(s-1)) / 2^s, exact
            if not k.fbias_in_product:
                acc += k.fbias
            if k.offset:        # + 128 is in the bias: the values are >= 0, so the cast truncates = floors
                _uclip(acc, k.lo + 128, k.hi + 128, out=acc)
                du = dst.view(np.uint8)
                du[...] = acc.reshape(b1 - b0, -1)
                np.bitwise_xor(du, np.uint8(0x80), out=du)
                continue
            if k.lo < 0:        # else clipping at 0 first makes the int8 cast's truncation a floor
                np.floor(acc, out=acc)
            _uclip(acc, k.lo, k.hi, out=acc)
            dst[...] = acc.reshape(b1 - b0, -1)
            continue
        acc32 = _scratch("acc32", n * n_out, np.int32).reshape(n, n_out)
        for j, ((a, c), wc) in enumerate(zip(k.chunks, k.wchunks)):
            np.matmul(x[:, a:c], wc, out=acc)                       # exact integers below 2^24
            if j == 0:
                acc32[...] = acc
            else:
                acc32 += acc.astype(np.int32)
        acc32 *= 2
        acc32 += k.bias32
        acc32 += np.int32(1 << (s - 1))
        acc32 >>= s
        _uclip(acc32, k.lo, k.hi, out=acc32)
        dst[...] = acc32.reshape(b1 - b0, -1)
