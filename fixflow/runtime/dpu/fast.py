"""Fast mode: decode once into a cached plan of large gathers, matrix products and scatters.

Every address an instruction touches is static, so the plan is built by *symbolic* execution: instead
of bytes, the plan-time bank model holds, for every bank byte, the index of the value it holds in one
flat "value space" (the 256 byte constants, then every DDR region, then every output of a compute
instruction). LOAD and SAVE only move these indices, so they cost nothing at run time; each CONV, ALU,
ELEW and SAVE-argmax becomes an op that reads value indices and appends new values. Values are never
overwritten (single assignment), so the only ordering that matters is data dependence: each op gets a
level (1 + the deepest op it reads from), and ops of one level with the same configuration are merged:
the CONV tiles of a layer that share weights become one matrix product over the stacked rows, tiles that
share inputs one product over the concatenated weights. Finally the value space is renumbered so that
every merged op writes one contiguous slice, gather indices are stored as the first cell of each run of
consecutive cells, and constant cells that only folded weights read are left out of the per-batch
values (a batch is a ``(B, values)`` int8 array).

Exactness by construction: a CONV product runs in float32 only over reductions whose partial sums are
provably below 2^24 (bound per output channel from the actual weights when they are constant, and from
the range of the inputs: int8, or 0..127 where every input is known to be >= 0, e.g. ReLU outputs);
longer reductions are split into such chunks, each summed exactly in integers. Everything else is
integer arithmetic (:mod:`.arith`). The folded convs run in :mod:`.fastconv`, the gathers in :mod:`.gather`.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .arith import alu_compute, conv_requant, elew_compute
from .errors import DPUExecError
from .fastconv import exec_conv_folded, plan_bands
from .gather import MIN, MIN_BLOCK, NCONST, ONE, RUN_MAX, ZERO, ZERO_BLOCK  # noqa: F401
from .gather import compact as _compact
from .gather import gather as _gather
from .machine import ACT_NONE, ACT_RELU, ACT_RELU6, Machine
from .reference import scatter
from .steps import DWCV, DWCV_NB, MAXPOOL, MAXREDUCE, W16B0, Decoder, Step

F32_LIMIT = 1 << 24
ALIGN = 64                      # regions and kernel outputs start at multiples of ALIGN value cells


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


@dataclass
class _Op:
    kind: str
    sig: tuple
    params: dict
    x: np.ndarray
    w: np.ndarray | None
    b: np.ndarray | None
    out_start: int
    out_shape: tuple[int, int]
    level: int
    index: int


@dataclass
class Kernel:
    """One merged op of the plan: reads values at ``x``/``w``/``b`` and writes ``out`` (a slice)."""

    kind: str
    params: dict
    x: np.ndarray
    w: np.ndarray | None
    b: np.ndarray | None
    out_start: int
    out_size: int
    wconst: np.ndarray | None = None      # folded constant weights (conv: float32 chunks)
    bconst: np.ndarray | None = None
    run: int = 1                          # x holds bases of runs of `run` consecutive cells
    chunks: list[tuple[int, int]] = field(default_factory=list)
    wchunks: list[np.ndarray] = field(default_factory=list)   # contiguous float32 weight chunks
    bias32: np.ndarray | None = None      # conv: bias * 2^shift_bias in int32 when every sum fits int32
    fbias: np.ndarray | None = None       # conv: (bias * 2^shift_bias + 2^(s-1)) / 2^s when all fits float32
    instructions: list[int] = field(default_factory=list)
    fbias_in_product: bool = False        # conv: fbias is the last row of wchunks[0] (times a column of 1.0)
    offset: bool = False                  # conv: fbias (in the product) also adds 128 (see fastconv)
    bands: list = field(default_factory=list)     # conv (folded): (r0, r1, gather parts) per row band
    band_rows: int = 0
    xstarts: list[int] | None = None      # elew: each input is the slice of out_size values from here
    ones_gathered: bool = False           # conv: x's last column reads cell ONE (the bias row's factor)
    lo: int = -128                        # conv: the saturation bounds after the activation
    hi: int = 127


def _term_bounds(w: np.ndarray, nonneg: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per reduction row and output column, the largest positive and negative value a term x*w can take
    (x int8, or in 0..127 when every input is known to be non-negative)."""
    w = w.astype(np.int64)
    lo = 0 if nonneg else -128
    pos = np.maximum(np.maximum(127 * w, lo * w), 0)
    neg = np.maximum(np.maximum(-127 * w, -lo * w), 0)
    return pos, neg


