"""Profiles as plain data: per layer (super-layer) and per subgraph latency, share, utilization, DDR
traffic and GOP/s from the cycle model; multi-core throughput; host (interpreter) wall times.

    from fixflow.runtime.profiler import profile_xmodel
    p = profile_xmodel("net.xmodel", board="kv260")     # a dict: JSON-ready, no custom classes
    p["subgraphs"][1]["layers"][0]["ms"], p["throughput"]["fps_multi_thread"]
"""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

from ...ir.diagnostics import FixflowError
from .constants import ModelConstants
from .cycles import UNITS, Machine, costs, ddr_latency_cycles
from .timeline import ProfileError, timeline


def _board(board: Any):
    from ...target import TargetError, get_board
    if board is None or not isinstance(board, str):
        return board
    try:
        return get_board(board)
    except TargetError as e:
        raise ProfileError(e.message) from None


def _apportion(slots, group_of: Sequence[int], ngroups: int) -> tuple[list[float], list[int]]:
    """Cycles of the timeline given to each group: every elementary interval is split equally among the
    groups with an instruction running in it (so the groups' cycles add up to the busy time); and each
    group's active cycles (the intervals in which it has an instruction running, whoever else does)."""
    events: list[tuple[int, int, int]] = []
    for s in slots:
        if s.end > s.start:           # busy or waiting for its DDR data: the layer is in progress
            events.append((s.start, 1, group_of[s.index]))
            events.append((s.end, -1, group_of[s.index]))
    events.sort(key=lambda e: (e[0], e[1]))
    active = [0] * ngroups
    live: set[int] = set()
    out = [0.0] * ngroups
    active_cycles = [0] * ngroups
    t_prev = 0
    for t, d, g in events:
        if t > t_prev and live:
            share = (t - t_prev) / len(live)
            for k in live:
                out[k] += share
                active_cycles[k] += t - t_prev
        t_prev = t
        active[g] += d
        if active[g]:
            live.add(g)
        else:
            live.discard(g)
    return out, active_cycles


