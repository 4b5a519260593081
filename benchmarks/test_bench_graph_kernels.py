"""graph dialect kernels vs. PyTorch eager (CPU): conv2d 3x3 64->64 and depthwise 3x3 at 56x56."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from fixflow.dialects.graph import kernels as K  # noqa: E402

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def conv_data():
    x = RNG.standard_normal((1, 64, 56, 56), dtype=np.float32)
    w = RNG.standard_normal((64, 64, 3, 3), dtype=np.float32) * 0.05
    b = RNG.standard_normal(64, dtype=np.float32)
    return x, w, b


@pytest.fixture(scope="module")
def dw_data():
    x = RNG.standard_normal((1, 144, 56, 56), dtype=np.float32)
    w = RNG.standard_normal((144, 1, 3, 3), dtype=np.float32)
    b = RNG.standard_normal(144, dtype=np.float32)
    return x, w, b


@pytest.mark.benchmark(group="conv2d-3x3-64x64-56")
def test_conv2d_fixflow(benchmark, conv_data):
    x, w, b = conv_data
    out = benchmark(K.conv2d, x, w, b, stride=(1, 1), padding=(1, 1, 1, 1))
    ref = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), padding=1).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.benchmark(group="conv2d-3x3-64x64-56")
def test_conv2d_torch(benchmark, conv_data):
    x, w, b = (torch.from_numpy(a) for a in conv_data)
    with torch.no_grad():
        benchmark(F.conv2d, x, w, b, 1, 1)


@pytest.mark.benchmark(group="depthwise-3x3-144-56")
def test_depthwise_fixflow(benchmark, dw_data):
    x, w, b = dw_data
    out = benchmark(K.conv2d, x, w, b, stride=(1, 1), padding=(1, 1, 1, 1), groups=144)
    ref = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), padding=1, groups=144).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.benchmark(group="depthwise-3x3-144-56")
def test_depthwise_torch(benchmark, dw_data):
    x, w, b = (torch.from_numpy(a) for a in dw_data)
    with torch.no_grad():
        benchmark(F.conv2d, x, w, b, 1, 1, 1, 144)
