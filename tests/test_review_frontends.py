"""Review of the frontends: models users write by hand that once imported wrongly or reported badly."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from fixflow.frontends.torch import FrontendError, import_module  # noqa: E402
from fixflow.ir import parse_module, print_module  # noqa: E402
from fixflow.runtime.interpreter import run_module  # noqa: E402


class Fn(nn.Module):
    def __init__(self, fn, **children):
        super().__init__()
        self.fn = fn
        for k, v in children.items():
            setattr(self, k, v)

    def forward(self, x):
        return self.fn(self, x)


def check(model: nn.Module, x: torch.Tensor) -> None:
    """Import, print, parse, interpret == PyTorch (on fresh copies: the model may update its input)."""
    module = import_module(model, (x.clone(),))
    parsed = parse_module(print_module(module, print_locations=True), "t.mlir")
    with torch.no_grad():
        ref = model.eval()(x.clone())
    (got,) = run_module(parsed, [x.numpy()])
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-5, atol=1e-6)


# ---- in-place updates seen through aliases ---------------------------------------------------------
def _chain(m, x):
    y = m.conv(x)
    y += x
    z = F.relu(y, inplace=True)  # z is y
    z.sub_(x)                    # ... so this updates y too
    return y


def _detach_alias(m, x):
    y = x * 2
    z = y.detach()
    z.add_(1)
    return y


def test_inplace_update_reaches_every_alias():
    torch.manual_seed(0)
    check(Fn(_chain, conv=nn.Conv2d(2, 2, 1)), torch.randn(2, 2, 4, 4))
    check(Fn(_detach_alias), torch.randn(2, 3))


def _view_then_inplace(m, x):
    y = x.view(x.size(0), -1)
    y.mul_(2)
    return x + 0


def test_inplace_update_of_a_view_is_refused():
    with pytest.raises(FrontendError, match=r"Tensor.mul_.* updates 'view' in place, which also changes 'x'") as e:
        import_module(Fn(_view_then_inplace), (torch.randn(2, 3, 4),))
    assert e.value.location.child.line > 0
