"""Shape arithmetic on traced sizes folds to constants (fixflow.frontends.torch.tracing).

Plain torch.fx cannot run `math.ceil(h / s)`, `max(pad, 0)` or `if pad > 0` on traced sizes; the frontend
then traces again with the example inputs' shapes as Python ints (`ShapeSpecializingTracer`), so the
arithmetic runs in Python and its results are literal arguments in the graph.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fixflow.frontends.torch import FrontendError, import_module
from fixflow.frontends.torch.tracing import trace
from fixflow.ir.interpreter import run_module


def _ops(module, name):
    (func,) = module.functions()
    return [op for op in func.walk() if op.name == name]


def _check(model: nn.Module, x: torch.Tensor, rtol: float = 1e-5):
    model.eval()
    module = import_module(model, (x,))
    got = run_module(module, [x.numpy()])[0]
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-6)
    return module


class Conv2dSame(nn.Conv2d):
    """TensorFlow "SAME" padding computed from the input size in forward (EfficientNet-PyTorch's layer)."""

    def forward(self, x):
        ih, iw = x.size()[-2:]
        kh, kw = self.weight.size()[-2:]
        sh, sw = self.stride
        oh, ow = math.ceil(ih / sh), math.ceil(iw / sw)
        pad_h = max((oh - 1) * sh + (kh - 1) * self.dilation[0] + 1 - ih, 0)
        pad_w = max((ow - 1) * sw + (kw - 1) * self.dilation[1] + 1 - iw, 0)
        if pad_h > 0 or pad_w > 0:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def _same_pads(size: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """TF SAME padding (before, after) of one dimension, written independently of the layer above."""
    out = -(-size // s)
    total = max(0, (out - 1) * s + d * (k - 1) + 1 - size)
    return total // 2, total - total // 2


@pytest.mark.parametrize("h,w", [(17, 20), (16, 16), (9, 31)])
def test_tf_same_padding_folds_to_a_constant_pad(h, w):
    torch.manual_seed(0)
    model = nn.Sequential(Conv2dSame(3, 8, 3, 2), nn.ReLU(), Conv2dSame(8, 4, 5, 2, dilation=1))
    x = torch.randn(2, 3, h, w)
    module = _check(model, x)
    pads = [tuple(op.attributes["pads"].value) for op in _ops(module, "graph.pad")]
    # torch's F.pad order: (left, right, top, bottom); a pad op only where the padding is not zero
    h1, w1 = -(-h // 2), -(-w // 2)
    want = []
    for (hh, ww, k) in ((h, w, 3), (h1, w1, 5)):
        (t, b), (l, r) = _same_pads(hh, k, 2), _same_pads(ww, k, 2)
        if t or b or l or r:
            want.append((l, r, t, b))
    assert pads == want
    assert not any(_ops(module, "graph.conv2d")[0].attributes["padding"].value)


def test_plain_tracing_is_kept_when_it_works():
    """Models fx traces without help are not specialized (their shape queries stay nodes)."""
    gm = trace(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), (torch.randn(1, 3, 8, 8),))
    assert not gm.meta.get("fixflow_specialized")
    gm = trace(Conv2dSame(3, 4, 3, 2), (torch.randn(1, 3, 8, 8),))
    assert gm.meta.get("fixflow_specialized")
    # the graph holds the padding as literal arguments: no size query, no arithmetic node remains
    targets = [n.target for n in gm.graph.nodes if n.op in ("call_function", "call_method")]
    assert targets == [F.pad, F.conv2d]
    assert gm.graph.find_nodes(op="call_function", target=F.pad)[0].args[1] == [0, 1, 0, 1]


class CeilPool(nn.Module):
    """`x.size(2)`, `x.shape[-1]` and `math.ceil` of them as pooling arguments and an upsampling size."""

    def forward(self, x):
        k = math.ceil(x.size(2) / 3)
        y = F.avg_pool2d(x, kernel_size=k, stride=k, ceil_mode=True)
        return F.interpolate(y, size=(x.shape[-2] // 2, int(math.ceil(x.shape[-1] / 2))), mode="nearest")


@pytest.mark.parametrize("shape", [(1, 2, 9, 9), (3, 4, 12, 7)])
def test_ceil_of_sizes_as_pool_and_resize_arguments(shape):
    x = torch.randn(*shape)
    module = _check(CeilPool(), x)
    (pool,) = _ops(module, "graph.avg_pool2d")
    k = math.ceil(shape[2] / 3)
    assert tuple(pool.attributes["kernel"].value) == (k, k)


class OddPad(nn.Module):
    """A Python branch on a size: pad odd widths to even before a stride-2 pool."""

    def forward(self, x):
        if x.shape[-1] % 2 == 1 or len(x) > 8:
            x = F.pad(x, (0, 1, 0, 0), mode="replicate")
        return F.max_pool2d(x, 2)


def test_branch_on_a_size_takes_the_example_branch():
    x = torch.randn(2, 3, 6, 7)
    module = _check(OddPad(), x)
    assert len(_ops(module, "graph.pad")) == 1
    module = _check(OddPad(), torch.randn(2, 3, 6, 8))
    assert not _ops(module, "graph.pad")


class ShapeThenData(nn.Module):
    def forward(self, x):
        pad = max(4 - x.size(-1), 0)
        x = F.pad(x, (pad, 0))
        if x.sum() > 0:  # this one depends on the data
            return x
        return -x


def test_data_dependent_condition_is_still_refused_at_its_line():
    with pytest.raises(FrontendError, match="data-dependent control flow") as e:
        import_module(ShapeThenData(), (torch.randn(1, 2, 3, 3),))
    assert f"{__file__}:{ShapeThenData.forward.__code__.co_firstlineno + 3}:" in str(e.value)


def test_iterating_over_rows_is_still_refused():
    class Rows(nn.Module):
        def forward(self, x):
            h = math.ceil(x.size(1) / 2)
            s = 0
            for row in x[:, :h] if h > 100 else x:
                s = s + row
            return s

    with pytest.raises(FrontendError, match="iterated over"):
        import_module(Rows(), (torch.randn(2, 3),))


class BadPad(nn.Module):
    def forward(self, x):
        p = max(math.ceil(x.size(-1) / 4), 1)
        return F.pad(x, (p,), mode="reflect")  # reflect needs a pair per padded dimension


def test_an_error_of_the_model_itself_points_at_its_line():
    with pytest.raises(FrontendError, match="running the model on the example inputs failed: RuntimeError: Padding length") as e:
        import_module(BadPad(), (torch.randn(1, 2, 5, 5),))
    assert f"{__file__}:{BadPad.forward.__code__.co_firstlineno + 2}:" in str(e.value)