def _sum_bound(pos: np.ndarray, neg: np.ndarray) -> int:
    """The largest |partial sum| of a reduction (any subset of its terms, any order), over its columns."""
    if pos.shape[0] == 0:
        return 0
    return int(np.maximum(pos.sum(axis=0), neg.sum(axis=0)).max(initial=0))


def _chunks(pos: np.ndarray, neg: np.ndarray) -> list[tuple[int, int]]:
    """Split the reduction axis so that in each chunk every partial sum (any subset of the chunk's
    terms: the positive ones sum to at most `pos`, the negative ones to at least -`neg`, per row and
    column) stays below 2^24 in magnitude."""
    k = pos.shape[0]
    limit = F32_LIMIT - 1
    if k == 0 or _sum_bound(pos, neg) <= limit:
        return [(0, k)]
    out, start = [], 0
    rp = np.zeros(pos.shape[1], dtype=np.int64)
    rn = np.zeros(pos.shape[1], dtype=np.int64)
    for i in range(k):
        if max((rp + pos[i]).max(), (rn + neg[i]).max()) > limit:
            out.append((start, i))
            start, rp, rn = i, pos[i].copy(), neg[i].copy()
        else:
            rp += pos[i]
            rn += neg[i]
    out.append((start, k))
    return out


def _v2(values: np.ndarray) -> int | None:
    """The exponent of the largest power of two dividing every value (None when all are 0)."""
    g = int(np.gcd.reduce(np.abs(values.astype(np.int64)).ravel(), initial=0))
    return None if g == 0 else (g & -g).bit_length() - 1


