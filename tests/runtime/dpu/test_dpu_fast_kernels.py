"""The fast plan's kernel paths, each bit for bit against the fix-level integer execution and the
reference mode: gathers split by run length (a 7x7 stride-2 convolution over a 3-channel image), product
bounds from value ranges (a reduction over ReLU outputs proven to fit one float32 product only because its
inputs are >= 0, with maximum-magnitude weights and saturated inputs), the +128 offset of a result that
may be negative, the power of two common to every term, ELEW on whole value slices in int16."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from fixflow.dialects.fix import ops as Q
from fixflow.ir.passes import PassManager
from fixflow.passes.dpu.program import load_programs
from fixflow.runtime.dpu import fastconv
from fixflow.runtime.dpu.fast import F32_LIMIT, FastPlan
from fixflow.runtime.dpu.gather import (
    MIN_BLOCK,
    ZERO_BLOCK,
    gather_parts,
    split_runs,
    void_row,
)
from fixflow.runtime.dpu.interpreter import DPUInterpreter, as_region
from fixflow.runtime.dpu.machine import Machine

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "passes" / "dpu"))
from _dpu_testlib import fix_reference, module_with

TARGET = "DPUCZDX8G_ISA1_B4096"


# ---- gathers split by run length ----------------------------------------------------------------
def _expand(base: np.ndarray, run: int) -> np.ndarray:
    return (base[..., None] + np.arange(run)).reshape(base.shape[0], -1)


def test_split_runs_gathers_the_same_cells():
    """Rows of a 7x7/2 conv over a packed 80x80x3 image (row pitch 84 pixels): interior rows read 7 runs
    of 21 consecutive cells, border rows mix image cells with padding runs (zero or -128 block)."""
    rng = np.random.default_rng(0)
    img = MIN_BLOCK + 4096            # the image after the padding blocks, as in a plan
    rows = []
    for oh in range(40):
        for ow in range(40):
            r = []
            for j in range(7):
                for k in range(7):
                    h, w = 2 * oh + j - 3, 2 * ow + k - 3
                    inside = 0 <= h < 80 and 0 <= w < 80
                    r.append(img + (h * 84 + w) * 3 if inside else (ZERO_BLOCK if oh % 2 else MIN_BLOCK))
            rows.append(r)
    base = np.array(rows, dtype=np.int32)
    v = rng.integers(-128, 128, size=img + 84 * 84 * 3, dtype=np.int8)
    v[ZERO_BLOCK:ZERO_BLOCK + 64] = 0
    v[MIN_BLOCK:MIN_BLOCK + 64] = -128
    want = v[_expand(base, 3)]
    parts = split_runs(base, 3)
    assert len(parts) == 2 and parts[0][2] == 21 and parts[1][2] == 3          # split, long runs of 21
    assert parts[0][0].size + parts[1][0].size == base.shape[0]
    np.testing.assert_array_equal(gather_parts(v, parts, 147), want)
    # rows that all take long runs (the interior pixels): one part, in order
    interior = base.reshape(40, 40, 49)[2:38, 2:38].reshape(-1, 49)
    (whole,) = split_runs(interior, 3)
    assert whole[0] is None and whole[2] == 21
    np.testing.assert_array_equal(gather_parts(v, [whole], 147), v[_expand(interior, 3)])
    # runs of 64 cells: no split (it would not pay)
    b64 = img + 64 * rng.integers(0, 20, size=(40, 9)).astype(np.int32)
    (p64,) = split_runs(b64, 64)
    assert p64[0] is None and p64[2] == 64 and p64[1] is b64
    np.testing.assert_array_equal(void_row(v, 5)[7:8].view(np.int8), v[7:12])


# ---- compiled networks, fast vs fix-level and reference -------------------------------------------
def _ft(shape, fp):
    return Q.fix_tensor(shape, 8, fp)


def _conv(x, w, b, kernel, stride, pad, act, fps, name):
    _, h, wd, _ = x.type.shape
    wc = Q.ConstOp.from_ints(w, 8, fps[0])
    bc = Q.ConstOp.from_ints(b, 8, fps[1])
    oh = Q.conv_out_size(h, kernel[0], stride[0], pad[0], pad[1])
    ow = Q.conv_out_size(wd, kernel[1], stride[1], pad[2], pad[3])
    op = Q.Conv2dOp.build(x, wc.results[0], bc.results[0], kernel=kernel, stride=stride, pad=pad, nonlinear=act,
                          result_types=[_ft((1, oh, ow, w.shape[0]), fps[2])])
    op.results[0].name_hint = name
    return [wc, bc, op]


def _compile_and_check(m, xs):
    """Compile m whole for TARGET; run every input in fast mode (one by one and as one batch) and in
    reference mode; all must equal the fix-level integer execution. Returns the fast plan."""
    PassManager.parse(f"partition{{target={TARGET}}},allocate-ddr,lower-to-dpu,schedule-dpu").run(m)
    (prog,) = load_programs(m)
    refs, ins = [], []
    for x in xs:
        xin, ref = fix_reference(m, x)
        ins.append(xin)
        refs.append(ref)
        for mode in ("fast", "reference"):
            out = DPUInterpreter(prog.target, prog.instructions, prog.regions([xin]), mode=mode).run()
            np.testing.assert_array_equal(prog.read_outputs(out)[0].reshape(-1), ref.reshape(-1), err_msg=mode)
    regs = {r: as_region(r, d) for r, d in prog.regions([ins[0]]).items()}
    plan = FastPlan(Machine.from_target(TARGET), prog.instructions, {r: a.size for r, a in regs.items()}, {0: regs[0]})
    batch = {r: np.stack([as_region(r, prog.regions([xi])[r]) for xi in ins]) for r in regs if r != 0}
    out = plan.run(batch)
    for i, ref in enumerate(refs):
        got = prog.read_outputs({r: a[i] for r, a in out.items()})[0]
        np.testing.assert_array_equal(got.reshape(-1), ref.reshape(-1), err_msg=f"batch item {i}")
    return plan


def _conv_kernels(plan):
    return [k for k in plan.kernels if k.kind == "conv"]


@pytest.mark.parametrize("small_blocks", [False, True])
def test_stem_relu_long_reduction_offset_and_residual(small_blocks, monkeypatch):
    """7x7/2 stem over 3 channels (ReLU) -> 3x3 conv over its 128 channels with weights +-127 (no
    activation: negative results) -> ELEW add of that and a 1x1 projection of the stem, ReLU."""
    if small_blocks:            # row bands of a few rows: the split gather per band
        monkeypatch.setattr(fastconv, "BLOCK_BYTES", 1)
        monkeypatch.setattr(fastconv, "MIN_BLOCK_ROWS", 300)
    rng = np.random.default_rng(1)
    c1 = 128
    w1 = rng.integers(-128, 128, (c1, 7, 7, 3)).astype(np.int8)
    b1 = rng.integers(0, 128, c1).astype(np.int8)
    # all |w| = 127, signs balanced per output channel: 128 * sum|w| = 1.9e7 > 2^24 (the int8 bound needs
    # two chunks) but with inputs in 0..127 every partial sum is within 127 * 576 * 127 = 9.3e6
    w2 = np.where(rng.permutation(np.arange(16 * 9 * c1) % 2).reshape(16, 3, 3, c1) == 0, 127, -127).astype(np.int8)
    b2 = rng.integers(-128, 128, 16).astype(np.int8)
    w3 = rng.integers(-128, 128, (16, 1, 1, c1)).astype(np.int8)
    b3 = rng.integers(-128, 128, 16).astype(np.int8)

    def build(x):
        stem = _conv(x, w1, b1, (7, 7), (2, 2), (3, 3, 3, 3), "RELU", (6, 5, 0), "stem")
        s = stem[-1].results[0]
        main = _conv(s, w2, b2, (3, 3), (1, 1), (1, 1, 1, 1), "NONE", (7, 6, 3), "main")
        proj = _conv(s, w3, b3, (1, 1), (1, 1), (0, 0, 0, 0), "NONE", (7, 6, 3), "proj")
        add = Q.EltwiseOp.build([main[-1].results[0], proj[-1].results[0]], type="ADD", nonlinear="RELU",
                                result_types=[_ft((1, 28, 28, 16), 2)])
        return stem + main + proj + [add]

    m = module_with((1, 56, 56, 3), 5, build)
    xs = [rng.uniform(-4, 4, (1, 56, 56, 3)).astype(np.float32) for _ in range(2)]
    xs.append(np.full((1, 56, 56, 3), 3.9, dtype=np.float32))          # saturated: partial sums at the bound
    plan = _compile_and_check(m, xs)
    convs = _conv_kernels(plan)
    stem = next(k for k in convs if k.x.shape[1] * k.run == 147)          # 7x7x3: the 13 zero channels dropped
    assert len(stem.bands) == (3 if small_blocks else 1)
    assert all(parts is not None and len(parts) == 2 and parts[0][2] == 21 for _, _, parts in stem.bands)
    big = next(k for k in convs if k.x.shape[1] * k.run == 9 * c1)
    w = big.wconst.astype(np.int64)
    assert 128 * np.abs(w).sum(axis=0).max() >= F32_LIMIT                 # the int8 bound would chunk
    assert len(big.chunks) == 1 and big.fbias is not None and big.offset  # one float32 product, offset
    assert 2 * 127 * np.maximum(np.where(w > 0, w, 0).sum(0), np.where(w < 0, -w, 0).sum(0)).max() >= F32_LIMIT
    (elew,) = [k for k in plan.kernels if k.kind == "elew"]
    assert elew.xstarts is not None and len(elew.xstarts) == 2


def test_inputs_not_known_nonnegative_keep_the_int8_bound():
    """The same weights reading the image itself (any int8): two chunks, still exact on extreme inputs."""
    rng = np.random.default_rng(2)
    c = 128
    w = np.where(rng.permutation(np.arange(16 * 9 * c) % 2).reshape(16, 3, 3, c) == 0, 127, -127).astype(np.int8)
    b = rng.integers(-128, 128, 16).astype(np.int8)

    def build(x):
        return _conv(x, w, b, (3, 3), (1, 1), (1, 1, 1, 1), "NONE", (7, 6, -8), "conv")

    m = module_with((1, 6, 6, c), 0, build)
    sign = np.where(w[0, 1, 1] > 0, 127.0, -128.0).astype(np.float32)
    xs = [np.broadcast_to(sign, (1, 6, 6, c)).copy(), rng.uniform(-128, 127, (1, 6, 6, c)).astype(np.float32)]
    plan = _compile_and_check(m, xs)
    (k,) = _conv_kernels(plan)
    assert len(k.chunks) >= 2 and k.fbias is None
