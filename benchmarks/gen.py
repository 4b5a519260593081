"""Generators of benchmark input files (MLIR generic text).

`addi_chain(n)` is one function of `n` ops `%k = "arith.addi"(%a, %b) : (i32, i32) -> i32`, in exactly
the form fixflow prints (so `print(parse(text)) == text`); `mixed_arith(n)` is the same with `arith.addi`
and `arith.muli` mixed at random and operands reused from anywhere above. Run as a script to write files:
`python benchmarks/gen.py 1000 10000 100000 -o /tmp/bench` (`--mixed` for `mixed_arith`).
"""

from __future__ import annotations

import argparse
import random
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


def mixed_arith(n: int, seed: int = 0) -> str:
    """A module with one function of `n` ops, each `arith.addi` or `arith.muli` (even odds) of two earlier
    values: one of the 16 latest and one from anywhere above, so values are used several times."""
    if n < 1:
        raise ValueError("n must be at least 1")
    rng = random.Random(seed)
    lines = ['"builtin.module"() ({', '  "func.func"() ({', "  ^bb0(%arg0: i32, %arg1: i32):"]
    values = ["%arg0", "%arg1"]
    for k in range(n):
        op = "arith.addi" if rng.random() < 0.5 else "arith.muli"
        a = values[-1 - rng.randrange(min(len(values), 16))]
        b = values[rng.randrange(len(values))]
        lines.append(f'    %{k} = "{op}"({a}, {b}) : (i32, i32) -> i32')
        values.append(f"%{k}")
    lines.append(f'    "func.return"({values[-1]}) : (i32) -> ()')
    lines.append('  }) {sym_name = "main", function_type = (i32, i32) -> i32} : () -> ()')
    lines.append("}) : () -> ()")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", type=int, nargs="+", help="numbers of ops")
    ap.add_argument("-o", "--out", type=Path, default=Path("."), help="output directory")
    ap.add_argument("--mixed", action="store_true", help="mixed_arith instead of addi_chain")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for n in args.sizes:
        path = args.out / (f"mixed_{n}.mlir" if args.mixed else f"addi_{n}.mlir")
        path.write_text(mixed_arith(n) if args.mixed else addi_chain(n))
        print(path)


if __name__ == "__main__":
    main()
