"""Deterministic random weights for models without trained weights.

``randomize(model, seed, input_shape)``: convs get Kaiming-normal weights, linears a scaled
normal, BatchNorm gamma/beta random; then the BatchNorm running statistics are measured on a
seeded N(0, 1) input batch (train-mode forward with cumulative averaging), so every BN layer
actually normalizes its input in eval mode and the outputs of deep residual networks are neither
exploding nor collapsing. The last BN of each residual branch gets a smaller gamma, as trained
ResNets do. The global torch RNG state is left untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _residual_last_bns(model: nn.Module) -> set[int]:
    """ids of the BatchNorm that closes a residual branch (bn2 / bn3 / last BN of a block)."""
    from fixflow.zoo.models import BasicBlock, Bottleneck, InvertedResidual

    out: set[int] = set()
    for m in model.modules():
        if isinstance(m, BasicBlock):
            out.add(id(m.bn2))
        elif isinstance(m, Bottleneck):
            out.add(id(m.bn3))
        elif isinstance(m, InvertedResidual) and m.use_res_connect:
            out.add(id(m.conv[-1]))
    return out


@torch.no_grad()
def randomize(
    model: nn.Module, seed: int, input_shape: Sequence[int], *, calib_batch: int = 2
) -> nn.Module:
    """Give ``model`` seeded random weights and sane BN statistics (in place); returns it in eval mode.

    ``input_shape`` is one sample's (C, H, W) or a full (N, C, H, W) shape (N is replaced by
    ``calib_batch``).
    """
    gen = torch.Generator().manual_seed(seed)
    last_bns = _residual_last_bns(model)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=gen)
            if m.bias is not None:
                m.bias.normal_(0.0, 0.01, generator=gen)
        elif isinstance(m, nn.Linear):
            m.weight.normal_(0.0, (1.0 / m.in_features) ** 0.5, generator=gen)
            m.bias.normal_(0.0, 0.01, generator=gen)
        elif isinstance(m, nn.BatchNorm2d):
            lo, hi = (0.1, 0.4) if id(m) in last_bns else (0.5, 1.5)
            m.weight.uniform_(lo, hi, generator=gen)
            m.bias.normal_(0.0, 0.1, generator=gen)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one batch -> exactly its statistics
    shape = tuple(input_shape[-3:])
    x = torch.randn((calib_batch, *shape), generator=gen)
    model.train()
    try:
        model(x)
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        model.eval()
    _center_classifier(model, x)
    return model


def _center_classifier(model: nn.Module, x: torch.Tensor) -> None:
    """Set the last Linear's bias so the logits are zero-mean on ``x`` and rescale it so their
    input-dependent part has unit std: the predicted class then depends on the input rather than
    on a fixed bias (random nets otherwise output nearly the same logits for any input)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        return
    fc = linears[-1]
    seen: list[torch.Tensor] = []
    handle = fc.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    try:
        model(x)
    finally:
        handle.remove()
    feats = seen[0].flatten(1)
    centered = (feats - feats.mean(0)) @ fc.weight.T
    spread = float(centered.std())
    if spread > 0:
        fc.weight.mul_(1.0 / spread)
    fc.bias.copy_(-(feats.mean(0) @ fc.weight.T))
