"""Function-preserving channel imbalance (the failure mode of Nagel et al. 2019, "Data-Free
Quantization Through Weight Equalization and Bias Correction", seen in MobileNetV2).

For every chain ``depthwise conv -> BatchNorm2d -> ReLU -> conv`` (each intermediate value used
once), channel c of the BN output is multiplied by ``s_c = 2**u_c`` (gamma and beta scaled) and the
next conv's input-channel-c weights are divided by ``s_c``. ReLU is positively homogeneous, so
the float function is unchanged, but after BN folding the depthwise conv's per-channel weight
ranges (and the activation ranges) spread by up to ``2**max_log2``: per-tensor quantization then
breaks, and cross-layer equalization repairs it.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import fx, nn


def _single_user(node: fx.Node) -> fx.Node | None:
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def _is_depthwise(m: nn.Module) -> bool:
    return isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels == m.out_channels


def find_dw_bn_relu_conv_chains(model: nn.Module) -> list[tuple[str, str, str]]:
    """Qualified names ``(depthwise_conv, bn, next_conv)`` of every dw-conv -> BN -> ReLU -> conv chain."""
    gm = fx.symbolic_trace(model)
    mods = dict(gm.named_modules())
    chains = []
    for node in gm.graph.nodes:
        if node.op != "call_module" or not _is_depthwise(mods[node.target]):
            continue
        bn = _single_user(node)
        if bn is None or bn.op != "call_module" or not isinstance(mods[bn.target], nn.BatchNorm2d):
            continue
        relu = _single_user(bn)
        if relu is None or relu.op != "call_module" or type(mods[relu.target]) is not nn.ReLU:
            continue
        nxt = _single_user(relu)
        if nxt is None or nxt.op != "call_module" or not isinstance(mods[nxt.target], nn.Conv2d):
            continue
        if mods[nxt.target].groups != 1:
            continue
        chains.append((str(node.target), str(bn.target), str(nxt.target)))
    return chains


@torch.no_grad()
def make_imbalanced(
    model: nn.Module, seed: int, max_log2: float = 8.0, *, symmetric: bool = True
) -> nn.Module:
    """Return a copy of ``model`` whose dw-conv -> BN -> ReLU -> conv chains are rescaled per channel.

    ``u_c`` is uniform in ``[-max_log2/2, max_log2/2]`` (``symmetric``) or ``[0, max_log2]``;
    ``s_c = 2**u_c > 0``. BN gamma and beta of channel c are multiplied by ``s_c`` and the next
    conv's input-channel-c weights divided by ``s_c``. The input model is not modified.
    Raises ValueError if the model has no such chain.
    """
    chains = find_dw_bn_relu_conv_chains(model)
    if not chains:
        raise ValueError(f"{type(model).__name__} has no depthwise conv -> BN -> ReLU -> conv chain")
    out = copy.deepcopy(model)
    mods = dict(out.named_modules())
    rng = np.random.default_rng(seed)
    lo, hi = (-max_log2 / 2, max_log2 / 2) if symmetric else (0.0, max_log2)
    for _, bn_name, next_name in chains:
        bn, nxt = mods[bn_name], mods[next_name]
        u = rng.uniform(lo, hi, size=bn.num_features)
        s = torch.from_numpy(np.exp2(u)).to(bn.weight.dtype)
        bn.weight.mul_(s)
        bn.bias.mul_(s)
        nxt.weight.div_(s.view(1, -1, 1, 1))
    return out
