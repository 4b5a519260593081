"""The package's import graph, read from the source: folders import their own level or lower, no
cycles between folders, and the core (`fixflow/ir`) imports nothing of the package above it.

Levels, lowest first (design.md; the same table as shared/tools/check_layers.py):
ir; target; dialects; passes, frontends, backends, zoo; runtime; quantizer; tools.
Imports inside functions count too. The package root (`fixflow/__init__.py`) is the composition
root and may import any level; root modules (`fixflow/_registry.py`) import nothing of the package.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "fixflow"
LEVEL = {"ir": 0, "target": 1, "dialects": 2, "passes": 3, "frontends": 3, "backends": 3, "zoo": 3,
         "runtime": 4, "quantizer": 5, "tools": 6}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, int]]:
    """Absolute names of the modules `path` imports (relative imports resolved), with line numbers."""
    mod = _module_name(path)
    is_pkg = path.name == "__init__.py"
    out = []
    for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(n, ast.Import):
            out += [(a.name, n.lineno) for a in n.names]
        elif isinstance(n, ast.ImportFrom):
            if n.level:
                base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                base = base[: len(base) - (n.level - 1)]
                target = ".".join(base + ([n.module] if n.module else []))
                # `from .. import x` may import a submodule x
                names = [f"{target}.{a.name}" for a in n.names] if not n.module else []
                out += [(t, n.lineno) for t in [target] + names]
            else:
                out.append((n.module or "", n.lineno))
    return [(t, line) for t, line in out if t == "fixflow" or t.startswith("fixflow.")]


def _folder(module: str) -> str | None:
    """The top-level folder (level) of a fixflow module, None for the root package and root modules."""
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 and parts[1] in LEVEL else None


def _edges() -> dict[tuple[str, str], str]:
    edges: dict[tuple[str, str], str] = {}
    for path in sorted(PKG.rglob("*.py")):
        src = _folder(_module_name(path))
        if src is None:
            continue
        for target, line in _imports(path):
            dst = _folder(target)
            if dst is not None and dst != src:
                edges.setdefault((src, dst), f"{path.relative_to(PKG.parent)}:{line}")
    return edges


def test_no_upward_imports():
    bad = [f"{src} -> {dst} ({where})" for (src, dst), where in _edges().items() if LEVEL[dst] > LEVEL[src]]
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_cycles_between_folders():
    edges = _edges()
    graph: dict[str, set[str]] = {}
    for src, dst in edges:
        graph.setdefault(src, set()).add(dst)
    # a cycle exists iff some folder reaches itself
    for start in graph:
        seen, stack = set(), list(graph[start])
        while stack:
            f = stack.pop()
            if f == start:
                pytest.fail(f"folders import each other in a cycle through {start}: "
                            + ", ".join(f"{s}->{d} ({w})" for (s, d), w in edges.items() if s == start))
            if f not in seen:
                seen.add(f)
                stack.extend(graph.get(f, ()))


def test_core_imports_nothing_above_it():
    for path in sorted((PKG / "ir").rglob("*.py")):
        for target, line in _imports(path):
            assert target.startswith("fixflow.ir") or target in ("fixflow", "fixflow._registry"), \
                f"{path.relative_to(PKG.parent)}:{line} imports {target}"


def test_root_modules_import_nothing_of_the_package():
    for path in sorted(PKG.glob("_*.py")):
        if path.name != "__init__.py":
            assert not _imports(path), f"{path.name} must stay below every level"


def test_the_checker_sees_cycles_and_upward_edges(tmp_path, monkeypatch):
    """The test's own graph walk finds what it must (a fake package with an upward, cyclic import)."""
    fake = tmp_path / "fixflow"
    for folder, text in {"ir": "from ..dialects import x\n", "dialects": "from ..ir import y\n"}.items():
        (fake / folder).mkdir(parents=True)
        (fake / folder / "__init__.py").write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "PKG", fake)
    edges = _edges()
    assert ("ir", "dialects") in edges and ("dialects", "ir") in edges
    with pytest.raises(AssertionError, match="upward imports"):
        test_no_upward_imports()
    with pytest.raises(pytest.fail.Exception, match="cycle"):
        test_no_cycles_between_folders()


def test_parsing_with_the_core_alone_loads_no_dialect_package():
    """At run time too: the core parses and prints without importing graph, fix or dpu."""
    code = ("import sys, fixflow.ir as ir\n"
            "m = ir.parse_module('%0 = \"test.op\"() : () -> tensor<2xf32>', allow_unregistered=True)\n"
            "ir.print_module(m)\n"
            "print(sorted(n for n in sys.modules if n.startswith('fixflow.dialects.')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['fixflow.dialects.builtin']"
