"""Quantization-aware training (vai_q_pytorch's `QatProcessor`) with trained power-of-two thresholds.

    qat = QatProcessor(model, (x,), bitwidth=8, config={...})    # config: as the Quantizer's
    qm = qat.trainable_model()                                    # a torch.nn.Module
    ... train qm with any optimizer (qm.parameters()) ...
    deployable = qat.to_deployable(qm, "build/qat")               # quant_info.json, the model to deploy
    qat.export_xmodel("build/qat")                                # <Model>_int.xmodel, as PTQ's

The trainable module runs fixflow's prepared graph (batch norm folded, equalized as the config asks)
in torch, with a TQT fake quantizer (Jain et al. 2019) on the input, every weight, bias and
quantization point: a learnable `log2_t` per tensor, `fix_pos = bw - 1 - ceil(log2_t)`,
`q = clamp(round(x * 2^fix_pos), -2^(bw-1), 2^(bw-1) - 1) * 2^-fix_pos` with straight-through rounding
and `ceil`, so `x` gets the straight-through gradient and `log2_t` TQT's. Thresholds start where
fixflow's calibration would put them (the "diffs" search: weights at construction, activations on
the first batch). Weights and biases round std_round, activations half_up, as the DPU.

`to_deployable` writes the trained float parameters into a copy of the user's model (a folded batch
norm becomes an exact identity) and exports quant_info.json with the trained fix positions through
the Quantizer's own calib-mode export, so test mode, `export_xmodel`, fixflow-compile and fixflow-run
take it as they take PTQ's.
"""

from __future__ import annotations

import copy
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ..dialects.fix.numerics import (ConvFixPos, avgpool_multiplier, fix_pos_cap, fix_pos_diffs,
                                      legalize_conv, legalize_hsigmoid, legalize_hswish, legalize_passthrough, quantize)
from ..dialects.graph import shapes as GS
from ..dialects.graph.ops import resolve_reshape
from ..ir.core import Operation, Value
from ..ir.opdef import ConstantLike, Terminator
from ..passes.fix.annotations import CONV_LIKE, GROUP_JOINERS, keep_float_reason, quant_points
from ..passes.fix.legalize import RELU6_MIN_FIX_POS
from ..passes.fix.quantize import _ADAPTIVE_CONV_LIMIT, CPU_ONLY, adaptive_pool_matrix
from .errors import QuantizerError
from .quant_files import FIX_POS_MIN

__all__ = ["QatProcessor", "QatError", "QatModule", "TQTQuantizer"]


class QatError(QuantizerError):
    """QAT cannot go on (a layer it cannot train, NaN values, export before training...)."""


def _torch():
    import torch
    return torch


def _make_tqt():
    torch = _torch()
    nn = torch.nn

    class TQTQuantizer(nn.Module):
        """A power-of-two fake quantizer with a trained threshold: `log2_t` (see the module doc)."""

        def __init__(self, bit_width: int, mode: str, name: str):
            super().__init__()
            self.bit_width, self.mode, self.name = int(bit_width), mode, name
            self.log2_t = nn.Parameter(torch.zeros(()))
            self.register_buffer("initialized", torch.tensor(False))

        def init_from(self, x: Any) -> None:
            """Start where calibration's "diffs" search puts this tensor's fix_pos."""
            arr = x.detach().cpu().numpy().astype(np.float32)
            fp = fix_pos_diffs(arr, self.bit_width, self.mode, 1 if self.name.endswith("(input)") else 5)
            with torch.no_grad():
                self.log2_t.fill_(float(self.bit_width - 1 - fp))
                self.initialized.fill_(True)

        def fix_pos(self) -> int:
            fp = self.bit_width - 1 - math.ceil(float(self.log2_t.detach()))
            return int(min(max(fp, FIX_POS_MIN), fix_pos_cap(self.bit_width)))

        def forward(self, x: Any, fix_pos: int | None = None) -> Any:
            """Fake-quantize `x` at the trained fix position, or at `fix_pos` (the legalized one: the
            threshold is then shifted by the difference, the gradient of `log2_t` is TQT's at that threshold)."""
            if not bool(self.initialized):
                self.init_from(x)
            bw = self.bit_width
            lo_t, hi_t = bw - 1 - fix_pos_cap(bw), bw - 1 - FIX_POS_MIN
            t = torch.clamp(self.log2_t, lo_t, hi_t)
            t = t + (torch.ceil(t) - t).detach()                  # ceil, straight through
            if fix_pos is not None:
                t = t + float(self.fix_pos() - int(fix_pos))
            scale = torch.pow(2.0, t - (bw - 1))                  # 2^-fix_pos
            xs = x / scale
            if self.mode == "half_up":
                r = torch.floor(xs + 0.5)
            else:                                                  # std_round: ties away from zero
                r = torch.sign(xs) * torch.floor(torch.abs(xs) + 0.5)
            r = xs + (r - xs).detach()                            # round, straight through
            return torch.clamp(r, -(2 ** (bw - 1)), 2 ** (bw - 1) - 1) * scale

    return TQTQuantizer


_LEAKY = 26 / 256
_HSIG_MULT = 2731 / 2.0 ** 14   # the DPU's 1/6 in hard sigmoid and hard swish