def profile_program(instrs: Sequence[Any], target: Any, board: Any = None, *, name: str = "subgraph",
                    groups: Sequence[str] | None = None, group_of: Sequence[int] | None = None,
                    group_types: Sequence[str] | None = None, workloads: Sequence[int | None] | None = None,
                    constants: ModelConstants | None = None) -> dict[str, Any]:
    """Time one DPU program on ``target`` clocked as ``board``; ``group_of[i]`` names the layer
    (index into ``groups``) of instruction ``i``; ``workloads`` the layers' useful ops (None: the ops
    the hardware performs). Returns a DPU subgraph profile (plain data, see docs/profiler.md)."""
    from ...target import get_target
    target = get_target(target)
    b = _board(board)
    mach = Machine.of(target, b)
    consts = constants or ModelConstants()
    instrs = list(instrs)
    if groups is None or group_of is None:
        groups, group_of = [name], [0] * len(instrs)
    if len(group_of) != len(instrs):
        raise ProfileError(f"{name}: {len(group_of)} layer labels for {len(instrs)} instructions")
    bad = next((i for i, g in enumerate(group_of) if not 0 <= g < len(groups)), None)
    if bad is not None:
        raise ProfileError(f"{name}: instruction {bad} has layer {group_of[bad]}, but there are {len(groups)} layers")
    try:
        cs = costs(instrs, mach, consts)
    except ValueError as e:
        raise ProfileError(f"{name}: {e}") from None
    slots, notes = timeline(instrs, cs)
    total = max((s.end for s in slots), default=0)
    shares, active = _apportion(slots, group_of, len(groups))
    clock = mach.clock_hz
    peak = mach.peak_ops_per_cycle
    layers = []
    for k, g in enumerate(groups):
        idx = [i for i in range(len(instrs)) if group_of[i] == k]
        on_arch = sum(cs[i].ops_on_arch for i in idx)
        wl = workloads[k] if workloads is not None and workloads[k] is not None else on_arch
        rd = sum(cs[i].ddr_read for i in idx)
        wr = sum(cs[i].ddr_write for i in idx)
        cyc = shares[k]
        busy = [sum(cs[i].cycles for i in idx if cs[i].unit == u) for u in range(4)]
        layers.append({
            "name": g, "type": group_types[k] if group_types else "", "instructions": len(idx),
            "workload_ops": int(wl), "ops_on_arch": int(on_arch), "gop": wl / 1e9,
            "cycles": cyc, "ms": cyc / clock * 1e3, "share": cyc / total if total else 0.0,
            "start_cycle": min((slots[i].start for i in idx), default=0),
            "end_cycle": max((slots[i].end for i in idx), default=0),
            "unit_busy_cycles": dict(zip(UNITS, busy)),
            "active_cycles": active[k],
            # while the layer runs (its share can be shorter than its own CONV time when layers overlap)
            "utilization": wl / (peak * active[k]) if active[k] else 0.0,
            "ddr_read_bytes": rd, "ddr_write_bytes": wr, "ddr_mb": (rd + wr) / 1e6,
            "gops_per_s": wl / (active[k] / clock) / 1e9 if active[k] else 0.0,
            "ops_per_byte": wl / (rd + wr) if rd + wr else None,
        })
    wl_total = sum(L["workload_ops"] for L in layers)
    rd_total = sum(c.ddr_read for c in cs)
    wr_total = sum(c.ddr_write for c in cs)
    unit_busy = [sum(c.cycles for c in cs if c.unit == u) for u in range(4)]
    return {
        "name": name, "device": "DPU", "target": target.name, "cycles": total,
        "ms": total / clock * 1e3, "workload_ops": wl_total, "gop": wl_total / 1e9,
        "ops_on_arch": sum(c.ops_on_arch for c in cs),
        "utilization": wl_total / (peak * total) if total else 0.0,
        "gops_per_s": wl_total / (total / clock) / 1e9 if total else 0.0,
        "ddr_read_bytes": rd_total, "ddr_write_bytes": wr_total, "ddr_mb": (rd_total + wr_total) / 1e6,
        "unit_busy_cycles": dict(zip(UNITS, unit_busy)),
        "serial_cycles": sum(c.cycles for c in cs),
        "layers": layers, "notes": notes,
        "instructions": [{"index": s.index, "name": instrs[s.index].name, "unit": UNITS[s.unit],
                          "start": s.start, "busy_end": s.busy_end, "end": s.end, "waited": s.waited,
                          "layer": group_of[s.index]}
                         for s in slots],
    }


def machine_info(target: Any, board: Any, constants: ModelConstants | None = None) -> dict[str, Any]:
    """The machine the numbers are for (target, board, clock, cores, DDR, peak, the model constants)."""
    from ...target import get_target
    target = get_target(target)
    b = _board(board)
    mach = Machine.of(target, b)
    consts = constants or ModelConstants()
    return {
        "board": getattr(b, "name", "kv260") if b is not None else "kv260", "target": target.name,
        "clock_mhz": mach.clock_hz / 1e6, "cores": mach.cores, "pp": mach.pp, "icp": mach.icp, "ocp": mach.ocp,
        "alu_pp": mach.alu_pp, "peak_ops_per_cycle": mach.peak_ops_per_cycle,
        "peak_gops_per_s": mach.peak_ops_per_cycle * mach.clock_hz / 1e9,
        "ddr_gb_per_s": mach.ddr_bytes_per_second / 1e9, "ddr_bytes_per_cycle": mach.ddr_bytes_per_cycle,
        "ddr_latency_ns": consts.ddr_latency_ns, "ddr_latency_cycles": ddr_latency_cycles(mach, consts),
        "issue_cycles": consts.issue_cycles, "lines_per_cycle": consts.lines_per_cycle,
    }


def throughput(dpu_ms: float, ddr_bytes: int, machine: dict[str, Any], cpu_ms: float = 0.0) -> dict[str, Any]:
    """Frames per second: one runner thread runs frames back to back (DPU + measured CPU time); with
    one thread per core the cores run in parallel and share the DDR, so the rate is the smaller of
    ``cores / frame time`` and ``DDR bandwidth / bytes per frame``."""
    cores = machine["cores"]
    frame_s = (dpu_ms + cpu_ms) / 1e3
    single = 1.0 / frame_s if frame_s > 0 else math.inf
    dpu_s = dpu_ms / 1e3
    by_cores = cores / dpu_s if dpu_s > 0 else math.inf
    by_ddr = machine["ddr_gb_per_s"] * 1e9 / ddr_bytes if ddr_bytes else math.inf
    multi = min(by_cores, by_ddr)
    return {"threads": cores, "fps_single_thread": single, "fps_multi_thread": multi,
            "multi_thread_limit": "DDR bandwidth" if by_ddr < by_cores else "DPU cores",
            "dpu_ms": dpu_ms, "cpu_ms": cpu_ms}


