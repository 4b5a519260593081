"""Torch frontend (issue 15): indexing and slicing, split/chunk/unbind, expand/repeat/broadcast_to, stack, roll,
channel shuffle, reductions over dims, shape-only constants; each against PyTorch at the traced batch and at
another batch size, and the refusals with their located messages."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from _lib.torch_fn import Fn  # noqa: E402
from fixflow.frontends.torch import FrontendError, import_module  # noqa: E402
from fixflow.ir import parse_module, print_module  # noqa: E402
from fixflow.ir.interpreter import run_module  # noqa: E402


def check(model: nn.Module, shape: tuple[int, ...], batches=(3,), rtol: float = 1e-5, atol: float = 1e-6):
    """Import at `shape`, print/parse, run at the traced batch and at `batches`; compare with PyTorch."""
    model.eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen)
    module = import_module(model, (x,))
    module.verify()
    parsed = parse_module(print_module(module))
    parsed.verify()
    for n in (shape[0],) + tuple(batches):
        xn = x if n == shape[0] else torch.randn((n,) + tuple(shape[1:]), generator=gen)
        with torch.no_grad():
            ref = model(xn)
        refs = [ref] if isinstance(ref, torch.Tensor) else list(ref)
        got = run_module(parsed, [xn.numpy()])
        assert len(got) == len(refs)
        for g, r in zip(got, refs):
            assert g.shape == tuple(r.shape)
            np.testing.assert_allclose(g, r.numpy(), rtol=rtol, atol=atol)
    return module


def ops(module) -> list[str]:
    return [op.name for op in module.walk() if op.name.startswith("graph.") and op.name != "graph.constant"]


INDEXING = [
    ("channels", lambda m, x: x[:, :2], (2, 5, 4, 4)),
    ("negative_stop", lambda m, x: x[:, :-1, 1:], (2, 5, 4, 4)),
    ("steps", lambda m, x: x[..., ::2], (2, 3, 5, 7)),
    ("steps_start", lambda m, x: x[:, 1::3, :, 2::2], (2, 7, 4, 6)),
    ("int_and_none", lambda m, x: x[:, 0, None, -1], (2, 3, 4, 5)),
    ("ellipsis_int", lambda m, x: x[..., -1], (2, 3, 4, 5)),
    ("class_token", lambda m, x: x[:, 0], (3, 7, 8)),
    ("none_middle", lambda m, x: x[:, None, :, None] * 2, (2, 3, 4)),
    ("clamped", lambda m, x: x[:, -100:100, 2:2000], (2, 3, 6)),
    ("chained", lambda m, x: x[:, 1:][:, :, ::2][..., 1:-1], (2, 4, 6, 6)),
]


@pytest.mark.parametrize("name,fn,shape", INDEXING, ids=[c[0] for c in INDEXING])
def test_getitem(name, fn, shape):
    m = check(Fn(fn), shape)
    assert set(ops(m)) <= {"graph.slice", "graph.reshape", "graph.mul"}


def test_getitem_on_batch_axis_follows_the_batch():
    check(Fn(lambda m, x: x[1:] + x[:-1]), (4, 3), batches=(6,))
    check(Fn(lambda m, x: x[::2]), (4, 3), batches=(5,))


SPLITS = [
    ("chunk_method", lambda m, x: torch.cat(x.chunk(2, 1)[::-1], 1), (2, 6, 3, 3)),
    ("chunk_uneven", lambda m, x: x.chunk(3, dim=-1)[2] * 3, (2, 3, 7)),
    ("chunk_function_unpack", lambda m, x: (lambda a, b: a - b)(*torch.chunk(x, 2, 1)), (2, 4, 3)),
    ("split_int", lambda m, x: torch.split(x, 2, dim=2)[-1], (2, 3, 5, 2)),
    ("split_list", lambda m, x: x.split([1, 3, 2], 1)[1].relu(), (2, 6, 4)),
    ("tensor_split", lambda m, x: torch.tensor_split(x, 3, dim=1)[0], (2, 7, 3)),
    ("unbind", lambda m, x: sum(x.unbind(1)), (2, 4, 3, 3)),
    ("unbind_last", lambda m, x: torch.unbind(x, -1)[1], (2, 3, 4)),
    ("stack", lambda m, x: torch.stack([x, x * 2, x.relu()], dim=2), (2, 3, 4)),
    ("stack_of_chunks", lambda m, x: torch.stack(x.chunk(2, 1), 0).sum(0), (2, 4, 3)),
    ("return_tuple", lambda m, x: x.chunk(2, 1), (2, 4, 3)),
]


@pytest.mark.parametrize("name,fn,shape", SPLITS, ids=[c[0] for c in SPLITS])
def test_split_chunk_unbind(name, fn, shape):
    check(Fn(fn), shape)


def test_only_used_pieces_are_built():
    m = check(Fn(lambda m, x: x.chunk(4, 1)[1]), (2, 8, 3))
    assert ops(m) == ["graph.slice"]


class ClassToken(nn.Module):
    """ViT's class token: expanded to the batch of the input (taken from x.shape[0])."""

    def __init__(self):
        super().__init__()
        self.token = nn.Parameter(torch.randn(1, 1, 8))

    def forward(self, x):
        n = x.shape[0]
        return torch.cat([self.token.expand(n, -1, -1), x], dim=1)