#: graph ops the trainable module computes (QatModule._torch_form)
_TRAINABLE_OPS = frozenset({
    "graph.conv2d", "graph.conv_transpose2d", "graph.linear", "graph.relu", "graph.relu6", "graph.leaky_relu",
    "graph.prelu", "graph.identity", "graph.dropout", "graph.add", "graph.sub", "graph.mul", "graph.matmul",
    "graph.concat", "graph.flatten", "graph.reshape", "graph.pad", "graph.upsample", "graph.transpose", "graph.slice",
    "graph.expand", "graph.tile", "graph.roll", "graph.max_pool2d", "graph.avg_pool2d", "graph.adaptive_avg_pool2d",
    "graph.mean", "graph.sum", "graph.amax", "graph.amin", "graph.hardsigmoid", "graph.hardswish", "graph.sigmoid",
    "graph.tanh", "graph.silu", "graph.gelu", "graph.mish", "graph.softmax", "graph.layer_norm", "graph.group_norm",
    "graph.normalize", "graph.batch_norm"})


#: DPU ops that read a constant operand as a fixed-point feature map (the quantize pass's const_operand)
_FIX_CONST_READERS = frozenset({"graph.add", "graph.mul", "graph.concat"})


def _is_const(v: Value) -> bool:
    return getattr(v, "op", None) is not None and ConstantLike in v.op.TRAITS


def _runs_in_float(op: Operation) -> bool:
    """Does test mode run `op` as a float CPU op (left in float, no fixed-point form, or a form the quantize
    pass keeps on the CPU)? Its QAT value is then fixflow's float kernel's."""
    if keep_float_reason(op) is not None or op.name in CPU_ONLY:
        return True
    n = op.name
    if n == "graph.mean":
        r = op.input.type.rank
        return r != 4 or sorted(a % r for a in op.axes) != [2, 3]
    if n == "graph.max_pool2d":
        return tuple(op.dilation) != (1, 1)
    if n == "graph.adaptive_avg_pool2d":
        (_, _, h, w), (oh, ow) = op.input.type.shape, tuple(op.output_size)
        return _uneven(h, w, oh, ow) and h * w * oh * ow > _ADAPTIVE_CONV_LIMIT
    if n == "graph.batch_norm":     # one fold-bn left (not after a conv): a 1x1 depthwise conv on a feature map
        return op.input.type.rank != 4 or any(getattr(v, "op", None) is None or ConstantLike not in v.op.TRAITS
                                              for v in op.operands[1:])
    if n == "graph.upsample":
        (_, _, h, w), (_, _, oh, ow) = op.input.type.shape, op.results[0].type.shape
        return str(op.mode) != "nearest" or bool(oh % h or ow % w)
    if n == "graph.pad":
        r = op.input.type.rank
        pads = [int(p) for p in op.pads]
        return r != 4 or len(pads) > 4 or min(pads, default=0) < 0
    if n == "graph.avg_pool2d":
        if op.divisor_override is not None or (not op.count_include_pad and any(op.padding)):
            return True
        _, _, h, w = op.input.type.shape
        _, _, oh, ow = op.results[0].type.shape
        (kh, kw), pt, pb, pl, pr = tuple(op.kernel), *op.padding
        sh, sw = tuple(op.stride or op.kernel)
        return (oh - 1) * sh + kh > h + pt + pb or (ow - 1) * sw + kw > w + pl + pr   # ceil_mode windows
    return False


def _uneven(h: int, w: int, oh: int, ow: int) -> bool:
    """An adaptive average pool the quantize pass writes as a 1x1 conv of its pooling matrix."""
    return bool(h % oh or w % ow) and not (oh % h == 0 and ow % w == 0)


def _check_trainable(ops: list[Operation], names: dict[Operation, str], model: str) -> None:
    """Every op has a trainable form (else one message naming the first layer that has none)."""
    for op in ops:
        if op.name not in _TRAINABLE_OPS:
            raise QatError(f"QAT: '{model}::{names.get(op, op.name)}' ({op.name}) has no trainable torch form in "
                           "fixflow's QAT yet (PTQ with fast finetuning quantizes it: docs/fast-finetune.md)")


def _check_shared_layers(ops: list[Operation], names: dict[Operation, str], model: str) -> None:
    """A layer called more than once trains one weight (and bias) for all its calls, as the deployed model
    has one; refused when the prepared graph gives its calls different tensors (a batch norm folded into
    some of them, or equalized differently)."""
    from ..ir.location import NameLoc
    seen: dict[tuple[str, str], tuple[Value, Operation]] = {}
    for op in ops:
        if not isinstance(op, CONV_LIKE) or not isinstance(op.location, NameLoc):
            continue
        for role, v in (("weight", op.weight), ("bias", op.bias)):
            key = (op.location.name, role)
            first = seen.setdefault(key, (v, op))
            if first[0] is not v:
                raise QatError(f"QAT: '{model}::{op.location.name}' is called more than once ('{names.get(first[1])}'"
                               f", '{names.get(op)}') and fixflow's prepared graph gives the calls different "
                               f"{role}s (a batch norm folded into a call, or cross-layer equalization); the deployed "
                               "model has one tensor per layer: give each call its own layer")


