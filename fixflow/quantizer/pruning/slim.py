"""Removing channels for real ("slim") or zeroing them ("sparse"), choosing them by filter norm, and
rebuilding a slim model from its saved state dict.

    slim = slim_model(graph, kept)                  # a copy with smaller Conv2d / BatchNorm2d / Linear
    torch.save(slim.state_dict(), "pruned.pth")
    model = load_state_dict(DigitsCNN(), torch.load("pruned.pth"))   # as pytorch_nndct.utils.slim
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .errors import PruningError
from .graph import PruningGraph

CRITERIA = ("l1", "l2")


def channel_importance(graph: PruningGraph, group_name: str, criterion: str = "l1") -> torch.Tensor:
    """Importance of each channel of a group: the L1 (or L2) norm of its filter in every producing conv,
    each conv's norms divided by their mean (so coupled convs weigh alike), summed."""
    if criterion not in CRITERIA:
        raise PruningError(f"criterion: expected one of {', '.join(CRITERIA)}, got {criterion!r}")
    g = graph.groups[group_name]
    mods = dict(graph.model.named_modules())
    total = torch.zeros(g.size, dtype=torch.float64)
    for name in g.producers:
        w = mods[name].weight.detach().double()
        w = (w.transpose(0, 1) if isinstance(mods[name], nn.ConvTranspose2d) else w).flatten(1)   # per output
        norms = w.abs().sum(1) if criterion == "l1" else w.pow(2).sum(1).sqrt()
        mean = norms.mean()
        total += norms / mean if mean > 0 else norms
    return total


def kept_count(size: int, ratio: float, channel_divisible: int = 1) -> int:
    """Channels kept of ``size`` when a fraction ``ratio`` is removed, a multiple of ``channel_divisible``
    (at least one multiple; all of them when ``size`` is not above it)."""
    d = max(1, int(channel_divisible))
    if size <= d:
        return size
    k = int(round(size * (1.0 - ratio) / d)) * d
    return min(size, max(d, k))


def select_channels(graph: PruningGraph, counts: Mapping[str, int], criterion: str = "l1") -> dict[int, list[int]]:
    """Group root -> sorted indices of the channels kept: the ``counts[name]`` most important ones."""
    kept: dict[int, list[int]] = {}
    for name, k in counts.items():
        g = graph.groups[name]
        if k >= g.size:
            continue
        imp = channel_importance(graph, name, criterion)
        order = sorted(range(g.size), key=lambda i: (-float(imp[i]), i))
        kept[g.root] = sorted(order[:k])
    return kept


def _set(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)


def _idx(ix: list[int]) -> torch.Tensor:
    return torch.tensor(ix, dtype=torch.long)


def _filled(new: nn.Module, old: nn.Module, w: torch.Tensor, b: torch.Tensor | None) -> nn.Module:
    """`new` with weight `w` and bias `b`, in `old`'s train/eval mode."""
    with torch.no_grad():
        new.weight.copy_(w)
        if b is not None:
            new.bias.copy_(b)
    new.train(old.training)
    return new


def _conv(old: nn.Conv2d, out_idx: list[int] | None, in_idx: list[int] | None, depthwise: bool) -> nn.Conv2d:
    w = old.weight.detach()
    b = old.bias.detach() if old.bias is not None else None
    if depthwise:
        idx = out_idx if out_idx is not None else in_idx
        w = w[_idx(idx)]
        b = b[_idx(idx)] if b is not None else None
        cin = cout = groups = len(idx)
    else:
        if out_idx is not None:
            w = w[_idx(out_idx)]
            b = b[_idx(out_idx)] if b is not None else None
        if in_idx is not None:
            w = w[:, _idx(in_idx)]
        cout, cin, groups = w.shape[0], w.shape[1] * old.groups, old.groups
    new = nn.Conv2d(cin, cout, old.kernel_size, old.stride, old.padding, old.dilation, groups, b is not None,
                    old.padding_mode, device=w.device, dtype=w.dtype)
    return _filled(new, old, w, b)


def _convt(old: nn.ConvTranspose2d, out_idx: list[int] | None, in_idx: list[int] | None) -> nn.ConvTranspose2d:
    """A ConvTranspose2d (groups 1) keeping output channels `out_idx` and input channels `in_idx`; its weight is
    (in, out, kh, kw)."""
    w = old.weight.detach()
    b = old.bias.detach() if old.bias is not None else None
    if out_idx is not None:
        w = w[:, _idx(out_idx)]
        b = b[_idx(out_idx)] if b is not None else None
    if in_idx is not None:
        w = w[_idx(in_idx)]
    new = nn.ConvTranspose2d(w.shape[0], w.shape[1], old.kernel_size, old.stride, old.padding, old.output_padding,
                             1, b is not None, old.dilation, old.padding_mode, device=w.device, dtype=w.dtype)
    return _filled(new, old, w, b)


