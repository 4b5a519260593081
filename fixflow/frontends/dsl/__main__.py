"""`python -m fixflow.frontends.dsl net.ffn [--weights w.npz] [--seed N] [-o out.mlir]`: print the graph IR."""

from __future__ import annotations

import argparse
import sys

from ...ir.diagnostics import FixflowError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fixflow.frontends.dsl",
                                 description="Translate a .ffn network description to graph-dialect IR.")
    ap.add_argument("file", help="the .ffn file")
    ap.add_argument("--weights", help=".npz with <statement>.<role> arrays (default: seeded-random)")
    ap.add_argument("--seed", type=int, default=None, help="seed for random weights (overrides 'with seed=')")
    ap.add_argument("--print-locations", action="store_true", help="print loc(...) for every op")
    ap.add_argument("-o", "--output", help="write here instead of stdout")
    args = ap.parse_args(argv)
    from ...ir import print_module
    from . import import_dsl_file
    try:
        module = import_dsl_file(args.file, args.weights, args.seed)
    except FixflowError as e:
        print(e.render(), file=sys.stderr)
        return 1
    text = print_module(module, print_locations=args.print_locations)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
