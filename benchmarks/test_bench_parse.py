"""Parse / print / parse+canonicalize+print throughput of fixflow's core IR, and the same files through xDSL.

Run: `python -m pytest benchmarks/test_bench_parse.py -p no:cacheprovider`
At the end a summary (ops/s, fixflow/xDSL throughput ratio, 100k/10k time ratios) is printed; the numbers
in docs/benchmarks.md come from it.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from gen import addi_chain  # noqa: E402

from fixflow.ir import parse_module, print_module  # noqa: E402

SIZES = [1_000, 10_000, 100_000]
FIXFLOW_ROUNDS = {1_000: 20, 10_000: 5, 100_000: 3}
XDSL_ROUNDS = {1_000: 5, 10_000: 2, 100_000: 1}  # xDSL parses ~8k ops/s: 100k ops is one ~15 s round
_TEXTS: dict[int, str] = {}
RESULTS: dict[tuple[str, str, int], float] = {}  # (tool, phase, n) -> best round, seconds (robust to noise)


def text_of(n: int) -> str:
    if n not in _TEXTS:
        _TEXTS[n] = addi_chain(n)
    return _TEXTS[n]


def _record(benchmark, tool: str, phase: str, n: int) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None:
        RESULTS[(tool, phase, n)] = stats.stats.min
        benchmark.extra_info.update(ops=n, ops_per_s=round(n / stats.stats.min))


# ---- fixflow ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", SIZES)
def test_fixflow_parse(benchmark, n):
    text = text_of(n)
    benchmark.group = f"parse {n}"
    m = benchmark.pedantic(parse_module, args=(text,), rounds=FIXFLOW_ROUNDS[n], iterations=1)
    assert len(m.body.first_op.body) == n + 1
    _record(benchmark, "fixflow", "parse", n)


@pytest.mark.parametrize("n", SIZES)
def test_fixflow_print(benchmark, n):
    text = text_of(n)
    benchmark.group = f"print {n}"
    m = parse_module(text)
    out = benchmark.pedantic(print_module, args=(m,), rounds=FIXFLOW_ROUNDS[n], iterations=1)
    assert out == text
    _record(benchmark, "fixflow", "print", n)


@pytest.mark.parametrize("n", SIZES)
def test_fixflow_parse_print(benchmark, n):
    text = text_of(n)
    benchmark.group = f"parse+print {n}"
    out = benchmark.pedantic(lambda: print_module(parse_module(text)), rounds=FIXFLOW_ROUNDS[n], iterations=1)
    assert out == text
    _record(benchmark, "fixflow", "parse+print", n)


@pytest.mark.parametrize("n", SIZES)
def test_fixflow_parse_canonicalize_print(benchmark, n):
    passes = pytest.importorskip("fixflow.ir.passes")
    text = text_of(n)
    benchmark.group = f"parse+canonicalize+print {n}"

    def run() -> str:
        m = parse_module(text)
        passes.PassManager.parse("builtin.module(canonicalize)").run(m)
        return print_module(m)

    out = benchmark.pedantic(run, rounds=FIXFLOW_ROUNDS[n], iterations=1)
    assert out == text  # nothing to fold in a chain of additions of arguments
    _record(benchmark, "fixflow", "parse+canonicalize+print", n)


# ---- xDSL -------------------------------------------------------------------------------------------
def _xdsl_context():
    xdsl = pytest.importorskip("xdsl")
    del xdsl
    from xdsl.context import Context
    from xdsl.dialects.arith import Arith
    from xdsl.dialects.builtin import Builtin
    from xdsl.dialects.func import Func
    ctx = Context(allow_unregistered=True)
    for d in (Builtin, Func, Arith):
        ctx.load_dialect(d)
    return ctx


def _xdsl_parse(ctx, text: str):
    from xdsl.parser import Parser
    return Parser(ctx, text).parse_module()


def _xdsl_print(module) -> str:
    from xdsl.printer import Printer
    stream = io.StringIO()
    Printer(stream=stream, print_generic_format=True).print_op(module)
    return stream.getvalue()


@pytest.mark.parametrize("n", SIZES)
def test_xdsl_parse(benchmark, n):
    ctx = _xdsl_context()
    text = text_of(n)
    benchmark.group = f"parse {n}"
    module = benchmark.pedantic(_xdsl_parse, args=(ctx, text), rounds=XDSL_ROUNDS[n], iterations=1)
    assert len(list(module.walk())) == n + 3
    _record(benchmark, "xdsl", "parse", n)


@pytest.mark.parametrize("n", SIZES)
def test_xdsl_print(benchmark, n):
    ctx = _xdsl_context()
    module = _xdsl_parse(ctx, text_of(n))
    benchmark.group = f"print {n}"
    out = benchmark.pedantic(_xdsl_print, args=(module,), rounds=XDSL_ROUNDS[n], iterations=1)
    assert out.count('"arith.addi"') == n
    _record(benchmark, "xdsl", "print", n)


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    """Once all benchmarks of this file ran, hand ops/s and the ratios the docs record to
    benchmarks/conftest.py, which prints them in the terminal summary."""
    yield
    if not RESULTS:
        return
    lines = ["parse benchmark summary (best round -> ops/s)"]
    for (tool, phase, n), t in sorted(RESULTS.items()):
        lines.append(f"  {tool:8s} {phase:26s} {n:>7d} ops: {t * 1e3:10.1f} ms  {n / t:>10,.0f} ops/s")
    for n in SIZES:
        ff = [RESULTS.get(("fixflow", p, n)) for p in ("parse", "print")]
        xd = [RESULTS.get(("xdsl", p, n)) for p in ("parse", "print")]
        if None not in ff and None not in xd:
            lines.append(f"  parse+print throughput fixflow/xDSL at {n}: {sum(xd) / sum(ff):.1f}x")
    for phase in ("parse", "print", "parse+print", "parse+canonicalize+print"):
        for tool in ("fixflow", "xdsl"):
            a, b = RESULTS.get((tool, phase, 100_000)), RESULTS.get((tool, phase, 10_000))
            if a is not None and b is not None:
                lines.append(f"  {tool} {phase} time 100k/10k: {a / b:.1f}x (target <= 12x)")
    summaries = getattr(request.config, "fixflow_bench_summaries", None)
    if summaries is None:
        print("\n".join(lines))
    else:
        summaries.append("\n".join(lines))
