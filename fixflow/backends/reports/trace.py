"""Chrome / Perfetto trace-event JSON of a profile (the "JSON Array/Object Format" of the Trace Event
Format: complete events ``ph: "X"`` with ``ts``/``dur`` in microseconds, ``pid``, ``tid``, ``name``;
metadata events ``ph: "M"`` name the processes and threads).

One process per subgraph, in run order (each starts when the previous ends); a DPU subgraph has one
thread per unit (LOAD, SAVE, CONV, MISC) holding one slice per instruction group (consecutive
instructions of one layer on that unit) named after the layer, and a ``layers`` thread with each
layer's span. A CPU subgraph is one slice of its measured host time, when it was measured.
"""

from __future__ import annotations

import json
from typing import Any

UNIT_LANES = ("LOAD", "SAVE", "CONV", "MISC")


def trace_events(profile: dict[str, Any]) -> list[dict[str, Any]]:
    """The trace events of ``profile`` (a list of dicts)."""
    clock_mhz = profile["machine"]["clock_mhz"]
    ev: list[dict[str, Any]] = []
    t0 = 0.0
    for pid, s in enumerate(profile["subgraphs"], start=1):
        ev.append({"ph": "M", "pid": pid, "tid": 0, "name": "process_name",
                   "args": {"name": f"{s['name']} ({s['device']})"}})
        ev.append({"ph": "M", "pid": pid, "tid": 0, "name": "process_sort_index", "args": {"sort_index": pid}})
        if s["device"] != "DPU":
            if s["ms"] is not None:
                ev.append({"ph": "M", "pid": pid, "tid": 1, "name": "thread_name", "args": {"name": "host CPU"}})
                ev.append({"ph": "X", "pid": pid, "tid": 1, "name": s["name"], "cat": "cpu", "ts": t0,
                           "dur": s["ms"] * 1e3, "args": {"measured_on": "host"}})
                t0 += s["ms"] * 1e3
            continue
        for tid, lane in enumerate(UNIT_LANES, start=1):
            ev.append({"ph": "M", "pid": pid, "tid": tid, "name": "thread_name", "args": {"name": lane}})
            ev.append({"ph": "M", "pid": pid, "tid": tid, "name": "thread_sort_index", "args": {"sort_index": tid}})
        layers = s["layers"]
        groups: dict[str, dict[str, Any]] = {}
        for ins in sorted(s["instructions"], key=lambda r: (r["unit"], r["start"])):
            end = ins.get("busy_end", ins["end"])      # the unit's occupancy (a LOAD's DDR latency overlaps)
            if end <= ins["start"]:
                continue
            g = groups.get(ins["unit"])
            if g is not None and g["layer"] == ins["layer"] and g["end"] == ins["start"]:
                g["end"] = end
                g["n"] += 1
                g["last"] = ins["index"]
                continue
            if g is not None:
                ev.append(_slice(pid, g, layers, t0, clock_mhz))
            groups[ins["unit"]] = {"unit": ins["unit"], "layer": ins["layer"], "start": ins["start"],
                                   "end": end, "n": 1, "first": ins["index"], "last": ins["index"]}
        for g in groups.values():
            ev.append(_slice(pid, g, layers, t0, clock_mhz))
        lane_end: list[int] = []            # layer spans overlap (prefetch): greedy lanes, no partial overlap
        for L in sorted((L for L in layers if L["instructions"]), key=lambda L: L["start_cycle"]):
            k = next((k for k, e in enumerate(lane_end) if e <= L["start_cycle"]), len(lane_end))
            if k == len(lane_end):
                lane_end.append(0)
                tid = len(UNIT_LANES) + 1 + k
                ev.append({"ph": "M", "pid": pid, "tid": tid, "name": "thread_name",
                           "args": {"name": "layers" if k == 0 else f"layers ({k + 1})"}})
                ev.append({"ph": "M", "pid": pid, "tid": tid, "name": "thread_sort_index", "args": {"sort_index": tid}})
            lane_end[k] = L["end_cycle"]
            ev.append({"ph": "X", "pid": pid, "tid": len(UNIT_LANES) + 1 + k, "name": L["name"], "cat": "layer",
                       "ts": t0 + L["start_cycle"] / clock_mhz, "dur": (L["end_cycle"] - L["start_cycle"]) / clock_mhz,
                       "args": {"type": L["type"], "workload_gop": L["gop"], "cycles": L["cycles"],
                                "utilization": L["utilization"], "ddr_mb": L["ddr_mb"]}})
        t0 += s["cycles"] / clock_mhz
    return ev


def _slice(pid: int, g: dict[str, Any], layers: list[dict[str, Any]], t0: float, clock_mhz: float) -> dict[str, Any]:
    name = layers[g["layer"]]["name"] if 0 <= g["layer"] < len(layers) else "?"
    return {"ph": "X", "pid": pid, "tid": UNIT_LANES.index(g["unit"]) + 1, "name": name, "cat": g["unit"],
            "ts": t0 + g["start"] / clock_mhz, "dur": (g["end"] - g["start"]) / clock_mhz,
            "args": {"instructions": g["n"], "first_instruction": g["first"], "last_instruction": g["last"],
                     "cycles": g["end"] - g["start"]}}


def trace_report(profile: dict[str, Any]) -> str:
    """The trace as JSON text (object form: ``{"traceEvents": [...], "displayTimeUnit": "ns"}``)."""
    return json.dumps({"traceEvents": trace_events(profile), "displayTimeUnit": "ns",
                       "otherData": {"model": profile["model"], "board": profile["machine"]["board"],
                                     "generator": "fixflow-profile"}}, indent=None)


__all__ = ["UNIT_LANES", "trace_events", "trace_report"]
