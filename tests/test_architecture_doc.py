"""docs/architecture.md: its walk-through runs, and its tables name modules that exist."""

from __future__ import annotations

import re
from pathlib import Path

import importlib.util

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def test_the_python_blocks_run_in_order():
    blocks = re.findall(r"```python\n(.*?)```", DOC, re.S)
    assert len(blocks) >= 5, "the walk-through (op, pattern, pass, text, builder) is missing"
    namespace: dict = {"__name__": "architecture_doc"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"docs/architecture.md#block{i + 1}", "exec"), namespace)  # noqa: S102
    from fixflow.ir.passes import registered_passes
    assert "tutorial-merge-scales" in registered_passes()


def test_named_files_exist():
    names = set(re.findall(r"`((?:fixflow/|tests/|passes/|runtime/|backends/|target/|dialects/)[\w/]+\.py)`", DOC))
    assert names
    missing = []
    for n in names:
        candidates = [ROOT / n, ROOT / "fixflow" / n]
        if not any(c.exists() for c in candidates):
            missing.append(n)
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"


def test_pass_and_dialect_names_in_the_tables_are_registered():
    from fixflow.ir.opdef import registered_dialects
    from fixflow.ir.passes import registered_passes
    passes = registered_passes()
    for name in ("canonicalize", "cse", "dce", "symbol-dce", "infer-shapes", "fold-bn", "remove-dropout",
                 "relu6-to-relu", "ensure-biases", "equalize", "calibrate", "legalize-fix", "quantize"):
        assert name in passes and f"`{name}`" in DOC
    for d in ("builtin", "arith", "graph", "fix"):
        assert d in registered_dialects()
    assert importlib.util.find_spec("fixflow.dialects._geometry") is not None