def _make_module():
    torch = _torch()
    nn = torch.nn
    F = torch.nn.functional
    TQT = _make_tqt()

    class QatModule(nn.Module):
        """fixflow's prepared graph as a trainable torch module with TQT quantizers (`QatProcessor`)."""

        def __init__(self, func: Operation, bits: Any, names: dict[Operation, str], model: str):
            super().__init__()
            self._func, self._names, self._model = func, names, model
            block = func.regions[0].blocks[0]
            self._args = list(block.args)
            self._ops = [op for op in block.ops if ConstantLike not in op.TRAITS and Terminator not in op.TRAITS]
            self._ret = block.terminator
            self.params = nn.ParameterDict()
            self.quant = nn.ModuleDict()
            self._pkey: dict[tuple[Operation, str], str] = {}     # (op, role) -> key in self.params
            self._qkey: dict[tuple[Operation, str], str] = {}     # (op, role) -> key in self.quant
            self._points = set(quant_points(func))
            self._pt_key: dict[Value, str] = {}
            self._consts: dict[Value, Any] = {}
            self._bn: dict[Operation, tuple[Any, Any]] = {}
            self._const_fix: dict[Value, tuple[Any, int]] = {}
            self._pool: dict[Operation, Any] = {}
            _check_trainable(self._ops, names, model)
            _check_shared_layers(self._ops, names, model)
            by_value: dict[Value, str] = {}
            for i, _ in enumerate(self._args):
                self.quant[f"in{i}"] = TQT(bits.default_input, "std_round", f"{model}::input {i} (input)")
            for k, op in enumerate(self._ops):
                what = names.get(op, op.name)
                if isinstance(op, CONV_LIKE):
                    for role, v in (("weight", op.weight), ("bias", op.bias)):
                        if v is None:
                            continue
                        key = by_value.get(v)
                        if key is None:                   # a layer called twice shares one trained tensor
                            key = by_value[v] = f"p{k}_{role}"
                            arr = np.asarray(v.op.attributes["value"].array, np.float32)
                            self.params[key] = nn.Parameter(torch.from_numpy(arr.copy()))
                        self._pkey[(op, role)] = key
                        if keep_float_reason(op) is None:  # each call site has its own fix position (as PTQ)
                            bw = bits.of_weights(op) if role == "weight" else bits.of_bias(op)
                            q = TQT(bw, "std_round", f"{model}::{what}.{role}")
                            q.init_from(self.params[key])
                            self.quant[f"p{k}_{role}"] = q
                            self._qkey[(op, role)] = f"p{k}_{role}"
                for r in op.results:
                    if r in self._points:
                        key = f"a{k}"
                        self._pt_key[r] = key
                        self.quant[key] = TQT(bits.of_point(r), "half_up", f"{model}::{what}")
            self._legal_plan = self._plan_legalization()
            self._fps: dict[str, int] = {}
            self.train_steps = 0

        # -- the DPU's fix-position rules (legalize-fix), applied in every forward
        def _value_key(self, v: Value) -> str | None:
            if v in self._args:
                return f"in{self._args.index(v)}"
            return self._pt_key.get(v)

        def _group_end(self, v: Value) -> tuple[str | None, list[Operation]]:
            chain: list[Operation] = []
            while v not in self._points:
                users = list(v.users)
                if len(users) != 1 or users[0].name not in GROUP_JOINERS:
                    return None, chain
                chain.append(users[0])
                v = users[0].results[0]
            return self._pt_key.get(v), chain

        def _plan_legalization(self) -> list[tuple[Any, ...]]:
            """legalize-fix's rules over the quantizer keys, in program order (passes/fix/legalize.py)."""
            plan: list[tuple[Any, ...]] = []
            for op in self._ops:
                if keep_float_reason(op) is not None:     # as legalize-fix (passes/fix/legalize.py)
                    continue
                name = self._names.get(op, op.name)
                if isinstance(op, CONV_LIKE):
                    i = self._value_key(op.operands[0])
                    o, chain = self._group_end(op.results[0])
                    w, b = self._qkey.get((op, "weight")), self._qkey.get((op, "bias"))
                    if None not in (i, o, w):
                        relu6 = any(c.name == "graph.relu6" for c in chain)
                        plan.append(("conv", name, i, w, b, o, relu6))
                elif op.name in ("graph.hardsigmoid", "graph.hardswish"):
                    i = self._value_key(op.operands[0])
                    o, _ = self._group_end(op.results[0])
                    if i is not None and o is not None:
                        plan.append((op.name, name, i, o))
                elif op.name in ("graph.pad", "graph.upsample"):
                    if op.name == "graph.upsample" and str(op.mode) != "nearest":
                        continue
                    i, o = self._value_key(op.operands[0]), self._pt_key.get(op.results[0])
                    if i is not None and o is not None:
                        plan.append(("pass", name, i, o))
            return plan

        def legal_fix_positions(self) -> dict[str, int]:
            """Every quantizer's fix position after the DPU's rules (what the deployed model uses)."""
            fps = {k: q.fix_pos() for k, q in self.quant.items()     # (a NaN threshold is reported by the forward)
                   if bool(q.initialized) and math.isfinite(float(q.log2_t.detach()))}
            for step in self._legal_plan:
                kind, name = step[0], step[1]
                if kind == "conv":
                    _, _, i, w, b, o, relu6 = step
                    if not all(k in fps for k in (i, w, o)) or (b is not None and b not in fps):
                        continue
                    out = RELU6_MIN_FIX_POS if relu6 else fps[o]
                    new, _ = legalize_conv(ConvFixPos(fps[i], fps[w], fps[b] if b is not None else None, out), name)
                    fps[w], fps[o] = new.w, new.o
                    if b is not None:
                        fps[b] = new.b
                elif kind == "pass":
                    _, _, i, o = step
                    if i in fps and o in fps:
                        fps[o], _ = legalize_passthrough(fps[i], fps[o], name)
                else:
                    _, _, i, o = step
                    if i in fps and o in fps:
                        rule = legalize_hsigmoid if kind == "graph.hardsigmoid" else legalize_hswish
                        fps[i], fps[o], _ = rule(fps[i], fps[o], name)
            return fps

        def _q(self, key: str, x: Any) -> Any:
            return self.quant[key](x, self._fps.get(key))

        # -- the graph in torch
        def _const(self, v: Value) -> Any:
            c = self._consts.get(v)
            if c is None:
                c = self._consts[v] = torch.from_numpy(np.asarray(v.op.attributes["value"].array, np.float32).copy())
            return c

        def _param(self, op: Operation, role: str) -> Any:
            key = self._pkey.get((op, role))
            if key is None:
                return None
            p = self.params[key]
            if not bool(torch.isfinite(p).all()):
                raise QatError(f"QAT: the {role} of '{self._model}::{self._names.get(op, op.name)}' holds NaN or inf "
                               f"values after {self.train_steps} training steps (the loss or its gradients were not "
                               "finite: lower the learning rate, or check the loss)")
            qkey = self._qkey.get((op, role))
            return self._q(qkey, p) if qkey is not None else p

        def _eval(self, op: Operation, a: list[Any]) -> Any:
            """`op` on torch tensors: the DPU's arithmetic for what the DPU runs; for an op test mode runs in
            float on the CPU, fixflow's float kernel's values (so the two agree bit for bit) with the gradient
            of torch's form."""
            y = self._torch_form(op, a)
            if not _runs_in_float(op):
                return y
            ins = [t.detach().cpu().numpy() for t in a]
            if isinstance(op, CONV_LIKE):
                ins += [self._param(op, r).detach().cpu().numpy() for r in ("weight", "bias")
                        if (op, r) in self._pkey]
            ref = np.asarray(op.evaluate(ins)[0], np.float32)
            return y + (torch.from_numpy(np.ascontiguousarray(ref)) - y).detach()

        def _torch_form(self, op: Operation, a: list[Any]) -> Any:
            n = op.name
            if n == "graph.conv2d":
                pt, pb, pl, pr = op.padding
                x = a[0] if (pt, pl) == (pb, pr) else F.pad(a[0], (pl, pr, pt, pb))
                pad = (pt, pl) if (pt, pl) == (pb, pr) else (0, 0)
                return F.conv2d(x, self._param(op, "weight"), self._param(op, "bias"), tuple(op.stride), pad,
                                tuple(op.dilation), op.groups)
            if n == "graph.conv_transpose2d":
                pt, pb, pl, pr = op.padding
                y = F.conv_transpose2d(a[0], self._param(op, "weight"), self._param(op, "bias"), tuple(op.stride),
                                       0, tuple(op.output_padding), op.groups, tuple(op.dilation))
                return y[:, :, pt:y.shape[2] - pb, pl:y.shape[3] - pr]     # (asymmetric) padding crops the output
            if n == "graph.linear":
                return F.linear(a[0], self._param(op, "weight"), self._param(op, "bias"))
            if n == "graph.relu":
                return F.relu(a[0])
            if n == "graph.relu6":
                return F.hardtanh(a[0], 0.0, 6.0)
            if n == "graph.leaky_relu":
                return F.leaky_relu(a[0], _LEAKY if not _runs_in_float(op) else op.alpha)
            if n == "graph.prelu":
                w = a[1].reshape(()) if a[1].numel() == 1 else a[1].reshape((1, -1) + (1,) * (a[0].dim() - 2))
                return torch.where(a[0] > 0, a[0], a[0] * w)
            if n in ("graph.identity", "graph.dropout"):
                return a[0]
            if n == "graph.batch_norm":
                if _runs_in_float(op):
                    return F.batch_norm(a[0], a[1], a[2], a[3], a[4], False, 0.0, float(op.eps))
                scale, shift = self._bn_affine(op)
                return a[0] * scale + shift
            if n == "graph.add":
                return self._eltwise_add(op, a)
            if n == "graph.sub":
                return a[0] - a[1]
            if n == "graph.mul":
                return a[0] * a[1]
            if n == "graph.matmul":
                return torch.matmul(a[0], a[1])
            if n == "graph.concat":
                return torch.cat(a, op.axis)
            if n == "graph.flatten":
                return torch.flatten(a[0], op.start_dim, op.end_dim)
            if n == "graph.reshape":
                return a[0].reshape(resolve_reshape(tuple(a[0].shape), op.shape))
            if n == "graph.pad":
                pads = tuple(int(p) for p in op.pads)
                if str(op.mode) == "constant":
                    return F.pad(a[0], pads, value=float(op.value))
                return F.pad(a[0], pads, mode=str(op.mode))
            if n == "graph.upsample":
                return F.interpolate(a[0], **op._kw())
            if n == "graph.transpose":
                return a[0].permute(*op.perm)
            if n == "graph.slice":
                idx = [slice(None)] * a[0].dim()
                steps = op.steps or (1,) * len(op.axes)
                for ax, st, en, sp in zip(op.axes, op.starts, op.ends, steps):
                    idx[ax % a[0].dim()] = slice(int(st), int(min(en, 2 ** 62)), int(sp))
                return a[0][tuple(idx)]
            if n == "graph.expand":
                like = tuple(a[1].shape) if len(a) > 1 else None
                return a[0].expand(GS.expand_shape(tuple(a[0].shape), like, op.shape))
            if n == "graph.tile":
                reps = tuple(int(r) for r in op.repeats)
                return a[0].repeat((1,) * (a[0].dim() - len(reps)) + reps)
            if n == "graph.roll":
                return torch.roll(a[0], tuple(int(s) for s in op.shifts), tuple(int(d) for d in op.axes))
            if n == "graph.max_pool2d":
                pt, pb, pl, pr = op.padding
                x = a[0] if (pt, pl) == (pb, pr) else F.pad(a[0], (pl, pr, pt, pb), value=-math.inf)
                pad = (pt, pl) if (pt, pl) == (pb, pr) else (0, 0)
                return F.max_pool2d(x, tuple(op.kernel), tuple(op.stride or op.kernel), pad, tuple(op.dilation),
                                    op.ceil_mode)
            if n in ("graph.avg_pool2d", "graph.adaptive_avg_pool2d", "graph.mean"):
                return self._avg(op, a[0])
            if n == "graph.sum":
                return torch.sum(a[0], dim=tuple(op.axes), keepdim=op.keepdim)
            if n == "graph.amax":
                return torch.amax(a[0], dim=tuple(op.axes), keepdim=op.keepdim)
            if n == "graph.amin":
                return torch.amin(a[0], dim=tuple(op.axes), keepdim=op.keepdim)
            if n == "graph.hardsigmoid":
                if _runs_in_float(op):
                    return F.hardsigmoid(a[0])
                return torch.clamp(a[0] + 3.0, 0.0, 6.0) * _HSIG_MULT           # the DPU's relu6(x + 3) * 2731/2^14
            if n == "graph.hardswish":
                if _runs_in_float(op):
                    return F.hardswish(a[0])
                hs = torch.clamp(a[0] + 3.0, 0.0, 6.0) * _HSIG_MULT             # rounded to [8, 7], as the DPU
                hs = hs + (torch.clamp(torch.floor(hs * 128.0 + 0.5), -128, 127) / 128.0 - hs).detach()
                return a[0] * hs
            if n == "graph.sigmoid":
                return torch.sigmoid(a[0])
            if n == "graph.tanh":
                return torch.tanh(a[0])
            if n == "graph.silu":
                return F.silu(a[0])
            if n == "graph.gelu":
                return F.gelu(a[0], approximate=str(op.approximate))
            if n == "graph.mish":
                return F.mish(a[0])
            if n == "graph.softmax":
                return torch.softmax(a[0], op.axis)
            if n == "graph.layer_norm":
                return F.layer_norm(a[0], tuple(op.normalized_shape), a[1], a[2], float(op.eps))
            if n == "graph.group_norm":
                return F.group_norm(a[0], int(op.groups), a[1], a[2], float(op.eps))
            if n == "graph.normalize":
                return F.normalize(a[0], float(op.p), int(op.axis), float(op.eps))
            raise QatError(f"QAT: '{self._model}::{self._names.get(op, n)}' ({n}) has no trainable torch form in "
                           "fixflow's QAT yet")

        def _bn_affine(self, op: Operation) -> tuple[Any, Any]:
            """A batch norm fold-bn left alone, as the quantize pass lowers it: `x * s + t` with s and t fixed
            (8-bit, each at its "diffs" fix position; not trained, as its statistics are not)."""
            got = self._bn.get(op)
            if got is None:
                mean, var, gamma, beta = (np.asarray(v.op.attributes["value"].array, np.float64)
                                          for v in op.operands[1:])
                scale = gamma / np.sqrt(var + op.eps)
                shift = beta - mean * scale
                fw, fb = fix_pos_diffs(scale, 8, "std_round"), fix_pos_diffs(shift, 8, "std_round")
                sq = (quantize(scale, 8, fw, "std_round") * 2.0 ** -fw).astype(np.float32).reshape(1, -1, 1, 1)
                tq = (quantize(shift, 8, fb, "std_round") * 2.0 ** -fb).astype(np.float32).reshape(1, -1, 1, 1)
                got = self._bn[op] = (torch.from_numpy(sq), torch.from_numpy(tq))
            return got

        def _pool_matrix(self, op: Operation) -> Any:
            """An uneven adaptive average pool as the DPU runs it: a 1x1 conv whose (OH*OW, H*W) weights are the
            pooling matrix, 8-bit std_round at fix position floor(log2(127 / max)) (passes/fix/quantize.py)."""
            got = self._pool.get(op)
            if got is None:
                _, _, h, w = op.input.type.shape
                oh, ow = op.output_size
                m = np.kron(adaptive_pool_matrix(h, oh), adaptive_pool_matrix(w, ow))
                fp = int(np.floor(np.log2(127.0 / m.max())))
                got = self._pool[op] = torch.from_numpy((quantize(m, 8, fp, "std_round") * 2.0 ** -fp)
                                                        .astype(np.float32))
            return got

        def _avg(self, op: Operation, x: Any) -> Any:
            """Average pooling / mean: in float as torch's (an op test mode runs on the CPU), else as the DPU's
            pool: the window sum times `mult / 2^shift` (exact in float32 for fixed-point inputs)."""
            n = op.name
            if n == "graph.mean":
                if _runs_in_float(op):
                    return torch.mean(x, dim=tuple(op.axes), keepdim=op.keepdim)
                kh, kw = x.shape[2:]
                s = torch.sum(x, dim=(2, 3), keepdim=op.keepdim)
            elif n == "graph.adaptive_avg_pool2d":
                h, w = x.shape[2:]
                oh, ow = op.output_size
                if oh % h == 0 and ow % w == 0:      # every window one pixel (a nearest upsample on the DPU)
                    return F.adaptive_avg_pool2d(x, (oh, ow))
                if _uneven(h, w, oh, ow):
                    if _runs_in_float(op):
                        return F.adaptive_avg_pool2d(x, (oh, ow))
                    return torch.einsum("ncp,op->nco", x.flatten(2), self._pool_matrix(op)).reshape(
                        x.shape[0], x.shape[1], oh, ow)
                kh, kw = h // oh, w // ow
                s = F.avg_pool2d(x, (kh, kw), (kh, kw), 0, False, True, 1)
            else:
                pt, pb, pl, pr = op.padding
                pad = (pt, pl)
                if (pt, pl) != (pb, pr):
                    x, pad = F.pad(x, (pl, pr, pt, pb)), (0, 0)
                if _runs_in_float(op):
                    return F.avg_pool2d(x, tuple(op.kernel), tuple(op.stride or op.kernel), pad, op.ceil_mode,
                                        op.count_include_pad, op.divisor_override)
                kh, kw = op.kernel
                s = F.avg_pool2d(x, (kh, kw), tuple(op.stride or op.kernel), pad, op.ceil_mode, True, 1)
            mult, shift = avgpool_multiplier(int(kh), int(kw))
            return s * (mult / 2.0 ** shift)

        def _eltwise_add(self, op: Operation, a: list[Any]) -> Any:
            """The DPU's element-wise add: each input pre-scaled with a floor to 2^-(min fix_pos + 2)
            (exact unless an input has a finer position; straight-through). A constant operand is an input at
            its own fix position."""
            fps: list[int | None] = []
            for v in op.operands:
                k = self._value_key(v)
                fps.append(self._fps.get(k) if k is not None else
                           self._const_q(v)[1] if _is_const(v) else None)
            if keep_float_reason(op) is not None or any(f is None for f in fps):
                return a[0] + a[1]
            e = min(fps) + 2
            out = None
            for x, f in zip(a, fps):
                if f > e:
                    s = 2.0 ** e
                    x = x + (torch.floor(x * s) / s - x).detach()
                out = x if out is None else out + x
            return out

        def _const_q(self, v: Value) -> tuple[Any, int]:
            """A constant read as a feature map by an op the DPU runs (an add's or multiply's operand): 8-bit,
            std_round, at its "diffs" fix position, as the quantize pass writes it."""
            got = self._const_fix.get(v)
            if got is None:
                arr = np.asarray(v.op.attributes["value"].array, np.float64)
                fp = fix_pos_diffs(arr, 8, "std_round")
                q = (quantize(arr, 8, fp, "std_round") * 2.0 ** -fp).astype(np.float32)
                got = self._const_fix[v] = (torch.from_numpy(np.ascontiguousarray(q)), fp)
            return got

        def forward(self, *xs: Any) -> Any:
            if len(xs) != len(self._args):
                raise QatError(f"QAT model: expected {len(self._args)} input(s), got {len(xs)}")
            for i, (arg, x) in enumerate(zip(self._args, xs)):
                want = tuple(arg.type.shape)
                got = tuple(getattr(x, "shape", ()))
                if not isinstance(x, torch.Tensor) or len(got) != len(want) or got[1:] != want[1:]:
                    what = f"has shape {got}" if isinstance(x, torch.Tensor) else \
                        f"is a {type(x).__name__}, not a torch tensor"
                    raise QatError(f"QAT model: input {i} {what}; the model was wrapped with example input of shape "
                                   f"{want} (any batch size, the other dimensions as the example's)")
            if not all(bool(q.initialized) for q in self.quant.values()):
                with torch.no_grad():     # the first batch: the activation thresholds start on it (one pass),
                    self._run(xs, initialize=True)
            self._fps = self.legal_fix_positions()     # then every forward applies the DPU's rules alike
            outs = self._run(xs)
            for o in outs:
                if not bool(torch.isfinite(o).all()):
                    raise QatError(f"QAT model: the output holds NaN or inf values after {self.train_steps} training "
                                   "steps (the loss or its gradients were not finite: lower the learning rate)")
            if self.training and torch.is_grad_enabled():
                self.train_steps += 1          # forwards in training mode (for the export-before-training check)
            return outs[0] if len(outs) == 1 else tuple(outs)

        def _run(self, xs: tuple[Any, ...], initialize: bool = False) -> list[Any]:
            """The graph on `xs`; with `initialize`, each quantizer not yet initialized starts on the values it
            sees (and the rules are re-applied to what is initialized so far)."""
            env: dict[Value, Any] = {}
            if initialize:
                for i, x in enumerate(xs):
                    if not bool(self.quant[f"in{i}"].initialized):
                        self.quant[f"in{i}"].init_from(x)
                self._fps = self.legal_fix_positions()
            for i, (arg, x) in enumerate(zip(self._args, xs)):
                env[arg] = self._q(f"in{i}", x)
            raw: dict[Value, Any] = {}     # float CPU ops' results before their quantization point
            for op in self._ops:
                flt = _runs_in_float(op)     # a float op reads another float op's value unquantized (as test mode)
                a = [raw[v] if flt and v in raw else env[v] if v in env else self._const(v) if flt or
                     op.name not in _FIX_CONST_READERS else self._const_q(v)[0] for v in op.operands
                     if not (isinstance(op, CONV_LIKE) and v is not op.operands[0])]
                y = self._eval(op, a)
                r = op.results[0]
                if flt:
                    raw[r] = y
                key = self._pt_key.get(r)
                if initialize and key is not None and not bool(self.quant[key].initialized):
                    self.quant[key].init_from(y)
                    self._fps = self.legal_fix_positions()
                env[r] = self._q(key, y) if key is not None else y
            return [env[v] for v in self._ret.operands]

        # -- what training produced
        def fix_positions(self) -> dict[str, Any]:
            """Trained fix positions: "inputs" [fp], "params" {(op, role): fp}, "points" {value: fp}."""
            return {"inputs": [self.quant[f"in{i}"].fix_pos() for i in range(len(self._args))],
                    "params": {k: self.quant[key].fix_pos() for k, key in self._qkey.items()},
                    "points": {v: self.quant[key].fix_pos() for v, key in self._pt_key.items()}}

        def trained_params(self) -> dict[tuple[Operation, str], np.ndarray]:
            return {k: self.params[key].detach().cpu().numpy().astype(np.float32) for k, key in self._pkey.items()}

    return QatModule


