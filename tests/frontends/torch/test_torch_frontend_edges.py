"""PyTorch frontend edge cases: hand-written models that once imported wrongly or reported badly."""

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


# ---- forward() signatures and messages --------------------------------------------------------------
class WithDefaults(nn.Module):
    def forward(self, x, scale=2.0, **kwargs):
        return x * scale


class VarArgs(nn.Module):
    def forward(self, *xs):
        return xs[0] * 2


def test_forward_parameters_left_at_their_default_are_constants():
    x = torch.randn(2, 3)
    module = import_module(WithDefaults(), (x,))
    (func,) = module.functions()
    assert len(func.args) == 1
    check(WithDefaults(), x)


def test_varargs_forward_is_one_clear_error():
    with pytest.raises(FrontendError, match=r"forward\(\) takes its inputs as '\*xs'"):
        import_module(VarArgs(), (torch.randn(2, 3),))


class IterRows(nn.Module):
    def forward(self, x):
        s = 0
        for row in x:
            s = s + row
        return s


def test_iterating_over_a_tensor_is_not_called_control_flow():
    with pytest.raises(FrontendError, match="iterated over") as e:
        import_module(IterRows(), (torch.randn(2, 3),))
    assert "control flow" not in str(e.value)


def test_unsupported_dispatched_function_has_its_public_name():
    with pytest.raises(FrontendError, match=r"'torch.nn.functional.adaptive_max_pool2d'") as e:
        import_module(Fn(lambda m, x: F.adaptive_max_pool2d(x, 1)), (torch.randn(1, 2, 4, 4),))
    assert "<locals>" not in str(e.value)
