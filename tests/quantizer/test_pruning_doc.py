"""docs/pruning.md runs as written: its python blocks in order in one namespace (tracebacks name the doc's
lines), its sh blocks in the same scratch folder; the printed numbers the prose quotes are checked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = ROOT / "docs" / "pruning.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)


def _blocks() -> list[tuple[str, int, str]]:
    doc = DOC_PATH.read_text(encoding="utf-8")
    return [(m.group(1), doc.count("\n", 0, m.start()) + 2, m.group(2)) for m in FENCE.finditer(doc)]


def test_doc_has_the_recipe_blocks():
    langs = [lang for lang, _, _ in _blocks()]
    assert langs.count("python") == 3 and langs.count("sh") == 2


@pytest.mark.slow   # finetunes digits_cnn for 8 epochs, runs the analysis, quantizes and compiles
def test_pruning_doc_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": "__pruning_doc__"}
    shell = ""
    for lang, line, code in _blocks():
        if lang == "python":
            # pad so that line numbers in tracebacks are the doc's
            exec(compile("\n" * (line - 1) + code, str(DOC_PATH), "exec"), ns)
        elif lang == "sh":
            r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code], cwd=tmp_path, capture_output=True,
                               text=True, env={**os.environ,
                                               "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"})
            assert r.returncode == 0, f"docs/pruning.md:{line}: the sh block failed:\n{r.stdout}{r.stderr}"
            shell += r.stdout + r.stderr
    assert "pruned:         26.8% of the original's MACs" in shell       # fixflow-zoo show --weights
    assert "[fixflow] accuracy " in shell                                  # fixflow-run
    assert "[fixflow] MACs 1,950,592 -> 523,712 (26.8%)" in shell          # fixflow-prune
    assert (tmp_path / "prune_cli" / "q" / "quant_info.json").exists()     # fixflow-quantize on its output
    out = capsys.readouterr().out
    assert "1950592 -> 523712 MACs" in out
    assert ns["slim"].classifier.in_features == 32 * 7 * 7
    assert ns["evaluate"](ns["slim"], ns["x_test"], ns["y_test"]) >= 0.9733       # within 1 point of 98.33 %
