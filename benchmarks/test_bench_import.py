"""PyTorch frontend: importing ResNet-50-sized models (trace + value propagation + conversion; bar under 2 s).

    python -m pytest benchmarks/test_bench_import.py --benchmark-only -s -p no:cacheprovider

The zoo's ResNet-50 and torchvision's (a model nobody here wrote; skipped without torchvision), at
1x3x224x224, plus the digits CNN. Besides pytest-benchmark's wall-clock table, each ResNet-50 row's
process CPU time per import (`time.process_time`, median of 5) is printed at the end: on a shared box
the CPU time is the number to compare with the bar, the wall time includes waiting for a core.
"""

from __future__ import annotations

import gc
import statistics
import time

import pytest

torch = pytest.importorskip("torch")

from fixflow.frontends.torch import import_module  # noqa: E402
from fixflow.zoo.models import DigitsCNN, ResNet50  # noqa: E402

BAR_S = 2.0
_CPU: dict[str, list[float]] = {}


@pytest.fixture(scope="module")
def resnet50():
    torch.manual_seed(0)
    return ResNet50().eval(), (torch.randn(1, 3, 224, 224),)


@pytest.fixture(scope="module")
def tv_resnet50():
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from _lib.torchvision_lib import architectures, build
    try:
        architectures()
    except ImportError:
        pytest.skip("torchvision is not installed (scripts/setup.sh installs it)")
    return build("resnet50"), (torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1)),)


def _cpu_times(key: str, model, inputs, rounds: int = 5) -> None:
    """Process CPU time of `rounds` imports (after the benchmark's own rounds warmed every cache)."""
    times = []
    for _ in range(rounds):
        gc.collect()
        t = time.process_time()
        import_module(model, inputs)
        times.append(time.process_time() - t)
    _CPU[key] = times


def _convs(module) -> int:
    return sum(op.name == "graph.conv2d" for op in module.walk())


def test_import_resnet50(benchmark, resnet50):
    model, inputs = resnet50
    module = benchmark.pedantic(import_module, args=(model, inputs), rounds=3, warmup_rounds=1)
    assert _convs(module) == 53
    _cpu_times("ResNet-50 (fixflow.zoo)", model, inputs)


def test_import_torchvision_resnet50(benchmark, tv_resnet50):
    model, inputs = tv_resnet50
    module = benchmark.pedantic(import_module, args=(model, inputs), rounds=3, warmup_rounds=1)
    assert _convs(module) == 53
    _cpu_times("ResNet-50 (torchvision)", model, inputs)


def test_import_digits_cnn(benchmark):
    torch.manual_seed(0)
    model = DigitsCNN().eval()
    module = benchmark(import_module, model, (torch.randn(1, 1, 28, 28),))
    assert module.functions()[0].sym_name == "DigitsCNN"


@pytest.fixture(scope="module", autouse=True)
def _summary(request):
    yield
    if not _CPU:
        return
    lines = [f"import CPU time (time.process_time per import, {len(next(iter(_CPU.values())))} imports; "
             f"bar {BAR_S:.0f} s):"]
    for key, ts in _CPU.items():
        med = statistics.median(ts)
        lines.append(f"  {key}: median {med:.3f} s, min {min(ts):.3f} s, max {max(ts):.3f} s "
                     f"({'under' if med < BAR_S else 'OVER'} the bar)")
    request.config.fixflow_bench_summaries.append("\n".join(lines))
