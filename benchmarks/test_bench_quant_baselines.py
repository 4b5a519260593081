"""fixflow W8A8 vs torch.ao FX static int8 vs onnxruntime quantize_static (QDQ) on the trained digits models.

Same float model, same calibration data (10 batches of 32 digits train images), same test split (359
images). Each tool's calibration + conversion (float model -> runnable int8 model) is timed once
(``pedantic``, 1 round after 1 untimed warm-up round, so import and first-trace costs are excluded); quality metrics go to ``benchmark.extra_info`` and a table is printed at the end:

    python -m pytest benchmarks/test_bench_quant_baselines.py --benchmark-only -s
"""

from __future__ import annotations

import functools
import time

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

import quant_baselines as qb
from fixflow import zoo

MODELS = ("digits_cnn", "tiny_mobilenet")
TOOLS = ("fixflow", "torch.ao x86", "onnxruntime per-tensor", "onnxruntime per-channel")


@functools.lru_cache(maxsize=None)
def _data(name: str):
    xtr, _ = zoo.load_data(name, "train")
    xte, yte = zoo.load_data(name, "test")
    return qb.calibration_batches(xtr), xte, yte


@pytest.fixture(scope="module")
def table():
    rows: list[dict] = []
    yield rows
    if rows:
        print("\n\nPost-training int8 quantization, digits test split (359 images), "
              "calibration 10 x 32 train images:\n" + qb.format_table(rows) + "\n")


def _quantize(tool: str, model, calib, workdir) -> qb.Int8Model:
    if tool == "fixflow":
        return qb.quantize_fixflow(model, calib, workdir)
    if tool == "torch.ao x86":
        return qb.quantize_torch_ao(model, calib, "x86")
    return qb.quantize_onnxruntime(model, calib, workdir, per_channel=tool.endswith("per-channel"))


def _check_artifact(tool: str, q: qb.Int8Model, model, x: np.ndarray) -> None:
    """The baselines really are int8 models of the kind claimed (and the ONNX export is faithful)."""
    if tool.startswith("torch.ao"):
        convs = [m for m in q.artifact.modules() if type(m).__module__.startswith("torch.ao.nn.intrinsic.quantized")
                 or type(m).__module__.startswith("torch.ao.nn.quantized.modules.conv")]
        assert convs, "no quantized conv modules after convert_fx"
        for m in convs:
            w = m.weight()
            assert w.dtype == torch.qint8 and w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric)
    elif tool.startswith("onnxruntime"):
        graph = onnx.load(str(q.artifact)).graph
        kinds = [n.op_type for n in graph.node]
        assert kinds.count("QuantizeLinear") > 0 and kinds.count("DequantizeLinear") > 0
        assert "Conv" in kinds and ("Gemm" in kinds or "MatMul" in kinds)
        inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        scale_sizes = [inits[n.input[1]].size for n in graph.node if n.op_type == "DequantizeLinear"
                       and n.input[0] in inits and inits[n.input[0]].dtype == np.int8 and n.input[1] in inits]
        assert scale_sizes, "no int8 weight initializers"
        if tool.endswith("per-channel"):
            assert max(scale_sizes) > 1
        else:
            assert max(scale_sizes) == 1
        f32 = q.artifact.with_name(q.artifact.name.replace("int8", "float"))
        y_ort = qb.ort_session(f32).run(None, {"x": x})[0]
        np.testing.assert_allclose(y_ort, qb.float_logits(model, x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("name", MODELS)
def test_bench_quant_baseline(benchmark, table, tmp_path, name, tool):
    calib, xte, yte = _data(name)
    model = zoo.get_model(name)
    seconds = []

    def run():
        t0 = time.perf_counter()
        q = _quantize(tool, model, calib, tmp_path)
        seconds.append(time.perf_counter() - t0)
        return q

    q = benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=1)
    _check_artifact(tool, q, model, xte)
    yf = qb.float_logits(model, xte)
    m = qb.quality(yf, q.predict(xte), yte)
    benchmark.extra_info.update(m.as_dict(), scheme=q.scheme, calib_images=sum(len(b) for b in calib))
    table.append({"model": name, "tool": tool, "seconds": seconds[-1], **m.as_dict()})
    # loose bars shared by all tools (each is well above them on these models)
    assert m.int8_top1 >= m.float_top1 - 0.01
    assert m.agreement >= 0.98
    assert m.sqnr_db >= 20
