"""Torch frontend (issue 15): attention without an attention op: nn.MultiheadAttention and
F.scaled_dot_product_attention decomposed into linear / matmul / softmax, einsum as one batched matmul, a
ViT-style encoder block, and torchvision's Swin window attention (V1, V2) and patch merging."""

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


def check(model: nn.Module, shape: tuple[int, ...], batches=(3,), rtol: float = 1e-5, atol: float = 1e-5):
    model.eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen)
    module = import_module(model, (x,))
    parsed = parse_module(print_module(module))
    parsed.verify()
    for n in (shape[0],) + tuple(batches):
        xn = x if n == shape[0] else torch.randn((n,) + tuple(shape[1:]), generator=gen)
        with torch.no_grad():
            ref = model(xn)
        refs = [ref] if isinstance(ref, torch.Tensor) else list(ref)
        got = run_module(parsed, [xn.numpy()])
        for g, r in zip(got, refs):
            scale = max(float(r.abs().max()), 1e-6)
            np.testing.assert_allclose(g, r.numpy(), rtol=rtol, atol=atol * scale)
    return module


def ops(module) -> set[str]:
    return {op.name for op in module.walk() if op.name.startswith("graph.") and op.name != "graph.constant"}


class SelfAttention(nn.Module):
    def __init__(self, batch_first=True, kdim=None, bias=True, **call):
        super().__init__()
        torch.manual_seed(1)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=batch_first, kdim=kdim, vdim=kdim, bias=bias)
        self.kv = nn.Linear(8, kdim) if kdim else nn.Identity()
        self.call = call

    def forward(self, x):
        kv = self.kv(x)
        return self.attn(x, kv, kv, **self.call)


MHA = [
    ("batch_first_no_weights", lambda: SelfAttention(need_weights=False), (2, 5, 8), 0),
    ("batch_first_weights", lambda: SelfAttention(), (2, 5, 8), None),
    ("per_head_weights", lambda: SelfAttention(average_attn_weights=False), (2, 5, 8), None),
    ("sequence_first", lambda: SelfAttention(batch_first=False, need_weights=False), (5, 2, 8), 0),
    ("no_bias", lambda: SelfAttention(bias=False, need_weights=False), (2, 5, 8), 0),
    ("cross_kv_dims", lambda: SelfAttention(kdim=6, need_weights=False), (2, 5, 8), 0),
]


@pytest.mark.parametrize("name,make,shape,index", MHA, ids=[c[0] for c in MHA])
def test_multihead_attention(name, make, shape, index):
    inner = make()
    model = Fn(lambda m, x: m.a(x) if index is None else m.a(x)[index], a=inner)
    m = check(model, shape, batches=(3,) if name != "sequence_first" else ())
    assert {"graph.linear", "graph.matmul", "graph.softmax"} <= ops(m)


