"""Which matrix-product kernels numpy's BLAS runs, and whether this CPU could run faster ones.

The fast mode spends most of its time in float32 matrix products (numpy -> OpenBLAS). OpenBLAS picks
its kernels from the CPU model it recognizes; on CPUs newer than the OpenBLAS build (e.g. AMD Zen 4 and
Zen 5 with older OpenBLAS builds) it falls back to its Haswell (AVX2) kernels although the CPU has
AVX-512, and the products run at half the speed they could; some machines also force those kernels
(``OPENBLAS_CORETYPE=Haswell``). OpenBLAS's own switch, the environment variable
``OPENBLAS_CORETYPE=SkylakeX``, selects its AVX-512 kernels; it is read when numpy loads OpenBLAS, so it
must be set before Python starts. The products' results do not depend on the kernels: the fast plan
only multiplies in float32 where every partial sum is an exact integer (see :mod:`.fast`).
"""

from __future__ import annotations

import os

AVX512_CORES = ("skylakex", "cooperlake", "sapphirerapids", "zen4", "zen5")


def cpu_has_avx512() -> bool:
    """Whether the CPU has the AVX-512 subsets OpenBLAS's SkylakeX kernels use (F, CD, BW, DQ, VL)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats
    except ImportError:     # numpy < 2
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as feats
        except ImportError:
            return False
    return bool(feats.get("AVX512_SKX", False))


def blas_core() -> str | None:
    """The kernel set numpy's OpenBLAS is using (e.g. "Haswell", "SkylakeX"), None if unknown
    (threadpoolctl not installed, or not OpenBLAS)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    for lib in threadpool_info():
        if lib.get("internal_api") == "openblas":
            return lib.get("architecture")
    return None


def blas_advice() -> str | None:
    """A one-line hint when numpy's OpenBLAS runs AVX2 kernels on a CPU with AVX-512, else None."""
    core = blas_core()
    if core is None or core.lower() in AVX512_CORES or not cpu_has_avx512():
        return None
    forced = os.environ.get("OPENBLAS_CORETYPE")
    why = f"OPENBLAS_CORETYPE={forced} makes" if forced else "OpenBLAS did not recognize this CPU:"
    fix = ("unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for this command (numpy's OpenBLAS then picks its "
           "AVX-512 kernels itself) or set OPENBLAS_CORETYPE=SkylakeX" if forced
           else "start Python with OPENBLAS_CORETYPE=SkylakeX")
    return (f"{why} numpy's OpenBLAS run its {core} kernels on a CPU with AVX-512; {fix} for about twice "
            "faster float32 matrix products in fast mode (results are the same, bit for bit)")