class _Builder:
    def __init__(self, machine: Machine, region_sizes: Mapping[int, int]):
        self.m = machine
        self.region_start: dict[int, int] = {}
        pos = NCONST
        for r in sorted(region_sizes):
            self.region_start[r] = pos
            pos = _align(pos + int(region_sizes[r]))
        self.data_end = pos
        self.n = pos
        self.prov = np.zeros(machine.memory_bytes + 2, dtype=np.int64)
        self.prov[machine.memory_bytes + 1] = MIN
        self.dprov = {r: self.region_start[r] + np.arange(int(s), dtype=np.int64) for r, s in region_sizes.items()}
        self.ops: list[_Op] = []
        # the level of the op that produced each bank byte / DDR byte (0: a constant or an input)
        self.lvl = np.zeros(machine.memory_bytes + 2, dtype=np.int32)
        self.dlvl = {r: np.zeros(int(sz), dtype=np.int32) for r, sz in region_sizes.items()}

    def level_of(self, s: Step) -> int:
        """1 + the deepest level among the bank bytes the step reads."""
        best = 0
        for a in (s.x, s.w, s.b, s.src):
            if a is not None and a.size:
                best = max(best, int(self.lvl[a].max()))
        return best + 1

    def add_op(self, s: Step, kind: str, sig: tuple, params: dict, x, w, b, out_shape) -> tuple[np.ndarray, int]:
        level = self.level_of(s)
        start = self.n
        self.n += out_shape[0] * out_shape[1]
        self.ops.append(_Op(kind, sig, params, x, w, b, start, out_shape, level, s.index))
        return start + np.arange(out_shape[0] * out_shape[1], dtype=np.int64).reshape(out_shape), level

    def write_bank(self, s: Step, cells: np.ndarray, levels: np.ndarray | int) -> None:
        fill = s.out.shape[1] - cells.shape[1]
        if fill:
            cells = np.concatenate([cells, np.full((cells.shape[0], fill), ZERO, dtype=np.int64)], axis=1)
        scatter(self.prov, s.out, cells)
        if isinstance(levels, np.ndarray):
            if fill:
                levels = np.concatenate([levels, np.zeros((levels.shape[0], fill), dtype=np.int32)], axis=1)
            scatter(self.lvl, s.out, levels)
        else:
            self.lvl[s.out] = levels

    def step(self, s: Step) -> None:
        prov = self.prov
        if s.kind == "nop":
            return
        if s.kind == "load":
            if s.params["const"] is not None:
                cells = np.full(s.ddr.shape, s.params["const"] & 0xFF, dtype=np.int64)
                levels = np.zeros(s.ddr.shape, dtype=np.int32)
            else:
                cells = self.dprov[s.reg][s.ddr]
                levels = self.dlvl[s.reg][s.ddr]
            if s.mask is not None:
                cells = np.where(s.mask, cells, ZERO)
                levels = np.where(s.mask, levels, 0)
            self.write_bank(s, cells, levels)
        elif s.kind == "save":
            mode = s.params["mode"]
            if mode == "const":
                cells = np.full(s.ddr.shape, s.params["const"] & 0xFF, dtype=np.int64)
                levels = np.zeros(s.ddr.shape, dtype=np.int32)
            elif mode == "copy":
                cells = prov[s.src]
                levels = self.lvl[s.src]
            else:
                x = prov[s.src]
                out, level = self.add_op(s, "argmax", ("argmax", mode, x.shape[1]), {"mode": mode}, x, None,
                                         None, (x.shape[0], 1))
                cells = out[:, 0]
                levels = np.full(cells.shape, level, dtype=np.int32)
            scatter(self.dprov[s.reg], s.ddr, cells)
            scatter(self.dlvl[s.reg], s.ddr, levels)
        elif s.kind == "conv":
            p = s.params
            x, w, b = prov[s.x], prov[s.w], prov[s.b]
            sig = ("conv", x.shape[1], w.shape[1], p["shift_cut"], p["shift_bias"], p["act"])
            self.write_bank(s, *self.add_op(s, "conv", sig, p, x, w, b, (x.shape[0], w.shape[1])))
        elif s.kind == "alu":
            p = s.params
            x = prov[s.x]
            w = prov[s.w] if s.w is not None else None
            b = prov[s.b] if s.b is not None else None
            sig = ("alu", x.shape[1], x.shape[2]) + tuple(sorted(p.items()))
            self.write_bank(s, *self.add_op(s, "alu", sig, p, x, w, b, (x.shape[0], x.shape[2])))
        elif s.kind == "elew":
            p = s.params
            x = prov[s.x]
            sig = ("elew", x.shape[0], x.shape[2]) + tuple(sorted(p.items()))
            self.write_bank(s, *self.add_op(s, "elew", sig, p, x, None, None, (x.shape[1], x.shape[2])))


