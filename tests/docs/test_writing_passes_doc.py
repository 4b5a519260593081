"""docs/writing-passes.md runs as written: every code block is executed, a failure names the doc line.

Python blocks run in order in one namespace (with the doc's line numbers in tracebacks), `mlir` blocks
are saved under the file name the text before them gives and run through lit (RUN/CHECK lines), `sh`
blocks run in the same scratch folder, `toml` blocks are installed as a real entry point. The example
plugin examples/plugin/graph_fold_relu.py is also loaded by fixflow-opt and checked on its own.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = ROOT / "docs" / "writing-passes.md"
DOC = DOC_PATH.read_text(encoding="utf-8")
PLUGIN = ROOT / "examples" / "plugin" / "graph_fold_relu.py"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)


def _blocks(lang: str | None = None) -> list[tuple[str, int, str, int]]:
    """(language, first code line number, code, start offset of the fence) of each fenced block."""
    out = []
    for m in FENCE.finditer(DOC):
        line = DOC.count("\n", 0, m.start()) + 2
        if lang is None or m.group(1) == lang:
            out.append((m.group(1), line, m.group(2), m.start()))
    return out


def _mlir_name(fence_start: int) -> str:
    names = re.findall(r"`([\w.-]+\.mlir)`", DOC[:fence_start].rsplit("```", 1)[-1])
    assert names, f"docs/writing-passes.md:{DOC.count(chr(10), 0, fence_start) + 1}: no `name.mlir` before the block"
    return names[-1]


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    """A folder with `examples/` (a link to the repository's), lit's configuration and the doc's .mlir files."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    shutil.copy(ROOT / "tests" / "filecheck" / "lit.cfg.py", tmp_path / "lit.cfg.py")
    for _, _, code, start in _blocks("mlir"):
        (tmp_path / _mlir_name(start)).write_text(code, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run_shell(line: int, code: str, cwd: Path) -> None:
    r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code], cwd=cwd, capture_output=True, text=True,
                       env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"})
    assert r.returncode == 0, f"docs/writing-passes.md:{line}: the sh block failed ({r.returncode}):\n{r.stdout}{r.stderr}"


def test_every_block_runs_in_order(scratch):
    blocks = _blocks()
    langs = {b[0] for b in blocks}
    assert langs <= {"python", "sh", "mlir", "toml"}, f"blocks nobody runs: {langs}"
    assert sum(b[0] == "python" for b in blocks) >= 8
    namespace: dict = {"__name__": "writing_passes_doc"}
    for lang, line, code, _ in blocks:
        if lang == "python":
            try:
                exec(compile("\n" * (line - 1) + code, str(DOC_PATH), "exec"), namespace)  # noqa: S102
            except Exception as e:
                raise AssertionError(f"docs/writing-passes.md:{line}: the python block failed: "
                                     f"{type(e).__name__}: {e}") from e
        elif lang == "sh":
            _run_shell(line, code, scratch)
    # the passes the page defines are registered under the names it uses
    from fixflow.ir.passes import registered_passes
    for name in ("my-simplify-activations", "my-tile", "my-check-strides", "my-count-macs", "my-fold-constant-subgraphs",
                 "fold-relu"):
        assert name in registered_passes()


def test_mlir_blocks_pass_lit(scratch):
    files = [_mlir_name(start) for _, _, _, start in _blocks("mlir")]
    assert files
    for _, line, code, start in _blocks("mlir"):
        assert code.count("// RUN:") >= 1 and "// CHECK" in code, f"docs/writing-passes.md:{line}: no RUN/CHECK"
    r = subprocess.run([sys.executable, "-c", "import sys; from lit.main import main; sys.exit(main())",
                        "-v", "--no-progress-bar", *files], cwd=scratch, capture_output=True, text=True)
    line = _blocks("mlir")[0][1]
    assert r.returncode == 0, f"docs/writing-passes.md:{line}: lit failed:\n{r.stdout}{r.stderr}"
    assert f"Passed: {len(files)}" in r.stdout, r.stdout


def test_toml_block_is_a_working_entry_point(tmp_path):
    """The pyproject snippet, installed as a real distribution's metadata, registers the example's pass."""
    (_, line, code, _), = _blocks("toml")
    eps = tomllib.loads(code)["project"]["entry-points"]["fixflow.passes"]
    site = tmp_path / "site"
    dist = site / "my_fixflow_passes-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-fixflow-passes\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[fixflow.passes]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))
    for target in eps.values():
        module = target.split(":")[0]
        shutil.copy(ROOT / "examples" / "plugin" / f"{module}.py", site / f"{module}.py")
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(site)!r})
        from fixflow.ir.passes import get_pass
        cls = get_pass("fold-relu")
        assert cls.__module__ == "graph_fold_relu", cls.__module__
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "ok", f"docs/writing-passes.md:{line}: {r.stdout}{r.stderr}"


