"""The DPU interpreter's fast mode on whole compiled zoo models, side by side with PyTorch fp32 eager
and onnxruntime int8 (static QDQ quantization, the native-code reference), in one run, same thread
count (``FIXFLOW_BENCH_THREADS``, default 1; BLAS through threadpoolctl, ``torch.set_num_threads``,
onnxruntime ``intra_op_num_threads``).

Each model is quantized (calibrated on seeded random images), compiled whole for
DPUCZDX8G_ISA1_B4096 with the passes of fixflow/passes/dpu, and its fast plan built once per session.
Peak resident memory is measured in child processes (fixflow: plan loaded from a pickle, then 3 runs;
PyTorch: the model built, then 3 runs), each child's ``VmHWM`` (ru_maxrss survives exec on Linux:
it would report the parent's peak).

    OPENBLAS_NUM_THREADS=1 python -m pytest benchmarks/test_bench_dpu_vs_torch.py --benchmark-only \
        --benchmark-group-by=group --benchmark-columns=min,median,mean,rounds -p no:cacheprovider -s

The fast mode's time is mostly numpy's float32 matrix products, so it depends on the kernel set
numpy's OpenBLAS runs (recorded as ``blas_core`` in each fast row's extra info, and printed with a hint
when the CPU has AVX-512 but OpenBLAS runs AVX2 kernels, e.g. because ``OPENBLAS_CORETYPE=Haswell`` is
set; PyTorch's oneDNN picks AVX-512 by itself): see fixflow/runtime/dpu/blas.py.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

THREADS = int(os.environ.get("FIXFLOW_BENCH_THREADS", "1"))
TARGET = "DPUCZDX8G_ISA1_B4096"
CASES = [("digits_cnn", 1), ("resnet18", 1), ("resnet18", 8), ("resnet50", 1)]


def _limit_threads():
    torch.set_num_threads(THREADS)
    try:
        from threadpoolctl import threadpool_limits
        return threadpool_limits(THREADS)
    except ImportError:      # pragma: no cover - threadpoolctl comes with the test extra
        return None


_LIMIT = _limit_threads()


def _compile(name: str):
    """(torch model, DpuProgram, fix module) for zoo model `name`, calibrated on random images."""
    from fixflow import zoo
    from fixflow.ir.passes import PassManager
    from fixflow.passes.dpu.program import load_programs
    from fixflow.quantizer import Quantizer
    shape = zoo.get_spec(name).input_shape
    x = np.random.default_rng(0).standard_normal((2,) + tuple(shape[1:])).astype(np.float32)
    out = tempfile.mkdtemp(prefix=f"bench-{name}-")
    ex = (torch.from_numpy(x[:1]),)
    q = Quantizer(zoo.get_model(name), ex, mode="calib", output_dir=out, log=None, progress=False)
    q.quant_model(torch.from_numpy(x))
    q.export_quant_config()
    m = Quantizer(zoo.get_model(name), ex, mode="test", output_dir=out, log=None, progress=False).fix_module
    PassManager.parse(f"partition{{target={TARGET}}},allocate-ddr,lower-to-dpu,schedule-dpu").run(m)
    (prog,) = load_programs(m)
    return zoo.get_model(name).eval(), prog, shape


class Compiled:
    """One compiled model: its fast plan and how to feed it a batch of int8 NHWC images."""

    def __init__(self, name: str):
        from fixflow.runtime.dpu.fast import FastPlan
        from fixflow.runtime.dpu.interpreter import as_region
        from fixflow.runtime.dpu.machine import Machine
        self.name = name
        self.torch_model, prog, self.shape = _compile(name)
        self.n_instructions = len(prog.instructions)
        self.fmap_in = prog.inputs[0]
        regs = {r: as_region(r, d) for r, d in prog.regions([np.zeros(prog.inputs[0].shape, np.int8)]).items()}
        self.sizes = {r: a.size for r, a in regs.items()}
        self.regs = regs
        t0 = time.perf_counter()
        self.plan = FastPlan(Machine.from_target(TARGET), prog.instructions, self.sizes, {0: regs[0]})
        self.plan_seconds = time.perf_counter() - t0
        self.prog = prog
        self._onnx = None

    def regions(self, batch: int) -> dict[int, np.ndarray]:
        rng = np.random.default_rng(batch)
        out = {r: np.repeat(a[None], batch, axis=0) for r, a in self.regs.items() if r != 0}
        reg, addr = self.fmap_in.root().ddr
        n = self.fmap_in.nbytes
        out[reg][:, addr:addr + n] = rng.integers(-128, 128, size=(batch, n), dtype=np.int8)
        return out

    def onnx_int8(self):
        """An onnxruntime session on the model quantized statically to int8 (QDQ, per-tensor)."""
        if self._onnx is None:
            ort = pytest.importorskip("onnxruntime")
            from onnxruntime.quantization import (
                CalibrationDataReader,
                QuantFormat,
                QuantType,
                quantize_static,
            )
            d = tempfile.mkdtemp(prefix=f"bench-onnx-{self.name}-")
            f32, i8 = os.path.join(d, "m.onnx"), os.path.join(d, "m_int8.onnx")
            torch.onnx.export(self.torch_model, (torch.zeros(self.shape),), f32, input_names=["x"],
                              output_names=["y"], dynamic_axes={"x": {0: "n"}}, dynamo=False, opset_version=17)
            data = np.random.default_rng(1).standard_normal((4,) + tuple(self.shape[1:])).astype(np.float32)

            class Reader(CalibrationDataReader):
                def __init__(self):
                    self.it = iter([{"x": data[i:i + 1]} for i in range(len(data))])

                def get_next(self):
                    return next(self.it, None)

            quantize_static(f32, i8, Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                            weight_type=QuantType.QInt8)
            so = ort.SessionOptions()
            so.intra_op_num_threads = THREADS
            so.inter_op_num_threads = 1
            self._onnx = ort.InferenceSession(i8, so, providers=["CPUExecutionProvider"])
        return self._onnx


_COMPILED: dict[str, Compiled] = {}


def compiled(name: str) -> Compiled:
    """Compiled once per benchmark session."""
    if name not in _COMPILED:
        _COMPILED[name] = Compiled(name)
    return _COMPILED[name]


def _ids(case):
    return f"{case[0]}-b{case[1]}"


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_bench_fast(benchmark, case):
    name, batch = case
    c = compiled(name)
    regions = c.regions(batch)
    benchmark.group = f"{name} batch {batch} ({THREADS} thread)"
    from fixflow.runtime.dpu.blas import blas_advice, blas_core
    benchmark.extra_info.update(plan_seconds=c.plan_seconds, instructions=c.n_instructions, blas_core=blas_core())
    if blas_advice() and case == CASES[0]:
        print(f"\n{blas_advice()}")
    out = benchmark.pedantic(c.plan.run, args=(regions, False, (3,)), rounds=5 if name == "resnet50" else 10,
                             warmup_rounds=1)
    assert out[3].shape[0] == batch


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_bench_torch(benchmark, case):
    name, batch = case
    c = compiled(name)
    x = torch.from_numpy(np.random.default_rng(batch).standard_normal((batch,) + tuple(c.shape[1:]))
                         .astype(np.float32))
    benchmark.group = f"{name} batch {batch} ({THREADS} thread)"
    benchmark.extra_info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()

    def run():
        with torch.inference_mode():
            return c.torch_model(x)
    out = benchmark.pedantic(run, rounds=5 if name == "resnet50" else 10, warmup_rounds=1)
    assert out.shape[0] == batch


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_bench_onnxruntime_int8(benchmark, case):
    name, batch = case
    sess = compiled(name).onnx_int8()
    x = np.random.default_rng(batch).standard_normal((batch,) + tuple(compiled(name).shape[1:])).astype(np.float32)
    benchmark.group = f"{name} batch {batch} ({THREADS} thread)"
    out = benchmark.pedantic(sess.run, args=(None, {"x": x}), rounds=5 if name == "resnet50" else 10,
                             warmup_rounds=1)
    assert out[0].shape[0] == batch


def test_bench_reference_resnet18(benchmark):
    """Reference mode (instruction by instruction) on ResNet-18/224, batch 1: one round."""
    from fixflow.runtime.dpu.interpreter import DPUInterpreter
    c = compiled("resnet18")
    regs = dict(c.regs)
    benchmark.group = "resnet18 reference mode"
    out = benchmark.pedantic(lambda: DPUInterpreter(TARGET, c.prog.instructions, regs).run(), rounds=1)
    assert np.array_equal(out[3], c.plan.run({r: a[None] for r, a in regs.items() if r != 0})[3][0])


_CHILD_FIX = """
import pickle, sys
from threadpoolctl import threadpool_limits
threadpool_limits({threads})
plan, regions = pickle.load(open(sys.argv[1], "rb"))
for _ in range(3):
    plan.run(regions, regs=(3,))
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")))
"""

_CHILD_TORCH = """
import torch
from fixflow import zoo
torch.set_num_threads({threads})
m = zoo.get_model("resnet50").eval()
x = torch.zeros(1, 3, 224, 224)
with torch.inference_mode():
    for _ in range(3):
        m(x)
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")))
"""


def test_bench_peak_rss_resnet50(benchmark):
    """Peak resident memory (MiB) of a ResNet-50 batch-1 run: fixflow fast (plan from a pickle) vs PyTorch."""
    c = compiled("resnet50")
    with tempfile.NamedTemporaryFile(suffix=".pkl", delete=False) as f:
        pickle.dump((c.plan, c.regions(1)), f)
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(THREADS))

    def child(code, *args):
        r = subprocess.run([sys.executable, "-c", code.format(threads=THREADS), *args], capture_output=True,
                           text=True, env=env, check=True)
        return int(r.stdout.split()[-1]) / 1024

    fix_mib = benchmark.pedantic(child, args=(_CHILD_FIX, f.name), rounds=1)
    torch_mib = child(_CHILD_TORCH)
    os.unlink(f.name)
    benchmark.group = "resnet50 peak RSS"
    benchmark.extra_info.update(fixflow_fast_mib=fix_mib, torch_mib=torch_mib)
    print(f"\npeak RSS resnet50 batch 1: fixflow fast {fix_mib:.0f} MiB, PyTorch {torch_mib:.0f} MiB")
    assert fix_mib > 0 and torch_mib > 0
