"""DPU interpreter on AMD's compiled MNIST classifier: fast mode vs reference mode (batch 1 and 32),
and the one-off plan compilation. Speed only; exactness is tested in tests/runtime/dpu/."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from fixflow.runtime.dpu import DPUSubgraph
from fixflow.runtime.dpu.fast import FastPlan

REF = "/work/shared/reference/amd-compiled-mnist"
for cand in (os.path.join(os.path.dirname(__file__), "..", "..", "shared", "reference", "amd-compiled-mnist"), REF):
    if os.path.isdir(cand):
        REF = cand
        break
pytestmark = pytest.mark.skipif(not os.path.isdir(REF), reason="shared reference data not found")


@pytest.fixture(scope="module")
def mnist():
    dpu = DPUSubgraph.from_xmodel(os.path.join(REF, "dpu_mnist_classifier.xmodel"))
    with open(os.path.join(REF, "expected_outputs.json")) as f:
        names = sorted(json.load(f))
    xs = np.stack([np.fromfile(os.path.join(REF, "inputs", n), dtype=np.int8).reshape(28, 28, 1) for n in names])
    return dpu, xs


@pytest.mark.parametrize("mode", ["reference", "fast"])
def test_bench_dpu_mnist_batch1(benchmark, mnist, mode):
    dpu, xs = mnist
    benchmark.group = "dpu-interp mnist batch 1"
    out = benchmark(dpu.run, [xs[1:2]], mode)
    assert out["quant_dense_1_softmax_fix"].shape == (1, 10)


@pytest.mark.parametrize("mode", ["reference", "fast"])
def test_bench_dpu_mnist_batch32(benchmark, mnist, mode):
    dpu, xs = mnist
    batch = np.concatenate([xs] * 7)[:32]
    benchmark.group = "dpu-interp mnist batch 32"
    out = benchmark.pedantic(dpu.run, args=([batch], mode), rounds=3 if mode == "reference" else 10)
    assert out["quant_dense_1_softmax_fix"].shape == (32, 10)


def test_bench_dpu_mnist_plan_compile(benchmark, mnist):
    dpu, _ = mnist
    benchmark.group = "dpu-interp mnist plan"
    consts = {0: dpu.consts[0]}
    plan = benchmark(FastPlan, dpu.machine, dpu.program, dpu.reg_sizes, consts)
    assert plan.kernels
