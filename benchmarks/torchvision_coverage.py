"""torchvision's classification architectures through fixflow: import, quantize, export (docs/model-coverage.md).

    python benchmarks/torchvision_coverage.py run [NAME ...] -o out/tv.jsonl   # all 80 when no names
    python benchmarks/torchvision_coverage.py table out/tv.jsonl               # the markdown table

Per architecture (seeded random weights and BatchNorm statistics, eval mode, the input sizes of
tests/_lib/torchvision_lib.py: 64x64 for most, 224x224 for MaxViT): import through the torch frontend and
run the reference interpreter against PyTorch (relative error max|d| / max|torch|); then the Quantizer's
calib (2 batches of 4 random images) -> test (8 other random images; VGG at 224x224, see `quant_input_shape`) -> `_int.xmodel`, with the top-1
agreement of test mode against the float model on those 8 images and the ops left on the CPU (with
their reasons), the process CPU time and peak RSS (one architecture per process gives its own peak). One
JSON line per architecture; a failure is recorded with its message, not raised.
Random weights and inputs make top-1 agreement a check of the numerics, not an accuracy figure.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def measure(name: str, quantize: bool = True, calib_batches: int = 2) -> dict:
    import numpy as np
    import torch

    from _lib.torchvision_lib import build, input_shape, is_transformer, quant_input_shape, relative_error
    from fixflow.frontends.torch import import_module
    from fixflow.ir.interpreter import run_module

    rec: dict = {"name": name, "input": list(input_shape(name)), "transformer": is_transformer(name)}
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        model = build(name)
        x = torch.randn(input_shape(name), generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            want = model(x).numpy()
        t, c = time.perf_counter(), time.process_time()
        module = import_module(model, (x,))
        rec["import_s"] = round(time.perf_counter() - t, 2)
        rec["import_cpu_s"] = round(time.process_time() - c, 2)
        (got,) = run_module(module, [x.numpy()])
        rec["rel_err"] = relative_error(got, want)
        del module
    except Exception as e:  # noqa: BLE001 - recorded in the table
        rec["import_error"] = f"{type(e).__name__}: {e}".splitlines()[0][:300]
        rec["total_s"] = round(time.perf_counter() - t0, 1)
        return rec
    if quantize:
        from fixflow.quantizer import Quantizer
        shape = quant_input_shape(name)
        rec["quant_input"] = list(shape)
        g = torch.Generator().manual_seed(2)
        calib = [torch.randn((4,) + shape[1:], generator=g) for _ in range(calib_batches)]
        rec["calib_images"] = 4 * calib_batches
        xt = torch.randn((8,) + shape[1:], generator=g)
        with tempfile.TemporaryDirectory() as d:
            try:
                t = time.perf_counter()
                q = Quantizer(model, (torch.zeros(shape),), mode="calib", output_dir=d, log=None, progress=False)
                for xb in calib:
                    q.quant_model(xb)
                q.export_quant_config()
                rec["calib_s"] = round(time.perf_counter() - t, 1)
                del q   # the calib quantizer's copies of the weights go before test mode makes its own
                gc.collect()
                q = Quantizer(model, (torch.zeros(shape),), mode="test", output_dir=d, log=None, progress=False)
                out = np.asarray(q.quant_model(xt))
                with torch.no_grad():
                    ref = model(xt).numpy()
                rec["top1_agree"] = float((out.argmax(1) == ref.argmax(1)).mean())
                rec["q_rel_rms"] = float(np.linalg.norm(out - ref) / np.linalg.norm(ref))
                path = q.export_xmodel()
                rec["xmodel_kb"] = path.stat().st_size // 1024
                rec.update(_amd_xir_check(path))
                cpu: Counter = Counter()
                for op in q.fix_module.walk():
                    dev = op.attributes.get("device")
                    if dev is not None and dev.value == "CPU":
                        reason = op.attributes.get("fix.reason")
                        cpu[f"{op.name}: {reason.value if reason is not None else '?'}"] += 1
                rec["cpu_ops"] = dict(cpu)
            except Exception as e:  # noqa: BLE001
                rec["quant_error"] = f"{type(e).__name__}: {e}".splitlines()[0][:300]
                rec["quant_where"] = traceback.format_exc().splitlines()[-3:-1]
    rec["total_s"] = round(time.perf_counter() - t0, 1)
    rec["cpu_s"] = round(time.process_time() - c0, 1)
    rec["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    del model
    gc.collect()
    return rec


def _amd_xir_check(path: Path) -> dict:
    """With FIXFLOW_AMD_TOOLS set: does AMD's `xir subgraph` load the `_int.xmodel`? (recorded, not raised)"""
    import os
    import subprocess
    tools = os.environ.get("FIXFLOW_AMD_TOOLS")
    if not tools:
        return {}
    p = subprocess.run([str(Path(tools) / "bin" / "xir"), "subgraph", str(path)], capture_output=True, text=True,
                       timeout=1800)
    ok = p.returncode == 0 and p.stdout.startswith("root")
    return {"amd_xir_loads": ok} if ok else {"amd_xir_loads": False, "amd_xir_error": (p.stderr or p.stdout)[-300:]}


def table(records: list[dict]) -> str:
    """The markdown table of docs/model-coverage.md."""
    lines = ["| architecture | input | imports, rel. error | quantizes (_int.xmodel) | top-1 agreement (8 images) "
             "| CPU ops |", "|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: r["name"]):
        size = f"{r['input'][2]}x{r['input'][3]}"
        qi = r.get("quant_input", r["input"])
        if qi != r["input"]:
            size += f" (quantized at {qi[2]}x{qi[3]})"
        imp = f"yes, {r['rel_err']:.1e}" if "rel_err" in r else f"no: {r.get('import_error', '?')[:90]}"
        if "rel_err" in r and r["rel_err"] > 1e-5:
            imp = f"MISMATCH {r['rel_err']:.1e}"
        if "quant_error" in r:
            q, agree, cpu = f"no: {r['quant_error'][:90]}", "", ""
        elif "top1_agree" in r:
            q, agree = f"yes ({r.get('calib_images', 8)} calib. images)", f"{r['top1_agree']:.0%}"
            kinds = Counter()
            for k, n in r.get("cpu_ops", {}).items():
                kinds[k.split(":")[0]] += n
            cpu = ", ".join(f"{k.split('.', 1)[1]} x{n}" for k, n in sorted(kinds.items())) or "none"
        else:
            q, agree, cpu = "-", "", ""
        lines.append(f"| {r['name']} | {size} | {imp} | {q} | {agree} | {cpu} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("names", nargs="*")
    r.add_argument("-o", "--output", required=True)
    r.add_argument("--no-quantize", action="store_true")
    r.add_argument("--calib-batches", type=int, default=2, help="calibration batches of 4 random images")
    t = sub.add_parser("table")
    t.add_argument("jsonl")
    a = p.parse_args(argv)
    if a.cmd == "table":
        print(table([json.loads(line) for line in open(a.jsonl) if line.strip()]))
        return 0
    from _lib.torchvision_lib import architectures
    names = a.names or architectures()
    with open(a.output, "a") as f:
        for n in names:
            rec = measure(n, quantize=not a.no_quantize, calib_batches=a.calib_batches)
            f.write(json.dumps(rec) + "\n")
            f.flush()
            print(n, {k: v for k, v in rec.items() if k not in ("cpu_ops", "quant_where")}, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