def test_multihead_attention_constant_bool_mask():
    class Masked(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(2)
            self.attn = nn.MultiheadAttention(8, 4, batch_first=True)
            self.register_buffer("mask", torch.ones(5, 5, dtype=torch.bool).triu(1))

        def forward(self, x):
            return self.attn(x, x, x, attn_mask=self.mask, need_weights=False)[0]
    check(Masked(), (2, 5, 8))


SDPA = [
    ("plain", lambda m, x: F.scaled_dot_product_attention(x, x * 0.5, x + 1)),
    ("causal", lambda m, x: F.scaled_dot_product_attention(x, x, x, is_causal=True)),
    ("scale", lambda m, x: F.scaled_dot_product_attention(x, x, x.relu(), scale=0.3)),
    ("float_mask", lambda m, x: F.scaled_dot_product_attention(x, x, x, attn_mask=m.bias)),
    ("bool_mask", lambda m, x: F.scaled_dot_product_attention(x, x, x, attn_mask=m.keep)),
]


@pytest.mark.parametrize("name,fn", SDPA, ids=[c[0] for c in SDPA])
def test_scaled_dot_product_attention(name, fn):
    model = Fn(fn, bias=nn.Parameter(torch.randn(5, 5)))
    model.register_buffer("keep", torch.rand(5, 5, generator=torch.Generator().manual_seed(0)) > 0.3)
    model.keep[:, 0] = True
    check(model, (2, 3, 5, 4))


EINSUM = [
    ("batched_qk", lambda m, x: torch.einsum("bhid,bhjd->bhij", x, x * 2), (2, 3, 5, 4)),
    ("attention_v", lambda m, x: torch.einsum("bhij,bhjd->bhid", x.softmax(-1), x), (2, 3, 4, 4)),
    ("maxvit_style", lambda m, x: torch.einsum("bgid,bgjd->bgij", x, x + 1), (2, 3, 5, 4)),
    ("weight", lambda m, x: torch.einsum("bnd,de->bne", x, m.w), (2, 5, 4)),
    ("transposed_out", lambda m, x: torch.einsum("bid,bjd->bji", x, x.relu()), (2, 5, 4)),
    ("summed_index", lambda m, x: torch.einsum("bid,bjd->bi", x, x), (2, 5, 4)),
]


@pytest.mark.parametrize("name,fn,shape", EINSUM, ids=[c[0] for c in EINSUM])
def test_einsum(name, fn, shape):
    m = check(Fn(fn, w=nn.Parameter(torch.randn(4, 6))), shape)
    assert "graph.matmul" in ops(m)


class EncoderBlock(nn.Module):
    """A ViT encoder layer with its class token and head: LayerNorm, MultiheadAttention, GELU MLP, x[:, 0]."""

    def __init__(self, dim=16, heads=4):
        super().__init__()
        torch.manual_seed(3)
        self.proj = nn.Conv2d(3, dim, 4, 4)
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, 17, dim) * 0.1)
        self.ln_1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 32), nn.GELU(), nn.Dropout(0.1), nn.Linear(32, dim))
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        n = x.shape[0]
        x = self.proj(x).reshape(n, self.proj.out_channels, -1).permute(0, 2, 1)
        x = torch.cat([self.cls.expand(n, -1, -1), x], dim=1) + self.pos
        y = self.ln_1(x)
        y, _ = self.attn(y, y, y, need_weights=False)
        x = x + y
        x = x + self.mlp(self.ln_2(x))
        return self.head(x[:, 0])


def test_vit_style_block_runs_at_any_batch():
    m = check(EncoderBlock(), (1, 3, 16, 16), batches=(4,))
    assert {"graph.expand", "graph.layer_norm", "graph.gelu", "graph.slice"} <= ops(m)


def _torchvision():
    try:
        from _lib.torchvision_lib import load_torchvision
        return load_torchvision()
    except ImportError:
        pytest.skip("torchvision is not installed")


@pytest.mark.parametrize("v2", [False, True], ids=["swin_v1", "swin_v2"])
@pytest.mark.parametrize("hw,shift", [((8, 8), [2, 2]), ((7, 6), [2, 2]), ((4, 4), [0, 0])],
                         ids=["shifted", "padded", "one_window"])
def test_swin_window_attention(v2, hw, shift):
    tv = _torchvision()
    from torchvision.models import swin_transformer as swin
    torch.manual_seed(4)
    cls = swin.ShiftedWindowAttentionV2 if v2 else swin.ShiftedWindowAttention
    block = cls(8, [4, 4], shift, 2)
    with torch.no_grad():
        for p in block.parameters():
            p.add_(torch.randn(p.shape) * 0.1)
    m = check(block, (2,) + hw + (8,))
    assert "graph.softmax" in ops(m) and ("graph.roll" in ops(m)) == (shift != [0, 0] and hw != (4, 4))
    assert tv is not None


def test_swin_patch_merging_odd_sizes():
    _torchvision()
    from torchvision.models import swin_transformer as swin
    torch.manual_seed(5)
    check(swin.PatchMerging(6), (2, 5, 7, 6))
    check(swin.PatchMergingV2(6), (2, 4, 4, 6))


@pytest.mark.parametrize("model,needle", [
    (Fn(lambda m, x: F.scaled_dot_product_attention(x, x, x, dropout_p=0.5)), "dropout_p > 0"),
    (Fn(lambda m, x: F.scaled_dot_product_attention(x, x, x, attn_mask=x > 0)), "boolean attention mask"),
    (Fn(lambda m, x: m.a(x, x, x, key_padding_mask=x[..., 0] > 0)[0],
        a=nn.MultiheadAttention(4, 2, batch_first=True)), "key_padding_mask"),
])
def test_attention_refusals(model, needle):
    with pytest.raises(FrontendError) as info:
        import_module(model, (torch.randn(2, 3, 4),))
    text = info.value.render()
    assert needle in text and text.splitlines()[0].startswith(__file__)