# ---------------------------------------------------------------------------- compiled xmodels


def _model(source: Any):
    from ...backends.xmodel import XModelError
    from ...backends.xmodel.compiled import CompiledModel, read_compiled
    if isinstance(source, CompiledModel):
        return source
    try:
        return read_compiled(source)
    except XModelError as e:
        raise ProfileError(e.message) from None


def _child_type(model: Any, c: Any) -> str:
    kinds = []
    for n in c.op_names:
        try:
            t = model.op(n).type
        except Exception:
            continue
        if t not in ("const-fix", "const") and t not in kinds:
            kinds.append(t)
    return "+".join(kinds)


def profile_dpu_subgraph(model: Any, sg: Any, board: Any = None,
                         constants: ModelConstants | None = None) -> dict[str, Any]:
    """Profile DPU subgraph ``sg`` of a compiled model: one layer per super-layer child."""
    from ...backends.mc import McError, decode
    from .attribution import attribute
    code_children = [c for c in (sg.code_children or sg.children) if c.kind == "code"]
    if code_children and all(c.mc_code for c in code_children):
        # debug mode: each child carries its own self-contained stream; they run one after the other
        parts = []
        for c in code_children:
            try:
                ins = decode(c.mc_code, f"{sg.name}/{c.name}: mc_code")
            except McError as e:
                raise ProfileError(e.message) from None
            parts.append(profile_program(ins, sg.target, board, name=c.name, groups=[c.name], group_of=[0] * len(ins),
                                         group_types=[_child_type(model, c)],
                                         workloads=[c.workload or None], constants=constants))
        return _concat(sg.name, sg.target.name, parts, "per-super-layer mc_code (debug mode)")
    try:
        ins = decode(sg.mc_code, f"{sg.name}: mc_code")
    except McError as e:
        raise ProfileError(e.message) from None
    names, group_of = attribute(ins, model, sg, sg.target)
    by_name = {c.name: c for c in sg.children}
    types = [_child_type(model, by_name[n]) if n in by_name else "DPU" for n in names]
    wls = [(by_name[n].workload or None) if n in by_name else (sg.workload or None) for n in names]
    p = profile_program(ins, sg.target, board, name=sg.name, groups=names, group_of=group_of, group_types=types,
                        workloads=wls, constants=constants)
    p["attribution"] = "whole-subgraph mc_code, layers found from constant loads (attribution.py)"
    p["children"] = [{"name": c.name, "kind": c.kind, "ops": list(c.op_names)} for c in sg.children]
    return p


def _concat(name: str, target: str, parts: list[dict[str, Any]], how: str) -> dict[str, Any]:
    layers, instrs, off, first = [], [], 0, 0
    for k, p in enumerate(parts):
        for L in p["layers"]:
            layers.append({**L, "start_cycle": L["start_cycle"] + off, "end_cycle": L["end_cycle"] + off})
        for s in p["instructions"]:
            instrs.append({**s, "index": s["index"] + first, "start": s["start"] + off,
                           "busy_end": s["busy_end"] + off, "end": s["end"] + off, "layer": k})
        off += p["cycles"]
        first += len(p["instructions"])
    total = off
    out = dict(parts[0]) if parts else {}
    keys_sum = ("workload_ops", "ops_on_arch", "ddr_read_bytes", "ddr_write_bytes", "serial_cycles")
    for key in keys_sum:
        out[key] = sum(p[key] for p in parts)
    for L in layers:
        L["share"] = L["cycles"] / total if total else 0.0
    ms = sum(p["ms"] for p in parts)
    out.update(name=name, target=target, cycles=total, ms=ms, gop=out.get("workload_ops", 0) / 1e9,
               ddr_mb=(out["ddr_read_bytes"] + out["ddr_write_bytes"]) / 1e6, layers=layers, instructions=instrs,
               unit_busy_cycles={u: sum(p["unit_busy_cycles"][u] for p in parts) for u in UNITS},
               notes=[n for p in parts for n in p["notes"]], attribution=how)
    out["gops_per_s"] = out["workload_ops"] / (ms / 1e3) / 1e9 if ms else 0.0
    out["utilization"] = (sum(L["utilization"] * L["active_cycles"] for L in layers) / total) if total else 0.0
    return out


