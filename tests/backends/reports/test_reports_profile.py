"""Profile reports: the trace-event JSON is valid for Perfetto / chrome://tracing, the HTML page is
self-contained and opens in a real headless browser (Debian's chromium via Playwright) without console
errors, one bar per layer; the table and CSV carry every layer."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from fixflow.backends.reports import FORMATS, render
from fixflow.runtime.profiler import profile_xmodel

MNIST = Path(__file__).resolve().parents[4] / "shared" / "reference" / "amd-compiled-mnist" / "dpu_mnist_classifier.xmodel"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def profile():
    return profile_xmodel(MNIST, "kv260", measure_cpu=True)


def _layers(p):
    return [L for s in p["subgraphs"] if s["device"] == "DPU" for L in s["layers"]]


def test_trace_events_are_valid(profile):
    doc = json.loads(render(profile, "trace"))
    ev = doc["traceEvents"]
    assert ev and doc["displayTimeUnit"] == "ns"
    for e in ev:
        assert e["ph"] in ("X", "M") and isinstance(e["pid"], int) and isinstance(e["tid"], int)
        assert isinstance(e["name"], str) and e["name"]
        if e["ph"] == "X":
            assert isinstance(e["ts"], (int, float)) and isinstance(e["dur"], (int, float))
            assert e["ts"] >= 0 and e["dur"] >= 0
        else:
            assert e["name"] in ("process_name", "thread_name", "process_sort_index", "thread_sort_index")
    lanes = {(e["pid"], e["tid"]): e["args"]["name"] for e in ev if e["name"] == "thread_name"}
    dpu_pid = next(e["pid"] for e in ev if e["name"] == "process_name" and "(DPU)" in e["args"]["name"])
    assert [lanes[(dpu_pid, t)] for t in (1, 2, 3, 4)] == ["LOAD", "SAVE", "CONV", "MISC"]
    # slices on one thread never partly overlap (the format nests complete events by time)
    by_lane: dict = {}
    for e in ev:
        if e["ph"] == "X":
            by_lane.setdefault((e["pid"], e["tid"]), []).append((e["ts"], e["ts"] + e["dur"]))
    for spans in by_lane.values():
        spans.sort()
        for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
            assert b0 >= a1 - 1e-9 or b1 <= a1 + 1e-9
    names = {L["name"] for L in _layers(profile)}
    slices = {e["name"] for e in ev if e["ph"] == "X" and e["pid"] == dpu_pid}
    assert slices <= names and len(slices) >= 3
    # the DPU subgraph's lanes end when the simulated subgraph ends
    dpu = next(s for s in profile["subgraphs"] if s["device"] == "DPU")
    end = max(e["ts"] + e["dur"] for e in ev if e["ph"] == "X" and e["pid"] == dpu_pid)
    assert end <= dpu["ms"] * 1e3 + 1e-6


def test_table_and_csv(profile):
    text = render(profile, "table")
    for L in _layers(profile):
        assert L["name"] in text
    assert "Utilization(%)" in text and "fps with 1 thread" in text and "host" in text
    for L in _layers(profile):                           # host time per layer next to the simulated one
        assert any(line.strip().startswith(L["name"]) and "board (simulated)" in line for line in text.splitlines())
    rows = list(csv.DictReader(io.StringIO(render(profile, "csv"))))
    assert len(rows) == len(_layers(profile)) + len(profile["subgraphs"])
    dpu = [r for r in rows if r["device"] == "DPU" and r["type"] != "subgraph"]
    assert sum(float(r["percent"]) for r in dpu) == pytest.approx(100.0)
    assert all(r["host_ms"] != "" for r in dpu)
    assert sum(float(r["cycles"]) for r in dpu) == pytest.approx(
        next(s["cycles"] for s in profile["subgraphs"] if s["device"] == "DPU"))


def test_render_rejects_unknown_format(profile):
    assert FORMATS == ("table", "csv", "trace", "html")
    with pytest.raises(ValueError, match="unknown report format 'svg'"):
        render(profile, "svg")


def test_html_is_self_contained(profile):
    page = render(profile, "html")
    assert "<script" not in page
    assert not re.search(r"""(src|href)\s*=|url\(|@import|https?://(?!www\.w3\.org/2000/svg)""", page)
    assert page.count('class="bar"') == len(_layers(profile))
    assert 'class="roof"' in page and 'id="subgraph-tree"' in page


def test_html_in_headless_chromium(profile, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    path = tmp_path / "report.html"
    path.write_text(render(profile, "html"), encoding="utf-8")
    errors, requests = [], []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                                     args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(path.as_uri())
            bars = page.locator("svg.layer-chart rect.bar")
            assert bars.count() == len(_layers(profile))
            assert [bars.nth(i).get_attribute("data-layer") for i in range(bars.count())] == \
                [L["name"] for L in _layers(profile)]
            widths = [float(bars.nth(i).get_attribute("width")) for i in range(bars.count())]
            ms = [L["ms"] for L in _layers(profile)]
            assert widths.index(max(widths)) == ms.index(max(ms))
            assert page.locator("svg.roofline circle.point").count() >= 2
            assert page.locator("#subgraph-tree li.subgraph").count() == len(profile["subgraphs"])
            assert page.locator("svg.layer-chart").bounding_box()["width"] > 100
        finally:
            browser.close()
    assert errors == []
    assert requests == [path.as_uri()]        # nothing fetched besides the page itself
