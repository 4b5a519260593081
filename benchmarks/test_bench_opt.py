"""`fixflow-opt` as a whole process, side by side with `mlir-opt-22` and `xdsl-opt` in one run, and
in-process parse + verify + print against xDSL.

Run: `python -m pytest benchmarks/test_bench_opt.py -p no:cacheprovider`
At the end a summary (best rounds, wall and CPU time, the ratios and their targets) is printed; the
numbers in docs/benchmarks.md come from it.

Input: `gen.mixed_arith(100_000)`: one function of 100k `arith.addi`/`arith.muli` ops (mixed at random,
operands reused), in the generic form fixflow prints, so fixflow's output must equal its input. Every
tool verifies after parsing and prints the generic form (`--mlir-print-op-generic`, `--print-op-generic`).

The tools run as installed: the console scripts next to this interpreter (not pyenv's shims) and
`mlir-opt-22` from PATH. Python tools run with a bytecode cache (`PYTHONPYCACHEPREFIX` in a temporary
directory, warmed by a small run first) as an installed package has; this checkout sets
PYTHONDONTWRITEBYTECODE=1, under which every fixflow-opt start recompiles fixflow's modules, so
`--help` is also measured that way, for information. In process, the garbage collector runs with the
library defaults; a full collection before each round (untimed) starts every round on a clean heap.
"""

from __future__ import annotations

import gc
import io
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from gen import mixed_arith  # noqa: E402

from fixflow.ir import parse_module, print_module  # noqa: E402

N = 100_000
BIN = Path(sys.executable).parent
ROUNDS = {"fast": 10, "run": 5, "xdsl": 1}
RESULTS: dict[str, tuple[float, float | None]] = {}  # name -> (best wall, best CPU) seconds


def _tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("opt")
    paths = {"big": d / "mixed_100k.mlir", "small": d / "mixed_10.mlir", "out": d / "out.mlir"}
    paths["big"].write_text(mixed_arith(N))
    paths["small"].write_text(mixed_arith(10))
    return paths


@pytest.fixture(scope="module")
def cached_env(tmp_path_factory) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))
    return env


def _bench_command(benchmark, name: str, cmd: list[str], env: dict, rounds: int) -> None:
    """Time `cmd` (wall by pytest-benchmark, CPU of the child by getrusage) and record the best rounds."""
    cpu: list[float] = []

    def run() -> None:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert done.returncode == 0, done.stderr
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)

    benchmark.pedantic(run, rounds=rounds, iterations=1)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None:
        RESULTS[name] = (stats.stats.min, min(cpu))
        benchmark.extra_info.update(cpu_min_s=round(min(cpu), 4))


def _warm(cmd: list[str], env: dict) -> None:
    """One untimed run: fills the bytecode cache and the OS file cache."""
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


def _count_ops(path: Path) -> int:
    text = path.read_text()
    return text.count('"arith.addi"') + text.count('"arith.muli"')


# ---- start-up ---------------------------------------------------------------------------------------
def test_python_start(benchmark, cached_env):
    benchmark.group = "start-up"
    _bench_command(benchmark, "python -c pass", [sys.executable, "-c", "pass"], cached_env, ROUNDS["fast"])


def test_fixflow_opt_help(benchmark, cached_env):
    benchmark.group = "start-up"
    cmd = [_tool("fixflow-opt"), "--help"]
    _warm(cmd, cached_env)
    _bench_command(benchmark, "fixflow-opt --help", cmd, cached_env, ROUNDS["fast"])


def _no_cache_env() -> dict[str, str]:
    if os.environ.get("PYTHONDONTWRITEBYTECODE") is None:
        pytest.skip("bytecode is written in this environment")
    env = dict(os.environ)
    env.pop("PYTHONPYCACHEPREFIX", None)
    return env


def test_python_start_without_bytecode_cache(benchmark):
    benchmark.group = "start-up, no bytecode cache"
    _bench_command(benchmark, "python -c pass (no bytecode cache)", [sys.executable, "-c", "pass"],
                   _no_cache_env(), ROUNDS["fast"])


def test_fixflow_opt_help_without_bytecode_cache(benchmark):
    benchmark.group = "start-up, no bytecode cache"
    _bench_command(benchmark, "fixflow-opt --help (no bytecode cache)", [_tool("fixflow-opt"), "--help"],
                   _no_cache_env(), ROUNDS["fast"])


# ---- whole-process round trip ---------------------------------------------------------------------------
def test_fixflow_opt_round_trip(benchmark, files, cached_env):
    benchmark.group = f"round trip {N}"
    tool = _tool("fixflow-opt")
    _warm([tool, str(files["small"]), "-o", str(files["out"])], cached_env)
    _bench_command(benchmark, "fixflow-opt", [tool, str(files["big"]), "-o", str(files["out"])], cached_env,
                   ROUNDS["run"])
    assert files["out"].read_text() == files["big"].read_text()


