"""The fast calibration paths are bit-identical to the straightforward float64 formulation.

References here are the original (slow) definitions: round in float64, integer round trip,
``sum((fq - x)**2)`` in float64; conv2d_multi against separate conv2d calls.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fixflow.dialects.graph import kernels as K
from fixflow.dialects.fix import numerics as nu


def _ref_fake_quantize(x, bw, fp, mode):
    return nu.dequantize(nu.quantize(np.asarray(x, np.float64), bw, fp, mode), fp)


def _ref_fix_pos_diffs(x, bw, mode, scope):
    a = np.asarray(x, dtype=np.float64).ravel()
    half = float(1 << (bw - 1))
    step = max(float(a.min()) / (-half - 0.5), float(a.max()) / (half - 0.5))
    fp0 = 18 if step <= float(np.finfo(np.float32).tiny) else math.floor(math.log2(1.0 / step))
    best, best_err = fp0, math.inf
    for fp in range(fp0, fp0 + scope):
        err = float(np.sum((_ref_fake_quantize(a, bw, fp, mode).astype(np.float64) - a) ** 2))
        if err < best_err:
            best, best_err = fp, err
    return min(best, nu.fix_pos_cap(bw))


def _tensors(seed: int):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    yield (rng.standard_normal(n) * 10.0 ** rng.uniform(-5, 5)).astype(np.float32)
    yield np.abs(rng.standard_normal((2, 3, 17)) * 3).astype(np.float32)          # post-ReLU, N-d
    fp = int(rng.integers(-3, 10))                                                    # exact ties
    yield ((rng.integers(-300, 300, n) + 0.5) * 2.0 ** -fp).astype(np.float32)
    yield rng.integers(-4, 4, n).astype(np.float32)                                  # many exact SSE ties
    yield np.array([0.49999997, -0.49999997, 0.5, -0.5, 1.5, -1.5, -0.0, 0.0, 1e-45, -1e-45, 127.5,
                    -128.5, 2e30, -3e30], np.float32) * np.float32(2.0 ** int(rng.integers(-8, 8)))
    yield np.zeros(5, np.float32)
    for top, bottom in ((127.5, -128.5), (127.49999, -128.49998), (127.50001, -128.50002), (63.75, -64.25)):
        yield np.array([top, bottom, 1.0, -0.5], np.float32) * np.float32(2.0 ** int(rng.integers(-6, 6)))
        yield np.array([top, 3.0, 0.0], np.float32) * np.float32(2.0 ** int(rng.integers(-6, 6)))  # one-sided
    yield np.asfortranarray(rng.standard_normal((7, 9)).astype(np.float32))            # non-contiguous


@pytest.mark.parametrize("seed", range(6))
def test_fix_pos_diffs_fast_path_is_bit_identical(seed):
    for x in _tensors(seed):
        for bw in (8, 4, 16):
            for mode in ("half_up", "std_round"):
                for scope in (1, 5):
                    assert nu.fix_pos_diffs(x, bw, mode, scope) == _ref_fix_pos_diffs(x, bw, mode, scope)


@pytest.mark.parametrize("seed", range(6))
def test_fake_quantize_fast_path_is_bit_identical(seed):
    for x in _tensors(seed):
        for bw in (8, 4, 16):
            for mode in ("half_up", "std_round"):
                for fp in (-3, 0, 5, 12):
                    got = nu.fake_quantize(x, bw, fp, mode)
                    ref = _ref_fake_quantize(x, bw, fp, mode)
                    assert got.dtype == np.float32 and got.shape == ref.shape
                    assert got.tobytes() == ref.tobytes()       # also no -0.0


def test_fast_paths_non_finite_values():
    x = np.array([1.0, np.nan, np.inf, -np.inf, -0.3], np.float32)
    with np.errstate(invalid="ignore"):
        for mode in ("half_up", "std_round"):
            assert nu.fake_quantize(x, 8, 3, mode).tobytes() == _ref_fake_quantize(x, 8, 3, mode).tobytes()
    for bad in (np.array([1.0, np.nan], np.float32), np.array([np.inf, 1.0], np.float32)):
        with pytest.raises(nu.NumericsError, match="NaN or inf"):
            nu.fix_pos_diffs(bad)


def test_sse_matches_float64_sum_on_a_large_tensor():
    rng = np.random.default_rng(3)
    x = np.maximum(rng.standard_normal(300_007) * 2, 0).astype(np.float32)   # several chunks
    a = x.astype(np.float64)
    m = min(x.size, nu._CHUNK)
    for mode in ("half_up", "std_round"):
        for fp in range(3, 8):
            ref = float(np.sum((_ref_fake_quantize(a, 8, fp, mode).astype(np.float64) - a) ** 2))
            got = nu._sse_f32(x, fp, -128, 127, mode, np.empty(x.size), np.empty(m), np.empty(m))
            assert got == ref
        assert nu.fix_pos_diffs(x, 8, mode, 5) == _ref_fix_pos_diffs(x, 8, mode, 5)


@pytest.mark.parametrize("k,stride,pad,groups", [(3, 1, (1, 1, 1, 1), 1), (1, 1, (0, 0, 0, 0), 1),
                                                 (3, 2, (0, 1, 0, 1), 2), (3, 1, (1, 1, 1, 1), 4)])
def test_conv2d_multi_equals_separate_convs(k, stride, pad, groups):
    rng = np.random.default_rng(k + stride)
    x = rng.standard_normal((3, 4, 9, 9)).astype(np.float32)
    ws = [rng.standard_normal((8, 4 // groups, k, k)).astype(np.float32) for _ in range(2)]
    bs = [rng.standard_normal(8).astype(np.float32), None]
    outs = K.conv2d_multi(x, ws, bs, stride=stride, padding=pad, groups=groups)
    for out, w, b in zip(outs, ws, bs):
        assert out.tobytes() == K.conv2d(x, w, b, stride=stride, padding=pad, groups=groups).tobytes()


def test_conv2d_multi_rejects_mismatched_weights():
    x = np.zeros((1, 2, 5, 5), np.float32)
    with pytest.raises(K.ShapeError, match="same-shaped"):
        K.conv2d_multi(x, [np.zeros((3, 2, 3, 3), np.float32), np.zeros((3, 2, 1, 1), np.float32)], [None, None])


@pytest.mark.parametrize("seed", range(3))
def test_candidate_errors_are_bit_identical(seed):
    """The per-candidate error sums themselves (clamps skipped only where they cannot act)."""
    for x in _tensors(seed):
        if not np.all(np.isfinite(x)) or np.abs(x).max() > 1e20:
            continue
        a = x.astype(np.float64).ravel()
        for bw in (8, 4):
            for mode in ("half_up", "std_round"):
                fps = range(-4, 9)
                got = nu._sse_candidates(np.ascontiguousarray(x).ravel(), bw, mode, fps, float(a.min()), float(a.max()))
                ref = [float(np.sum((_ref_fake_quantize(a, bw, fp, mode).astype(np.float64) - a) ** 2)) for fp in fps]
                assert got == ref
