"""Fast finetuning (AdaQuant, after vai_q_pytorch's `fast_finetune` / `load_ft_param`).

    q = Quantizer(model, (x,), mode="calib", output_dir=d)
    q.fast_finetune(evaluate, (loader,))   # evaluate(loader) calls q.quant_model(x) per batch
    q.export_quant_config()                # quant_info.json ("fast_finetuned": true) + fast_finetune.npz
    q = Quantizer(model, (x,), mode="test", output_dir=d)
    q.load_ft_param()                      # (test mode already loads the file; this checks it is there)

Algorithm: the conv / conv_transpose / linear layers are tuned one at a time in program (topological)
order. For each layer the inputs are the quantized network's own activations (earlier layers already
tuned), the target is the float network's output of the layer (after the activations fused with it:
relu, relu6, leaky_relu), and Adam minimizes the mean squared error of
`fq_out(act(layer(x_q, fq_w(W), fq_b(b))))` against it. `fq_*` are the power-of-two fake quantizers
at the fix positions calibration chose (frozen: the finetune never changes a fix position), with a
straight-through gradient (zero outside the clamp range). After every step that changes a quantized value
the layer's loss on the whole set is measured with the exactly quantized parameters; the best is kept, the
start included (a layer is never made worse on the finetune data). The kept parameters are the quantized values
themselves (on the [bit_width, fix_pos] grid of quant_info.json), so test mode, the `_int.xmodel` and
the DPU run the same integers.

Memory bound (streaming): the network is run op by op over the whole finetune set, keeping only the
*frontier*: the values still needed by a later op, one float and one quantized copy, for all samples.
While a layer is tuned, its float target is added (one more output of that layer). So the peak is
about `2 x N x (largest set of live activations at one point of the program) + N x (one layer's
output)`, plus one minibatch's forward/backward; nothing is kept per layer for the whole network
(Vitis AI caches every layer's inputs and outputs). `FastFinetuneReport.peak_frontier_bytes` is the
measured peak of these arrays. Kernels run on chunks of `batch_size` samples (conv-like layers in torch).

Differences from Vitis AI (numerics.md, "Fast finetuning"): the choice between epochs is made on the
layer's own loss, not by re-running the whole network after each iteration, and a fixed seed makes two
runs identical.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import torch

from ..dialects.fix.kernels import elew_shifts, hard_sigmoid_fix_sim, hard_swish_fix_sim
from ..dialects.fix.numerics import fake_quantize, qrange
from ..dialects.graph import ConstantOp, Conv2dOp, LinearOp
from ..ir.attributes import DenseResourceElementsAttr
from ..ir.core import Operation, Value
from ..ir.opdef import ConstantLike, Terminator
from ..passes.fix.annotations import CONV_LIKE, conv_like_ops, point_of, read_fix_attr
from .errors import QuantizerError

if TYPE_CHECKING:
    from .api import Quantizer

__all__ = [
    "FT_FILE",
    "FastFinetuneReport",
    "LayerReport",
    "fast_finetune",
    "forward_annotated",
    "install_params",
    "load_ft_param",
    "write_ft_params",
]

#: the finetuned parameters, next to quant_info.json
FT_FILE = "fast_finetune.npz"
#: the resource-key suffix of a finetuned parameter constant (api.param_name strips it)
FT_SUFFIX = "_ft"
_ACTS = ("graph.relu", "graph.relu6", "graph.leaky_relu")
_SAME_VALUES = ("graph.flatten", "graph.reshape", "graph.identity", "graph.dropout")
CHECK_EVERY_STEP = True


@attrs.define
class LayerReport:
    """One tuned layer: its node name, the finetune-set loss before and after, epochs run, the best epoch, and
    the grid fill its output channels were rescaled to (None: not rescaled; see `_choose_fill`)."""

    name: str
    loss_before: float
    loss_after: float
    epochs: int
    best_epoch: int
    fill: float | None = None


@attrs.define
class FastFinetuneReport:
    """What `Quantizer.fast_finetune` did."""

    samples: int
    layers: list[LayerReport]
    peak_frontier_bytes: int


@attrs.define
class _State:
    """A calib-mode Quantizer's finetune result (read by export_quant_config)."""

    params: dict[Operation, tuple[np.ndarray, np.ndarray]]
    corrections: dict[str, np.ndarray]
    report: FastFinetuneReport


# ------------------------------------------------------------------------------------------ helpers
def _array(v: Value) -> np.ndarray:
    return np.asarray(v.op.attributes["value"].array, dtype=np.float32)


def _fmt(op: Operation, name: str) -> tuple[int, int]:
    f = read_fix_attr(op, name)
    if f is None:
        raise QuantizerError(f"'{op.name}' has no {name} annotation (calibrate before fast_finetune)")
    return f


