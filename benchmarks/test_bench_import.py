"""PyTorch frontend: importing ResNet-50 (trace + value propagation + conversion; target under 2 s)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from fixflow.frontends.torch import import_module  # noqa: E402
from fixflow.zoo.models import DigitsCNN, ResNet50  # noqa: E402


@pytest.fixture(scope="module")
def resnet50():
    torch.manual_seed(0)
    return ResNet50().eval(), (torch.randn(1, 3, 224, 224),)


def test_import_resnet50(benchmark, resnet50):
    model, inputs = resnet50
    module = benchmark.pedantic(import_module, args=(model, inputs), rounds=3, warmup_rounds=1)
    convs = [op for op in module.walk() if op.name == "graph.conv2d"]
    assert len(convs) == 53


def test_import_digits_cnn(benchmark):
    torch.manual_seed(0)
    model = DigitsCNN().eval()
    module = benchmark(import_module, model, (torch.randn(1, 1, 28, 28),))
    assert module.functions()[0].sym_name == "DigitsCNN"