def _fingerprint(arrays: Sequence[np.ndarray | None]) -> tuple:
    """A cheap key for a tuple of index arrays: shapes and a strided sample (equal arrays, equal keys)."""
    key = []
    for a in arrays:
        if a is None:
            key.append(None)
            continue
        flat = a.reshape(-1)
        sample = flat[::max(1, flat.size // 256)]
        key.append((a.shape, hashlib.blake2b(np.ascontiguousarray(sample).tobytes(), digest_size=8).digest()))
    return tuple(key)


def _same(a: Sequence[np.ndarray | None], b: Sequence[np.ndarray | None]) -> bool:
    return all((x is None and y is None) or (x is not None and y is not None and np.array_equal(x, y))
               for x, y in zip(a, b))


def _group_equal(items: list, arrays) -> list[list]:
    """Partition `items` into groups whose `arrays(item)` tuples are exactly equal (first-seen order)."""
    buckets: dict[tuple, list[list]] = defaultdict(list)
    order: list[list] = []
    for it in items:
        arrs = arrays(it)
        for group in buckets[_fingerprint(arrs)]:
            if _same(arrays(group[0]), arrs):
                group.append(it)
                break
        else:
            group = [it]
            buckets[_fingerprint(arrs)].append(group)
            order.append(group)
    return order


def _merge(ops: list[_Op]) -> list[tuple[str, dict, list[list[_Op]]]]:
    """Group ops by (level, signature, weights); within a conv group also join clusters sharing inputs.
    Returns kernels as (kind, params, column blocks), each column block a list of row-stacked ops."""
    by_level_sig: dict[tuple, list[_Op]] = defaultdict(list)
    for op in ops:
        by_level_sig[(op.level, op.sig)].append(op)
    kernels = []
    for (_level, sig), members in sorted(by_level_sig.items(), key=lambda kv: kv[0][0]):
        clusters = _group_equal(members, lambda o: (o.w, o.b))       # same weights: stack rows
        if sig[0] != "conv" or len(clusters) == 1:
            kernels += [(c[0].kind, c[0].params, [c]) for c in clusters]
            continue
        # clusters reading the same inputs (op by op, same order): put their weights side by side
        for blocks in _group_equal(clusters, lambda c: tuple(o.x for o in c)):
            if len({len(c) for c in blocks}) == 1:
                kernels.append(("conv", blocks[0][0].params, blocks))
            else:
                kernels += [("conv", c[0].params, [c]) for c in blocks]
    return kernels


class FastPlan:
    """A compiled program: run it on batches of DDR regions."""

    def __init__(self, machine: Machine, program: Sequence, region_sizes: Mapping[int, int],
                 consts: Mapping[int, np.ndarray]):
        self.machine = machine
        self.region_sizes = {int(r): int(s) for r, s in region_sizes.items()}
        self.const_regs = tuple(sorted(int(r) for r in consts))
        b = _Builder(machine, self.region_sizes)
        dec = Decoder(machine, self.region_sizes)
        for s in dec.steps(program):
            b.step(s)
        self.region_start = b.region_start
        base = np.zeros(b.data_end, dtype=np.int8)
        base[:256] = np.arange(256, dtype=np.int64).astype(np.uint8).view(np.int8)
        base[MIN_BLOCK:MIN_BLOCK + RUN_MAX] = -128
        for r, c in consts.items():
            c = np.asarray(c).reshape(-1).view(np.int8)
            if c.size != self.region_sizes[r]:
                raise DPUExecError(f"constant region REG_{r} has {c.size} bytes, the program's size is "
                                   f"{self.region_sizes[r]}")
            base[b.region_start[r]:b.region_start[r] + c.size] = c
        self.base = base
        self._const_ok = np.zeros(b.data_end, dtype=bool)
        self._const_ok[:NCONST] = True
        for r in consts:
            self._const_ok[b.region_start[r]:b.region_start[r] + self.region_sizes[r]] = True
        self._build(b)

    # -- plan construction -----------------------------------------------------------------
    def _build(self, b: _Builder) -> None:
        merged = _merge(b.ops)
        remap = np.arange(b.n, dtype=np.int64)
        pos = _align(b.data_end)
        layouts = []
        for kind, params, blocks in merged:
            # result layout: rows = stacked ops of a block, columns = blocks side by side
            outs = [np.concatenate([o.out_start + np.arange(o.out_shape[0] * o.out_shape[1]).reshape(o.out_shape)
                                    for o in blk]) for blk in blocks]
            out = np.concatenate(outs, axis=1)
            remap[out.ravel()] = pos + np.arange(out.size)
            layouts.append((kind, params, blocks, pos, out.size))
            pos = _align(pos + out.size)
        self.n_values = pos
        # which values are known to be >= 0 (constants, ReLU outputs, ...): tighter product bounds
        self._nonneg = np.zeros(pos, dtype=bool)
        self._nonneg[:128] = True
        self._nonneg[ZERO_BLOCK:ZERO_BLOCK + RUN_MAX] = True
        self._nonneg[NCONST:b.data_end] = self._const_ok[NCONST:] & (self.base[NCONST:] >= 0)
        idx_t = np.int32 if pos < 2**31 else np.int64
        self.kernels: list[Kernel] = []
        for kind, params, blocks, start, size in layouts:
            first = blocks[0]
            # stack the ops' pixels: axis 0 of (pixels, ...) inputs, axis 1 of ELEW's (num, pixels, C)
            x = remap[np.concatenate([o.x for o in first], axis=1 if kind == "elew" else 0)].astype(idx_t)
            if kind == "conv":
                w = remap[np.concatenate([blk[0].w for blk in blocks], axis=1)]
                bias = remap[np.concatenate([blk[0].b for blk in blocks])]
            else:
                w = remap[first[0].w] if first[0].w is not None else None
                bias = remap[first[0].b] if first[0].b is not None else None
            if kind == "conv":
                x, w = self._drop_zero_terms(x, w)
            x, run = _compact(x)
            k = Kernel(kind, params, x, w, bias, start, size, run=run,
                       instructions=sorted(o.index for blk in blocks for o in blk))
            self._fold(k)
            self._nonneg[start:start + size] = self._writes_nonneg(k)
            self.kernels.append(k)
        del self._nonneg
        # the DDR after the program: every data region, and a constant region only if it was written
        self.final_ddr = {r: remap[d] for r, d in b.dprov.items()
                          if r not in self.const_regs
                          or not np.array_equal(d, b.region_start[r] + np.arange(d.size))}
        self.final_banks = remap[b.prov[:self.machine.memory_bytes]]
        self._prune_constants(b.data_end)
        for k in self.kernels:
            if k.kind == "conv" and (k.fbias is not None or k.bias32 is not None):
                plan_bands(k)
            elif k.kind == "elew":
                bases = k.x.reshape(k.x.shape[0], -1)
                if k.run > 1 and (np.diff(bases, axis=1) == k.run).all():
                    k.xstarts = [int(b) for b in bases[:, 0]]

    def _prune_constants(self, data_end: int) -> None:
        """Drop from the per-batch value space the constant-region cells no run-time gather reads
        (folded weights were copied into the plan), so a batch row does not carry the whole CONST
        region. The order of the kept cells is unchanged, so runs of consecutive cells stay runs."""
        keep = ~self._const_ok.copy()
        keep[:NCONST] = True
        used = np.zeros(data_end, dtype=bool)

        def mark(a: np.ndarray | None, run: int = 1) -> None:
            if a is None:
                return
            c = a.ravel()
            c = c[c < data_end]
            for i in range(run):
                used[c + i] = True

        for k in self.kernels:
            mark(k.x, k.run)
            mark(k.w)
            mark(k.b)
        for d in self.final_ddr.values():
            mark(d)
        keep |= used
        for r in self.const_regs:       # drop whole ALIGN blocks only, so later cells keep their alignment
            st, sz = self.region_start[r], self.region_sizes[r]
            seg = keep[st:st + sz]
            extra = (-int((~seg).sum())) % ALIGN
            if extra:
                seg[np.flatnonzero(~seg)[-extra:] if extra <= int((~seg).sum()) else slice(None)] = True
        new_end = int(keep.sum())
        shift = data_end - new_end
        newpos = np.cumsum(keep) - 1

        def remap(a: np.ndarray | None) -> np.ndarray | None:
            if a is None:
                return None
            inside = a < data_end
            return np.where(inside, newpos[np.where(inside, a, 0)], a - shift).astype(a.dtype)

        for k in self.kernels:
            k.x, k.w, k.b = remap(k.x), remap(k.w), remap(k.b)
            k.out_start -= shift
        self.final_ddr = {r: remap(d) for r, d in self.final_ddr.items()}
        fb = self.final_banks
        self._banks_from_base = (fb < data_end) & ~keep[np.minimum(fb, data_end - 1)]
        self._banks_base_cells = fb[self._banks_from_base]
        self.final_banks = remap(np.where(self._banks_from_base, 0, fb))
        self.region_start = {r: (int(newpos[st]) if st < data_end else new_end)
                             for r, st in self.region_start.items() if r not in self.const_regs}
        self.full_base = self.base
        self.base = self.base[keep]
        self.n_values -= shift

    def _drop_zero_terms(self, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Leave out of a conv's reduction the terms that are exactly 0 for every input: rows whose
        constant weights are all 0 (e.g. the padding channels of a 3-channel image) or whose input is
        the zero cell in every output row. Only done when it removes a quarter of the reduction."""
        ok = self._const_ok
        dead = (x == ZERO).all(axis=0)
        if bool((w < len(ok)).all()) and bool(ok[w].all()):
            dead |= ~self.base[w].any(axis=1)
        if dead.all() or 4 * int(dead.sum()) < x.shape[1]:
            return x, w
        keep = ~dead
        return np.ascontiguousarray(x[:, keep]), np.ascontiguousarray(w[keep])

    def _cells(self, k: Kernel) -> np.ndarray:
        """Every value cell kernel k's x reads, in x's layout with the runs expanded."""
        if k.run == 1:
            return k.x
        return (k.x[..., None] + np.arange(k.run, dtype=k.x.dtype)).reshape(k.x.shape[:-1] + (-1,))

    def _reads_nonneg(self, k: Kernel) -> bool:
        return bool(self._nonneg[self._cells(k)].all())

    def _writes_nonneg(self, k: Kernel) -> np.ndarray | bool:
        """Whether each output value of kernel k is known to be >= 0 (in its output layout)."""
        p = k.params
        if k.kind == "conv":
            return k.params["act"] in (ACT_RELU, ACT_RELU6)
        if k.kind == "alu":
            if p["mode"] in (MAXPOOL, MAXREDUCE):            # a maximum (scaled) is >= 0 if any cell is
                return self._nonneg[self._cells(k)].any(axis=1).ravel()
            return p["mode"] in (DWCV, DWCV_NB, W16B0) and p["act"] in (ACT_RELU, ACT_RELU6)
        if k.kind == "elew":
            if p["act"] == ACT_RELU:
                return True
            # floor(4x / 2^s) of x >= 0 is >= 0; sums and products of them, scaled and rounded, too
            return self._nonneg[self._cells(k)].all(axis=0).ravel()
        return False

    def _fold(self, k: Kernel) -> None:
        """Fold weights/bias that come from constant cells; plan the float32 chunks of a conv."""
        ok = self._const_ok
        n = len(ok)

        def const(a):
            return a is not None and bool((a < n).all()) and bool(ok[a].all())

        if k.w is not None and const(k.w):
            k.wconst = self.base[k.w]
        if k.b is not None and const(k.b):
            k.bconst = self.base[k.b]
        if k.kind == "conv":
            nonneg = self._reads_nonneg(k)
            if k.wconst is not None:
                pos, neg = _term_bounds(k.wconst, nonneg)
                k.chunks = _chunks(pos, neg)
                k.wchunks = [np.ascontiguousarray(k.wconst[a:c], dtype=np.float32) for a, c in k.chunks]
            else:
                k.chunks = _chunks(*_term_bounds(np.full((k.w.shape[0], 1), 128, dtype=np.int64), nonneg))
            k.w = None if k.wconst is not None else k.w.astype(np.int32)
            p = k.params
            k.lo = 0 if p["act"] in (ACT_RELU, ACT_RELU6) else -128
            k.hi = 96 if p["act"] == ACT_RELU6 else 127
            if k.wconst is not None and k.bconst is not None and p["act"] in (ACT_NONE, ACT_RELU, ACT_RELU6):
                # int32 requantization when 2*acc + bias*2^shift_bias + rounding provably fits
                bound = _sum_bound(pos, neg)
                s = p["shift_cut"] + 1
                bias = k.bconst.astype(np.int64) << np.int64(p["shift_bias"]) if p["shift_bias"] < 40 else None
                if (bias is not None and s <= 30
                        and 2 * bound + int(np.abs(bias).max(initial=0)) + (1 << (s - 1)) < 2**31):
                    k.bias32 = bias.astype(np.int32)
                    total = 2 * bound + int(np.abs(bias).max(initial=0)) + (1 << (s - 1))
                    # every term (2*x*w, and bias*2^shift_bias + 2^(s-1) [+ 128*2^s]) is a multiple of 2^e
                    e = min(v for v in (s - 1, _v2(bias), None if _v2(k.wconst) is None else 1 + _v2(k.wconst))
                            if v is not None)
                    if len(k.chunks) == 1 and total < F32_LIMIT << e:
                        # all of (2*acc + bias*2^shift_bias + 2^(s-1)) / 2^s in float32, exactly: every
                        # partial sum is an integer below 2^24 times 2^(e-s) (weights pre-scaled by 2^(1-s));
                        # the bias is one more row of the weights (fastconv multiplies it by a column of
                        # 1.0), plus 128 where that still fits and the result may be negative: then the
                        # values to floor are >= 0 and the cast's truncation floors them
                        k.offset = k.lo < 0 and total + (128 << s) < F32_LIMIT << e
                        k.fbias = ((bias + (1 << (s - 1)) + (128 << s if k.offset else 0)).astype(np.float64)
                                   * 2.0 ** -s).astype(np.float32)
                        k.wchunks = [np.concatenate([k.wchunks[0] * np.float32(2.0 ** (1 - s)), k.fbias[None]])]
                        k.fbias_in_product = True
        elif k.w is not None and k.wconst is not None:
            k.w = None
        if k.b is not None and k.bconst is not None:
            k.b = None

    # -- execution -------------------------------------------------------------------------
    def run(self, regions: Mapping[int, np.ndarray], with_banks: bool = False,
            regs: Sequence[int] | None = None):
        """Execute on a batch. `regions` maps every non-constant reg id to an int8 array (B, size).
        Returns {reg: (B, size) int8} after the program for every data region and every constant region
        the program wrote, or only for the reg ids in `regs` (and the (B, bank bytes) banks if asked)."""
        batch = None
        for r in self.region_sizes:
            if r in self.const_regs:
                continue
            if r not in regions:
                raise DPUExecError(f"DDR region REG_{r} is not provided")
            a = np.asarray(regions[r])
            if a.ndim != 2 or a.shape[1] != self.region_sizes[r]:
                raise DPUExecError(f"DDR region REG_{r} must be (batch, {self.region_sizes[r]}) bytes, got {a.shape}")
            batch = a.shape[0] if batch is None else batch
            if a.shape[0] != batch:
                raise DPUExecError("all DDR regions must have the same batch size")
        batch = 1 if batch is None else batch
        v = np.empty((batch, self.n_values), dtype=np.int8)
        v[:, :len(self.base)] = self.base
        for r, a in regions.items():
            if r in self.const_regs:
                continue
            s = self.region_start[r]
            v[:, s:s + self.region_sizes[r]] = np.asarray(a).view(np.int8)
        for k in self.kernels:
            self._exec(k, v, batch)
        out = {r: v[:, idx] for r, idx in self.final_ddr.items() if regs is None or r in regs}
        if with_banks:
            banks = v[:, self.final_banks]
            banks[:, self._banks_from_base] = self.full_base[self._banks_base_cells]
            return out, banks
        return out

    @staticmethod
    def _exec(k: Kernel, v: np.ndarray, batch: int) -> None:
        if k.kind == "conv" and (k.fbias is not None or k.bias32 is not None):
            exec_conv_folded(k, v, batch)
            return
        res: np.ndarray
        if k.xstarts is not None:       # ELEW inputs that are whole slices of the values: no gather
            n = k.out_size
            v[:, k.out_start:k.out_start + n] = elew_compute(k.params, [v[:, s:s + n] for s in k.xstarts])
            return
        xg = _gather(v, k.x, k.run)                               # the input values, int8
        if k.kind == "conv":
            x = xg                                                 # (B, R, K)
            rows = x.shape[1]
            xf = x.reshape(batch * rows, -1).astype(np.float32)
            if k.wconst is not None:
                acc = None
                if len(k.chunks) == 1:
                    acc = (xf @ k.wchunks[0]).astype(np.int64)
                else:
                    for (a, c), wc in zip(k.chunks, k.wchunks):
                        part = (np.ascontiguousarray(xf[:, a:c]) @ wc).astype(np.int64)
                        acc = part if acc is None else acc + part
                acc = acc.reshape(batch, rows, -1)
            else:
                wf = v[:, k.w].astype(np.float32)                  # (B, K, N)
                xf = xf.reshape(batch, rows, -1)
                acc = None
                for a, c in k.chunks:
                    part = np.matmul(xf[:, :, a:c], wf[:, a:c]).astype(np.int64)
                    acc = part if acc is None else acc + part
            bias = k.bconst if k.bconst is not None else v[:, k.b][:, None, :]
            res = conv_requant(acc, bias, k.params["shift_cut"], k.params["shift_bias"], k.params["act"])
        elif k.kind == "alu":
            w = k.wconst if k.wconst is not None else (v[:, k.w][:, None] if k.w is not None else None)
            b = k.bconst if k.bconst is not None else (v[:, k.b][:, None] if k.b is not None else None)
            res = alu_compute(k.params, xg, w, b)
        elif k.kind == "elew":
            res = elew_compute(k.params, np.moveaxis(xg, 1, 0))
        else:  # argmax
            data = xg
            idx = data.argmax(axis=2)
            if k.params["mode"] == "argmax_index":
                res = idx.astype(np.int64).astype(np.uint8).view(np.int8)
            else:
                res = np.take_along_axis(data, idx[..., None], axis=2)[..., 0]
        v[:, k.out_start:k.out_start + k.out_size] = res.reshape(batch, -1)


_CACHE: OrderedDict[bytes, FastPlan] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 8


def _program_key(machine: Machine, program: Sequence, sizes: Mapping[int, int],
                 consts: Mapping[int, np.ndarray]) -> bytes:
    h = hashlib.blake2b(digest_size=20)
    h.update(repr(machine).encode())
    h.update(repr(sorted(sizes.items())).encode())
    for ins in program:
        h.update(repr((ins.name, tuple(ins.fields.items()))).encode())
    for r in sorted(consts):
        h.update(str(r).encode())
        h.update(np.ascontiguousarray(consts[r]).tobytes())
    return h.digest()


def compile_plan(machine: Machine, program: Sequence, region_sizes: Mapping[int, int],
                 consts: Mapping[int, Any]) -> FastPlan:
    """The plan of `program` for these region sizes and constant regions (cached)."""
    consts = {int(r): np.asarray(c).reshape(-1).view(np.int8) for r, c in consts.items()}
    key = _program_key(machine, program, region_sizes, consts)
    with _CACHE_LOCK:
        plan = _CACHE.get(key)
        if plan is not None:
            _CACHE.move_to_end(key)
            return plan
    plan = FastPlan(machine, program, region_sizes, consts)
    with _CACHE_LOCK:
        _CACHE[key] = plan
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return plan