def tunable(op: Operation) -> bool:
    """A quantized conv-like op (a layer left in float by the config has no fix.weight: it is not tuned)."""
    return read_fix_attr(op, "fix.weight") is not None and read_fix_attr(op, "fix.bias") is not None


def _avgpool_factor(op: Operation, x: np.ndarray) -> float | None:
    from ..passes.fix.calibrate import _avgpool_factor as factor
    return factor(op, x)


def _layer_chain(op: Operation) -> tuple[list[Operation], tuple[int, int] | None]:
    """The activations fused with a conv-like op (tuned together) and the fix format its group ends
    with (None when the group continues through an op that moves values, e.g. pad)."""
    acts: list[Operation] = []
    cur = op
    while read_fix_attr(cur, "fix.out") is None:
        users = list(cur.results[0].users)
        if len(users) != 1:
            return acts, None
        nxt = users[0]
        if nxt.name in _ACTS:
            acts.append(nxt)
        elif nxt.name not in _SAME_VALUES:
            return acts, None
        cur = nxt
    return acts, read_fix_attr(cur, "fix.out")


def _value_fmt(v: Value, input_fmts: dict[Value, tuple[int, int]]) -> tuple[int, int] | None:
    """The fix format of a quantization point read by an op (a network input's from fix.inputs)."""
    if v in input_fmts:
        return input_fmts[v]
    if v.op is None or ConstantLike in v.op.TRAITS or point_of(v.op) is not v:
        return None
    return read_fix_attr(v.op, "fix.out")


