"""Wall time of a compiled model run on this host by fixflow's runtime, per subgraph and per layer.

Every subgraph is run in order by fixflow's graph runner (the DPU interpreter in fast mode for DPU
subgraphs, the reference semantics for CPU ones) and timed. For a DPU subgraph the time is also split
per layer: the interpreter's fast mode has no per-layer hook (it compiles a subgraph into one plan of
merged gathers, matrix products and requantizations), so its plan is executed here kernel by kernel,
each kernel timed and given to the layer of its instructions (a kernel merged over several layers is
split by instruction count). LOAD and SAVE cost nothing there: the plan resolves them when it is built.
The kernel-by-kernel run is checked to give the plan's own result; if it does not (or the plan is not
what this module knows), the layers are left out and the report says so.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ...ir.diagnostics import FixflowError
from .timeline import ProfileError

PER_SUBGRAPH = "per subgraph (fast mode runs a DPU subgraph as one plan: no per-layer hook)"
PER_LAYER = ("per subgraph, and per layer by timing the fast plan's kernels one by one (LOAD/SAVE are free "
             "there: the plan resolves them when it is built)")


def host_profile(source: Any, inputs: Any = None, repeat: int = 3, mode: str = "fast",
                 layers: bool = True) -> dict[str, Any]:
    """Wall time on this host of every subgraph of a compiled model (path or ``CompiledModel``): the
    best of ``repeat`` runs after a warm-up, on ``inputs`` (float, by input) or seeded random ones; with
    ``layers`` (fast mode) each DPU subgraph's time per layer too."""
    from .profile import _model
    m = _model(source)
    how = PER_SUBGRAPH
    try:
        from ..graph_runner import GraphRunner
        runner = GraphRunner(m.to_xgraph(), mode=mode, name=m.name)
        feeds = inputs if inputs is not None else [
            np.random.default_rng(0).standard_normal((1,) + tuple(s.shape[1:])).astype(np.float32)
            for s in runner.inputs]
        results = _time_steps(runner, feeds, repeat, mode)
    except (ImportError, AttributeError):      # a build without the whole-graph runner (or another version)
        results = _time_dpu_only(m, repeat, mode)
        how += "; CPU subgraphs not measured (fixflow's graph runner is not available)"
    except FixflowError as e:
        raise ProfileError(f"{m.name}: cannot run on the host: {e.message}") from None
    subs: list[dict[str, Any]] = []
    for s in m.subgraphs:
        entry: dict[str, Any] = {"name": s.name, "device": s.device, "ms": results.get(s.name)}
        if layers and mode == "fast" and s.device == "DPU":
            per = layer_times(m, s, repeat)
            if per is not None:
                entry["layers"] = per
                how = PER_LAYER
            else:
                entry["layers_note"] = "the fast plan could not be run kernel by kernel here"
        subs.append(entry)
    return {"model": m.name, "mode": mode, "repeat": repeat, "granularity": how, "subgraphs": subs}


def _time_steps(runner: Any, feeds: Any, repeat: int, mode: str) -> dict[str, float]:
    """Run the graph runner's steps one by one, timing each (best of ``repeat`` after one warm-up)."""
    from ..graph_runner import _as_list
    best: dict[str, float] = {}
    for k in range(repeat + 1):
        floats = _as_list(feeds, runner.inputs)
        env: dict = {}
        runner._user.run(floats, env)
        for s in runner.steps:
            t0 = time.perf_counter()
            s.run(env, mode)
            dt = (time.perf_counter() - t0) * 1e3
            if k:
                best[s.name] = min(best.get(s.name, math.inf), dt)
    return best


def _dpu_regions(d: Any) -> dict[int, np.ndarray]:
    """The data regions of one all-zero input frame, as ``DPUSubgraph.run`` lays them out."""
    dyn = {r: np.zeros((1, s), dtype=np.int8) for r, s in d.reg_sizes.items() if r not in d.consts}
    return dyn


def _time_dpu_only(m: Any, repeat: int, mode: str) -> dict[str, float]:
    from ..dpu import DPUSubgraph
    out = {}
    for s in m.dpu_subgraphs:
        d = DPUSubgraph.from_xmodel(m, s.name)
        xs = [np.zeros((1,) + t.shape[1:], np.int8) for t in d.inputs]
        best = math.inf
        for k in range(repeat + 1):
            t0 = time.perf_counter()
            d.run(xs, mode=mode)
            if k:
                best = min(best, (time.perf_counter() - t0) * 1e3)
        out[s.name] = best
    return out


def layer_times(m: Any, sg: Any, repeat: int = 3) -> list[dict[str, Any]] | None:
    """Host milliseconds per layer of DPU subgraph ``sg`` (layers as the cycle model finds them), or None
    when the fast plan cannot be run kernel by kernel here."""
    from ...backends.mc import decode
    from ..dpu import DPUSubgraph
    from ..dpu.fast import FastPlan
    from .attribution import attribute
    d = DPUSubgraph.from_xmodel(m, sg.name)
    names, group_of = attribute(decode(sg.mc_code), m, sg, sg.target)
    try:
        plan = d.plan()
        regions = _dpu_regions(d)
        want = plan.run(regions)
        per = [0.0] * len(names)
        best: list[float] | None = None
        for k in range(repeat + 1):
            got, times = _run_by_kernel(plan, FastPlan._exec, regions)
            if any(not np.array_equal(got[r], want[r]) for r in want):
                return None
            if k:
                best = times if best is None else [min(a, b) for a, b in zip(best, times)]
        assert best is not None
        for kern, t in zip(plan.kernels, best):
            idx = [group_of[i] for i in kern.instructions if 0 <= i < len(group_of)]
            for g in set(idx):
                per[g] += t * idx.count(g) / len(idx)
    except (AttributeError, TypeError, KeyError, IndexError, ValueError):
        return None
    return [{"name": n, "ms": per[k]} for k, n in enumerate(names)]


def _run_by_kernel(plan: Any, exec_kernel: Any, regions: dict[int, np.ndarray]):
    """The plan's run, kernel by kernel: (final DDR regions, milliseconds of each kernel)."""
    batch = 1
    v = np.empty((batch, plan.n_values), dtype=np.int8)
    v[:, :len(plan.base)] = plan.base
    for r, a in regions.items():
        if r in plan.const_regs:
            continue
        s = plan.region_start[r]
        v[:, s:s + plan.region_sizes[r]] = a.view(np.int8)
    times = []
    for k in plan.kernels:
        t0 = time.perf_counter()
        exec_kernel(k, v, batch)
        times.append((time.perf_counter() - t0) * 1e3)
    return {r: v[:, idx] for r, idx in plan.final_ddr.items()}, times


__all__ = ["host_profile", "layer_times", "PER_SUBGRAPH", "PER_LAYER"]
