"""Shared by the generated-module / export tests: calibrate then test a model, load a generated `<Model>.py`."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from fixflow.quantizer import Quantizer

_COUNT = itertools.count()


def quantize(model: nn.Module, x: torch.Tensor, out: Path, batches: int = 2, **kw: Any) -> Quantizer:
    """Calibrate on `batches` slices of x, export, and return the test-mode Quantizer."""
    q = Quantizer(model, (x[:1],), mode="calib", output_dir=out, log=None, progress=False, **kw)
    for xb in x.chunk(batches):
        q.quant_model(xb)
    q.export_quant_config()
    return Quantizer(model, (x[:1],), mode="test", output_dir=out, log=None, **kw)


def load_generated(out: Path, name: str) -> Any:
    """Import `<out>/<name>.py` as a fresh module."""
    spec = importlib.util.spec_from_file_location(f"generated_{name}_{next(_COUNT)}", Path(out) / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class AllOps(nn.Module):
    """Every fix op the generated module writes out: leaky relu (fused, slope 0.1 -> 26/256), avg pools
    (3x3 padded, 5x5, 4x4), hard sigmoid / swish, concat of differently scaled inputs, add and
    mul, nearest upsample, constant and reflect pads, transposed and depthwise convs, ceil-mode max
    pool, and a sigmoid that stays on the CPU."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.lrelu = nn.LeakyReLU(0.1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.c2 = nn.Conv2d(8, 8, 1)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.c3 = nn.Conv2d(12, 8, 3, stride=2, padding=1)
        self.pool3 = nn.AvgPool2d(3, stride=1, padding=1)
        self.fc = nn.Linear(8 * 2 * 2, 6)

    def forward(self, x):
        a = self.lrelu(self.c1(x))                               # 12x12
        b = F.relu(self.dw(a))
        c = F.hardswish(self.c2(b))
        d = a + c * F.hardsigmoid(c)
        e = self.up(F.max_pool2d(d, 2))                          # 6x6 -> 12x12
        f = torch.cat([d, 4.0 * e], 1)
        g = self.c3(F.pad(f, (1, 1, 1, 1)))                      # 14x14 -> 7x7
        h = F.interpolate(self.pool3(g), scale_factor=2, mode="nearest")   # 14x14
        h = F.max_pool2d(F.pad(h, (1, 0, 1, 0), mode="reflect"), 3, 2, ceil_mode=True)   # 15 -> 7
        k = F.avg_pool2d(F.pad(h, (0, 3, 0, 3)), 5) * F.adaptive_avg_pool2d(F.pad(h, (0, 1, 0, 1)), 2)  # 2x2
        y = self.fc(torch.flatten(k, 1))
        return torch.sigmoid(y), y
