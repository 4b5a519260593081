"""The per-layer table (as ``vaitrace --txt`` prints per subgraph, here per layer too) and its CSV."""

from __future__ import annotations

import csv
import io
from typing import Any, Iterator

COLUMNS = ("subgraph", "device", "name", "type", "workload_gop", "cycles", "ms", "percent", "utilization_percent",
           "ddr_mb", "gops_per_s", "host_ms")
_HEAD = ("Name", "Type", "Workload(GOP)", "Cycles", "Time(ms)", "% of total", "Utilization(%)", "DDR(MB)")
#: the table's layer "% of total" is of the subgraph, its total line's of the whole frame


def rows(profile: dict[str, Any], only: str | None = None) -> Iterator[dict[str, Any]]:
    """One row per layer of every DPU subgraph (``percent``: of its subgraph's time), then one per
    subgraph (``type`` ``subgraph``; ``percent``: of the frame, DPU plus measured CPU time).
    ``only`` restricts the rows to the subgraph of that name."""
    total_ms = sum(s["ms"] or 0.0 for s in profile["subgraphs"])
    host = host_times(profile)
    for s in profile["subgraphs"]:
        if only is not None and s["name"] != only:
            continue
        if s["device"] == "DPU":
            for L in s["layers"]:
                yield {"subgraph": s["name"], "device": "DPU", "name": L["name"], "type": L["type"] or "-",
                       "workload_gop": L["gop"], "cycles": L["cycles"], "ms": L["ms"],
                       "percent": 100 * L["share"],
                       "utilization_percent": 100 * L["utilization"], "ddr_mb": L["ddr_mb"],
                       "gops_per_s": L["gops_per_s"], "host_ms": host.get((s["name"], L["name"]))}
        yield {"subgraph": s["name"], "device": s["device"], "name": s["name"], "type": "subgraph",
               "workload_gop": s.get("gop"), "cycles": s.get("cycles"), "ms": s["ms"],
               "percent": 100 * s["ms"] / total_ms if total_ms and s["ms"] is not None else None,
               "utilization_percent": 100 * s["utilization"] if "utilization" in s else None,
               "ddr_mb": s.get("ddr_mb"), "gops_per_s": s.get("gops_per_s"), "host_ms": host.get((s["name"], None))}


def host_times(profile: dict[str, Any]) -> dict[tuple[str, str | None], float]:
    """Measured host milliseconds by (subgraph, layer name), (subgraph, None) for a whole subgraph."""
    out: dict[tuple[str, str | None], float] = {}
    for h in (profile.get("host") or {}).get("subgraphs", []):
        if h["ms"] is not None:
            out[(h["name"], None)] = h["ms"]
        for L in h.get("layers", []):
            out[(h["name"], L["name"])] = L["ms"]
    return out


def _f(v: Any, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def table_report(profile: dict[str, Any]) -> str:
    """A fixed-width text report: the machine, then per subgraph its layers and a total line."""
    m = profile["machine"]
    th = profile["throughput"]
    out = [f"fixflow-profile: {profile['model']} on {m['board']} ({m['cores']} x {m['target']} @ "
           f"{m['clock_mhz']:g} MHz, peak {m['peak_gops_per_s']:.1f} GOP/s, DDR {m['ddr_gb_per_s']:.1f} GB/s)",
           "simulated board time from the cycle model (docs/profiler.md); CPU time measured on this host"]
    width = max([len(r["name"]) for r in rows(profile)] + [12])
    twidth = max([len(str(r["type"])) for r in rows(profile)] + [8])
    head = f"{_HEAD[0]:<{width}}  {_HEAD[1]:<{twidth}}  " + "  ".join(f"{h:>14}" for h in _HEAD[2:])
    for s in profile["subgraphs"]:
        out.append("")
        out.append(f"== subgraph {s['name']} ({s['device']})")
        if s["device"] != "DPU":
            out.append(f"   {'measured ' + format(s['ms'], '.3f') + ' ms on the host' if s['ms'] is not None else 'not run (no time)'}")
            continue
        out.append(head)
        out.append("-" * len(head))
        for r in rows(profile, s["name"]):
            if r["type"] == "subgraph":
                out.append("-" * len(head))
                r = {**r, "name": "total"}
            out.append(f"{r['name']:<{width}}  {str(r['type']):<{twidth}}  {_f(r['workload_gop'], '14.6f')}  "
                       f"{_f(r['cycles'], '14.0f')}  {_f(r['ms'], '14.4f')}  {_f(r['percent'], '14.1f')}  "
                       f"{_f(r['utilization_percent'], '14.1f')}  {_f(r['ddr_mb'], '14.3f')}")
        for n in s.get("notes", []):
            out.append(f"note: {n}")
    t = profile["total"]
    out.append("")
    out.append(f"DPU {t['dpu_ms']:.4f} ms, CPU {t['cpu_ms']:.4f} ms per frame; "
               f"{th['fps_single_thread']:.1f} fps with 1 thread, {th['fps_multi_thread']:.1f} fps with "
               f"{th['threads']} thread(s) (limit: {th['multi_thread_limit']})")
    host = profile.get("host")
    if host:
        out.append("")
        out.append(f"host (DPU interpreter, {host['mode']} mode), {host['granularity']}:")
        sim = {s["name"]: s for s in profile["subgraphs"]}
        for h in host["subgraphs"]:
            if h["ms"] is None:
                continue
            board = sim[h["name"]]["ms"] if h["device"] == "DPU" and h["name"] in sim else None
            out.append(f"  {h['name']:<{width}}  {h['device']:<4}  host {h['ms']:10.3f} ms"
                       + (f"   board (simulated) {board:10.4f} ms" if board is not None else ""))
            layer_ms = {L["name"]: L["ms"] for L in sim[h["name"]].get("layers", [])} if h["name"] in sim else {}
            for L in h.get("layers", []):
                out.append(f"    {L['name']:<{width - 2}}        host {L['ms']:10.3f} ms"
                           f"   board (simulated) {layer_ms.get(L['name'], 0.0):10.4f} ms")
            if h.get("layers_note"):
                out.append(f"    ({h['layers_note']})")
    return "\n".join(out) + "\n"


def csv_report(profile: dict[str, Any]) -> str:
    """The rows of :func:`rows` as CSV with a header line (numbers unrounded, empty when unknown)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows(profile):
        w.writerow({k: ("" if r[k] is None else r[k]) for k in COLUMNS})
    return buf.getvalue()


__all__ = ["COLUMNS", "rows", "host_times", "table_report", "csv_report"]
