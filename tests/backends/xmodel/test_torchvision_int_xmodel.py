"""The `_int.xmodel` of torchvision architectures whose export needed XIR forms beyond `*-fix` ops.

Swin (V1 and V2) pads its (B, H, W, C) maps to whole windows with a float pad (XIR's `pad`); VGG at 64x64
pools its 2x2 map to 7x7 with uneven windows (a 1x1 `conv2d-fix` of the pooling matrix). Seeded random
weights at the sizes of tests/_lib/torchvision_lib.py; the written file, run by `GraphRunner` at batch 2,
must equal test mode bit for bit; AMD's xir loads it when FIXFLOW_AMD_TOOLS is set.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _lib.torchvision_lib import build, quant_input_shape, needs_torchvision  # noqa: E402

pytestmark = needs_torchvision()

#: architecture -> an XIR op type its file must hold
CASES = {"swin_t": "pad", "swin_v2_t": "pad", "vgg11": "conv2d-fix"}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_torchvision_int_xmodel_runs_as_test_mode(name, tmp_path):
    from fixflow.backends.xmodel import read_xmodel
    from fixflow.quantizer import Quantizer
    from fixflow.runtime import GraphRunner

    model = build(name)
    shape = quant_input_shape(name)
    assert shape[2:] == (64, 64)
    g = torch.Generator().manual_seed(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = Quantizer(model, (torch.zeros(shape),), mode="calib", output_dir=tmp_path, log=None, progress=False)
        q.quant_model(torch.randn((4,) + shape[1:], generator=g))
        q.export_quant_config()
        q = Quantizer(model, (torch.zeros(shape),), mode="test", output_dir=tmp_path, log=None, progress=False)
        x = torch.randn((2,) + shape[1:], generator=g)
        out = np.asarray(q.quant_model(x))
        path = q.export_xmodel()
    np.testing.assert_array_equal(GraphRunner.from_xmodel(path).run([x.numpy()])[0], out)
    assert CASES[name] in {o.type for o in read_xmodel(path).ops}
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.linalg.norm(out - ref) <= 0.5 * np.linalg.norm(ref)
    if os.environ.get("FIXFLOW_AMD_TOOLS"):
        from reference._amd_tools_lib import run_amd
        assert run_amd("xir", "subgraph", path, cwd=tmp_path).splitlines()[0] == "root"
