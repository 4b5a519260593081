"""One self-contained HTML page of a profile: per DPU subgraph a bar chart of layer time and a
roofline plot (inline SVG), the per-layer table, the subgraph tree with device placement, host
times. No script, no network access: everything is in the page (template ``templates/report.html.j2``)."""

from __future__ import annotations

import math
from typing import Any

import jinja2

from .table import rows

BAR_W, BAR_H, LABEL_W = 520, 18, 300
RF_W, RF_H, RF_PAD = 560, 360, 56


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("fixflow.backends.reports", "templates"),
                              autoescape=True, trim_blocks=True, lstrip_blocks=True)


def _bars(s: dict[str, Any]) -> dict[str, Any]:
    layers = s["layers"]
    top = max([L["ms"] for L in layers] + [1e-12])
    bars = [{"name": L["name"], "type": L["type"], "ms": L["ms"], "share": L["share"], "y": i * (BAR_H + 4),
             "w": max(L["ms"] / top * BAR_W, 0.0)} for i, L in enumerate(layers)]
    return {"bars": bars, "width": LABEL_W + BAR_W + 120, "height": len(bars) * (BAR_H + 4) + 4,
            "label_w": LABEL_W, "bar_h": BAR_H}


def _log_axis(lo: float, hi: float) -> tuple[float, float]:
    return math.floor(math.log10(lo)), math.ceil(math.log10(hi))


def _roofline(s: dict[str, Any], machine: dict[str, Any]) -> dict[str, Any]:
    peak = machine["peak_gops_per_s"]
    bw = machine["ddr_gb_per_s"]
    pts = [L for L in s["layers"] if L["ops_per_byte"] and L["gops_per_s"] > 0]
    ridge = peak / bw
    xs = [L["ops_per_byte"] for L in pts] + [ridge]
    ys = [L["gops_per_s"] for L in pts] + [peak]
    x0, x1 = _log_axis(min(xs) / 2, max(xs) * 2)
    y0, y1 = _log_axis(min(ys) / 2, peak * 2)
    if x1 <= x0:
        x1 = x0 + 1
    if y1 <= y0:
        y1 = y0 + 1
    iw, ih = RF_W - 2 * RF_PAD, RF_H - 2 * RF_PAD

    def px(x: float) -> float:
        return RF_PAD + (math.log10(x) - x0) / (x1 - x0) * iw

    def py(y: float) -> float:
        return RF_PAD + ih - (math.log10(y) - y0) / (y1 - y0) * ih

    roof = []
    for k in range(0, 101):
        x = 10 ** (x0 + (x1 - x0) * k / 100)
        y = min(peak, bw * x)
        if 10 ** y0 <= y:
            roof.append(f"{px(x):.1f},{py(y):.1f}")
    points = [{"name": L["name"], "x": px(L["ops_per_byte"]), "y": py(L["gops_per_s"]),
               "ops_per_byte": L["ops_per_byte"], "gops": L["gops_per_s"]} for L in pts]
    xticks = [{"v": f"{10 ** e:g}", "p": px(10 ** e)} for e in range(x0, x1 + 1)]
    yticks = [{"v": f"{10 ** e:g}", "p": py(10 ** e)} for e in range(y0, y1 + 1)]
    return {"w": RF_W, "h": RF_H, "pad": RF_PAD, "roof": " ".join(roof), "points": points, "xticks": xticks,
            "yticks": yticks, "peak": peak, "bw": bw, "ridge": ridge, "left": RF_PAD, "right": RF_W - RF_PAD,
            "top": RF_PAD, "bottom": RF_H - RF_PAD}


def html_report(profile: dict[str, Any]) -> str:
    """The page as one string."""
    dpus = []
    for s in profile["subgraphs"]:
        if s["device"] == "DPU":
            dpus.append({"s": s, "chart": _bars(s), "roofline": _roofline(s, profile["machine"]),
                         "rows": list(rows(profile, s["name"]))})
    return _env().get_template("report.html.j2").render(p=profile, dpus=dpus)


__all__ = ["html_report"]
