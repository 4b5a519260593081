"""Calibration speed: ResNet-50 (seeded random weights) on 32 images, 4 batches of 8 (target < 60 s)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fixflow import zoo
from fixflow.frontends.torch import import_module
from fixflow.passes.fix.calibrate import calibrate_module
from fixflow.passes.graph.equalize import equalize
from fixflow.passes.graph.transforms import fold_batch_norm


@pytest.fixture(scope="module")
def resnet50_graph():
    model = zoo.get_model("resnet50")
    x = zoo.sample_inputs("resnet50", 32)
    return model, x


def test_bench_calibrate_resnet50(benchmark, resnet50_graph):
    model, x = resnet50_graph

    def run():
        m = import_module(model, (torch.from_numpy(x[:1]),))
        fold_batch_norm(m)
        equalize(m)
        calibrate_module(m, [[x[i:i + 8]] for i in range(0, 32, 8)])
        return m

    m = benchmark.pedantic(run, rounds=1, iterations=1)
    assert m.attributes["fix.calib_batches"].value == 4
    assert m.attributes["fix.bias_corrected"].value      # the default pipeline's bias correction ran
