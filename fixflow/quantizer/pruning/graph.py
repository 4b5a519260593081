"""Which output channels of a float torch model can be removed together: channel groups found from the
traced graph (torch.fx with shape propagation).

Every conv output starts a *channel space*; batch norm, depthwise convs and element-wise ops carry a
space through; a residual add or multiply couples (unions) the spaces of its operands; a concat along
channels lays spaces side by side; flatten spreads each channel over H x W features of the dense layer
that reads it. A group is the union of coupled spaces. It is prunable when no channel of it reaches the
model input or output, a dense output, an op the analysis does not know, or an excluded layer.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from .errors import PruningError

# modules and functions that keep the channel layout of their first tensor operand
_PASS_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh,
                 nn.SiLU, nn.GELU, nn.ELU, nn.Dropout, nn.Dropout2d, nn.Identity, nn.MaxPool2d, nn.AvgPool2d,
                 nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Upsample, nn.UpsamplingNearest2d,
                 nn.UpsamplingBilinear2d, nn.ZeroPad2d, nn.ConstantPad2d)
_PASS_FUNCTIONS = {torch.relu, torch.sigmoid, torch.tanh, nn.functional.relu, nn.functional.relu6,
                   nn.functional.leaky_relu, nn.functional.hardswish, nn.functional.hardsigmoid,
                   nn.functional.sigmoid, nn.functional.silu, nn.functional.gelu, nn.functional.dropout,
                   nn.functional.max_pool2d, nn.functional.avg_pool2d, nn.functional.adaptive_avg_pool2d,
                   nn.functional.adaptive_max_pool2d, nn.functional.interpolate, operator.neg}
_PASS_METHODS = {"relu", "relu_", "sigmoid", "tanh", "contiguous", "clone", "float", "detach"}
_ELEMENTWISE = {operator.add, operator.iadd, operator.sub, operator.mul, operator.imul, torch.add, torch.sub,
                torch.mul}
_ELEMENTWISE_METHODS = {"add", "add_", "sub", "mul", "mul_"}
_SHAPE_METHODS = {"size", "dim"}



def _keeps_dims01(index: Any) -> bool:
    """An index `x[:, :, ...]` selecting in dims >= 2 only (slices and integers)."""
    if not isinstance(index, tuple) or len(index) < 2 or index[:2] != (slice(None), slice(None)):
        return False
    return all(isinstance(i, (int, slice)) and not isinstance(i, bool) for i in index[2:]) and \
        all(not isinstance(getattr(i, a, None), fx.Node) for i in index[2:] if isinstance(i, slice)
            for a in ("start", "stop", "step"))


def _pads_spatial(node: fx.Node) -> bool:
    """F.pad of at most the last two dims (H, W) of a feature map."""
    pads = node.kwargs.get("pad", node.args[1] if len(node.args) > 1 else None)
    return isinstance(pads, (tuple, list)) and len(pads) <= 4 and all(isinstance(p, int) for p in pads)


def _is_stochastic_depth(fn: Any) -> bool:
    """torchvision.ops.stochastic_depth (EfficientNet, ConvNeXt...): drops whole samples in training, the
    identity in eval; the channel layout of its input is kept."""
    return getattr(fn, "__name__", "") == "stochastic_depth" and \
        str(getattr(fn, "__module__", "")).startswith("torchvision.ops")


# a tensor's channel layout: kind "c" (channels in dim 1) or "f" (flattened: channel c is features
# [c*hw, (c+1)*hw) of its segment); segments are (space id, channels, hw)
Layout = tuple[str, tuple[tuple[int, int, int], ...]]


@dataclass
class LayerUse:
    """A conv/linear/batch-norm module in the graph: its channel layouts and output size."""

    name: str
    module: nn.Module
    role: str                              # "conv" | "convt" | "dwconv" | "linear" | "bn" | "prelu"
    in_layout: Layout | None               # what it reads (None: not tracked)
    out_space: int | None = None           # the space it starts (convs)
    out_elems: int = 0                     # output elements per channel/feature per image (for MACs)


@dataclass
class ChannelGroup:
    """Output channels that must be removed together."""

    name: str                              # first producing conv (graph order)
    root: int
    size: int
    producers: list[str] = field(default_factory=list)    # convs whose filters are these channels
    followers: list[str] = field(default_factory=list)    # batch norms / depthwise convs carrying them
    consumers: list[str] = field(default_factory=list)    # convs / dense layers reading them
    fixed: str | None = None               # why it cannot be pruned (None: prunable)

    @property
    def prunable(self) -> bool:
        return self.fixed is None and bool(self.producers)


class _UnionFind:
    def __init__(self) -> None:
        self.parent: list[int] = []
        self.size: list[int] = []

    def new(self, n: int) -> int:
        self.parent.append(len(self.parent))
        self.size.append(n)
        return len(self.parent) - 1

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            ra, rb = min(ra, rb), max(ra, rb)
            self.parent[rb] = ra
        return ra


def _tensors(args: Any) -> list[fx.Node]:
    out: list[fx.Node] = []
    fx.node.map_arg(args, lambda n: out.append(n))
    return out


class PruningGraph:
    """The channel groups of ``model`` traced with ``inputs`` (see the module docstring)."""

    def __init__(self, model: nn.Module, inputs: Sequence[torch.Tensor], excludes: Sequence[Any] = ()) -> None:
        self.model = model
        self.inputs = tuple(inputs)
        try:
            self.gm = fx.symbolic_trace(model)
        except Exception as e:  # noqa: BLE001 - torch.fx raises many kinds
            raise PruningError(f"cannot trace {type(model).__name__} with torch.fx: {type(e).__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else ''} (pruning needs a traceable model: "
                               "no data-dependent control flow in forward)") from None
        was_training = model.training
        self.gm.eval()
        try:
            with torch.no_grad():
                ShapeProp(self.gm).propagate(*self.inputs)
        except Exception as e:  # noqa: BLE001 - the user's forward
            raise PruningError(f"running {type(model).__name__} on the example inputs failed: "
                               f"{type(e).__name__}: {e}") from None
        finally:
            self.gm.train(was_training)
        self.batch = int(self.inputs[0].shape[0]) if self.inputs and self.inputs[0].dim() else 1
        self.uf = _UnionFind()
        self.fixed: dict[int, str] = {}
        self.layers: dict[str, LayerUse] = {}
        self._lay: dict[fx.Node, Layout | None] = {}
        self.order: list[str] = []
        self._walk()
        self._apply_excludes(excludes)
        self.groups = self._groups()

    # ------------------------------------------------------------------ analysis

    def _fix(self, layout: Layout | None, reason: str) -> None:
        if layout is None:
            return
        for space, _, _ in layout[1]:
            self.fixed.setdefault(space, reason)

    def _shape(self, node: fx.Node) -> tuple[int, ...] | None:
        meta = node.meta.get("tensor_meta")
        return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None

    def _new(self, node: fx.Node, fixed: str | None = None) -> Layout | None:
        shape = self._shape(node)
        if shape is None or len(shape) < 2:
            return None
        space = self.uf.new(shape[1])
        if fixed:
            self.fixed[space] = fixed
        return ("c", ((space, shape[1], 1),))

    def _flatten(self, node: fx.Node, src: Layout | None, start: int) -> Layout | None:
        shape = self._shape(node.args[0]) if isinstance(node.args[0], fx.Node) else None
        if src is None or shape is None:
            return src
        if start != 1 or src[0] != "c":
            self._fix(src, f"reshaped by '{node.name}'")
            return None
        hw = 1
        for d in shape[2:]:
            hw *= d
        return ("f", tuple((s, n, h * hw) for s, n, h in src[1]))

    def _walk(self) -> None:
        modules = dict(self.gm.named_modules())
        calls: dict[str, int] = {}
        lay = self._lay = {}
        for node in self.gm.graph.nodes:
            ins = [lay.get(a) for a in _tensors(node.args) + _tensors(node.kwargs)]
            first = lay.get(node.args[0]) if node.args and isinstance(node.args[0], fx.Node) else None
            out: Layout | None = None
            if node.op == "placeholder":
                out = self._new(node, "it carries the model input")
            elif node.op == "output":
                for i in ins:
                    self._fix(i, "it reaches the model output")
            elif node.op == "get_attr":
                out = None
            elif node.op == "call_module":
                mod = modules[node.target]
                calls[node.target] = calls.get(node.target, 0) + 1
                out = self._module(node, node.target, mod, first, calls[node.target])
                for i in ins[1:]:
                    self._fix(i, f"it is an extra operand of '{node.target}'")
            elif node.op == "call_function":
                out = self._function(node, node.target, first, ins)
            elif node.op == "call_method":
                out = self._method(node, first, ins)
            lay[node] = out

    def _module(self, node: fx.Node, name: str, mod: nn.Module, src: Layout | None, ncalls: int) -> Layout | None:
        if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.BatchNorm2d)) and ncalls > 1:
            why = f"'{name}' is called more than once"
            self._fix(src, why)
            prev = self.layers.get(name)
            if prev is not None:
                self._fix(prev.in_layout, why)
                if prev.out_space is not None:
                    self.fixed.setdefault(prev.out_space, why)
            return src if isinstance(mod, nn.BatchNorm2d) else self._new(node, why)
        shape = self._shape(node)
        if isinstance(mod, nn.Conv2d):
            per = 1
            for d in (shape or (1, 1))[2:]:
                per *= d
            dw = mod.groups > 1 and mod.groups == mod.in_channels == mod.out_channels
            if dw and src is not None and src[0] == "c":
                self.layers[name] = LayerUse(name, mod, "dwconv", src, None, per)
                self.order.append(name)
                return src
            if mod.groups > 1:
                self._fix(src, f"it feeds the grouped conv '{name}'")
                self.layers[name] = LayerUse(name, mod, "conv", None, None, per)
                self.order.append(name)
                return self._new(node, f"it comes from the grouped conv '{name}'")
            if src is not None and src[0] != "c":
                self._fix(src, f"'{name}' reads a flattened tensor")
                src = None
            out = self._new(node)
            self.layers[name] = LayerUse(name, mod, "conv", src, out[1][0][0] if out else None, per)
            self.order.append(name)
            return out
        if isinstance(mod, nn.ConvTranspose2d):
            in_shape = self._shape(node.args[0]) if isinstance(node.args[0], fx.Node) else None
            per = 1
            for d in (in_shape or (1, 1))[2:]:
                per *= d                           # MACs per (input, output) channel pair: input positions x k
            if mod.groups > 1:
                self._fix(src, f"it feeds the grouped transposed conv '{name}'")
                self.layers[name] = LayerUse(name, mod, "convt", None, None, per)
                self.order.append(name)
                return self._new(node, f"it comes from the grouped transposed conv '{name}'")
            if src is not None and src[0] != "c":
                self._fix(src, f"'{name}' reads a flattened tensor")
                src = None
            out = self._new(node)
            self.layers[name] = LayerUse(name, mod, "convt", src, out[1][0][0] if out else None, per)
            self.order.append(name)
            return out
        if isinstance(mod, nn.BatchNorm2d):
            if src is not None and src[0] == "c":
                self.layers[name] = LayerUse(name, mod, "bn", src)
                self.order.append(name)
            else:
                self._fix(src, f"it feeds '{name}' in an unexpected layout")
            return src
        if isinstance(mod, nn.Linear):
            in_shape = self._shape(node.args[0]) if isinstance(node.args[0], fx.Node) else None
            if src is not None and (in_shape is None or len(in_shape) != 2):
                self._fix(src, f"the dense layer '{name}' reads a tensor of rank {len(in_shape or ())}")
                src = None
            if src is not None and src[0] == "c":
                src = ("f", src[1])
            self.layers[name] = LayerUse(name, mod, "linear", src, None, 1)
            self.order.append(name)
            return self._new(node, f"it is the output of the dense layer '{name}'")
        if isinstance(mod, nn.Flatten):
            return self._flatten(node, src, mod.start_dim)
        if isinstance(mod, nn.PReLU) and mod.num_parameters > 1:     # a slope per channel: sliced as a batch norm
            if ncalls > 1:
                self._fix(src, f"'{name}' is called more than once")
            elif src is not None and src[0] == "c":
                self.layers[name] = LayerUse(name, mod, "prelu", src)
                self.order.append(name)
            else:
                self._fix(src, f"it feeds '{name}' in an unexpected layout")
            return src
        if isinstance(mod, _PASS_MODULES):
            return src
        self._fix(src, f"it feeds '{name}' ({type(mod).__name__}), which pruning does not know")
        return self._new(node, f"it comes from '{name}' ({type(mod).__name__})")

    def _combine(self, node: fx.Node, ins: list[Layout | None]) -> Layout | None:
        tracked = [i for i in ins if i is not None]
        if not tracked:
            return None
        # operands broadcast against a per-channel tensor or a full one: segments must line up
        ref = tracked[0]
        for other in tracked[1:]:
            if other[0] != ref[0] or [n for _, n, _ in other[1]] != [n for _, n, _ in ref[1]]:
                for t in tracked:
                    self._fix(t, f"the operands of '{node.name}' have different channel layouts")
                return self._new(node, f"it comes from '{node.name}'")
        for other in tracked[1:]:
            for (a, _, _), (b, _, _) in zip(ref[1], other[1]):
                self.uf.union(a, b)
        for a in _tensors(node.args) + _tensors(node.kwargs):
            a_shape = self._shape(a)
            if a_shape is not None and len(a_shape) >= 2 and a_shape[1] > 1 and self._lay.get(a) is None:
                for t in tracked:
                    self._fix(t, f"'{node.name}' combines them with an untracked per-channel tensor")
                return ref
        return ref

    def _function(self, node: fx.Node, fn: Any, src: Layout | None, ins: list[Layout | None]) -> Layout | None:
        if fn in _ELEMENTWISE:
            return self._combine(node, ins)
        if fn in (torch.cat, torch.concat):
            dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
            parts = [lay for lay in ins]
            rank = len(self._shape(node) or ())
            if dim in (1, 1 - rank) and parts and all(p is not None and p[0] == "c" for p in parts):
                return ("c", tuple(seg for p in parts for seg in p[1]))
            for p in parts:
                self._fix(p, f"it is concatenated by '{node.name}' along dim {dim}")
            return self._new(node, f"it comes from '{node.name}'")
        if fn is torch.flatten:
            start = node.kwargs.get("start_dim", node.args[1] if len(node.args) > 1 else 0)
            return self._flatten(node, src, start)
        if fn in (torch.mean, torch.amax, torch.sum) and self._reduces_spatial(node):
            return src
        if fn in _PASS_FUNCTIONS or _is_stochastic_depth(fn):
            for i in ins[1:]:
                self._fix(i, f"it is an extra operand of '{node.name}'")
            return src
        if fn is getattr or (fn is operator.getitem and not any(i is not None for i in ins)):
            return None
        if fn is operator.getitem and src is not None and src[0] == "c" and _keeps_dims01(node.args[1]):
            return src                             # x[:, :, h0:h1, w0:w1]: every channel kept
        if fn is nn.functional.pad and src is not None and src[0] == "c" and _pads_spatial(node):
            return src
        for i in ins:
            self._fix(i, f"it feeds '{node.name}' ({getattr(fn, '__name__', fn)}), which pruning does not know")
        return self._new(node, f"it comes from '{node.name}'")

    def _reduces_spatial(self, node: fx.Node) -> bool:
        dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
        dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
        in_shape = self._shape(node.args[0]) if isinstance(node.args[0], fx.Node) else None
        if in_shape is None or not dims:
            return False
        rank = len(in_shape)
        return all(d % rank >= 2 for d in dims)

    def _method(self, node: fx.Node, src: Layout | None, ins: list[Layout | None]) -> Layout | None:
        m = node.target
        if m in _SHAPE_METHODS:
            return None
        if m in _PASS_METHODS:
            return src
        if m in _ELEMENTWISE_METHODS:
            return self._combine(node, ins)
        if m == "flatten":
            start = node.kwargs.get("start_dim", node.args[1] if len(node.args) > 1 else 0)
            return self._flatten(node, src, start)
        if m in ("view", "reshape"):
            out_shape = self._shape(node)
            in_shape = self._shape(node.args[0]) if isinstance(node.args[0], fx.Node) else None
            if out_shape and in_shape and len(out_shape) == 2 and out_shape[0] == in_shape[0]:
                return self._flatten(node, src, 1)
        if m in ("mean", "amax", "sum") and self._reduces_spatial(node):
            return src
        for i in ins:
            self._fix(i, f"it feeds '{node.name}' (.{m}()), which pruning does not know")
        return self._new(node, f"it comes from '{node.name}'")

    def _apply_excludes(self, excludes: Sequence[Any]) -> None:
        names = {id(m): n for n, m in self.model.named_modules()}
        all_names = [n for n in names.values() if n]
        for i, ex in enumerate(excludes):
            name = names.get(id(ex)) if isinstance(ex, nn.Module) else ex
            if not isinstance(name, str):
                raise PruningError(f"excludes[{i}]: expected a layer name or a module of the model, got "
                                   f"{type(ex).__name__}")
            hit = [n for n in self.layers if n == name or n.startswith(name + ".")]
            if not hit and name not in all_names:
                convs = [n for n, L in self.layers.items() if L.role in ("conv", "convt")]
                raise PruningError(f"excludes[{i}]: '{name}' names no layer of {type(self.model).__name__} "
                                   f"(conv layers: {', '.join(convs) or 'none'})")
            for n in hit:
                L = self.layers[n]
                if L.out_space is not None:
                    self.fixed.setdefault(L.out_space, f"'{n}' is excluded")
                if L.role in ("dwconv", "bn", "prelu"):
                    self._fix(L.in_layout, f"'{n}' is excluded")

    def _groups(self) -> dict[str, ChannelGroup]:
        by_root: dict[int, ChannelGroup] = {}
        fixed_roots: dict[int, str] = {}
        for space, why in self.fixed.items():
            fixed_roots.setdefault(self.uf.find(space), why)
        for name in self.order:
            L = self.layers[name]
            if L.role in ("conv", "convt") and L.out_space is not None:
                r = self.uf.find(L.out_space)
                g = by_root.get(r)
                if g is None:
                    g = by_root[r] = ChannelGroup(name, r, self.uf.size[L.out_space], fixed=fixed_roots.get(r))
                g.producers.append(name)
        for name in self.order:
            L = self.layers[name]
            for space, _, _ in (L.in_layout[1] if L.in_layout else ()):
                g = by_root.get(self.uf.find(space))
                if g is None:
                    continue
                bucket = g.followers if L.role in ("bn", "dwconv", "prelu") else g.consumers
                if name not in bucket:
                    bucket.append(name)
        return {g.name: g for g in by_root.values()}

    # ------------------------------------------------------------------ queries

    def prunable(self) -> list[ChannelGroup]:
        """The groups that can be pruned, in graph order."""
        return [g for g in self.groups.values() if g.prunable]

    def group_of_space(self, space: int) -> ChannelGroup | None:
        r = self.uf.find(space)
        return next((g for g in self.groups.values() if g.root == r), None)

    def indices(self, layout: Layout | None, kept: dict[int, list[int]], original: int) -> list[int] | None:
        """Indices (channels, or features of a flattened layout) a layer keeps of an input with ``layout``
        when group root r keeps channels ``kept[r]``; None when nothing changes."""
        if layout is None:
            return None
        out: list[int] = []
        offset = 0
        changed = False
        for space, n, hw in layout[1]:
            keep = kept.get(self.uf.find(space))
            if keep is None or len(keep) == n:
                out.extend(range(offset, offset + n * hw))
            else:
                changed = True
                for c in keep:
                    out.extend(range(offset + c * hw, offset + (c + 1) * hw))
            offset += n * hw
        if offset != original:
            return None
        return out if changed else None

    def macs(self, counts: dict[int, int] | None = None) -> int:
        """MACs of one image (conv and dense layers, as ``fixflow.zoo.count_macs``) when group root r keeps
        ``counts[r]`` channels (default: the model as it is)."""
        counts = counts or {}
        kept = {r: list(range(k)) for r, k in counts.items()}
        total = 0
        for name in self.order:
            L = self.layers[name]
            m = L.module
            if L.role in ("bn", "prelu"):
                continue
            if isinstance(m, nn.ConvTranspose2d):
                kh, kw = m.kernel_size
                in_idx = self.indices(L.in_layout, kept, m.in_channels)
                cin = m.in_channels if in_idx is None else len(in_idx)
                cout = m.out_channels
                if L.out_space is not None:
                    cout = counts.get(self.uf.find(L.out_space), cout)
                total += L.out_elems * cin * (cout // m.groups) * kh * kw
                continue
            if isinstance(m, nn.Conv2d):
                kh, kw = m.kernel_size
                in_idx = self.indices(L.in_layout, kept, m.in_channels)
                cin = m.in_channels if in_idx is None else len(in_idx)
                if L.role == "dwconv":
                    total += L.out_elems * cin * kh * kw
                    continue
                cout = m.out_channels
                if L.out_space is not None:
                    cout = counts.get(self.uf.find(L.out_space), cout)
                total += L.out_elems * cout * (cin // m.groups) * kh * kw
            else:
                in_idx = self.indices(L.in_layout, kept, m.in_features)
                fin = m.in_features if in_idx is None else len(in_idx)
                total += m.out_features * fin
        return total

    def digest(self) -> str:
        """md5 of the graph's structure: the traced code and every layer's type and parameter shapes."""
        h = hashlib.md5(self.gm.code.encode())
        for name, mod in self.model.named_modules():
            h.update(f"{name}:{type(mod).__name__}:{mod.extra_repr()}".encode())
        return h.hexdigest()


def weights_digest(model: nn.Module) -> str:
    """md5 of every parameter and buffer (names, shapes and bytes)."""
    h = hashlib.md5()
    for k, v in model.state_dict().items():
        t = v.detach().cpu().contiguous()
        h.update(f"{k}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


__all__ = ["ChannelGroup", "LayerUse", "PruningGraph", "weights_digest"]
