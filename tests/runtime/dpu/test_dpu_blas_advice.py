"""blas_advice: a hint only when numpy's OpenBLAS runs AVX2 kernels on a CPU with AVX-512."""

from __future__ import annotations

import pytest

import fixflow.runtime.dpu.blas as blas


@pytest.mark.parametrize("core, avx512, forced, expect", [
    ("Haswell", True, "Haswell", "unset OPENBLAS_CORETYPE"),
    ("Haswell", True, None, "did not recognize this CPU"),
    ("SkylakeX", True, None, None),
    ("Zen5", True, None, None),
    ("Haswell", False, "Haswell", None),
    (None, True, None, None),
])
def test_advice(core, avx512, forced, expect, monkeypatch):
    monkeypatch.setattr(blas, "blas_core", lambda: core)
    monkeypatch.setattr(blas, "cpu_has_avx512", lambda: avx512)
    if forced:
        monkeypatch.setenv("OPENBLAS_CORETYPE", forced)
    else:
        monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    advice = blas.blas_advice()
    if expect is None:
        assert advice is None
    else:
        assert expect in advice and "bit for bit" in advice


def test_core_is_reported():
    core = blas.blas_core()
    assert core is None or isinstance(core, str) and core
