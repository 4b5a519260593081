"""Every ```python block of docs/*.md runs as written (issue 14 item 7), in order, one namespace per page,
in a scratch folder, with the page's line numbers in tracebacks.

A block that cannot run here is marked on the line before its fence with `<!-- norun: <why> -->` (the
reason is required; e.g. a board). Pages another tests/docs/test_*.py runs (docs/writing-passes.md, whose test also
runs its mlir/sh/toml blocks; docs/fast-finetune.md) are not repeated here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _pages_with_their_own_test() -> set[str]:
    """docs pages that another test runs itself: tests/docs/test_*.py (e.g. writing-passes.md, with its mlir/sh
    blocks) and tests/test_architecture_doc.py (architecture.md's walk-through)."""
    names = {"architecture.md"}
    for t in (ROOT / "tests" / "docs").glob("test_*.py"):
        if t.name != Path(__file__).name:
            names |= set(re.findall(r"[\"/]([\w.-]+\.md)[\"]", t.read_text(encoding="utf-8")))
    return names


DOCS = sorted(p for p in (ROOT / "docs").glob("*.md") if p.name not in _pages_with_their_own_test())
FENCE = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)
NORUN = re.compile(r"<!--\s*norun:\s*(.*?)\s*-->\s*$")
#: pages whose blocks take long (whole quantization flows): run with the slow tests
SLOW = {"quantization.md", "migrating-from-vitis-ai.md", "pruning.md", "qat.md"}


def blocks(path: Path) -> list[tuple[int, str, str | None]]:
    """(first code line, code, norun reason or None) of each python block."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        r = NORUN.search(before)
        out.append((text.count("\n", 0, m.start()) + 2, m.group(1), r.group(1) if r else None))
    return out


def test_norun_markers_give_a_reason():
    for path in DOCS:
        for line, _, why in blocks(path):
            assert why is None or len(why) > 8, f"{path.name}:{line}: a norun marker needs its reason"
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"<!--\s*norun", text):
            after = text[m.start():].split("\n", 2)
            assert len(after) > 1 and after[1].startswith("```python"), \
                f"{path.name}:{text.count(chr(10), 0, m.start()) + 1}: a norun marker must be right before a python block"


def _params():
    for p in DOCS:
        if all(why is not None for _, _, why in blocks(p)):
            continue                    # no python block, or every one marked norun (test_norun_markers_give_a_reason)
        yield pytest.param(p, id=p.name, marks=[pytest.mark.slow] if p.name in SLOW else [])


@pytest.mark.parametrize("path", _params())
def test_python_blocks_run(path, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": f"doc_{path.stem.replace('-', '_')}"}
    ran = 0
    for line, code, why in blocks(path):
        if why is not None:
            continue
        try:
            exec(compile("\n" * (line - 1) + code, str(path), "exec"), ns)  # noqa: S102
        except Exception as e:
            raise AssertionError(f"docs/{path.name}:{line}: the python block failed: {type(e).__name__}: {e}") from e
        ran += 1
    assert ran >= 1
