"""Parsing stays linear whatever the line structure: the same 100k-op module (`gen.addi_chain`) with one op
per line and with the whole module on one line.

Run: `python -m pytest benchmarks/test_bench_parse_lines.py -p no:cacheprovider -q`
The last test checks the target (one line within 1.5x of separate lines, best rounds) and prints both times;
docs/benchmarks.md records them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from gen import addi_chain  # noqa: E402

from fixflow.ir import parse_module, print_module  # noqa: E402

N = 100_000
ROUNDS = 3
_TEXTS: dict[str, str] = {}
BEST: dict[str, float] = {}


def text_of(layout: str) -> str:
    if not _TEXTS:
        lines = addi_chain(N)
        _TEXTS["lines"] = lines
        _TEXTS["one line"] = lines.replace("\n", " ")
    return _TEXTS[layout]


@pytest.mark.parametrize("layout", ["lines", "one line"])
def test_parse_100k_ops(benchmark, layout):
    text = text_of(layout)
    benchmark.group = f"parse {N} ops"
    m = benchmark.pedantic(parse_module, args=(text,), rounds=ROUNDS, iterations=1)
    assert print_module(m) == text_of("lines")  # same module either way
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None:
        BEST[layout] = stats.stats.min


def test_one_line_within_1_5x_of_separate_lines():
    if len(BEST) != 2:
        pytest.skip("needs both benchmarks of this file in the same run (not --benchmark-disable)")
    ratio = BEST["one line"] / BEST["lines"]
    print(f"\nparse {N} ops: separate lines {BEST['lines'] * 1e3:.0f} ms, one line {BEST['one line'] * 1e3:.0f} ms, "
          f"ratio {ratio:.2f}")
    assert ratio <= 1.5