def profile_xmodel(source: Any, board: Any = "kv260", *, measure_cpu: bool = False, inputs: Any = None,
                   repeat: int = 1, constants: ModelConstants | None = None) -> dict[str, Any]:
    """The profile of a compiled xmodel (path or ``CompiledModel``) on ``board``: every subgraph in
    order with its device; DPU subgraphs from the cycle model, CPU subgraphs timed by running them on
    the host when ``measure_cpu`` (else their time is None; the best of ``repeat`` runs, on ``inputs``
    or seeded random ones); the host run is then reported under ``"host"`` too."""
    m = _model(source)
    b = _board(board)
    dpus = m.dpu_subgraphs
    if not dpus:
        raise ProfileError(f"{m.name}: no DPU subgraph to profile")
    machine = machine_info(dpus[0].target, b, constants)
    subs: list[dict[str, Any]] = []
    from .host import host_profile
    host = host_profile(m, inputs=inputs, repeat=repeat) if measure_cpu else None
    for s in m.subgraphs:
        if s.device == "DPU":
            p = profile_dpu_subgraph(m, s, b, constants)
            subs.append(p)
        else:
            ms = None
            if host is not None:
                ms = next((h["ms"] for h in host["subgraphs"] if h["name"] == s.name), None)
            subs.append({"name": s.name, "device": s.device, "ops": list(s.op_names), "ms": ms,
                         "measured_on": "host" if ms is not None else None})
    dpu_ms = sum(p["ms"] for p in subs if p["device"] == "DPU")
    cpu_ms = sum(p["ms"] or 0.0 for p in subs if p["device"] == "CPU")
    ddr = sum(p["ddr_read_bytes"] + p["ddr_write_bytes"] for p in subs if p["device"] == "DPU")
    out = {"model": m.name, "source": os.fspath(source) if isinstance(source, (str, os.PathLike)) else m.name,
           "machine": machine, "subgraphs": subs,
           "total": {"dpu_ms": dpu_ms, "cpu_ms": cpu_ms,
                     "workload_ops": sum(p.get("workload_ops", 0) for p in subs if p["device"] == "DPU"),
                     "ddr_bytes": ddr},
           "throughput": throughput(dpu_ms, ddr, machine, cpu_ms)}
    if host is not None:
        out["host"] = host
    return out


def profile_compiled_program(prog: Any, board: Any = "kv260",
                             constants: ModelConstants | None = None) -> dict[str, Any]:
    """The profile of a program from fixflow's DPU compiler (``fixflow.passes.dpu.program.DpuProgram``:
    ``instructions``, ``layer_of``, ``layers``); layers are the compiler's, exactly."""
    layers = list(prog.layers)
    layer_of = list(prog.layer_of) if prog.layer_of else None
    if layer_of is None or len(layer_of) != len(prog.instructions):
        groups, group_of, types, wls = None, None, None, None
    else:
        last = max((k for k in layer_of if k >= 0), default=0)
        group_of = [k if k >= 0 else last for k in layer_of]
        used = sorted(set(group_of))
        remap = {k: j for j, k in enumerate(used)}
        group_of = [remap[k] for k in group_of]
        groups = [layers[k].name for k in used]
        types = ["+".join(o.name.split(".", 1)[-1] for o in layers[k].ops) for k in used]
        wls = [layer_workload(layers[k]) for k in used]
    b = _board(board)
    p = profile_program(prog.instructions, prog.target, b, name=prog.name, groups=groups, group_of=group_of,
                        group_types=types, workloads=wls, constants=constants)
    p["attribution"] = "the compiler's layer of each instruction"
    machine = machine_info(prog.target, b, constants)
    ddr = p["ddr_read_bytes"] + p["ddr_write_bytes"]
    return {"model": prog.name, "source": "fixflow.passes.dpu", "machine": machine, "subgraphs": [p],
            "total": {"dpu_ms": p["ms"], "cpu_ms": 0.0, "workload_ops": p["workload_ops"], "ddr_bytes": ddr},
            "throughput": throughput(p["ms"], ddr, machine)}


