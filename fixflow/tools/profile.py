"""``fixflow-profile``: per-layer and per-subgraph time of a compiled .xmodel on a board, from
fixflow's cycle model of the DPU (modelled on Vitis AI's ``vaitrace``, without needing a board).

    fixflow-profile net.xmodel --board kv260                       # vaitrace --txt style table
    fixflow-profile net.xmodel --format csv -o layers.csv
    fixflow-profile net.xmodel --format trace -o net.trace.json    # Perfetto / chrome://tracing
    fixflow-profile net.xmodel --format html -o net.html --host    # + wall time on this host
    fixflow-profile net_dpu.mlir                                   # IR after fixflow's DPU passes
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from .common import ArgumentParser, ToolError, argv_list, run_tool, write_output

FORMATS = ("table", "csv", "trace", "html", "json")


def _parser() -> ArgumentParser:
    from fixflow.target import BOARDS
    p = ArgumentParser(prog="fixflow-profile",
                       description="Simulated DPU time per layer and per subgraph of a compiled .xmodel "
                                   "(fixflow's cycle model; see docs/profiler.md).")
    p.add_argument("xmodel", help="a compiled .xmodel (fixflow's or AMD's), or .mlir text after fixflow's DPU "
                                  "passes (partition, allocate-ddr, lower-to-dpu, schedule-dpu)")
    p.add_argument("--board", default="kv260", help=f"board preset: {', '.join(BOARDS)} (default kv260)")
    p.add_argument("--format", default="table", choices=FORMATS,
                   help="table (default), csv, trace (Chrome/Perfetto JSON), html (one page), json (the data)")
    p.add_argument("-o", "--output", help="output file (default: stdout)")
    p.add_argument("--host", action="store_true",
                   help="also run the model on this host (DPU interpreter, fast mode) and time each subgraph")
    p.add_argument("--repeat", type=int, default=3, help="host runs to take the best of (with --host; default 3)")
    p.add_argument("--ddr-latency-ns", type=float, default=None,
                   help="the model's DDR latency per LOAD/SAVE in ns (default: docs/profiler.md)")
    return p


def _main(argv: Sequence[str] | None) -> int:
    from fixflow.backends.reports import render
    from fixflow.runtime.profiler import ModelConstants, profile_xmodel
    args = _parser().parse_args(argv_list(argv))
    if args.repeat < 1:
        raise ToolError(f"--repeat must be at least 1, got {args.repeat}")
    if args.ddr_latency_ns is not None and args.ddr_latency_ns < 0:
        raise ToolError(f"--ddr-latency-ns must not be negative, got {args.ddr_latency_ns}")
    consts = ModelConstants() if args.ddr_latency_ns is None else ModelConstants(ddr_latency_ns=args.ddr_latency_ns)
    if args.xmodel.endswith(".mlir") or args.xmodel == "-":
        if args.host:
            raise ToolError("--host needs a compiled .xmodel (the runtime runs xmodels)")
        from fixflow.runtime.profiler import profile_module
        from .common import load_ir
        profile = profile_module(load_ir(args.xmodel), args.board, consts)
        profile["model"] = "<stdin>" if args.xmodel == "-" else args.xmodel
    else:
        profile = profile_xmodel(args.xmodel, args.board, measure_cpu=args.host, repeat=args.repeat, constants=consts)
    text = json.dumps(profile, indent=1) + "\n" if args.format == "json" else render(profile, args.format)
    write_output(text, args.output)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fixflow-profile``."""
    return run_tool(lambda: _main(argv))


if __name__ == "__main__":
    raise SystemExit(main())