def __getattr__(name: str) -> Any:   # the torch classes, built on first use (no torch import at load)
    if name == "TQTQuantizer":
        return _make_tqt()
    if name == "QatModule":
        return _make_module()
    raise AttributeError(name)


def _config_dict(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return copy.deepcopy(dict(config))
    try:
        with open(config, encoding="utf-8-sig") as f:
            d = json.load(f)
    except OSError as e:
        raise QatError(f"cannot read config file {config}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise QatError(f"{config}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    if not isinstance(d, dict):
        raise QatError(f"{config}: the configuration must be a JSON object")
    return d


class QatProcessor:
    """vai_q_pytorch's QAT flow on fixflow (module doc). `config` takes the Quantizer's keys (bit widths,
    layer overrides, include_cle...); bias correction does not apply (biases are trained)."""

    def __init__(self, model: Any, inputs: Any, bitwidth: int = 8, *, config: Any = None,
                 log: Callable[[str], None] | None = print):
        from .api import Quantizer, call_site_names
        torch = _torch()
        if not isinstance(model, torch.nn.Module):
            raise QatError(f"QatProcessor needs a torch.nn.Module, got {type(model).__name__}")
        self._log = log or (lambda s: None)
        self.model = model
        self.inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
        self.bitwidth = bitwidth
        self.user_config = _config_dict(config)
        cfg = {**self.user_config, "include_bias_corr": False}
        self._q = Quantizer(model, self.inputs, mode="float", config=cfg, bitwidth=bitwidth, log=self._log,
                            progress=False)
        self.name = self._q.name
        self._names = call_site_names(self._q.func)
        self._qm: Any = None
        self._deployable: Any = None
        self._output_dir: Path | None = None

    # -- training
    def trainable_model(self) -> Any:
        """The trainable quantized module (train it with any optimizer over its parameters)."""
        if self._qm is None:
            self._qm = _make_module()(self._q.func, self._q.bit_widths, self._names, self.name)
            self._qm.train(self.model.training)
            self._initial = {k: v.detach().clone() for k, v in self._qm.state_dict().items()}
        return self._qm

    # -- deployment
    def deploy_config(self) -> dict[str, Any]:
        """The Quantizer config of the deployed model: the user's, with the graph already equalized and no
        bias correction (the trained parameters are final)."""
        return {**self.user_config, "include_cle": False, "include_bias_corr": False}

    def _check_trained(self, trained: Any) -> None:
        if trained is None or trained is not self._qm:
            raise QatError("to_deployable(): pass the module trainable_model() returned (after training it)")
        if trained.train_steps == 0:
            raise QatError("to_deployable(): the QAT model was exported before training: trainable_model() was "
                           "never run in training mode (qm.train(), then your training loop, then to_deployable)")
        now = trained.state_dict()
        changed = any(not bool((now[k] == v).all()) for k, v in self._initial.items()
                      if k.startswith(("params.", "quant.p")))   # weights, biases and their thresholds
        if not changed:
            raise QatError(f"to_deployable(): the QAT model ran {trained.train_steps} training steps but no parameter "
                           "changed (did the optimizer get qm.parameters()?)")
        torch = _torch()
        for k, v in now.items():
            if v.dtype.is_floating_point and not bool(torch.isfinite(v).all()):
                raise QatError(f"to_deployable(): '{k}' holds NaN or inf values (the loss or its gradients were not "
                               "finite during training: lower the learning rate)")

    def to_deployable(self, trained: Any, output_dir: str | os.PathLike) -> Any:
        """Write the trained parameters into a copy of the float model and export `quant_info.json` with the
        trained fix positions to `output_dir`; returns the deployable (float torch) model."""
        self._check_trained(trained)
        deployable = self._write_back(trained.trained_params())
        self._export_quant_info(deployable, trained, Path(output_dir))
        self._deployable, self._output_dir = deployable, Path(output_dir)
        return deployable

    def deployable_model(self) -> Any:
        if self._deployable is None:
            raise QatError("deployable_model(): call to_deployable(trained, output_dir) first")
        return self._deployable

    def quantizer(self, output_dir: str | os.PathLike | None = None) -> Any:
        """A test-mode `Quantizer` on the deployed model (its `quant_model` is what the DPU computes)."""
        from .api import Quantizer
        if self._deployable is None:
            raise QatError("the QAT model was not converted yet: call to_deployable(trained, output_dir) after "
                           "training")
        d = Path(output_dir) if output_dir is not None else self._output_dir
        return Quantizer(self._deployable, self.inputs, mode="test", output_dir=d, config=self.deploy_config(),
                         bitwidth=self.bitwidth, log=self._log, progress=False)

    def export_xmodel(self, output_dir: str | os.PathLike | None = None, deploy_check: bool = False) -> Path:
        """`<Model>_int.xmodel` of the deployed model (the Quantizer's test-mode export)."""
        if self._deployable is None:
            raise QatError("export_xmodel(): the QAT model was exported before training and conversion: train "
                           "trainable_model(), then call to_deployable(trained, output_dir)")
        return self.quantizer(output_dir).export_xmodel(output_dir, deploy_check=deploy_check)

    # -- internals
    def _write_back(self, params: dict[tuple[Operation, str], np.ndarray]) -> Any:
        """A copy of the user's model computing the trained (folded) graph: each conv/linear gets the trained
        weight and bias; a batch norm folded into it becomes an exact identity."""
        torch = _torch()
        from ..frontends.torch import import_module
        from ..ir.interpreter import find_function
        from ..ir.location import NameLoc
        model = copy.deepcopy(self.model)
        raw = find_function(import_module(self.model, self.inputs, name=self.name))
        kept_bn = {op.location.name for op in self._q.func.walk()           # batch norms fold-bn left alone
                   if op.name == "graph.batch_norm" and isinstance(op.location, NameLoc)}
        bn_of: dict[str, str] = {}
        for op in raw.walk():
            if op.name == "graph.batch_norm" and isinstance(getattr(op.input, "op", None), CONV_LIKE) \
                    and isinstance(op.location, NameLoc) and op.location.name not in kept_bn:
                conv = op.input.op
                if isinstance(conv.location, NameLoc) and isinstance(op.location, NameLoc):
                    bn_of[conv.location.name] = op.location.name
        for (op, role), arr in params.items():
            if not isinstance(op.location, NameLoc):
                raise QatError(f"QAT: cannot find the module of '{op.name}' in {self.name}")
            path = op.location.name
            mod = model.get_submodule(path)
            t = torch.from_numpy(arr.copy())
            if role == "weight":
                if tuple(mod.weight.shape) != tuple(t.shape):
                    raise QatError(f"QAT: '{path}.weight' has shape {tuple(mod.weight.shape)}, the trained one "
                                   f"{tuple(t.shape)}")
                mod.weight.data.copy_(t)
                continue
            bn_path = bn_of.get(path)
            if bn_path is not None:
                bn = model.get_submodule(bn_path)
                bn.eps = 0.0                      # gamma / sqrt(var + eps) == 1 exactly (any other eps rounds)
                with torch.no_grad():
                    bn.running_mean.zero_()
                    bn.running_var.fill_(1.0)
                    if bn.affine:
                        bn.weight.fill_(1.0)
                        bn.bias.copy_(t)
                        if mod.bias is not None:
                            mod.bias.zero_()
                if not bn.affine:                 # no shift in the batch norm: the conv takes the bias
                    if mod.bias is not None:
                        mod.bias.data.copy_(t)
                    else:
                        mod.bias = torch.nn.Parameter(t)
            elif mod.bias is not None:
                mod.bias.data.copy_(t)
            else:
                mod.bias = torch.nn.Parameter(t)
        return model.train(False)

    def _export_quant_info(self, deployable: Any, trained: Any, out: Path) -> None:
        """quant_info.json through the Quantizer's calib-mode export: its runner gets the trained fix positions
        as frozen state, one forward records them, export_quant_config() writes them (and legalizes)."""
        from .api import Quantizer, call_site_names
        q = Quantizer(deployable, self.inputs, mode="calib", output_dir=out, config=self.deploy_config(),
                      bitwidth=self.bitwidth, log=self._log, progress=False)
        fps = trained.fix_positions()
        src_names = {n: op for op, n in self._names.items()}
        dst_names = call_site_names(q.func)
        r = q.runner
        by_name_point = {self._names[v.op]: fp for v, fp in fps["points"].items()}
        by_name_param = {(self._names[op], role): fp for (op, role), fp in fps["params"].items()}
        for v in r.points:
            n = dst_names[v.op]
            if n not in by_name_point:
                raise QatError(f"QAT: the deployed model's node '{self.name}::{n}' has no trained threshold (the "
                               "deployed graph differs from the trained one)")
            r.fixed[v] = by_name_point[n]
        for op in q.func.walk():
            if isinstance(op, CONV_LIKE) and keep_float_reason(op) is None:
                n = dst_names[op]
                r.fp_w[op] = by_name_param[(n, "weight")]
                r.fp_b[op] = by_name_param[(n, "bias")]
        r.fixed_inputs = list(fps["inputs"])
        self._check_same_weights(q, src_names, dst_names, trained)
        from .input_checks import QuantizerWarning
        log, q._inputs.log = q._inputs.log, None
        with warnings.catch_warnings():   # the example inputs are no calibration data: their checks do not apply
            warnings.filterwarnings("ignore", message="calibration input", category=QuantizerWarning)
            q.quant_model(*self.inputs)   # one frozen forward: nothing is chosen, the state is recorded
        q._inputs.log = log
        q.export_quant_config()

    def _check_same_weights(self, q: Any, src: dict[str, Operation], dst: dict[Operation, str], trained: Any) -> None:
        """The deployed graph's parameters are the trained ones, bit for bit."""
        params = trained.trained_params()
        for op in q.func.walk():
            if not isinstance(op, CONV_LIKE):
                continue
            s = src.get(dst[op])
            for role, v in (("weight", op.weight), ("bias", op.bias)):
                want = params.get((s, role)) if s is not None else None
                if want is None or v is None:
                    continue
                got = np.asarray(v.op.attributes["value"].array, np.float32)
                if got.shape != want.shape or not np.array_equal(got, want):
                    raise QatError(f"QAT: the deployed {role} of '{self.name}::{dst[op]}' differs from the trained "
                                   "one (internal error: please report)")
