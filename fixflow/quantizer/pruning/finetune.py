"""A small finetuning loop for pruned models (any ordinary torch training loop works as well: a slim
model is a plain ``nn.Module``)."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import PruningError


def _tensor(v: Any) -> torch.Tensor:
    return v if isinstance(v, torch.Tensor) else torch.from_numpy(np.asarray(v))


def finetune(model: nn.Module, loader: Iterable[Any], *, epochs: int = 5, lr: float = 1e-3,
             weight_decay: float = 0.0, loss_fn: Callable[..., torch.Tensor] | None = None, seed: int = 0,
             progress: bool = True, log: Callable[[str], None] | None = print) -> nn.Module:
    """Train ``model`` in place on ``loader`` (re-iterable; yields ``(inputs, labels)`` as tensors or numpy
    arrays) with Adam and a learning rate cosine-annealed over the epochs, cross-entropy by default; deterministic for a
    seed. Returns the model in eval mode. An empty loader or a non-finite loss is an error."""
    if not isinstance(epochs, int) or epochs < 1:
        raise PruningError(f"finetune: epochs must be a positive integer, got {epochs!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise PruningError(f"finetune: lr must be a positive number, got {lr!r}")
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    log = log or (lambda s: None)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for epoch in range(epochs):
            model.train()
            total, count, step = 0.0, 0, 0
            bar = None
            if progress:
                from tqdm import tqdm
                bar = tqdm(desc=f"Finetuning {epoch + 1}/{epochs}", unit="batch", leave=False, file=sys.stderr)
            try:
                for item in loader:
                    try:
                        xb, yb = item
                    except (TypeError, ValueError):
                        raise PruningError("finetune: the loader must yield (inputs, labels) pairs, got "
                                           f"{type(item).__name__}") from None
                    xb, yb = _tensor(xb).float(), _tensor(yb).long()
                    opt.zero_grad()
                    loss = loss_fn(model(xb), yb)
                    if not torch.isfinite(loss):
                        raise PruningError(f"finetune: the loss is {float(loss.detach())} at epoch {epoch + 1}, batch {step + 1} "
                                           "(lower lr?)")
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(yb)
                    count += len(yb)
                    step += 1
                    if bar is not None:
                        bar.update(1)
            finally:
                if bar is not None:
                    bar.close()
            if step == 0:
                raise PruningError("finetune: the loader yielded no batch")
            sched.step()
            log(f"[fixflow] finetune epoch {epoch + 1}/{epochs}: loss {total / count:.4f}")
    return model.eval()


__all__ = ["finetune"]
