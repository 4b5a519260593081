"""docs/fast-finetune.md runs as written: its python block (in a scratch folder), then its sh block."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = ROOT / "docs" / "fast-finetune.md"
DOC = DOC_PATH.read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def _blocks(lang: str) -> list[tuple[int, str]]:
    return [(DOC.count("\n", 0, m.start()) + 2, m.group(2)) for m in FENCE.finditer(DOC) if m.group(1) == lang]


def test_the_blocks_are_python_and_sh():
    assert [m.group(1) for m in FENCE.finditer(DOC)] == ["python", "sh"]


@pytest.mark.slow   # finetunes digits_cnn (the python block, then the command line)
def test_the_blocks_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (line, code), = _blocks("python")
    try:
        exec(compile("\n" * (line - 1) + code, str(DOC_PATH), "exec"), {"__name__": "fast_finetune_doc"})  # noqa: S102
    except Exception as e:
        raise AssertionError(f"docs/fast-finetune.md:{line}: the python block failed: {type(e).__name__}: {e}") from e
    out = capsys.readouterr().out
    assert "finetuned W8A8 top-1: 0.9" in out and "streamed frontier peak:" in out
    assert json.loads((tmp_path / "build/ft/quant_info.json").read_text())["fast_finetuned"] is True
    assert (tmp_path / "build/ft/fast_finetune.npz").exists() and (tmp_path / "build/ft/DigitsCNN_int.xmodel").exists()
    (line, code), = _blocks("sh")
    r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                       env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"})
    assert r.returncode == 0, f"docs/fast-finetune.md:{line}: the sh block failed ({r.returncode}):\n{r.stdout}{r.stderr}"
    assert "Finetuned parameters in use" in r.stdout and "[fixflow] accuracy 9" in r.stdout
    assert json.loads((tmp_path / "build/cli/quant_info.json").read_text())["fast_finetuned"] is True