def test_op_table_names_real_classes():
    import fixflow.dialects.graph.ops as ops
    rows = re.findall(r"^\| (`\w+Op`(?:, `\w+Op`)*) \| (`graph\.\w+`(?:, `graph\.\w+`)*) \|", DOC, re.M)
    assert len(rows) >= 8
    for classes, names in rows:
        for cls_name, op_name in zip(re.findall(r"`(\w+)`", classes), re.findall(r"`([\w.]+)`", names), strict=True):
            assert getattr(ops, cls_name).OP_NAME == op_name


def test_rewriter_calls_named_in_the_doc_exist():
    from fixflow.ir.rewrite import PatternRewriter
    for name in set(re.findall(r"`rewriter\.(\w+)\(", DOC)) | set(re.findall(r"rewriter\.(\w+)\(", DOC)):
        assert hasattr(PatternRewriter, name), f"docs/writing-passes.md names rewriter.{name}, which does not exist"


def test_example_plugin_through_fixflow_opt(tmp_path):
    """examples/plugin/graph_fold_relu.py loaded by the fixflow-opt process: --help, the pass, remarks."""
    (_, _, code, start), = _blocks("mlir")
    src = tmp_path / "in.mlir"
    src.write_text(code)
    opt = [sys.executable, "-m", "fixflow.tools.opt", "--load-pass-plugin", str(PLUGIN)]
    r = subprocess.run(opt + ["--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "fold-relu" in r.stdout and "remarks=<bool>" in r.stdout
    r = subprocess.run(opt + [str(src), "-p", "fold-relu{remarks=true}"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count('"graph.relu"') == 1 and "graph.mul" not in r.stdout
    assert f"{src}:13:5: remark: relu of a relu folded" in r.stderr
    assert f"{src}:16:5: remark: multiplication by one removed" in r.stderr
    r = subprocess.run(opt + [str(src), "-p", "fold-relu{remarks=maybe}"], capture_output=True, text=True)
    assert r.returncode == 1 and "option 'remarks' expects bool" in r.stderr and "Traceback" not in r.stderr


def test_example_plugin_keeps_broadcasting_multiplications(tmp_path):
    """x * ones that broadcasts x to a bigger shape is not x: the pattern must leave it alone."""
    from fixflow.ir import parse_module, print_module
    from fixflow.ir.interpreter import run_module
    from fixflow.ir.passes import PassManager, load_pass_plugin
    load_pass_plugin(str(PLUGIN))
    text = """
"builtin.module"() ({
  "func.func"() ({
  ^bb0(%x: tensor<1x1x4x4xf32>):
    %one = "graph.constant"() {value = dense<1.0> : tensor<1x3x1x1xf32>} : () -> tensor<1x3x1x1xf32>
    %two = "graph.constant"() {value = dense<2.0> : tensor<1x1x4x4xf32>} : () -> tensor<1x1x4x4xf32>
    %y = "graph.mul"(%x, %one) : (tensor<1x1x4x4xf32>, tensor<1x3x1x1xf32>) -> tensor<1x3x4x4xf32>
    %z = "graph.mul"(%two, %x) : (tensor<1x1x4x4xf32>, tensor<1x1x4x4xf32>) -> tensor<1x1x4x4xf32>
    "func.return"(%y, %z) : (tensor<1x3x4x4xf32>, tensor<1x1x4x4xf32>) -> ()
  }) {sym_name = "main", function_type = (tensor<1x1x4x4xf32>) -> (tensor<1x3x4x4xf32>, tensor<1x1x4x4xf32>)} : () -> ()
}) : () -> ()
"""
    module = parse_module(text)
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    before = run_module(module, [x])
    PassManager.parse("fold-relu").run(module)
    assert print_module(module).count('"graph.mul"') == 2
    after = run_module(module, [x])
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