BROADCAST = [
    ("expand_last", lambda m, x: x[:, :, :1].expand(-1, -1, 5) + x, (2, 3, 5)),
    ("expand_new_dim", lambda m, x: x.sum(1).expand(3, -1, -1).permute(1, 0, 2), (2, 3, 4)),
    ("expand_as", lambda m, x: x.amax(2, keepdim=True).expand_as(x) - x, (2, 3, 4)),
    ("broadcast_to", lambda m, x: torch.broadcast_to(x.mean(1, keepdim=True), (x.shape[0], 3, 4)), (2, 3, 4)),
    ("repeat", lambda m, x: x.repeat(1, 2, 3), (2, 3, 4)),
    ("repeat_new_dims", lambda m, x: x.repeat(2, 1, 1, 1).sum(0), (2, 3, 4)),
]


@pytest.mark.parametrize("name,fn,shape", BROADCAST, ids=[c[0] for c in BROADCAST])
def test_expand_repeat(name, fn, shape):
    check(Fn(fn), shape)


#: expand / repeat that add leading dimensions (rank 1 or 2 to rank 3 or 4); sizes taken from another tensor's
#: shape (`t.shape`, `t.size()`, `t.shape[0]`) follow its batch
EXPAND_RANK = [
    ("param_expand_shape", lambda m, x: x + m.p.expand(x.shape), (2, 3, 4, 4)),
    ("param_expand_size", lambda m, x: x - m.p.expand(x.size()), (2, 3, 4, 4)),
    ("param_expand_as", lambda m, x: x * m.p.expand_as(x), (2, 3, 4, 4)),
    ("param_expand_batch", lambda m, x: x + m.p.expand(x.shape[0], x.shape[1], 4, 4), (2, 3, 4, 4)),
    ("param_to_rank3", lambda m, x: torch.cat([m.p.expand(x.shape[0], -1, -1), x[:, 0]], 1), (2, 3, 4, 4)),
    ("param_broadcast_to", lambda m, x: x + torch.broadcast_to(m.p, (x.shape[0], 3, 4, 4)), (2, 3, 4, 4)),
    ("param_broadcast_to_shape", lambda m, x: x + torch.broadcast_to(m.p, x.shape), (2, 3, 4, 4)),
    ("rank1_to_4", lambda m, x: m.b.expand(x.shape[0], 2, 3, 4) + x.sum(), (2, 3, 4, 4)),
    ("rank2_to_4_fixed", lambda m, x: x + m.p.expand(1, 3, 4, 4), (2, 3, 4, 4)),
    ("features_to_rank4", lambda m, x: x.mean((2, 3)).expand(2, 5, -1, -1).sum((0, 1)), (3, 4, 2, 2)),
    ("features_to_rank3", lambda m, x: x.flatten(1).expand(2, -1, -1).transpose(0, 1), (3, 2, 2, 2)),
    ("repeat_batch_rank", lambda m, x: m.p.repeat(x.shape[0], 3, 1, 1) + x, (2, 3, 4, 4)),
    ("repeat_batch_only", lambda m, x: m.p.repeat(x.shape[0], 1, 1) + x[:, 0], (2, 3, 4, 4)),
    ("repeat_rank_fixed", lambda m, x: x + m.p.repeat(2, 1, 1, 1)[:1], (2, 3, 4, 4)),
]


@pytest.mark.parametrize("name,fn,shape", EXPAND_RANK, ids=[c[0] for c in EXPAND_RANK])
def test_expand_repeat_to_higher_rank(name, fn, shape):
    g = torch.Generator().manual_seed(3)
    check(Fn(fn, p=nn.Parameter(torch.randn(4, 4, generator=g)), b=nn.Parameter(torch.randn(4, generator=g))),
          shape, batches=(5,))


def test_class_token_follows_the_batch():
    m = check(ClassToken(), (1, 5, 8), batches=(4,))
    expand = next(op for op in m.walk() if op.name == "graph.expand")
    assert tuple(expand.shape)[0] == 0 and expand.like is not None


REDUCTIONS = [
    ("sum_dims", lambda m, x: x.sum((-2, -1)), (2, 3, 4, 5)),
    ("sum_keepdim", lambda m, x: torch.sum(x, dim=1, keepdim=True), (2, 3, 4)),
    ("sum_all", lambda m, x: x - x.sum(), (2, 3)),
    ("mean_negative", lambda m, x: x.mean((-2, -1)), (2, 3, 4, 5)),
    ("amax", lambda m, x: x.amax(dim=(1, 2), keepdim=True), (2, 3, 4, 5)),
    ("amin", lambda m, x: torch.amin(x, -1), (2, 3, 4)),
    ("max_dim_values", lambda m, x: x.max(1)[0] + x.min(dim=1, keepdim=False).values, (2, 4, 3)),
    ("max_all", lambda m, x: x / 1 - torch.max(x), (2, 3)),
]


