"""The AMD-compiled MNIST classifier's DPU program (../shared/reference/amd-compiled-mnist)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

REF = Path(__file__).resolve().parents[3].parent / "shared" / "reference" / "amd-compiled-mnist"
XMODEL = REF / "dpu_mnist_classifier.xmodel"


@functools.cache
def _mc_code() -> bytes:
    from fixflow.backends.xmodel import read_xmodel
    g = read_xmodel(str(XMODEL))
    dpu = [s for s in g.root.walk() if s.has_attr("mc_code")]
    assert [s.name for s in dpu] == ["subgraph_quant_conv2d"]
    value = dpu[0].attr("mc_code")
    return bytes(getattr(value, "value", value))


def mnist_mc_code() -> bytes:
    """The DPU subgraph's `mc_code` (skips the test when the reference data is absent)."""
    if not XMODEL.exists():
        pytest.skip(f"reference data not found: {XMODEL}")
    return _mc_code()
