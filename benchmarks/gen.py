"""Generators of benchmark input files (MLIR generic text).

`addi_chain(n)` is one function of `n` ops `%k = "arith.addi"(%a, %b) : (i32, i32) -> i32`, in exactly
the form fixflow prints (so `print(parse(text)) == text`). Run as a script to write files:
`python benchmarks/gen.py 1000 10000 100000 -o /tmp/bench`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def addi_chain(n: int) -> str:
    """A module with one function whose body is `n` dependent `arith.addi` ops and a return."""
    if n < 1:
        raise ValueError("n must be at least 1")
    lines = ['"builtin.module"() ({', '  "func.func"() ({', "  ^bb0(%arg0: i32, %arg1: i32):"]
    prev2, prev1 = "%arg0", "%arg1"
    for k in range(n):
        lines.append(f'    %{k} = "arith.addi"({prev2}, {prev1}) : (i32, i32) -> i32')
        prev2, prev1 = prev1, f"%{k}"
    lines.append(f'    "func.return"({prev1}) : (i32) -> ()')
    lines.append('  }) {sym_name = "main", function_type = (i32, i32) -> i32} : () -> ()')
    lines.append("}) : () -> ()")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", type=int, nargs="+", help="numbers of ops")
    ap.add_argument("-o", "--out", type=Path, default=Path("."), help="output directory")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for n in args.sizes:
        path = args.out / f"addi_{n}.mlir"
        path.write_text(addi_chain(n))
        print(path)


if __name__ == "__main__":
    main()
