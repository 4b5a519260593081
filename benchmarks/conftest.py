"""Shared benchmark hooks: benchmark files may append text to `config.fixflow_bench_summaries`;
it is printed at the end of the run (after pytest-benchmark's tables)."""

from __future__ import annotations

import pytest


def pytest_configure(config) -> None:
    config.fixflow_bench_summaries = []


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    for text in getattr(config, "fixflow_bench_summaries", []):
        terminalreporter.write_line("")
        for line in text.splitlines():
            terminalreporter.write_line(line)
