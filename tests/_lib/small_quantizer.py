"""A small PyTorch net (conv, leaky relu, pool, linear) and Quantizers on it, for tests that need a
calibrated model and its exported files without a zoo model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from fixflow.quantizer import Quantizer


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.leaky = nn.LeakyReLU(0.2)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.leaky(self.conv(x))), 1))


def data(n: int = 32, seed: int = 0) -> torch.Tensor:
    """`n` seeded random 1x8x8 images."""
    return torch.from_numpy(np.random.default_rng(seed).random((n, 1, 8, 8)).astype(np.float32))


def quantizer(path, mode: str = "calib", **kw) -> Quantizer:
    """A quiet Quantizer on a fresh `Net` writing to `path`."""
    kw.setdefault("log", None)
    return Quantizer(Net().eval(), (data(1),), mode=mode, output_dir=path, progress=False, **kw)


def calibrate(path: Path) -> tuple[Path, Quantizer, Path]:
    """Calibrate into `path`; returns (path, the test-mode Quantizer, its exported xmodel)."""
    q = quantizer(path)
    q.quant_model(data())
    q.export_quant_config()
    qt = quantizer(path, "test")
    return path, qt, qt.export_xmodel()
