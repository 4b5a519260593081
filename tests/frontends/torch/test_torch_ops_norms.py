"""Torch frontend (issue 15): LayerNorm / GroupNorm / InstanceNorm (module and functional, affine or not),
GELU (exact, tanh), Mish, F.normalize, and the train-only ops folded away in eval mode (dropout variants,
torchvision's stochastic depth); each against PyTorch at two batch sizes."""

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
    x = torch.randn(shape, generator=gen) * 2
    module = import_module(model, (x,))
    parsed = parse_module(print_module(module))
    parsed.verify()
    for n in (shape[0],) + tuple(batches):
        xn = x if n == shape[0] else torch.randn((n,) + tuple(shape[1:]), generator=gen) * 2
        with torch.no_grad():
            ref = model(xn)
        (got,) = run_module(parsed, [xn.numpy()])
        np.testing.assert_allclose(got, ref.numpy(), rtol=rtol, atol=atol)
    return module


def ops(module) -> list[str]:
    return [op.name for op in module.walk() if op.name.startswith("graph.") and op.name != "graph.constant"]


def _randomize(m: nn.Module) -> nn.Module:
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
        for name, b in m.named_buffers():
            if "running_var" in name:
                b.copy_(torch.rand(b.shape, generator=gen) + 0.5)
            elif "running_mean" in name:
                b.copy_(torch.randn(b.shape, generator=gen))
    return m