class _Evaluator:
    """Op-by-op float and fake-quant evaluation of an annotated graph, on sample chunks. The quantized side
    computes what test mode (and the DPU) computes: adds floor their inputs to the ELEW pre-scale, hard
    sigmoid / hard swish use the DPU's 2731/2^14 and round the hard sigmoid as it does."""

    def __init__(self, params: dict[Operation, tuple[np.ndarray, np.ndarray]], chunk: int,
                 func: Operation | None = None):
        self.params = params          # conv-like op -> (weight, bias) in force (quantized side)
        self.chunk = chunk
        self.input_fmts: dict[Value, tuple[int, int]] = {}
        if func is not None:
            fmts = func.attributes["fix.inputs"]
            for arg, f in zip(func.regions[0].blocks[0].args, fmts):
                self.input_fmts[arg] = (int(f[0]), int(f[1]))

    def _dpu_form(self, op: Operation, args: list[np.ndarray]) -> np.ndarray | None:
        """The op as the DPU computes it, when that differs from its float form (None: it does not)."""
        if op.name not in ("graph.add", "graph.hardswish", "graph.hardsigmoid"):
            return None
        fmts = [_value_fmt(v, self.input_fmts) for v in op.operands]
        point = point_of(op)
        out = read_fix_attr(point.op, "fix.out") if point is not None and point.op is not None else None
        if out is None or any(f is None for f in fmts):
            return None
        if op.name == "graph.add":
            reads, _ = elew_shifts([f[1] for f in fmts], out[1], "ADD")
            y = np.zeros(np.broadcast_shapes(*(a.shape for a in args)), np.float64)
            for a, (_, fp), r in zip(args, fmts, reads):
                scale = 2.0 ** (fp + 2 - r)
                y = y + np.floor(a * scale) / scale
            return y.astype(np.float32)
        if point is not op.results[0]:
            return None
        kernel = hard_swish_fix_sim if op.name == "graph.hardswish" else hard_sigmoid_fix_sim
        return kernel(args[0], fp_in=fmts[0][1], fp_out=out[1], bit_width=out[0], bw_in=fmts[0][0])

    def quant_op(self, op: Operation, args: list[np.ndarray]) -> np.ndarray:
        if isinstance(op, CONV_LIKE) and op not in self.params:   # a layer left in float
            y = op.evaluate(args)[0]
        elif isinstance(op, CONV_LIKE) and not tunable(op):
            y = op.evaluate([args[0], *self.params[op]])[0]
        elif isinstance(op, CONV_LIKE):
            w, b = self.params[op]
            wq = fake_quantize(w, *_fmt(op, "fix.weight"), "std_round")
            bq = fake_quantize(b, *_fmt(op, "fix.bias"), "std_round")
            y = _layer_np(op, args[0], wq, bq)
        elif (dpu := self._dpu_form(op, args)) is not None:
            y = dpu
        else:
            y = op.evaluate(args)[0]
            if op.name in ("graph.avg_pool2d", "graph.adaptive_avg_pool2d"):
                f = _avgpool_factor(op, args[0])
                if f is not None:
                    y = (y * np.float32(f)).astype(np.float32)
        out = read_fix_attr(op, "fix.out")
        if out is not None:
            y = fake_quantize(y, *out, "half_up")
        return np.asarray(y, np.float32)

    @staticmethod
    def float_op(op: Operation, args: list[np.ndarray], fparams: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
        if fparams is not None:
            return _layer_np(op, args[0], *fparams)
        return np.asarray(op.evaluate(args)[0], np.float32)

    def chunked(self, fn: Callable[[list[np.ndarray]], np.ndarray], args: list[np.ndarray],
                batched: list[bool], n: int, op: Operation) -> np.ndarray:
        """`fn` over chunks of the samples (args with batched=False are passed whole)."""
        out = None
        for s in range(0, n, self.chunk):
            e = min(n, s + self.chunk)
            y = fn([a[s:e] if bt else a for a, bt in zip(args, batched)])
            if y.ndim == 0 or y.shape[0] != e - s:
                raise QuantizerError(f"fast_finetune: '{op.name}' does not keep the batch dimension (output "
                                     f"shape {y.shape} for {e - s} samples); fast finetuning needs "
                                     "batch-independent ops", )
            if out is None:
                out = np.empty((n,) + y.shape[1:], np.float32)
            out[s:e] = y
        return out


# ---------------------------------------------------------------------------- torch layer (STE)
class _FakeQuantSTE(torch.autograd.Function):
    """Power-of-two fake quantization with a straight-through gradient (zero where the value clamps)."""

    @staticmethod
    def forward(ctx, x, bw: int, fp: int, mode: str):
        lo, hi = qrange(bw)
        s = math.ldexp(1.0, fp)
        v = x.detach() * s
        if mode == "half_up":
            r = v.add_(0.5).floor_()
        else:   # std_round: ties away from zero
            r = v.abs().add_(0.5).floor_().mul_(torch.sign(v))
        ctx.save_for_backward((r >= lo) & (r <= hi))
        return r.clamp_(lo, hi).div_(s)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None


def _fq_ste(x, bw: int, fp: int, mode: str):
    return _FakeQuantSTE.apply(x, bw, fp, mode)


def _torch_layer(op: Operation, x, w, b):
    """The conv-like op's float computation in torch (same result as the graph kernel)."""
    F = torch.nn.functional
    if isinstance(op, LinearOp):
        return F.linear(x, w, b)
    t, bo, l, r = (int(p) for p in op.padding)
    if isinstance(op, Conv2dOp):
        if t == bo and l == r:
            return F.conv2d(x, w, b, tuple(op.stride), (t, l), tuple(op.dilation), int(op.groups))
        return F.conv2d(F.pad(x, (l, r, t, bo)), w, b, tuple(op.stride), 0, tuple(op.dilation), int(op.groups))
    full = F.conv_transpose2d(x, w, None, tuple(op.stride), 0, 0, int(op.groups), tuple(op.dilation))
    oh, ow = op.results[0].type.shape[2], op.results[0].type.shape[3]
    ph, pw = max(0, t + oh - full.shape[2]), max(0, l + ow - full.shape[3])
    if ph or pw:
        full = F.pad(full, (0, pw, 0, ph))
    return full[:, :, t:t + oh, l:l + ow] + b.reshape(1, -1, 1, 1)


def _layer_np(op: Operation, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The conv-like op in torch on numpy arrays (float32, the graph kernel's result to rounding; several
    times faster than its im2col)."""
    with torch.no_grad():
        y = _torch_layer(op, torch.from_numpy(np.ascontiguousarray(x, np.float32)),
                         torch.from_numpy(np.array(w, np.float32)), torch.from_numpy(np.array(b, np.float32)))
    return y.numpy()


def _fq_fast(y, fmt: tuple[int, int], lo0: bool = False):
    """`fake_quantize(y, *fmt, "half_up")` in place on a torch tensor without autograd (lo0: clamp below at 0,
    which equals a ReLU before it)."""
    lo, hi = qrange(fmt[0])
    s = math.ldexp(1.0, fmt[1])
    return y.mul_(s).add_(0.5).floor_().clamp_(0 if lo0 else lo, hi).div_(s)


def _torch_acts(acts: list[Operation], y):
    F = torch.nn.functional
    for a in acts:
        if a.name == "graph.relu":
            y = F.relu(y)
        elif a.name == "graph.relu6":
            y = torch.clamp(y, 0.0, 6.0)
        else:
            y = F.leaky_relu(y, float(a.alpha))
    return y


def _tune_layer(op: Operation, name: str, xq: np.ndarray, target: np.ndarray, w0: np.ndarray, b0: np.ndarray,
                *, epochs: int, batch_size: int, lr: float, seed: int, progress: bool,
                desc: str) -> tuple[np.ndarray, np.ndarray, LayerReport]:
    """AdaQuant on one layer: returns its quantized weight and bias (on their fix grids) and a report."""
    acts, out_fmt = _layer_chain(op)
    wf, bf = _fmt(op, "fix.weight"), _fmt(op, "fix.bias")
    n = xq.shape[0]
    gen = torch.Generator().manual_seed(seed)
    w = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    b = torch.nn.Parameter(torch.from_numpy(b0.copy()))
    std_w = float(w0.std()) or math.ldexp(1.0, -wf[1])
    std_b = max(float(b0.std()), math.ldexp(1.0, -bf[1]))
    opt = torch.optim.Adam([{"params": [w], "lr": lr * std_w}, {"params": [b], "lr": lr * std_b}])
    xt, yt = torch.from_numpy(xq), torch.from_numpy(target)
    check_every_step = CHECK_EVERY_STEP

    def forward(xb, wq, bq):
        y = _torch_acts(acts, _torch_layer(op, xb, wq, bq))
        return _fq_ste(y, *out_fmt, "half_up") if out_fmt is not None else y

    def grid(p: torch.Tensor, fmt: tuple[int, int]) -> np.ndarray:
        return fake_quantize(p.detach().numpy(), *fmt, "std_round")

    relu_only = [a.name for a in acts] == ["graph.relu"]
    chunk = batch_size

    def eval_forward(xb, wq, bq):   # forward() without autograd, fewer passes over the output
        y = _torch_layer(op, xb, wq, bq)
        if out_fmt is None:
            return _torch_acts(acts, y)
        if relu_only:
            return _fq_fast(y, out_fmt, lo0=True)
        return _fq_fast(_torch_acts(acts, y), out_fmt)

    def full_loss(wq: np.ndarray, bq: np.ndarray) -> float:
        tw, tb = torch.from_numpy(wq), torch.from_numpy(bq)
        total = 0.0
        with torch.no_grad():
            for s in range(0, n, chunk):
                d = eval_forward(xt[s:s + chunk], tw, tb).sub_(yt[s:s + chunk])
                total += float(torch.sum(d.double() ** 2))
        return total / max(1, target.size)

    steps = math.ceil(n / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(   # cosine decay to 0 over the layer's steps
        opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, epochs * steps) / (epochs * steps))))
    best = (grid(w, wf), grid(b, bf))
    best_loss = start = full_loss(*best)
    if not math.isfinite(start):
        raise QuantizerError(f"fast_finetune: layer '{name}': the loss is {start} before finetuning (the float "
                             "model's output of this layer or the quantized input holds inf/NaN values)")
    best_epoch = 0
    from tqdm import tqdm
    bar = tqdm(total=epochs * steps, desc=desc, unit="step", leave=False, file=sys.stderr, disable=not progress)
    try:
        for epoch in range(1, epochs + 1):
            perm = torch.randperm(n, generator=gen)
            for s in range(0, n, batch_size):
                idx = perm[s:s + batch_size]
                loss = torch.mean((forward(xt[idx], _fq_ste(w, *wf, "std_round"), _fq_ste(b, *bf, "std_round"))
                                   - yt[idx]) ** 2)
                if not torch.isfinite(loss.detach()):
                    raise QuantizerError(f"fast_finetune: layer '{name}': the loss is {loss.item()} at epoch {epoch}, "
                                         f"step {s // batch_size + 1} (NaN or inf values in the finetune data or "
                                         "the float model's output)")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                bar.update(1)
                if not check_every_step and s + batch_size < n:
                    continue
                cand = (grid(w, wf), grid(b, bf))
                if any(not np.array_equal(c, p) for c, p in zip(cand, best)):
                    cl = full_loss(*cand)
                    if cl < best_loss:
                        best, best_loss, best_epoch = cand, cl, epoch
    finally:
        bar.close()
    return best[0], best[1], LayerReport(name, start, best_loss, epochs, best_epoch)



# --------------------------------------------------------------------- channel rescaling (grid fill)
#: ops between two layers that commute with a positive per-channel scale
_SCALE_PATH = ("graph.relu", "graph.leaky_relu", "graph.max_pool2d", "graph.avg_pool2d", "graph.adaptive_avg_pool2d",
               "graph.flatten", "graph.identity", "graph.dropout")   # not reshape: it may move channels
#: the fills tried: the scaled channel's largest finetune-set value at this fraction of its tightest grid
FILLS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0)
#: the largest scale a channel gets
MAX_SCALE = 16.0


@attrs.define
class _Pair:
    """A layer whose output channels reach exactly one other layer through scale-commuting ops."""

    producer: Operation
    consumer: Operation
    path: list[Operation]     # producer ... consumer's group end
    columns: int              # consumer input columns per producer channel (a flatten of C x H x W: H * W)


def _scale_pair(op: Operation) -> _Pair | None:
    """The pair `op` starts, or None (an output read twice, an op that does not commute with scaling, ...)."""
    if not isinstance(op, (Conv2dOp, LinearOp)):
        return None
    path, cur, columns = [op], op, 1
    while True:
        users = list(cur.results[0].users)
        if len(users) != 1:
            return None
        nxt = users[0]
        if isinstance(nxt, (Conv2dOp, LinearOp)) and tunable(nxt):
            break
        if nxt.name not in _SCALE_PATH or nxt.operands[0] is not cur.results[0]:
            return None
        if nxt.name == "graph.flatten":
            shape = cur.results[0].type.shape
            if len(shape) != 4 or int(nxt.start_dim) != 1:
                return None
            columns = int(shape[2]) * int(shape[3])
        path.append(nxt)
        cur = nxt
    consumer = nxt
    channels = int(op.results[0].type.shape[1])
    if consumer.operands[0] is not cur.results[0]:
        return None
    in_cols = int(consumer.weight.type.shape[1]) * (int(consumer.groups) if isinstance(consumer, Conv2dOp) else 1)
    if in_cols != channels * columns:
        return None
    path.append(consumer)
    acts, _ = _layer_chain(consumer)
    path.extend(acts)
    while read_fix_attr(path[-1], "fix.out") is None:   # the consumer's group ends after same-value ops
        users = list(path[-1].results[0].users)
        if len(users) != 1 or users[0].name not in _SAME_VALUES:
            break
        path.append(users[0])
    return _Pair(op, consumer, path, columns)


def _scaled(pair: _Pair, wp: np.ndarray, bp: np.ndarray, wc: np.ndarray, s: np.ndarray):
    """The producer's rows times s and the consumer's matching input columns divided by s (the same float
    function: relu/max/average pools commute with a positive scale)."""
    wp = wp * s.reshape((-1,) + (1,) * (wp.ndim - 1))
    if isinstance(pair.consumer, LinearOp):
        wc = wc / np.repeat(s, pair.columns)[None, :]
    else:
        g, cin_g = int(pair.consumer.groups), wc.shape[1]
        wc = (wc.reshape((g, wc.shape[0] // g) + wc.shape[1:]) / s.reshape(g, 1, cin_g, 1, 1)).reshape(wc.shape)
    return wp.astype(np.float32), (bp * s).astype(np.float32), wc.astype(np.float32)


def _choose_fill(pair: _Pair, xq: np.ndarray, xf: np.ndarray, ev: _Evaluator,
                 params: dict[Operation, tuple[np.ndarray, np.ndarray]],
                 float_params: dict[Operation, tuple[np.ndarray, np.ndarray]]) -> float | None:
    """Rescale the pair's channels in `params` and `float_params` (in place) to the fill whose quantized
    path output is nearest the float one on the finetune set; None (nothing changed) when no fill beats
    the unscaled channels."""
    p, c = pair.producer, pair.consumer
    n, channels = xq.shape[0], int(p.results[0].type.shape[1])
    before = pair.path[:pair.path.index(c)]

    def run(x: np.ndarray, fn: Callable[[Operation, list[np.ndarray]], np.ndarray]) -> tuple[np.ndarray, list]:
        """The path on x; with, per quantization point before the consumer, the fraction of its grid each
        producer channel reaches."""
        used = []
        for o in pair.path:
            x = ev.chunked(lambda a, o=o: fn(o, a), [x], [True], n, o)
            fmt = read_fix_attr(o, "fix.out")
            if o in before and fmt is not None:
                m = np.abs(x).max(axis=(0, 2, 3)) if x.ndim == 4 else np.abs(x).max(axis=0)
                used.append(m.reshape(channels, -1).max(1) / (qrange(fmt[0])[1] * math.ldexp(1.0, -fmt[1])))
        return x, used

    fparams = {p: float_params[p], c: float_params[c]}
    target, used = run(xf, lambda o, a: ev.float_op(o, a, fparams.get(o)))
    target = target.astype(np.float64)
    wp, bp = params[p]
    wf, bf = _fmt(p, "fix.weight"), _fmt(p, "fix.bias")
    grid_w, grid_b = qrange(wf[0])[1] * math.ldexp(1.0, -wf[1]), qrange(bf[0])[1] * math.ldexp(1.0, -bf[1])
    row = np.abs(wp).reshape(wp.shape[0], -1).max(1)
    tight = np.maximum.reduce([*used, row / grid_w, np.abs(bp) / grid_b])   # fraction of the tightest grid used
    headroom = 1.0 / np.maximum(tight, 1e-12)

    def error(wpc: np.ndarray, bpc: np.ndarray, wcc: np.ndarray) -> float:
        saved = ev.params[p], ev.params[c]
        ev.params[p], ev.params[c] = (wpc, bpc), (wcc, params[c][1])
        try:
            y, _ = run(xq, ev.quant_op)
        finally:
            ev.params[p], ev.params[c] = saved
        return float(np.mean((y - target) ** 2))

    best_fill, best = None, error(wp, bp, params[c][0])
    for fill in FILLS:
        s = np.clip(fill * headroom, 1.0, MAX_SCALE)
        e = error(*_scaled(pair, wp, bp, params[c][0], s))
        if e < best:
            best_fill, best = fill, e
    if best_fill is None:
        return None
    s = np.clip(best_fill * headroom, 1.0, MAX_SCALE)
    wpn, bpn, wcn = _scaled(pair, wp, bp, params[c][0], s)
    params[p], params[c] = (wpn, bpn), (wcn, params[c][1])
    fwp, fbp, fwc = _scaled(pair, *float_params[p], float_params[c][0], s)
    float_params[p], float_params[c] = (fwp, fbp), (fwc, float_params[c][1])
    return best_fill

# ----------------------------------------------------------------------------------- the driver
def _collect(q: Quantizer, run_fn: Callable[..., Any], run_args: Sequence[Any]) -> list[np.ndarray]:
    """Run the user's function once; every quant_model call is recorded (and calibrates when no
    calibration batch was run before). Returns one array per network input (all samples)."""
    qm = q.quant_model
    calibrate = q.runner.batches == 0
    seen: list[list[np.ndarray]] = []

    def record(xs: list[np.ndarray]) -> list[np.ndarray]:
        for i, x in enumerate(xs):
            if not np.isfinite(x).all():
                raise QuantizerError(f"fast_finetune(): batch {len(seen) + 1} (call {len(seen) + 1} of quant_model), "
                                     f"input #{i} holds NaN or inf values")
        seen.append([np.array(x, dtype=np.float32, copy=True) for x in xs])
        return q._calib_step(xs) if calibrate else q.runner.forward(xs)

    old = qm._fn
    qm._fn = record
    try:
        run_fn(*run_args)
    finally:
        qm._fn = old
    if q._pbar is not None:
        q._pbar.close()
        q._pbar = None
    if not seen:
        raise QuantizerError("fast_finetune(): the evaluation function never called quant_model (did the "
                             "loader yield no batch?); fast finetuning needs unlabeled input batches")
    n_in = len(seen[0])
    if any(len(s) != n_in for s in seen):
        raise QuantizerError("fast_finetune(): quant_model was called with different numbers of inputs")
    try:
        return [np.concatenate([s[i] for s in seen]) for i in range(n_in)]
    except ValueError as e:
        raise QuantizerError(f"fast_finetune(): the batches do not stack ({e})") from None


def fast_finetune(q: Quantizer, run_fn: Callable[..., Any], run_args: Sequence[Any] = (), *, epochs: int = 10,
                  batch_size: int = 32, lr: float = 0.001, seed: int = 0, rescale: bool = True,
                  progress: bool | None = None) -> FastFinetuneReport:
    """`Quantizer.fast_finetune`: see the module docstring."""
    if q.mode != "calib":
        raise QuantizerError(f"fast_finetune() needs mode='calib' (this quantizer is in {q.mode!r} mode; in "
                             "test mode call load_ft_param())")
    if getattr(q, "_ft", None) is not None:
        raise QuantizerError("fast_finetune() was already run on this quantizer; export_quant_config() now, or "
                             "start a new calib-mode Quantizer")
    for what, v, lo in (("epochs", epochs, 1), ("batch_size", batch_size, 1), ("seed", seed, 0)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise QuantizerError(f"fast_finetune(): {what} must be an integer >= {lo}, got {v!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise QuantizerError(f"fast_finetune(): lr must be a positive number, got {lr!r}")
    if not isinstance(run_args, (tuple, list)):
        run_args = (run_args,)
    show = q.progress if progress is None else progress
    inputs = _collect(q, run_fn, run_args)
    n = inputs[0].shape[0]
    if any(x.shape[0] != n for x in inputs):
        raise QuantizerError("fast_finetune(): the network inputs have different numbers of samples")
    q._log(f"[fixflow] Fast finetuning on {n} samples...")

    # freeze calibration: the fix positions (legalized) and the corrected biases go into the graph
    float_params = {op: (_array(op.weight), _array(op.bias)) for op in conv_like_ops(q.func)}
    corrections = q._freeze_calibration()

    params = {op: (_array(op.weight), _array(op.bias)) for op in conv_like_ops(q.func)}
    report = _run(q, inputs, float_params, params, epochs=epochs, batch_size=batch_size, lr=float(lr), seed=seed,
                  progress=show, rescale=bool(rescale))
    install_params(q.func, {op: p for op, p in params.items() if tunable(op)})
    q._ft = _State(params, corrections, report)
    q.quant_model._fn = lambda xs: forward_annotated(q.func, params, xs)
    better = sum(r.loss_after < r.loss_before for r in report.layers)
    q._log(f"[fixflow] Fast finetune done: {better} of {len(report.layers)} layers improved "
           f"(peak frontier {report.peak_frontier_bytes / 2**20:.1f} MiB)")
    return report


def _run(q: Quantizer, inputs: list[np.ndarray], float_params, params, *, epochs: int, batch_size: int, lr: float,
         seed: int, progress: bool, rescale: bool) -> FastFinetuneReport:
    """Stream the finetune set through the graph op by op (the frontier), tuning each conv-like op."""
    func = q.func
    block = func.regions[0].blocks[0]
    ops = [op for op in block.ops if ConstantLike not in op.TRAITS]
    last: dict[Value, int] = {}
    for i, op in enumerate(ops):
        for v in op.operands:
            last[v] = i
    ev = _Evaluator(params, batch_size, func)
    n = inputs[0].shape[0]
    env_q: dict[Value, np.ndarray] = {}
    env_f: dict[Value, np.ndarray] = {}
    fmt_in = func.attributes["fix.inputs"]
    for i, (arg, x) in enumerate(zip(block.args, inputs)):
        env_f[arg] = x
        env_q[arg] = fake_quantize(x, int(fmt_in[i][0]), int(fmt_in[i][1]), "std_round")
    inputs.clear()
    names = _names(q)
    layers: list[LayerReport] = []
    convs = [op for op in ops if isinstance(op, CONV_LIKE) and tunable(op)]
    peak = _bytes(env_q, env_f)

    def operand(v: Value, env: dict[Value, np.ndarray]) -> tuple[np.ndarray, bool]:
        if v in env:
            return env[v], True
        if isinstance(v.op, ConstantOp) or (v.op is not None and ConstantLike in v.op.TRAITS):
            return _array(v), False
        raise QuantizerError(f"fast_finetune: value used by '{v.users[0].name}' was not computed")

    for i, op in enumerate(ops):
        if Terminator in op.TRAITS:
            break
        aq = [operand(v, env_q) for v in op.operands]
        af = [operand(v, env_f) for v in op.operands]
        batched = [bt for _, bt in aq]
        if isinstance(op, CONV_LIKE) and tunable(op):
            k = convs.index(op)
            pair = _scale_pair(op) if rescale else None
            fill = _choose_fill(pair, aq[0][0], af[0][0], ev, params, float_params) if pair is not None else None
            fp = float_params[op]
            target = _float_target(op, af[0][0], fp, batch_size)
            peak = max(peak, _bytes(env_q, env_f) + target.nbytes)
            wq, bq, rep = _tune_layer(op, names[op], aq[0][0], target, *params[op], epochs=epochs,
                                      batch_size=batch_size, lr=lr, seed=seed + k, progress=progress,
                                      desc=f"Fast finetune {k + 1}/{len(convs)} {names[op]}")
            del target
            params[op] = (wq, bq)
            rep.fill = fill
            layers.append(rep)
            yq = ev.chunked(lambda a, op=op: ev.quant_op(op, a), [aq[0][0]], [True], n, op)
            yf = ev.chunked(lambda a, op=op, fp=fp: ev.float_op(op, a, fp), [af[0][0]], [True], n, op)
        else:
            yq = ev.chunked(lambda a, op=op: ev.quant_op(op, a), [a for a, _ in aq], batched, n, op)
            yf = ev.chunked(lambda a, op=op: ev.float_op(op, a, None), [a for a, _ in af], batched, n, op)
        r = op.results[0]
        env_q[r], env_f[r] = yq, yf
        peak = max(peak, _bytes(env_q, env_f))
        for v in [*op.operands, r]:   # free what no later op reads
            if v in env_q and last.get(v, -1) <= i:
                del env_q[v], env_f[v]
    return FastFinetuneReport(n, layers, peak)


def _float_target(op: Operation, xf: np.ndarray, fp: tuple[np.ndarray, np.ndarray], chunk: int) -> np.ndarray:
    """The float layer (with its fused activations) on the float network's input of the layer."""
    acts, _ = _layer_chain(op)
    w, b = torch.from_numpy(np.array(fp[0])), torch.from_numpy(np.array(fp[1]))
    out = None
    with torch.no_grad():
        for s in range(0, xf.shape[0], chunk):
            y = _torch_acts(acts, _torch_layer(op, torch.from_numpy(xf[s:s + chunk]), w, b)).numpy()
            if out is None:
                out = np.empty((xf.shape[0],) + y.shape[1:], np.float32)
            out[s:s + chunk] = y
    return out


def _bytes(*envs: dict[Value, np.ndarray]) -> int:
    return sum(a.nbytes for env in envs for a in env.values())


def _names(q: Quantizer) -> dict[Operation, str]:
    from .api import call_site_names
    return call_site_names(q.func)


def forward_annotated(func: Operation, params: dict[Operation, tuple[np.ndarray, np.ndarray]],
                      inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The frozen fake-quant forward of an annotated graph with the given conv-like parameters."""
    from ..ir.interpreter import run_function
    ev = _Evaluator(params, 1 << 30, func)
    fmt_in = func.attributes["fix.inputs"]
    xs = [fake_quantize(np.asarray(x, np.float32), int(fmt_in[i][0]), int(fmt_in[i][1]), "std_round")
          for i, x in enumerate(inputs)]

    def evaluate(op: Operation, args: list[np.ndarray]) -> list[np.ndarray]:
        if ConstantLike in op.TRAITS:
            return [np.asarray(op.attributes["value"].array, np.float32)]
        return [ev.quant_op(op, args)]
    return run_function(func, xs, evaluate=evaluate)


# ------------------------------------------------------------------------- installing parameters
def install_params(func: Operation, params: dict[Operation, tuple[np.ndarray, np.ndarray]]) -> None:
    """Replace each conv-like op's weight and bias constants by the given arrays (one new constant per
    call site, resource key `<old key>_ft`)."""
    used = {op.attributes["value"].key for op in func.walk()
            if isinstance(op, ConstantOp) and isinstance(op.attributes["value"], DenseResourceElementsAttr)}
    for op, (w, b) in params.items():
        for idx, v, arr in ((1, op.weight, w), (2, op.bias, b)):
            old = v.op
            attr = old.attributes["value"]
            base = (attr.key if isinstance(attr, DenseResourceElementsAttr) else
                    f"{op.results[0].name_hint or 'conv'}.{'weight' if idx == 1 else 'bias'}") + FT_SUFFIX
            key, k = base, 1
            while key in used:
                k += 1
                key = f"{base}{k}"
            used.add(key)
            new = ConstantOp.from_array(arr, key, old.location)
            op.parent.insert_before(op, new)
            op.set_operand(idx, new.result)
            if not old.results[0].uses:
                old.erase()


# ----------------------------------------------------------------------------------- the file
def write_ft_params(q: Quantizer) -> Path | None:
    """Calib mode (export_quant_config): write fast_finetune.npz, or remove a stale one; returns its path."""
    path = q.output_dir / FT_FILE
    state = getattr(q, "_ft", None)
    if state is None:
        if path.exists():
            path.unlink()
        return None
    from .api import param_keys
    keys = param_keys(q.func, q.name)
    arrays = {}
    for op, (w, b) in state.params.items():
        if not tunable(op):
            continue
        arrays[keys[(op, "weight")]] = w.astype(np.float32)
        arrays[keys[(op, "bias")]] = b.astype(np.float32)
    np.savez(path, **arrays)
    return path


def load_ft_param(q: Quantizer, *, explicit: bool = True) -> None:
    """Test mode: put the finetuned parameters of fast_finetune.npz into the graph (before lowering).

    Test mode does this by itself when quant_info.json says `fast_finetuned`; the explicit call (as in
    vai_q_pytorch scripts) then only checks that it was done."""
    if q.mode != "test":
        raise QuantizerError(f"load_ft_param() needs mode='test' (this quantizer is in {q.mode!r} mode; in calib "
                             "mode call fast_finetune())")
    path = q.output_dir / FT_FILE
    if not getattr(q, "_ft_expected", False):
        raise QuantizerError(f"load_ft_param(): {q.output_dir / 'quant_info.json'} says \"fast_finetuned\": false, "
                             f"so there are no finetuned parameters to load{' (the stale ' + str(path) + ' is ignored)' if path.exists() else ''}; "
                             "run fast_finetune() in calib mode before export_quant_config()")
    if getattr(q, "_ft_loaded", False):
        if explicit:
            q._log(f"[fixflow] Finetuned parameters in use ({path})")
        return
    from .api import param_keys
    keys = param_keys(q.func, q.name)
    expected = {}
    ops = [op for op in conv_like_ops(q.func) if tunable(op)]
    for op in ops:
        expected[keys[(op, "weight")]] = (tuple(op.weight.type.shape), _fmt(op, "fix.weight"))
        expected[keys[(op, "bias")]] = (tuple(op.bias.type.shape), _fmt(op, "fix.bias"))
    from .quant_files import read_ft_params as read
    arrays = read(path, expected)
    params = {op: (arrays[keys[(op, "weight")]], arrays[keys[(op, "bias")]]) for op in ops}
    install_params(q.func, params)
    q._ft_loaded = True
    q._log(f"[fixflow] Loaded finetuned parameters ({path})")

