"""`fixflow-compile`: the quantizer's `_int.xmodel` -> a compiled `.xmodel` for one DPU, as `vai_c_xir` does.

    fixflow-compile -x build/quant_model/DigitsCNN_int.xmodel -a kv260 -o build/compiled_kv260 -n digits
    fixflow-compile -x net_int.xmodel -a arch.json -o out -n net --options '{"keep_ir": true}'

`-a/--arch` takes an arch.json (`{"target": ...}` or `{"fingerprint": ...}`), a target name
(DPUCZDX8G_ISA1_B1024, or just B1024), a fingerprint (0x...) or a board (kv260, zcu102, zcu104). The output folder gets
`NAME.xmodel`, `meta.json` and `md5sum.txt`. The pipeline is the DPU compiler's registered passes
(partition, allocate-ddr, lower-to-dpu, schedule-dpu, verify-dpu-schedule) and the emission
(`fixflow.backends.xmodel.dpu_emit`). `--options` (JSON object):

    keep_ir           write the IR before and after every stage to OUTPUT_DIR/ir/NN_<stage>.mlir (false)
    ac_code           put the assembly text (ac_code) into the xmodel, as AMD's simulator needs (true)
    tiling            force layer bands, lower-to-dpu's option: "<layer>:<rows>:<cols>,..." ("")
    verify_schedule   prove the schedule free of deadlock and hazards (true)
    timing            print the time of every pass (false)

A `.mlir` file of the `fix` level works as input too.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .common import ArgumentParser, ToolError, argv_list, run_tool

__all__ = ["OPTIONS", "compile_module", "main"]

#: --options keys: (type, default, help)
OPTIONS: dict[str, tuple[type, Any, str]] = {
    "keep_ir": (bool, False, "write the IR of every stage to OUTPUT_DIR/ir/*.mlir"),
    "ac_code": (bool, True, "include ac_code (assembly text) in the xmodel"),
    "tiling": (str, "", "lower-to-dpu tiling: '<layer>:<rows>:<cols>,...'"),
    "verify_schedule": (bool, True, "run verify-dpu-schedule"),
    "timing": (bool, False, "print the time of every pass"),
}


def _log(msg: str) -> None:
    print(f"[fixflow-compile] {msg}", flush=True)


def parse_options(text: str | None) -> dict[str, Any]:
    """The `--options` JSON object, checked against :data:`OPTIONS`, with defaults filled in."""
    opts = {k: d for k, (_, d, _) in OPTIONS.items()}
    if not text:
        return opts
    try:
        given = json.loads(text)
    except json.JSONDecodeError as e:
        raise ToolError(f"--options: not valid JSON ({e.msg} at column {e.colno}): {text}") from None
    if not isinstance(given, dict):
        raise ToolError("--options: expected a JSON object such as '{\"keep_ir\": true}'")
    for k, v in given.items():
        if k not in OPTIONS:
            raise ToolError(f"--options: unknown option {k!r} (known: {', '.join(OPTIONS)})")
        typ = OPTIONS[k][0]
        if not isinstance(v, typ) or (typ is not bool and isinstance(v, bool)):
            raise ToolError(f"--options: {k!r} must be a {'boolean' if typ is bool else 'string'}, got {v!r}")
        opts[k] = v
    return opts


def _resolve_target(arch: str):
    from fixflow.target import get_target
    if arch.lower().endswith(".json") and not os.path.exists(arch):
        raise ToolError(f"--arch: file {arch} not found")
    if re.fullmatch(r"B\d+", arch.strip()):            # B1024 = DPUCZDX8G_ISA1_B1024
        arch = f"DPUCZDX8G_ISA1_{arch.strip()}"
    return get_target(arch)


def _missing_fix(path: str, g) -> None:
    """One line for an xmodel that is not a quantized (`_int.xmodel`) graph."""
    types = {o.type for o in g.ops}
    if "upload" in types or "download" in types or (g.root is not None and g.root.children):
        raise ToolError(f"{path}: is already compiled (it has a subgraph tree / upload and download ops); "
                        "give the quantizer's _int.xmodel")
    if "data-fix" not in types:
        raise ToolError(f"{path}: missing fix information: no data-fix input, the model is not quantized "
                        "(run fixflow-quantize --mode test and compile its _int.xmodel)")
    for o in g.ops:
        if o.output.data_type.startswith(("XINT", "XUINT")) and not o.output.has_attr("fix_point"):
            raise ToolError(f"{path}: missing fix information: op {o.name!r} ({o.type}) has an "
                            f"{o.output.data_type} tensor without fix_point")


def load_input(path: str):
    """The fix-level module of an `_int.xmodel` (or a `.mlir` file)."""
    if not os.path.exists(path):
        raise ToolError(f"--xmodel: file {path} not found")
    if path.endswith(".mlir"):
        from .common import load_ir
        module = load_ir(path)
    else:
        from fixflow.backends.xmodel import read_xmodel
        from fixflow.backends.xmodel.fix_xmodel import xgraph_to_module
        g = read_xmodel(path)
        _missing_fix(path, g)
        module = xgraph_to_module(g)
    funcs = [op for op in module.regions[0].blocks[0].ops if op.name == "func.func"]
    if len(funcs) != 1:
        raise ToolError(f"{path}: expected one function, found {len(funcs)}")
    if not any(op.name == "fix.data" for op in funcs[0].regions[0].blocks[0].ops):
        raise ToolError(f"{path}: missing fix information: no fix.data op, the model is not quantized")
    return module


def stages(target, opts: dict[str, Any]) -> list[tuple[str, Any]]:
    """(name, pass instance) of the compiler's pipeline for `target`."""
    from fixflow.passes.dpu import compile_pipeline
    return compile_pipeline(target.fingerprint_hex, tiling=opts["tiling"], verify_schedule=opts["verify_schedule"])