class LayerNorm2d(nn.LayerNorm):
    """ConvNeXt's channels-first layer norm (permute, F.layer_norm, permute)."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


NORMS = [
    ("layer_norm_last", nn.LayerNorm(8), (2, 5, 8)),
    ("layer_norm_eps", nn.LayerNorm(8, eps=1e-6), (3, 4, 8)),
    ("layer_norm_2d_shape", nn.LayerNorm((4, 8)), (2, 3, 4, 8)),
    ("layer_norm_no_affine", nn.LayerNorm(8, elementwise_affine=False), (2, 5, 8)),
    ("layer_norm_no_bias", nn.LayerNorm(8, bias=False), (2, 5, 8)),
    ("layer_norm_2d_convnext", LayerNorm2d(6, eps=1e-6), (2, 6, 4, 5)),
    ("group_norm", nn.GroupNorm(3, 6), (2, 6, 4, 5)),
    ("group_norm_one_group", nn.GroupNorm(1, 6, affine=False), (2, 6, 4, 5)),
    ("group_norm_1d", nn.GroupNorm(2, 4), (2, 4, 7)),
    ("instance_norm", nn.InstanceNorm2d(4), (2, 4, 5, 5)),
    ("instance_norm_affine", nn.InstanceNorm2d(4, affine=True), (2, 4, 5, 5)),
    ("instance_norm_1d", nn.InstanceNorm1d(3, affine=True), (2, 3, 9)),
    ("instance_norm_running", nn.InstanceNorm2d(4, affine=True, track_running_stats=True), (2, 4, 5, 5)),
]


@pytest.mark.parametrize("name,model,shape", NORMS, ids=[c[0] for c in NORMS])
def test_norm_modules(name, model, shape):
    check(_randomize(model), shape)


FUNCTIONAL = [
    ("layer_norm", lambda m, x: F.layer_norm(x, (x.shape[-1],), m.w, m.b, 1e-6), (2, 3, 8)),
    ("layer_norm_plain", lambda m, x: F.layer_norm(x, [4, 8]), (2, 3, 4, 8)),
    ("group_norm", lambda m, x: F.group_norm(x, 4, m.w, m.b), (2, 8, 3, 3)),
    ("group_norm_plain", lambda m, x: F.group_norm(x, 2), (2, 8, 3, 3)),
    ("instance_norm", lambda m, x: F.instance_norm(x, weight=m.w, bias=m.b), (2, 8, 3, 3)),
    ("normalize", lambda m, x: F.normalize(x, dim=-1), (2, 3, 8)),
    ("normalize_p1", lambda m, x: F.normalize(x, p=1.0, dim=1, eps=1e-3), (2, 8, 3)),
]


@pytest.mark.parametrize("name,fn,shape", FUNCTIONAL, ids=[c[0] for c in FUNCTIONAL])
def test_norm_functional(name, fn, shape):
    gen = torch.Generator().manual_seed(5)
    check(Fn(fn, w=nn.Parameter(torch.randn(8, generator=gen)), b=nn.Parameter(torch.randn(8, generator=gen))),
          shape)


ACTIVATIONS = [
    ("gelu", nn.GELU(), None),
    ("gelu_tanh", nn.GELU(approximate="tanh"), None),
    ("gelu_fn", Fn(lambda m, x: F.gelu(x)), None),
    ("gelu_fn_tanh", Fn(lambda m, x: F.gelu(x, approximate="tanh")), None),
    ("mish", nn.Mish(), None),
    ("mish_fn", Fn(lambda m, x: F.mish(x)), None),
    ("silu", nn.SiLU(), None),
    ("hardswish", Fn(lambda m, x: F.hardswish(x)), None),
    ("hardsigmoid", nn.Hardsigmoid(), None),
]


@pytest.mark.parametrize("name,model,_", ACTIVATIONS, ids=[c[0] for c in ACTIVATIONS])
def test_activations(name, model, _):
    m = check(model, (2, 3, 4, 5))
    assert len(ops(m)) == 1


def test_gelu_op_attribute():
    m = check(nn.Sequential(nn.GELU("tanh"), nn.GELU()), (2, 3))
    gelus = [op for op in m.walk() if op.name == "graph.gelu"]
    assert [g.approximate for g in gelus] == ["tanh", "none"]


class TrainOnly(nn.Module):
    def __init__(self):
        super().__init__()
        self.d3 = nn.Dropout3d(0.3)
        self.fa = nn.FeatureAlphaDropout(0.2)
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        y = self.fa(self.d3(self.conv(x)))
        y = F.dropout(y, 0.5, training=self.training) + F.alpha_dropout(y, 0.1, self.training)
        return F.feature_alpha_dropout(y, 0.1, training=self.training)


def test_dropout_variants_fold_in_eval_mode():
    from fixflow.ir.passes import get_pass
    m = check(TrainOnly(), (2, 3, 4, 4))
    get_pass("canonicalize")().run(m)
    assert ops(m) == ["graph.conv2d", "graph.add"]


def _torchvision():
    try:
        from _lib.torchvision_lib import load_torchvision
        return load_torchvision()
    except ImportError:
        pytest.skip("torchvision is not installed")


def test_stochastic_depth_is_the_identity_in_eval_mode():
    """torchvision.ops.stochastic_depth is fx-wrapped (a leaf call in the trace): folded to a dropout."""
    tv = _torchvision()
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), tv.ops.StochasticDepth(0.2, "row"), nn.ReLU())
    m = check(model, (2, 3, 5, 5))
    assert ops(m) == ["graph.conv2d", "graph.dropout", "graph.relu"]
    import sys
    sd_module = sys.modules["torchvision.ops.stochastic_depth"]  # fx patches the wrapped name in this module
    fn = Fn(lambda m, x: sd_module.stochastic_depth(x, 0.5, "batch", training=True))
    with pytest.raises(FrontendError, match="training=True drops rows at random"):
        import_module(fn, (torch.randn(2, 3),))


@pytest.mark.parametrize("model,needle", [
    (Fn(lambda m, x: F.dropout(x, 0.1, training=True)), "training=True"),
    (nn.Sequential(nn.ELU()), "torch.nn.ELU"),
])
def test_refusals(model, needle):
    with pytest.raises(FrontendError) as info:
        import_module(model, (torch.randn(2, 3, 4),))
    assert needle in info.value.render()
