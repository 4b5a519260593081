"""`Fn`: a function of the input (and of the module's own parameters) as a PyTorch model."""

from __future__ import annotations

from torch import nn


class Fn(nn.Module):
    """Wraps a function of the input (and of the module's own parameters) as a model."""

    def __init__(self, fn, **children):
        super().__init__()
        self.fn = fn
        for k, v in children.items():
            setattr(self, k, v)

    def forward(self, x):
        return self.fn(self, x)
