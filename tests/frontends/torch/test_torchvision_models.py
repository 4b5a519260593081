"""Every classification architecture of torchvision imports and runs in the reference interpreter.

Models nobody here wrote: `torchvision.models.list_models(module=torchvision.models)` (80 in torchvision
0.29), seeded random weights and BatchNorm statistics, eval mode. Each is imported through the torch
frontend and run by the reference interpreter; the output must be within 1e-5 of PyTorch's relative to
the output's scale (max |fixflow - torch| / max |torch|).

Inputs are batch 1 at the sizes of `tests/_lib/torchvision_lib.py` (64x64 for most, to keep CI time
down; 224x224 for MaxViT, whose partitions fix it; `FIXFLOW_TV_SIZE=224` runs all at 224x224). torchvision
is installed by scripts/setup.sh (--no-deps); without it these tests are skipped.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _lib.torchvision_lib import architectures, build, input_shape, relative_error  # noqa: E402

try:
    ARCHS = architectures()
except ImportError:  # torchvision or Pillow missing: scripts/setup.sh installs them
    ARCHS = []
pytestmark = pytest.mark.skipif(not ARCHS, reason="torchvision is not installed (scripts/setup.sh installs it)")
RTOL = 1e-5
#: architectures the frontend cannot import yet, with the operation that stops them (strict: an import that
#: starts working fails here until it is taken off the list)
NOT_YET: dict[str, str] = {}


def _param(name: str):
    if name in NOT_YET:
        return pytest.param(name, marks=pytest.mark.xfail(reason=NOT_YET[name], strict=True))
    return name


@pytest.mark.slow
@pytest.mark.parametrize("name", [_param(n) for n in ARCHS])
def test_torchvision_model_matches_pytorch(name):
    from fixflow.frontends.torch import import_module
    from fixflow.ir.interpreter import run_module

    model = build(name)
    x = torch.randn(input_shape(name), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(x).numpy()
    module = import_module(model, (x,))
    del model
    gc.collect()
    (got,) = run_module(module, [x.numpy()])
    assert got.shape == want.shape
    assert np.isfinite(want).all() and np.ptp(want) > 0      # a non-degenerate output
    err = relative_error(got, want)
    assert err <= RTOL, f"{name}: relative error {err:.2e} > {RTOL:.0e}"


def test_the_list_is_torchvisions_whole_classification_zoo():
    import torchvision as tv

    assert len(ARCHS) == len(set(ARCHS))
    if tv.__version__.startswith("0.29."):
        assert len(ARCHS) == 80
