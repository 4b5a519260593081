"""Reference model definitions (torch ``nn.Module``), written by hand.

Only standard layers are used (Conv2d incl. groups, BatchNorm2d, ReLU, ReLU6, MaxPool2d,
AdaptiveAvgPool2d, Linear, Dropout, flatten, ``+`` for residuals) and there is no data-dependent
control flow, so every model traces with ``torch.fx.symbolic_trace``. Parameter names of the
ImageNet models follow torchvision's, so torchvision state dicts load into them.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "DigitsCNN",
    "TinyMobileNet",
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "ResNet18",
    "ResNet50",
    "ResNet18Cifar",
    "InvertedResidual",
    "MobileNetV2",
]


def conv_bn_relu(
    cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1, relu6: bool = False
) -> nn.Sequential:
    """Conv (no bias, 'same' padding) -> BatchNorm2d -> ReLU/ReLU6."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True) if relu6 else nn.ReLU(inplace=True),
    )


class DigitsCNN(nn.Module):
    """MNIST-tutorial-style CNN for 1x28x28 digits, 10 classes (~25k parameters).

    conv3x3(16)-bn-relu @28 -> maxpool2 @14 -> conv3x3(32)-bn-relu @14
    -> conv3x3/2(64)-bn-relu @7 -> flatten -> linear(10).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, 16),
            nn.MaxPool2d(2, 2),
            conv_bn_relu(16, 32),
            conv_bn_relu(32, 64, stride=2),
        )
        self.classifier = nn.Linear(64 * 7 * 7, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


class DepthwiseSeparable(nn.Module):
    """dw conv3x3 -> BN -> ReLU -> pw conv1x1 -> BN -> ReLU (plain ReLU, so per-channel
    positive scaling commutes with it)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
        self.dw_bn = nn.BatchNorm2d(cin)
        self.dw_relu = nn.ReLU(inplace=True)
        self.pw = nn.Conv2d(cin, cout, 1, 1, 0, bias=False)
        self.pw_bn = nn.BatchNorm2d(cout)
        self.pw_relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dw_relu(self.dw_bn(self.dw(x)))
        return self.pw_relu(self.pw_bn(self.pw(x)))


class TinyMobileNet(nn.Module):
    """Depthwise-separable net for 1x28x28 digits (the same input as DigitsCNN), 10 classes.

    stem conv3x3(16)-bn-relu @28, then dw-separable blocks 16->32/2 @14, 32->32 @14,
    32->64/2 @7, 64->64 @7, global average pool, linear(10).
    """

    cfg = ((16, 32, 2), (32, 32, 1), (32, 64, 2), (64, 64, 1))

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.stem = conv_bn_relu(in_channels, 16)
        self.blocks = nn.Sequential(*(DepthwiseSeparable(i, o, s) for i, o, s in self.cfg))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self.cfg[-1][1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.blocks(self.stem(x)))
        return self.classifier(torch.flatten(x, 1))


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _downsample(cin, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (1x1, 3x3 with the stride, 1x1 x4), as in torchvision."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(cin, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _downsample(cin: int, cout: int, stride: int) -> nn.Module | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class ResNet(nn.Module):
    """ResNet with an ImageNet stem (7x7/2 conv, 3x3/2 maxpool) or a CIFAR stem (3x3 conv)."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, int, int, int],
        num_classes: int = 1000,
        cifar_stem: bool = False,
    ) -> None:
        super().__init__()
        if cifar_stem:
            self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if cifar_stem else nn.MaxPool2d(3, 2, 1)
        cin = 64
        stages = []
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(cin, planes, stride))
                cin = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def ResNet18(num_classes: int = 1000) -> ResNet:
    """ResNet-18 for 3x224x224 input (ImageNet stem)."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes)


def ResNet50(num_classes: int = 1000) -> ResNet:
    """ResNet-50 (v1.5, as torchvision and pt_resnet50) for 3x224x224 input."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes)


def ResNet18Cifar(num_classes: int = 10) -> ResNet:
    """ResNet-18 with a 3x3/1 stem and no maxpool, for 3x32x32 input."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, cifar_stem=True)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [1x1 expand-bn-relu6] -> dw3x3-bn-relu6 -> 1x1 project-bn (+ x)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_bn_relu(cin, hidden, 1, relu6=True))
        layers += [
            conv_bn_relu(hidden, hidden, 3, stride, groups=hidden, relu6=True),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2, width 1.0, for 3x224x224 input, 1000 classes (torchvision layout)."""

    settings = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        cin = 32
        features: list[nn.Module] = [conv_bn_relu(3, cin, 3, 2, relu6=True)]
        for t, c, n, s in self.settings:
            for i in range(n):
                features.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        features.append(conv_bn_relu(cin, 1280, 1, relu6=True))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


class Fire(nn.Module):
    """SqueezeNet fire module: 1x1 squeeze-relu, then 1x1 and 3x3 expand-relu concatenated."""

    def __init__(self, cin: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, squeeze, 1), nn.ReLU())
        self.expand1x1 = nn.Sequential(nn.Conv2d(squeeze, expand1x1, 1), nn.ReLU())
        self.expand3x3 = nn.Sequential(nn.Conv2d(squeeze, expand3x3, 3, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze(x)
        return torch.cat([self.expand1x1(x), self.expand3x3(x)], 1)


class SqueezeNet11(nn.Module):
    """SqueezeNet 1.1 for 3x224x224 input (torchvision layout: max pools with ceil_mode, a 1x1 conv
    classifier with ReLU, global average pool)."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, stride=2), nn.ReLU(),
            nn.MaxPool2d(3, 2, ceil_mode=True), Fire(64, 16, 64, 64), Fire(128, 16, 64, 64),
            nn.MaxPool2d(3, 2, ceil_mode=True), Fire(128, 32, 128, 128), Fire(256, 32, 128, 128),
            nn.MaxPool2d(3, 2, ceil_mode=True), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
            Fire(384, 64, 256, 256), Fire(512, 64, 256, 256),
        )
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Conv2d(512, num_classes, 1), nn.ReLU(),
                                        nn.AdaptiveAvgPool2d(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)
