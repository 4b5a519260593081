"""Reports of a profile (the plain data of ``fixflow.runtime.profiler``): a vaitrace-style text table,
CSV, Chrome/Perfetto trace-event JSON and one self-contained HTML page (jinja2, inline SVG).

    from fixflow.backends.reports import render
    text = render(profile, "table")          # or "csv", "trace" (JSON text), "html"
"""

from .html import html_report
from .table import csv_report, table_report
from .trace import trace_events, trace_report

FORMATS = ("table", "csv", "trace", "html")


def render(profile: dict, fmt: str = "table") -> str:
    """``profile`` rendered as ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "table":
        return table_report(profile)
    if fmt == "csv":
        return csv_report(profile)
    if fmt == "trace":
        return trace_report(profile)
    if fmt == "html":
        return html_report(profile)
    raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")


__all__ = ["FORMATS", "render", "html_report", "csv_report", "table_report", "trace_events", "trace_report"]
