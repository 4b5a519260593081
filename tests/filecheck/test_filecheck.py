"""Runs every `.mlir` file of this folder (recursively) through lit: one pytest test per file.

Each file states how it is checked in `// RUN:` lines (`fixflow-opt %s -p "..." | filecheck %s`) and what
the output must contain in `// CHECK:` lines; a failure shows the file, the commands and filecheck's
diagnostics. A new pass test is one new file here (see tests/README.md). lit runs once for the whole
corpus (in parallel); each test reports its own file's result."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parent
FILES = sorted(CORPUS.rglob("*.mlir"))


def _name(path: Path) -> str:
    return path.relative_to(CORPUS).as_posix()


@pytest.fixture(scope="module")
def lit_results(tmp_path_factory) -> dict[str, tuple[bool, str]]:
    """{file relative to the corpus: (passed, lit's report)} from one lit run over every file."""
    xml = tmp_path_factory.mktemp("lit") / "results.xml"
    proc = subprocess.run([sys.executable, "-c", "import sys; from lit.main import main; sys.exit(main())",
                           "-v", "--no-progress-bar", f"-j{min(4, os.cpu_count() or 1)}",
                           f"--xunit-xml-output={xml}", *map(str, FILES)],
                          capture_output=True, text=True, cwd=CORPUS)
    assert xml.exists(), f"lit did not run:\n{proc.stdout}{proc.stderr}"
    results = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        bad = [e for e in case if e.tag in ("failure", "error", "skipped")]
        folder = case.get("classname").partition(".")[2].replace(".", "/")   # "fixflow.graph" -> "graph"
        results[f"{folder}/{case.get('name')}" if folder else case.get("name")] = (not bad, "".join((e.text or e.get("message", "")) for e in bad))
    return results


def test_corpus_is_not_empty():
    assert len(FILES) >= 10


@pytest.mark.parametrize("path", FILES, ids=[_name(p) for p in FILES])
def test_filecheck(path: Path, lit_results):
    assert "// RUN:" in path.read_text(encoding="utf-8"), f"{path}: no '// RUN:' line"
    name = _name(path)
    assert name in lit_results, f"{path}: lit did not report it (reported: {sorted(lit_results)})"
    passed, report = lit_results[name]
    if not passed:
        pytest.fail(f"{path}\n{report}", pytrace=False)