@pytest.mark.parametrize("name,fn,shape", REDUCTIONS, ids=[c[0] for c in REDUCTIONS])
def test_reductions(name, fn, shape):
    check(Fn(fn), shape)


MOVEMENT = [
    ("roll", lambda m, x: torch.roll(x, shifts=(1, -2), dims=(2, 3)), (2, 3, 4, 5)),
    ("roll_method", lambda m, x: x.roll(3, 1), (2, 5, 2)),
    ("roll_flat", lambda m, x: torch.roll(x, 2), (2, 3, 4)),
    ("channel_shuffle_fn", lambda m, x: F.channel_shuffle(x, 3), (2, 6, 4, 4)),
    ("view_transpose_view", lambda m, x: x.view(x.size(0), 2, 3, 4, 4).transpose(1, 2).contiguous().view(
        x.size(0), -1, 4, 4), (2, 6, 4, 4)),
    ("swapaxes", lambda m, x: torch.swapaxes(x, 1, -1) + x.swapdims(-1, 1), (2, 3, 4, 3)),
    ("transpose_T", lambda m, x: x[0].T @ x[1], (2, 3, 4)),
    ("flatten_middle", lambda m, x: torch.flatten(x, 1, 2), (2, 3, 4, 5)),
    ("permute_any", lambda m, x: x.permute(0, 3, 1, 2).permute(0, 2, 3, 1), (2, 3, 4, 5)),
    ("unflatten", lambda m, x: x.unflatten(1, (2, 3)), (2, 6, 4)),
    ("cat_last_dim", lambda m, x: torch.cat([x, x[..., :2]], -1), (2, 3, 4)),
    ("pad_negative_odd", lambda m, x: F.pad(x, (-1, 2, 1, 0)), (2, 3, 4, 5)),
]


@pytest.mark.parametrize("name,fn,shape", MOVEMENT, ids=[c[0] for c in MOVEMENT])
def test_data_movement(name, fn, shape):
    check(Fn(fn), shape, batches=() if name == "transpose_T" else (3,))


def test_channel_shuffle_module_is_reshape_transpose_reshape():
    m = check(nn.Sequential(nn.Conv2d(4, 6, 1), nn.ChannelShuffle(2)), (2, 4, 5, 5))
    assert ops(m) == ["graph.conv2d", "graph.reshape", "graph.transpose", "graph.reshape"]


class StaticMask(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mask", torch.tensor([[True, False, False], [True, True, False]]))

    def forward(self, x):
        return x.masked_fill(self.mask, -100.0) + torch.zeros_like(x[0]) + x.new_ones(3)


def test_masked_fill_constant_mask_and_shape_constants():
    check(StaticMask(), (4, 2, 3), batches=(2,))


def test_like_constants_follow_the_batch():
    check(Fn(lambda m, x: x * torch.ones_like(x) + torch.full_like(x, 0.5)), (1, 2, 3), batches=(4,))


# ---- refusals: one located message -------------------------------------------------------------------------
def _line(marker: str) -> int:
    with open(__file__) as f:
        return next(i for i, line in enumerate(f, 1) if marker in line)


class Gather(nn.Module):
    def forward(self, x):
        return x[:, x.argmax(1)]  # LOC-gather


class DataMask(nn.Module):
    def forward(self, x):
        return x.masked_fill(x > 0, 0.0)  # LOC-mask


@pytest.mark.parametrize("model,needle,marker", [
    (Fn(lambda m, x: x[:, [0, 2]]), "indexing with a tensor or a list", None),
    (Gather(), "unsupported operation", "# LOC-gather"),
    (DataMask(), "unsupported operation", "# LOC-mask"),
    (Fn(lambda m, x: torch.max(x, x * 2)), "elementwise maximum", None),
    (Fn(lambda m, x: x.max(1)[1].float()), "indices of the maximum", None),
    (Fn(lambda m, x: torch.einsum("...i,...i", x, x)), "two-operand equations", None),
    (Fn(lambda m, x: x.split(x.amax(), 1)[0]), "split sizes given as a tensor", None),
    (Fn(lambda m, x: x[:, :x.sum()]), "operator.getitem", None),
])
def test_refusals_are_located(model, needle, marker):
    with pytest.raises(FrontendError) as info:
        import_module(model, (torch.randn(2, 4, 3),))
    text = info.value.render()
    assert needle in text, text
    assert "Traceback" not in text
    first = text.splitlines()[0]
    assert first.startswith(f"{__file__}:"), first
    if marker:
        assert f"{__file__}:{_line(marker)}:" in first


class SpecializedClassToken(nn.Module):
    """A Python condition on a size makes the frontend retrace with literal sizes: the class token's
    expand (a constant there) still follows the batch."""

    def __init__(self):
        super().__init__()
        self.token = nn.Parameter(torch.randn(1, 1, 4))

    def forward(self, x):
        n = x.shape[0]
        if x.shape[1] > 2:
            x = x * 2
        return torch.cat([self.token.expand(n, -1, -1), x], 1)


def test_class_token_in_a_shape_specialized_trace():
    m = check(SpecializedClassToken(), (2, 3, 4), batches=(5,))
    assert "graph.expand" in ops(m)
