"""torchvision architectures through the Quantizer: calib -> test -> `_int.xmodel` (issue 15's bar).

One architecture per family that brings something new to quantization (SE blocks and hard-swish,
channel split and shuffle, SiLU and stochastic depth, grouped convs, a vision transformer whose
attention, layer norms and GELU stay float CPU ops), with seeded random weights at the sizes of
tests/_lib/torchvision_lib.py. Each must quantize and export; the written file, run by `GraphRunner`,
must equal test mode bit for bit; the quantized outputs must track the float model (relative RMS error)
and the top-1 agreement on the 8 test images is reported. The whole list of architectures is measured
by benchmarks/torchvision_coverage.py (docs/model-coverage.md).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _lib.torchvision_lib import build, quant_input_shape, needs_torchvision  # noqa: E402

pytestmark = needs_torchvision()

#: architecture -> the float ops expected on the CPU (a subset of what the lowering reports)
CASES = {
    "mobilenet_v3_small": set(),
    "shufflenet_v2_x0_5": {"fix.strided_slice", "fix.transpose"},
    "efficientnet_b0": {"graph.silu", "graph.sigmoid"},
    "regnet_x_400mf": set(),
    "vit_b_32": {"graph.layer_norm", "graph.gelu", "graph.softmax", "graph.matmul"},
}
#: quantized vs float output, relative RMS: 8-bit numerics on random weights stay well inside this
MAX_REL_RMS = 0.5


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_torchvision_model_quantizes_and_exports(name, tmp_path):
    from fixflow.quantizer import Quantizer
    from fixflow.runtime import GraphRunner

    model = build(name)
    shape = quant_input_shape(name)
    g = torch.Generator().manual_seed(2)
    q = Quantizer(model, (torch.zeros(shape),), mode="calib", output_dir=tmp_path, log=None, progress=False)
    for _ in range(2):
        q.quant_model(torch.randn((4,) + shape[1:], generator=g))
    q.export_quant_config()
    q = Quantizer(model, (torch.zeros(shape),), mode="test", output_dir=tmp_path, log=None, progress=False)
    x = torch.randn((8,) + shape[1:], generator=g)
    out = np.asarray(q.quant_model(x))
    path = q.export_xmodel()
    np.testing.assert_array_equal(GraphRunner.from_xmodel(path).run([x.numpy()])[0], out)
    with torch.no_grad():
        ref = model(x).numpy()
    rel = float(np.linalg.norm(out - ref) / np.linalg.norm(ref))
    agree = float((out.argmax(1) == ref.argmax(1)).mean())
    print(f"{name}: top-1 agreement {agree:.0%} on 8 random images, relative RMS error {rel:.3f}")
    assert rel <= MAX_REL_RMS
    cpu = {op.name for op in q.fix_module.walk()
           if "device" in op.attributes and op.attributes["device"].value == "CPU"}
    assert CASES[name] <= cpu, f"{name}: expected {sorted(CASES[name] - cpu)} on the CPU"