def _prelu(old: nn.PReLU, idx: list[int]) -> nn.PReLU:
    new = nn.PReLU(len(idx), device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(old.weight.detach()[_idx(idx)])
    new.train(old.training)
    return new


def _bn(old: nn.BatchNorm2d, idx: list[int]) -> nn.BatchNorm2d:
    new = nn.BatchNorm2d(len(idx), old.eps, old.momentum, old.affine, old.track_running_stats,
                         device=old.weight.device if old.affine else None)
    ix = _idx(idx)
    with torch.no_grad():
        if old.affine:
            new.weight.copy_(old.weight.detach()[ix])
            new.bias.copy_(old.bias.detach()[ix])
        if old.track_running_stats:
            new.running_mean.copy_(old.running_mean[ix])
            new.running_var.copy_(old.running_var[ix])
            new.num_batches_tracked.copy_(old.num_batches_tracked)
    new.train(old.training)
    return new


def _linear(old: nn.Linear, in_idx: list[int]) -> nn.Linear:
    w = old.weight.detach()[:, _idx(in_idx)]
    new = nn.Linear(len(in_idx), old.out_features, old.bias is not None, device=w.device, dtype=w.dtype)
    return _filled(new, old, w, old.bias.detach() if old.bias is not None else None)


def _plan(graph: PruningGraph, kept: dict[int, list[int]]) -> dict[str, tuple[list[int] | None, list[int] | None]]:
    """Layer name -> (output indices kept, input indices kept); None where nothing changes."""
    plan: dict[str, tuple[list[int] | None, list[int] | None]] = {}
    for name in graph.order:
        L = graph.layers[name]
        m = L.module
        if L.role == "prelu":
            idx = graph.indices(L.in_layout, kept, m.num_parameters)
            if idx is not None:
                plan[name] = (idx, None)
        elif L.role == "bn":
            idx = graph.indices(L.in_layout, kept, m.num_features)
            if idx is not None:
                plan[name] = (idx, None)
        elif L.role == "dwconv":
            idx = graph.indices(L.in_layout, kept, m.in_channels)
            if idx is not None:
                plan[name] = (idx, idx)
        elif L.role in ("conv", "convt"):
            out = kept.get(graph.uf.find(L.out_space)) if L.out_space is not None else None
            inp = graph.indices(L.in_layout, kept, m.in_channels)
            if out is not None or inp is not None:
                plan[name] = (out, inp)
        else:
            inp = graph.indices(L.in_layout, kept, m.in_features)
            if inp is not None:
                plan[name] = (None, inp)
    return plan


def slim_model(graph: PruningGraph, kept: dict[int, list[int]]) -> nn.Module:
    """A deep copy of ``graph.model`` whose layers hold only the kept channels (same class, smaller
    Conv2d / ConvTranspose2d / BatchNorm2d / Linear / PReLU modules, real smaller tensors)."""
    model = copy.deepcopy(graph.model)
    for name, (out, inp) in _plan(graph, kept).items():
        L = graph.layers[name]
        old = model.get_submodule(name)
        if L.role == "prelu":
            new: nn.Module = _prelu(old, out)
        elif L.role == "bn":
            new = _bn(old, out)
        elif L.role in ("conv", "dwconv"):
            new = _conv(old, out, inp, L.role == "dwconv")
        elif L.role == "convt":
            new = _convt(old, out, inp)
        else:
            new = _linear(old, inp)
        _set(model, name, new)
    return model


def _keep_mask(idx: list[int] | None, n: int) -> torch.Tensor:
    mask = torch.zeros(n, dtype=torch.bool)
    mask[_idx(idx) if idx is not None else slice(None)] = True
    return mask


def sparse_model(graph: PruningGraph, kept: dict[int, list[int]]) -> nn.Module:
    """A deep copy of ``graph.model`` of the same shapes whose removed channels are zero (filters, biases,
    batch-norm scale and shift, and the weights that read them), computing what the slim model computes.
    Gradient hooks zero their gradients, so the zeros stay zero through finetuning with SGD, Adam or
    AdamW, weight decay included (it scales a weight, and zero stays zero)."""
    model = copy.deepcopy(graph.model)
    masks: dict[str, torch.Tensor] = {}
    for name, (out, inp) in _plan(graph, kept).items():
        L = graph.layers[name]
        if L.role == "prelu":
            continue                            # its removed channels are 0, and prelu(0) = 0
        m = model.get_submodule(name)
        w_shape = L.module.weight.shape
        if L.role == "convt":                   # weight (in, out, kh, kw)
            rows, cols = _keep_mask(out, w_shape[1]), _keep_mask(inp, w_shape[0])
        else:
            rows = _keep_mask(out, w_shape[0])
            cols = _keep_mask(inp, w_shape[1]) if L.role in ("conv", "linear") else None
        for pname, p in m.named_parameters(recurse=False):
            if pname == "bias" or L.role == "bn":
                mask = rows.clone() if L.role != "linear" else torch.ones_like(p, dtype=torch.bool)
            elif L.role == "dwconv":
                mask = rows.view(-1, 1, 1, 1).expand_as(p).clone()
            elif L.role == "conv":
                mask = (rows.view(-1, 1, 1, 1) & cols.view(1, -1, 1, 1)).expand_as(p).clone()
            elif L.role == "convt":
                mask = (cols.view(-1, 1, 1, 1) & rows.view(1, -1, 1, 1)).expand_as(p).clone()
            else:
                mask = cols.view(1, -1).expand_as(p).clone()
            masks[f"{name}.{pname}"] = mask
            with torch.no_grad():
                p.mul_(mask)
            p.register_hook(lambda grad, mk=mask: grad * mk)
    model._fixflow_pruning_masks = masks  # type: ignore[attr-defined]
    return model


def resize(model: nn.Module, shapes: Mapping[str, Any]) -> nn.Module:
    """Replace the Conv2d / ConvTranspose2d / BatchNorm2d / Linear / PReLU layers of ``model`` whose ``<layer>.weight`` has another
    shape in ``shapes`` (name -> shape) by fresh layers of that size (a depthwise conv stays depthwise);
    returns ``model``. The weights are then to be loaded."""
    for name, mod in list(model.named_modules()):
        key = f"{name}.weight" if name else "weight"
        shape = shapes.get(key)
        if shape is None or not isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.Linear, nn.PReLU)):
            continue
        shape = tuple(int(d) for d in shape)
        if shape == tuple(mod.weight.shape):
            continue
        if isinstance(mod, nn.ConvTranspose2d):
            if len(shape) != 4 or shape[2:] != tuple(mod.kernel_size) or mod.groups != 1:
                raise PruningError(f"'{key}' has shape {shape}, which no pruning of '{name}' ({mod}) gives")
            new: nn.Module = nn.ConvTranspose2d(shape[0], shape[1], mod.kernel_size, mod.stride, mod.padding,
                                                mod.output_padding, 1, mod.bias is not None, mod.dilation,
                                                mod.padding_mode)
        elif isinstance(mod, nn.Conv2d):
            dw = mod.groups > 1 and mod.groups == mod.in_channels == mod.out_channels
            if len(shape) != 4 or shape[2:] != tuple(mod.kernel_size):
                raise PruningError(f"'{key}' has shape {shape}, which no pruning of '{name}' ({mod}) gives")
            groups = shape[0] if dw else mod.groups
            new = nn.Conv2d(shape[1] * groups, shape[0], mod.kernel_size, mod.stride, mod.padding,
                                       mod.dilation, groups, mod.bias is not None, mod.padding_mode)
        elif isinstance(mod, nn.PReLU):
            if len(shape) != 1 or mod.num_parameters == 1:
                raise PruningError(f"'{key}' has shape {shape}, which no pruning of '{name}' ({mod}) gives")
            new = nn.PReLU(shape[0])
        elif isinstance(mod, nn.BatchNorm2d):
            if len(shape) != 1:
                raise PruningError(f"'{key}' has shape {shape}, which no pruning of '{name}' ({mod}) gives")
            new = nn.BatchNorm2d(shape[0], mod.eps, mod.momentum, mod.affine, mod.track_running_stats)
        else:
            if len(shape) != 2 or shape[0] != mod.out_features:
                raise PruningError(f"'{key}' has shape {shape}, which no pruning of '{name}' ({mod}) gives "
                                   "(dense outputs are never pruned)")
            new = nn.Linear(shape[1], mod.out_features, mod.bias is not None)
        new.train(mod.training)
        _set(model, name, new)
    return model


def load_state_dict(model: nn.Module, state_dict: Mapping[str, Any]) -> nn.Module:
    """Resize the Conv2d / ConvTranspose2d / BatchNorm2d / Linear / PReLU layers of ``model`` (the unpruned architecture) to the
    shapes in ``state_dict`` (a slim model's) and load it; returns ``model``. A depthwise conv stays
    depthwise."""
    try:
        resize(model, {k: tuple(v.shape) for k, v in state_dict.items() if k.endswith("weight")})
    except PruningError as e:
        raise PruningError(f"state dict: {e.message}") from None
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    extra = [k for k in state_dict if k not in own]
    if missing or extra:
        def few(keys: list[str]) -> str:
            return ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")
        raise PruningError(f"state dict does not fit {type(model).__name__}: "
                           + "; ".join(p for p in (f"missing {few(missing)}" if missing else "",
                                                   f"unexpected {few(extra)}" if extra else "") if p))
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        raise PruningError(f"state dict does not fit {type(model).__name__}: {' '.join(str(e).split())}") from None
    return model


__all__ = [
    "CRITERIA",
    "channel_importance",
    "kept_count",
    "load_state_dict",
    "resize",
    "select_channels",
    "slim_model",
    "sparse_model",
]