def test_mlir_opt_round_trip(benchmark, files, cached_env):
    benchmark.group = f"round trip {N}"
    cmd = [_tool("mlir-opt-22"), "--mlir-print-op-generic", str(files["big"]), "-o", str(files["out"])]
    _warm(cmd, cached_env)
    _bench_command(benchmark, "mlir-opt-22", cmd, cached_env, ROUNDS["run"])
    assert _count_ops(files["out"]) == N


def test_xdsl_opt_round_trip(benchmark, files, cached_env):
    benchmark.group = f"round trip {N}"
    tool = _tool("xdsl-opt")
    _warm([tool, "--print-op-generic", str(files["small"]), "-o", str(files["out"])], cached_env)
    _bench_command(benchmark, "xdsl-opt", [tool, "--print-op-generic", str(files["big"]), "-o", str(files["out"])],
                   cached_env, ROUNDS["xdsl"])
    assert _count_ops(files["out"]) == N


# ---- in-process parse + verify + print ----------------------------------------------------------------
def _collect() -> None:
    gc.collect()


def _bench_in_process(benchmark, name: str, fn, rounds: int):
    """Time `fn` (wall by pytest-benchmark, CPU of this process by process_time); returns its result.
    Before each round, untimed, a full collection clears the garbage of earlier rounds and tests, so
    that no tool's round pays for collecting another's IR."""
    cpu: list[float] = []

    def run():
        t = time.process_time()
        out = fn()
        cpu.append(time.process_time() - t)
        return out

    out = benchmark.pedantic(run, setup=_collect, rounds=rounds, iterations=1)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None:
        RESULTS[name] = (stats.stats.min, min(cpu))
        benchmark.extra_info.update(cpu_min_s=round(min(cpu), 4))
    return out


def test_fixflow_parse_verify_print(benchmark, files):
    text = files["big"].read_text()
    benchmark.group = f"parse+verify+print {N}"

    def run() -> str:
        module = parse_module(text)
        module.verify()
        return print_module(module)

    out = _bench_in_process(benchmark, "fixflow parse+verify+print", run, ROUNDS["run"])
    assert out == text


def test_xdsl_parse_verify_print(benchmark, files):
    pytest.importorskip("xdsl")
    from xdsl.context import Context
    from xdsl.dialects.arith import Arith
    from xdsl.dialects.builtin import Builtin
    from xdsl.dialects.func import Func
    from xdsl.parser import Parser
    from xdsl.printer import Printer
    ctx = Context()
    for dialect in (Builtin, Func, Arith):
        ctx.load_dialect(dialect)
    text = files["big"].read_text()
    benchmark.group = f"parse+verify+print {N}"

    def run() -> str:
        module = Parser(ctx, text).parse_module()
        module.verify()
        stream = io.StringIO()
        Printer(stream=stream, print_generic_format=True).print_op(module)
        return stream.getvalue()

    out = _bench_in_process(benchmark, "xDSL parse+verify+print", run, ROUNDS["xdsl"])
    assert out.count('"arith.addi"') + out.count('"arith.muli"') == N


# ---- summary ------------------------------------------------------------------------------------------
def _ratio(lines: list[str], what: str, a: str, b: str, target: str) -> None:
    if a in RESULTS and b in RESULTS:
        lines.append(f"  {what}: {RESULTS[a][0] / RESULTS[b][0]:.1f}x wall"
                     + (f", {RESULTS[a][1] / RESULTS[b][1]:.1f}x CPU" if RESULTS[a][1] and RESULTS[b][1] else "")
                     + f" (target {target})")


def _beyond_python(lines: list[str], tool: str, python: str) -> None:
    if tool in RESULTS and python in RESULTS:
        (tw, tc), (pw, pc) = RESULTS[tool], RESULTS[python]
        lines.append(f"  {tool} beyond {python}: {(tw - pw) * 1e3:.0f} ms wall, {(tc - pc) * 1e3:.0f} ms CPU "
                     f"(target < 150 ms)")


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    """Once all benchmarks of this file ran, hand the best rounds and the ratios to benchmarks/conftest.py,
    which prints them in the terminal summary."""
    yield
    if not RESULTS:
        return
    lines = [f"fixflow-opt benchmark summary (best round; {N} ops)"]
    for name, (wall, cpu) in RESULTS.items():
        lines.append(f"  {name:42s} {wall * 1e3:9.1f} ms wall" + (f" {cpu * 1e3:9.1f} ms CPU" if cpu else ""))
    _ratio(lines, "round trip, xdsl-opt / fixflow-opt", "xdsl-opt", "fixflow-opt", ">= 15x")
    _ratio(lines, "round trip, fixflow-opt / mlir-opt-22", "fixflow-opt", "mlir-opt-22", "<= 3x")
    _beyond_python(lines, "fixflow-opt --help", "python -c pass")
    _beyond_python(lines, "fixflow-opt --help (no bytecode cache)", "python -c pass (no bytecode cache)")
    _ratio(lines, "parse+verify+print in process, xDSL / fixflow", "xDSL parse+verify+print",
           "fixflow parse+verify+print", ">= 20x")
    summaries = getattr(request.config, "fixflow_bench_summaries", None)
    if summaries is None:
        print("\n".join(lines))
    else:
        summaries.append("\n".join(lines))