def layer_workload(L: Any) -> int | None:
    """Useful ops of a compiler layer, counted as AMD's compiler counts ``workload``: 2 per MAC plus
    one per bias add (conv, depthwise), kernel taps per output (pooling), inputs - 1 per output
    (element-wise)."""
    eng = getattr(L, "engine", None)
    out = getattr(L, "out", None)
    if out is None or eng == "none":
        return 0
    oh, ow, oc = out.shape
    n_out = oh * ow * oc
    if eng == "conv":
        kh, kw = L.win.kernel
        return 2 * n_out * kh * kw * L.inp.c + n_out
    if eng == "alu":
        kh, kw = L.win.kernel
        if L.mode.startswith("dwconv"):
            return 2 * n_out * kh * kw + (n_out if L.mode == "dwconv" else 0)
        return n_out * kh * kw
    if eng == "elew":
        return n_out * max(1, len(L.ins) - 1)
    return None


# ---------------------------------------------------------------------------- modules from fixflow's compiler


def profile_module(module: Any, board: Any = "kv260", constants: ModelConstants | None = None) -> dict[str, Any]:
    """The profile of a module the DPU compiler's passes ran on (``partition``, ``allocate-ddr``,
    ``lower-to-dpu``, ``schedule-dpu``): every subgraph in order, each ``dpu.program`` with the compiler's
    layers (the lowering is re-run to learn the layer of each instruction, and must give the program's
    instructions), CPU subgraphs listed without time."""
    from ...dialects.dpu.ops import ProgramOp
    from ...passes.dpu.program import annotated_subgraphs, compile_annotated
    from ...target import get_target
    top = [op for r in module.regions[:1] for b in r.blocks[:1] for op in b.ops]
    progs = {op.sym_name: op for op in top if isinstance(op, ProgramOp)}
    if not progs:
        raise ProfileError("the module has no dpu.program: run the DPU compiler's passes first "
                           "(partition, allocate-ddr, lower-to-dpu, schedule-dpu)")
    b = _board(board)
    subs: list[dict[str, Any]] = []
    machine = None
    for func in [op for op in top if op.name == "func.func"]:
        for sg in annotated_subgraphs(func):
            if sg.name not in progs:
                subs.append({"name": sg.name, "device": sg.device, "ops": [o.name for o in sg.ops], "ms": None,
                             "measured_on": None})
                continue
            p = progs[sg.name]
            target = get_target(p.target)
            machine = machine or machine_info(target, b, constants)
            dp = compile_annotated(sg, target, flags=False)
            instrs = p.instructions()
            same = len(instrs) == len(dp.instructions) and all(
                a.name == c.name and a.fields == c.fields for a, c in zip(instrs, dp.instructions))
            dp.instructions = instrs
            if not same:
                dp.layer_of = []
            one = profile_compiled_program(dp, b, constants)["subgraphs"][0]
            if not same:
                one["attribution"] = "none: the program differs from what lower-to-dpu gives (edited?)"
            subs.append(one)
    if machine is None:
        raise ProfileError(f"no dpu.program of the module ({', '.join(sorted(progs))}) belongs to a subgraph "
                           "its functions' ops name (dpu.subgraph): run partition before lower-to-dpu")
    dpu_ms = sum(s["ms"] for s in subs if s["device"] == "DPU")
    ddr = sum(s["ddr_read_bytes"] + s["ddr_write_bytes"] for s in subs if s["device"] == "DPU")
    return {"model": "module", "source": "fixflow.passes.dpu", "machine": machine, "subgraphs": subs,
            "total": {"dpu_ms": dpu_ms, "cpu_ms": 0.0,
                      "workload_ops": sum(s.get("workload_ops", 0) for s in subs if s["device"] == "DPU"),
                      "ddr_bytes": ddr},
            "throughput": throughput(dpu_ms, ddr, machine)}


__all__ = ["profile_program", "profile_dpu_subgraph", "profile_xmodel", "profile_compiled_program", "profile_module",
           "throughput", "machine_info", "layer_workload"]
