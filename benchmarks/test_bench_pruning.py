"""Channel pruning bars (issue 13): half the conv channels of digits_cnn removed, finetuned, at most 1 point
of top-1 lost on the digits test split with at most 55% of the MACs; the same on tiny_mobilenet (depthwise)
and on a small residual net (coupled channels), each also quantized (W8A8, fix-dialect simulation); and
MAC-targeted pruning from the sensitivity analysis.

    python -m pytest benchmarks/test_bench_pruning.py --benchmark-only -s -p no:cacheprovider
"""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from fixflow.quantizer import Quantizer
from fixflow.quantizer.pruning import finetune, get_pruning_runner
from fixflow.zoo import count_macs, get_model, load_data, torch_loader
from fixflow.zoo.models import BasicBlock

EX = (torch.zeros(1, 1, 28, 28),)
ROWS: list[tuple[str, ...]] = []


class DigitsResNet(nn.Module):
    """Stem conv and three ResNet basic blocks (one strided, with a 1x1 downsample), GAP, dense: residual
    adds couple the stem with block 1 and the downsample with blocks 2 and 3."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.layer1 = BasicBlock(16, 16)
        self.layer2 = nn.Sequential(BasicBlock(16, 32, stride=2), BasicBlock(32, 32))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layer2(self.layer1(self.stem(x)))), 1))


def _accuracy(model: nn.Module, x, y) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def _quantized_accuracy(model: nn.Module, tmp) -> float:
    xtr, _ = load_data("digits_cnn", "train")
    x, y = load_data("digits_cnn", "test")
    q = Quantizer(model, EX, mode="calib", output_dir=tmp, log=None, progress=False)
    for xb in torch.from_numpy(xtr[:320]).split(32):
        q.quant_model(xb)
    q.export_quant_config()
    q = Quantizer(model, EX, mode="test", output_dir=tmp, log=None, progress=False)
    return float((q.quant_model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def _macs(model: nn.Module) -> int:
    return sum(count_macs(model, (1, 1, 28, 28)).values())


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)           # deterministic and not slowed by the other processes on the 2 cores
    yield
    torch.set_num_threads(old)


def _prune_and_finetune(benchmark, name: str, model: nn.Module, tmp_path, epochs: int, lr: float, **prune_kw):
    x, y = load_data("digits_cnn", "test")
    runner = get_pruning_runner(model, EX, output_dir=tmp_path / "vai", log=None, progress=False)
    if "removal_ratio" in prune_kw or "mac_budget" in prune_kw:
        xa, ya = load_data("digits_cnn", "train")
        runner.ana(lambda m: _accuracy(m, xa[:400], ya[:400]))      # sensitivity on train images, not test
    slim = benchmark.pedantic(lambda: runner.prune(**prune_kw), rounds=1, iterations=1)
    pruned_acc = _accuracy(slim, x, y)
    start = time.perf_counter()
    finetune(slim, torch_loader("train", size=28, batch_size=32, seed=0), epochs=epochs, lr=lr, seed=0,
             progress=False, log=None)
    seconds = time.perf_counter() - start
    float_acc, tuned = _accuracy(model, x, y), _accuracy(slim, x, y)
    q_acc = _quantized_accuracy(slim, tmp_path / "q")
    ratio = _macs(slim) / _macs(model)
    how = ", ".join(f"{k}={v}" for k, v in prune_kw.items())
    ROWS.append((name, how, f"{_macs(model):,}", f"{_macs(slim):,} ({100 * ratio:.1f}%)", f"{100 * float_acc:.2f} %",
                 f"{100 * pruned_acc:.2f} %", f"{100 * tuned:.2f} % ({epochs} ep, lr {lr:g}, {seconds:.0f} s)",
                 f"{100 * (tuned - float_acc):+.2f}", f"{100 * q_acc:.2f} %"))
    return float_acc, tuned, ratio, q_acc


def test_bench_prune_half_digits_cnn(benchmark, tmp_path):
    float_acc, tuned, ratio, q_acc = _prune_and_finetune(benchmark, "digits_cnn", get_model("digits_cnn"), tmp_path,
                                                         8, 3e-3, channel_ratio=0.5)
    assert ratio <= 0.55                        # the bar: MACs at most 55% of the original
    assert tuned >= float_acc - 0.01            # the bar: at most 1 point of top-1 lost after finetuning
    assert q_acc >= tuned - 0.01


def test_bench_prune_mac_target_digits_cnn(benchmark, tmp_path):
    float_acc, tuned, ratio, _ = _prune_and_finetune(benchmark, "digits_cnn", get_model("digits_cnn"), tmp_path, 8,
                                                     3e-3, removal_ratio=0.7)
    assert ratio <= 0.3 and tuned >= float_acc - 0.02


def test_bench_prune_half_tiny_mobilenet(benchmark, tmp_path):
    float_acc, tuned, ratio, _ = _prune_and_finetune(benchmark, "tiny_mobilenet", get_model("tiny_mobilenet"),
                                                     tmp_path, 8, 1e-2, channel_ratio=0.5)
    assert ratio <= 0.55 and tuned >= float_acc - 0.01


def test_bench_prune_half_residual(benchmark, tmp_path, request):
    torch.manual_seed(0)
    model = DigitsResNet()
    finetune(model, torch_loader("train", size=28, batch_size=32, seed=1), epochs=6, lr=3e-3, seed=1,
             progress=False, log=None)
    float_acc, tuned, ratio, q_acc = _prune_and_finetune(benchmark, "DigitsResNet (residual)", model, tmp_path, 8,
                                                         1e-2, channel_ratio=0.5)
    assert ratio <= 0.55 and tuned >= float_acc - 0.02 and q_acc >= tuned - 0.02
    head = ("model", "pruning", "MACs", "MACs pruned", "float top-1", "pruned, no finetune", "finetuned",
            "points", "pruned W8A8")
    table = [head, *ROWS]
    lines = ["| " + " | ".join(r) + " |" for r in table]
    lines.insert(1, "|" + "---|" * len(head))
    request.config.fixflow_bench_summaries.append("Pruning (digits test split, 359 images):\n" + "\n".join(lines))