def compile_module(module, target, net_name: str, output_dir: str, opts: dict[str, Any],
                   progress: bool = True):
    """Run the pipeline on `module` (in place), emit and write the outputs; returns (CompiledModel, paths)."""
    from tqdm import tqdm

    from fixflow.backends.xmodel.dpu_emit import emit_compiled
    from fixflow.backends.xmodel.vaic import write_compiler_outputs
    from fixflow.ir import print_module
    out = Path(output_dir)
    ir_dir = out / "ir"
    if opts["keep_ir"]:
        try:
            ir_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ToolError(f"cannot create {ir_dir}: {e.strerror or e}") from None
        (ir_dir / "00_input.mlir").write_text(print_module(module) + "\n")
    pipeline = stages(target, opts)
    timings = []
    bar = tqdm(total=len(pipeline) + 2, desc="fixflow-compile", unit="step", file=sys.stderr,
               disable=not progress or None, leave=False)
    try:
        for k, (name, p) in enumerate(pipeline, 1):
            bar.set_postfix_str(name)
            t0 = time.perf_counter()
            p.run(module)
            module.verify()
            timings.append((name, time.perf_counter() - t0))
            if opts["keep_ir"] and name != "verify-dpu-schedule":
                (ir_dir / f"{k:02d}_{name}.mlir").write_text(print_module(module) + "\n")
            bar.update(1)
        bar.set_postfix_str("emit")
        t0 = time.perf_counter()
        m = emit_compiled(module, net_name, ac_code=opts["ac_code"], target=target)
        timings.append(("emit", time.perf_counter() - t0))
        bar.update(1)
        bar.set_postfix_str("write")
        paths = write_compiler_outputs(m, out, net_name)
        bar.update(1)
    finally:
        bar.close()
    return m, paths, timings


def _main(argv: Sequence[str] | None) -> int:
    ap = ArgumentParser(prog="fixflow-compile", description="Compile a quantized _int.xmodel for a DPUCZDX8G "
                        "(as vai_c_xir): NAME.xmodel, meta.json and md5sum.txt in the output directory.")
    ap.add_argument("-x", "--xmodel", required=True, help="the quantizer's _int.xmodel (or a fix-level .mlir)")
    ap.add_argument("-a", "--arch", required=True,
                    help="arch.json, target name (DPUCZDX8G_ISA1_B1024), fingerprint (0x...) or board (kv260)")
    ap.add_argument("-o", "--output_dir", "--output-dir", required=True, help="output directory (created)")
    ap.add_argument("-n", "--net_name", "--net-name", default=None,
                    help="name of the compiled model (default: the input's name without _int)")
    ap.add_argument("--options", default=None, help="JSON object: " + "; ".join(
        f"{k} ({'bool' if t is bool else 'str'}, default {json.dumps(d)}): {h}" for k, (t, d, h) in OPTIONS.items()))
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv_list(argv))
    opts = parse_options(args.options)
    target = _resolve_target(args.arch)
    net = args.net_name or Path(args.xmodel).stem.removesuffix("_int")
    module = load_input(args.xmodel)
    _log(f"Target architecture: {target.name} (fingerprint {target.fingerprint_hex})")
    m, paths, timings = compile_module(module, target, net, args.output_dir, opts, progress=not args.no_progress)
    from fixflow.backends.xmodel.dpu_emit import compile_log
    for line in compile_log(m):
        _log(line)
    for d in m.dpu_subgraphs:
        regs = ", ".join(f"{r.name} {r.size} B" for r in d.regions)
        _log(f"DPU subgraph {d.name}: {len(d.mc_code) // 4} words of mc_code, "
             f"{sum(c.kind == 'code' for c in d.children)} super-layers, {regs}")
    cpu = [s for s in m.subgraphs if getattr(s, "device", "") == "CPU"]
    for s in cpu:
        _log(f"CPU subgraph {s.name}: {', '.join(s.op_names)}")
    if opts["timing"]:
        for name, sec in timings:
            _log(f"  {name:<22} {sec * 1000:9.1f} ms")
    if opts["keep_ir"]:
        _log(f"The IR of every stage is in {Path(args.output_dir) / 'ir'}")
    _log(f'The compiled xmodel is saved to "{paths.xmodel}"')
    _log(f'The meta json is saved to "{paths.meta_json}"')
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `fixflow-compile`."""
    return run_tool(lambda: _main(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
