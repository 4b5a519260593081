"""`fixflow-opt` over the IR-text fuzz corpus (the differential test's seeded mutants): parse, verify and print
each chunk of one `--split-input-file` run. Every problem is a located one-line error; no traceback, no
"internal error" (needs no mlir-opt)."""

from __future__ import annotations

import re

import pytest

import _mlir_difflib as diff
from fixflow.tools.opt import main

ERROR_LINE = re.compile(r"^[^\n]+:\d+:\d+: error: ")


def _run(tmp_path, capsys, n: int, seed: int) -> tuple[int, str, str]:
    path = tmp_path / "corpus.mlir"
    path.write_text(f"\n{diff.SPLIT}\n".join(diff.mutants(diff.SEEDS, n, seed)))
    rc = main(["--split-input-file", "--allow-unregistered-dialect", str(path)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _check(rc: int, out: str, err: str, n: int) -> None:
    assert rc in (0, 1)
    for text in (out, err):
        assert "Traceback" not in text and "internal error" not in text.lower()
    errors = [line for line in err.splitlines() if " error: " in line]
    assert errors and all(ERROR_LINE.match(line) for line in errors), [l for l in errors if not ERROR_LINE.match(l)][:3]
    printed = out.count('"builtin.module"()')
    assert 0 < printed < n  # some chunks are valid and printed, the others each gave an error
    assert printed + len(errors) >= n


def test_fixflow_opt_over_mutants(tmp_path, capsys):
    _check(*_run(tmp_path, capsys, 300, 2026), 300)


@pytest.mark.slow
def test_fixflow_opt_over_many_mutants(tmp_path, capsys):
    _check(*_run(tmp_path, capsys, 4000, 2028), 4000)
