"""ResNet-18, ResNet-50 and MobileNetV2 (the zoo's ImageNet models, seeded weights, calibrated on two random
images) compiled for every DPUCZDX8G size B512-B4096 and written as compiled xmodels: the file's DPU
subgraph on the DPU interpreter (fast mode) equals the fix-level integer execution bit for bit, and its
REG_1 is what the program really touches (the compiler's layout, on-chip tensors `location = 0`).

The inputs are 64x64 (not 224x224) to keep the 24 compilations and runs within a few CPU minutes: every
layer kind, stride, residual, fusion and chain of the full models is there (ResNet's layer4 on a 2x2 map,
MobileNetV2's last blocks on 2x2); the full-size models are compiled by tests/tools/test_compile_cli.py
and benchmarks/test_bench_compile.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "passes" / "dpu"))
from _dpu_testlib import SIZES, compile_module, fix_reference, quantize_zoo_model

torch = pytest.importorskip("torch")

SIDE = 64
MODELS = ("resnet18", "resnet50", "mobilenet_v2")


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    """Per model: (fix module, int8 input of the DPU subgraph, int8 fix-level result), built on first use."""
    from fixflow.zoo import get_model
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            rng = np.random.default_rng(len(name))
            calib = [rng.uniform(0, 1, (2, 3, SIDE, SIDE)).astype(np.float32)]
            fm = quantize_zoo_model(lambda: get_model(name).eval(), calib, tmp_path_factory.mktemp(name),
                                    example=np.zeros((1, 3, SIDE, SIDE), dtype=np.float32))
            x = rng.uniform(0, 1, (1, 3, SIDE, SIDE)).astype(np.float32)
            cache[name] = (fm, *fix_reference(fm.clone(), x))
        return cache[name]
    return get


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", MODELS)
def test_zoo_model_compiled_file_bit_exact(quantized, name, size):
    from fixflow.backends.xmodel.compiled import compiled_bytes, read_compiled_bytes
    from fixflow.backends.xmodel.dpu_emit import emit_compiled
    from fixflow.runtime.dpu import DPUSubgraph
    fm, xin, ref = quantized(name)
    m = compile_module(fm.clone(), f"DPUCZDX8G_ISA1_B{size}")      # verify-dpu-schedule included
    cm = read_compiled_bytes(compiled_bytes(emit_compiled(m, name, ac_code=False)))
    (sg,) = cm.dpu_subgraphs
    func = next(op for op in m.body.ops if op.name == "func.func")
    peak, naive, before = (int(v) for v in func.attributes["dpu.workspace"].value[sg.name].value)
    assert sg.region(1).size == peak <= before < naive
    on_chip = [o for c in sg.children for o in map(cm.op, c.op_names)
               if "location" in o.output.attrs and o.output.attr("location") == 0]
    assert on_chip and all("stride" not in o.output.attrs for o in on_chip)
    got = DPUSubgraph.from_xmodel(cm).run([xin[None]], mode="fast")
    (out,) = got.values()
    np.testing.assert_array_equal(np.asarray(out).reshape(-1), ref.reshape(-1))
