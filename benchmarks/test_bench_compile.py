"""The DPU compiler's speed: `fixflow-compile` on zoo models' `_int.xmodel` (quantized on seeded random
images, exported once per session), per-pass timing, peak memory of the compiling process, and the
size of what it produced (instructions, mc_code bytes).

Each compile runs in a child process (the command a user types), so the wall time includes Python's
start-up and imports, and the peak resident memory is the child's own (``VmHWM`` read just before it
exits; ``ru_maxrss`` survives exec on Linux and would report the parent's peak).

    python -m pytest benchmarks/test_bench_compile.py --benchmark-only \
        --benchmark-columns=min,median,max,rounds -p no:cacheprovider -s

Goal (issue 10): ResNet-50 for DPUCZDX8G_ISA1_B4096 in under 10 s on the 2-core machine, under 1 GB.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

MODELS = [("resnet50", "DPUCZDX8G_ISA1_B4096"), ("resnet18", "DPUCZDX8G_ISA1_B4096"),
          ("squeezenet1_1", "DPUCZDX8G_ISA1_B4096"), ("mobilenet_v2", "DPUCZDX8G_ISA1_B4096"),
          ("resnet50", "DPUCZDX8G_ISA1_B1024"), ("digits_cnn", "DPUCZDX8G_ISA1_B4096")]

#: the child: fixflow-compile's main with timing, then its own peak memory
CHILD = r"""
import sys, re, resource
from fixflow.tools.compile import main
rc = main(sys.argv[1:])
hwm = re.search(r"VmHWM:\s+(\d+) kB", open("/proc/self/status").read())
ru = resource.getrusage(resource.RUSAGE_SELF)
print("VMHWM_KB", hwm.group(1) if hwm else -1, "CPU_S", ru.ru_utime + ru.ru_stime, file=sys.stderr)
sys.exit(rc)
"""


def _int_xmodel(name: str, root) -> str:
    from fixflow import zoo
    from fixflow.quantizer import Quantizer
    out = root / name
    shape = zoo.get_spec(name).input_shape
    x = np.random.default_rng(0).standard_normal((2,) + tuple(shape[1:])).astype(np.float32)
    ex = (torch.from_numpy(x[:1]),)
    q = Quantizer(zoo.get_model(name), ex, mode="calib", output_dir=out, log=None, progress=False)
    q.quant_model(torch.from_numpy(x))
    q.export_quant_config()
    q = Quantizer(zoo.get_model(name), ex, mode="test", output_dir=out, log=None, progress=False)
    q.quant_model(torch.from_numpy(x[:1]))
    return str(q.export_xmodel(out))


@pytest.fixture(scope="session")
def xmodels(tmp_path_factory):
    root = tmp_path_factory.mktemp("compile_bench")
    cache: dict[str, str] = {}

    def get(name: str) -> str:
        if name not in cache:
            cache[name] = _int_xmodel(name, root)
        return cache[name]
    return get, root


def _compile(xmodel: str, target: str, out: str) -> dict:
    p = subprocess.run([sys.executable, "-c", CHILD, "-x", xmodel, "-a", target, "-o", out, "-n", "net",
                        "--no-progress", "--options", json.dumps({"timing": True})],
                       capture_output=True, text=True, check=False)
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-2000:])
    passes = {m.group(1): float(m.group(2)) for m in re.finditer(r"^\[fixflow-compile\]\s+(\S+)\s+([\d.]+) ms$",
                                                                p.stdout + p.stderr, re.M)}
    m = re.search(r"VMHWM_KB (\d+) CPU_S ([\d.]+)", p.stderr)
    return {"passes": passes, "peak_mb": int(m.group(1)) / 1024, "cpu_s": float(m.group(2))}


def _sizes(out: str) -> tuple[int, int]:
    """(instructions, mc_code bytes) over the DPU subgraphs of the compiled xmodel in `out`."""
    from fixflow.backends.xmodel.compiled import read_compiled
    from fixflow.backends.mc.codec import decode
    m = read_compiled(os.path.join(out, "net.xmodel"))
    n = size = 0
    for s in m.dpu_subgraphs:
        size += len(s.mc_code)
        n += len(decode(s.mc_code))
    return n, size


@pytest.mark.parametrize("name,target", MODELS, ids=[f"{n}-{t.rsplit('_', 1)[1]}" for n, t in MODELS])
def test_bench_compile(benchmark, xmodels, name, target, request):
    get, root = xmodels
    xm = get(name)
    out = str(root / f"out_{name}_{target}")
    runs: list[dict] = []
    benchmark.pedantic(lambda: runs.append(_compile(xm, target, out)), rounds=2, iterations=1)
    n, size = _sizes(out)
    best = min(runs, key=lambda r: sum(r["passes"].values()))
    timing = ", ".join(f"{k} {v / 1000:.2f} s" for k, v in best["passes"].items())
    request.config.fixflow_bench_summaries.append(
        f"compile {name} {target}: {n} instructions, mc_code {size} B, peak {max(r['peak_mb'] for r in runs):.0f} MB, "
        f"process CPU {min(r['cpu_s'] for r in runs):.1f} s; {timing}")
    assert n > 0 and size % 4 == 0
