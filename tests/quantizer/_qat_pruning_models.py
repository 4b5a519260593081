"""Hand-written models of the kinds users write, for the QAT and pruning robustness tests
(test_qat_user_models.py, test_pruning_user_models.py): residual adds, concat of branches, grouped and
depthwise convs, ConvTranspose2d, a dense layer in the middle after flatten, BatchNorm1d, ReLU6 /
Hardswish / LeakyReLU / Sigmoid, nested nn.Sequential, functional calls, a module called twice.

Every model takes (N, 3, 16, 16) images and returns (N, 10) scores; `build(name)` seeds the weights and
randomizes the batch-norm statistics (fresh ones would hide a wrong folding)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SHAPE = (1, 3, 16, 16)


def _cbr(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: nn.Module | None = None):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
                         act if act is not None else nn.ReLU(inplace=True))


class ResidualConcat(nn.Module):
    """A stem, a residual block (x + y after F.relu), two branches concatenated, nested Sequentials."""

    def __init__(self):
        super().__init__()
        self.stem = _cbr(3, 16)
        self.block = nn.Sequential(_cbr(16, 16), nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16)))
        self.left = _cbr(16, 8, 1)
        self.right = nn.Sequential(_cbr(16, 8, 1), _cbr(8, 12, 3, stride=1))
        self.down = _cbr(20, 24, 3, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(x + self.block(x))
        x = torch.cat([self.left(x), self.right(x)], 1)
        x = self.down(x)
        return self.fc(torch.flatten(self.pool(x), 1))


class GroupedDepthwise(nn.Module):
    """A grouped conv (groups=2), a depthwise conv with ReLU6, a pointwise conv with Hardswish, LeakyReLU,
    max pooling."""

    def __init__(self):
        super().__init__()
        self.c1 = _cbr(3, 16)
        self.grouped = _cbr(16, 16, 3, groups=2)
        self.dw = _cbr(16, 16, 3, stride=2, groups=16, act=nn.ReLU6())
        self.pw = _cbr(16, 24, 1, act=nn.Hardswish())
        self.c2 = nn.Conv2d(24, 24, 3, padding=1)
        self.act = nn.LeakyReLU(0.1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(24 * 4 * 4, 10)

    def forward(self, x):
        x = self.pw(self.dw(self.grouped(self.c1(x))))
        x = self.pool(self.act(self.c2(x)))
        return self.fc(x.flatten(1))


class EncoderDecoder(nn.Module):
    """Strided convs down, ConvTranspose2d up, a skip add, a Sigmoid gate (x * sigmoid(g))."""

    def __init__(self):
        super().__init__()
        self.enc1 = _cbr(3, 8)
        self.enc2 = _cbr(8, 16, 3, stride=2)
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.up_bn = nn.BatchNorm2d(8)
        self.gate = nn.Conv2d(8, 8, 1)
        self.sig = nn.Sigmoid()
        self.head = nn.Conv2d(8, 4, 3, stride=2, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        a = self.enc1(x)
        b = F.relu(self.up_bn(self.up(self.enc2(a))))
        y = a + b
        y = y * self.sig(self.gate(y))
        return self.fc(torch.flatten(F.relu(self.head(y)), 1))


class DenseMiddle(nn.Module):
    """Convs (one with a per-channel PReLU), flatten, a dense layer with BatchNorm1d and ReLU, another dense
    layer (dense in the middle)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(_cbr(3, 8, 3, stride=2), _cbr(8, 16, 3, stride=2, act=nn.PReLU(16)),
                                      nn.MaxPool2d(2))
        self.fc1 = nn.Linear(16 * 2 * 2, 32)
        self.bn1 = nn.BatchNorm1d(32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.flatten(self.features(x), 1)
        return self.fc2(F.relu(self.bn1(self.fc1(x))))


class Reused(nn.Module):
    """One conv module called twice (shared weights) and one ReLU module used in several places."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.shared = nn.Conv2d(8, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.relu(self.c1(x))
        x = self.relu(self.shared(x))
        x = self.relu(self.shared(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class ReusedActivation(nn.Module):
    """One ReLU module (no weights) applied after several layers: a layer called twice that QAT and pruning
    both handle."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.relu(self.c2(self.relu(self.c1(x))))
        return self.fc(x.mean((2, 3)))


MODELS = {c.__name__: c for c in (ResidualConcat, GroupedDepthwise, EncoderDecoder, DenseMiddle, Reused,
                                   ReusedActivation)}


def randomize_bn(model: nn.Module, seed: int = 1) -> nn.Module:
    """Random batch-norm statistics and affine parameters (a fresh model's would hide a wrong folding)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
                m.weight.copy_(0.75 + 0.5 * torch.rand(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
    return model


def build(name: str, seed: int = 0) -> nn.Module:
    """Model `name` with seeded weights and random batch-norm statistics, in eval mode."""
    torch.manual_seed(seed)
    return randomize_bn(MODELS[name](), seed + 1).eval()


def images(n: int, seed: int = 0, shape: tuple[int, ...] = SHAPE) -> torch.Tensor:
    """`n` seeded random images of `shape[1:]`."""
    return torch.randn((n,) + tuple(shape[1:]), generator=torch.Generator().manual_seed(seed))


class OddOps(nn.Module):
    """What test mode computes in less common ways: a 3x3 average pool (the DPU's 1/9 multiplier), a global
    mean over a 7x7 map, a subtraction and tanh / PReLU / GELU (float CPU ops), a channel split (slices),
    view(n, -1), a max pool with ceil_mode, a nearest upsample and softmax at the end."""

    def __init__(self):
        super().__init__()
        self.c1 = _cbr(3, 16, 3, stride=2)
        self.avg = nn.AvgPool2d(3, 1, 1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.prelu = nn.PReLU(8)
        self.c3 = nn.Conv2d(16, 12, 3, padding=1)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.c4 = nn.Conv2d(12, 12, 1)
        self.fc = nn.Linear(12, 10)

    def forward(self, x):
        x = self.c1(x)                               # 8x8
        a, b = x.chunk(2, 1)
        b = self.prelu(self.c2(b)) - torch.tanh(a)
        x = torch.cat([self.avg(a), b], 1)
        x = self.pool(F.relu(self.c3(x)))            # 4x4
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = F.max_pool2d(F.pad(x, (0, 0, 0, 0)), 1)
        x = F.gelu(self.c4(x))
        x = F.adaptive_avg_pool2d(x[:, :, 1:, 1:], 1)  # a 7x7 window
        return torch.softmax(self.fc(x.view(x.size(0), -1)), 1)


MODELS["OddOps"] = OddOps


class NormAfterAct(nn.Module):
    """Conv -> ReLU -> BatchNorm and a batch norm on the input (batch norms fold-bn cannot fold: the DPU runs
    them as 1x1 depthwise convs), BatchNorm1d after a dense layer (folded into it)."""

    def __init__(self):
        super().__init__()
        self.bn_in = nn.BatchNorm2d(3)
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.fc1 = nn.Linear(8, 16)
        self.bn2 = nn.BatchNorm1d(16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
        x = self.bn1(F.relu(self.c1(self.bn_in(x))))
        x = F.relu(self.c2(x)).mean((2, 3))
        return self.fc2(F.relu(self.bn2(self.fc1(x))))


MODELS["NormAfterAct"] = NormAfterAct


class ConstOperands(nn.Module):
    """Constants the DPU reads as feature maps (`x * 0.3 + 0.7`, a learned per-channel scale) and two outputs."""

    def __init__(self):
        super().__init__()
        self.c, self.d = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3)
        self.scale = nn.Parameter(torch.rand(1, 8, 1, 1) + 0.3)
        self.fc, self.aux = nn.Linear(8, 10), nn.Linear(8, 3)

    def forward(self, x):
        y = F.relu(self.c(x)) * 0.3 + 0.7
        h = (self.d(y) * self.scale).mean((2, 3))
        return self.fc(h), self.aux(h)


MODELS["ConstOperands"] = ConstOperands


class VggHead(nn.Module):
    """VGG's classifier on a small map: AdaptiveAvgPool2d((3, 3)) of a 4x4 map (uneven windows: a 1x1 conv of
    the pooling matrix on the DPU), flatten, Linear, ReLU, Dropout, Linear."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(_cbr(3, 8, 3, stride=2), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                                      nn.ReLU(inplace=True))
        self.avgpool = nn.AdaptiveAvgPool2d((3, 3))
        self.classifier = nn.Sequential(nn.Linear(16 * 9, 32), nn.ReLU(True), nn.Dropout(), nn.Linear(32, 10))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


MODELS["VggHead"] = VggHead
