"""fixflow-opt with mlir-opt's habits: eliding large data (--mlir-elide-*), IR printed during a pipeline
elided by default, --print-ir-after-change, --mlir-pass-statistics, --dump-pass-pipeline and nested
--mlir-timing, in mlir-opt-22's formats (compared with the real tool when it is installed)."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from fixflow.ir import parse_module, print_module
from fixflow.ir.attributes import DenseResourceElementsAttr
from fixflow.tools.opt import main as opt_main

MLIR_OPT = shutil.which("mlir-opt-22")
needs_mlir = pytest.mark.skipif(MLIR_OPT is None, reason="mlir-opt-22 (Debian mlir-22-tools) is not installed")

FUNCS = '''"builtin.module"() ({
  "func.func"() ({
  ^bb0(%a: i32):
    %0 = "arith.addi"(%a, %a) : (i32, i32) -> i32
    %1 = "arith.addi"(%a, %a) : (i32, i32) -> i32
    %2 = "arith.muli"(%0, %1) : (i32, i32) -> i32
    "func.return"(%2) : (i32) -> ()
  }) {function_type = (i32) -> i32, sym_name = "f"} : () -> ()
}) : () -> ()
'''
PIPELINE = "builtin.module(func.func(canonicalize,cse),symbol-dce)"


@pytest.fixture
def weights_file(tmp_path):
    """A small graph with a 64x64 weight blob (16 KiB of data, 32 KiB of hex)."""
    from _lib.graph import GraphBuilder
    from fixflow.dialects import graph as G
    g = GraphBuilder([(1, 64)])
    w = g.w("fc.weight", np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32))
    b = g.w("fc.bias", np.zeros(64, np.float32))
    f = tmp_path / "w.mlir"
    f.write_text(print_module(g.ret(g.op(G.LinearOp, g.args[0], w, b))))
    return f


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = opt_main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_print_ir_after_all_elides_weights_by_default(weights_file, capsys):
    full = weights_file.stat().st_size
    code, out, err = _run(capsys, weights_file, "-p", "canonicalize,cse", "--print-ir-after-all")
    assert code == 0 and err.count("// -----// IR Dump After") == 2
    assert "dense_resource<fc.weight>" in err and "0x04000000" not in err
    assert len(err) < full / 4            # two dumps, neither holds the weights
    assert "0x04000000" in out            # the output itself is complete
    code, _, err = _run(capsys, weights_file, "-p", "canonicalize,cse", "--print-ir-after-all", "--print-ir-no-elide")
    assert err.count("fc.weight: \"0x04000000") == 2   # the option restores full printing
    code, _, err = _run(capsys, weights_file, "-p", "cse", "--mlir-print-ir-before-all",
                        "--mlir-elide-resource-strings-if-larger=100000")
    assert "IR Dump Before cse" in err and "0x04000000" in err   # an explicit limit is used as given


def test_elide_flags_on_the_output(weights_file, capsys):
    code, out, _ = _run(capsys, weights_file, "--mlir-elide-resource-strings-if-larger=64")
    assert code == 0 and "dense_resource<fc.weight>" in out and "dialect_resources" not in out
    code, out, _ = _run(capsys, weights_file, "--mlir-elide-resource-strings-if-larger=1000000")
    assert "fc.weight: \"0x04000000" in out
    m = parse_module(FUNCS)
    m.attributes["d"] = DenseResourceElementsAttr.from_array("d", np.arange(4, dtype=np.int32))
    code, out, err = _run(capsys, weights_file, "--mlir-elide-elementsattrs-if-larger=-1")
    assert code == 1 and "needs a number >= 0" in err and "Traceback" not in err


def test_reading_elided_output_back_is_a_clear_error(weights_file, tmp_path, capsys):
    elided = tmp_path / "elided.mlir"
    assert _run(capsys, weights_file, "--mlir-elide-resource-strings-if-larger=64", "-o", elided)[0] == 0
    code, _, err = _run(capsys, elided, "-p", "canonicalize")
    assert code == 1 and "dense_resource<fc.weight> has no data" in err and "internal error" not in err


def test_print_ir_after_change(tmp_path, capsys):
    f = tmp_path / "f.mlir"
    f.write_text(FUNCS)
    code, _, err = _run(capsys, f, "-p", "cse,dce,cse", "--print-ir-after-all", "--print-ir-after-change")
    assert code == 0 and re.findall(r"IR Dump After (\S+)", err) == ["cse"]
    code, _, err = _run(capsys, f, "-p", "cse,dce,cse", "--mlir-print-ir-after=cse", "--mlir-print-ir-after-change")
    assert re.findall(r"IR Dump After (\S+)", err) == ["cse"]


def test_pass_statistics_and_pipeline_dump(tmp_path, capsys):
    f = tmp_path / "f.mlir"
    f.write_text(FUNCS)
    code, _, err = _run(capsys, f, "-p", PIPELINE, "--mlir-pass-statistics", "--dump-pass-pipeline")
    assert code == 0
    assert err.startswith("Pass Manager with 2 passes:\nbuiltin.module(\n  func.func(\n    canonicalize{")
    assert "'func.func' Pipeline\n  canonicalize\n  cse\n    (S) 1 num-cse'd - Number of operations CSE'd\nsymbol-dce\n" in err
    code, _, err = _run(capsys, f, "-p", PIPELINE, "--mlir-pass-statistics", "--mlir-pass-statistics-display=list")
    assert "\ncanonicalize\ncse\n  (S) 1 num-cse'd - Number of operations CSE'd\nsymbol-dce\n" in err


# a timing row: (user time column, shown by mlir-opt when it differs from the wall time), wall time, name
_ROW = re.compile(r"^(?:  +\d+\.\d{4} \( *\d+\.\d%\))?  +\d+\.\d{4} \( *\d+\.\d%\)  (.*)$")


def _timing_names(err: str) -> list[str]:
    start = err.index("... Execution time report ...")
    return [m.group(1) for line in err[start:].splitlines() if (m := _ROW.match(line))]


def test_timing_nests_pipelines(tmp_path, capsys):
    f = tmp_path / "f.mlir"
    f.write_text(FUNCS)
    code, _, err = _run(capsys, f, "-p", PIPELINE, "--mlir-timing")
    assert code == 0
    assert _timing_names(err) == ["Parser", "'func.func' Pipeline", "  canonicalize", "  cse", "symbol-dce",
                                  "(V) verifier", "Output", "Rest", "Total"]


def _shape(lines: list[str]) -> list[str]:
    """The report without numbers and pass names: what fixflow-opt and mlir-opt must share."""
    out = []
    for line in lines:
        m = _ROW.match(line)
        if m:
            name = m.group(1)
            depth = (len(name) - len(name.lstrip())) // 2
            kept = name.strip() if name.strip() in ("Parser", "Output", "Rest", "Total") or "Pipeline" in name \
                or name.strip().startswith(("(A)", "(V)")) else "PASS"
            out.append("  " * depth + kept)
        else:
            out.append(re.sub(r"\d+\.\d+", "N", line.replace("  ----User Time----", "")))
    return out


@needs_mlir
def test_timing_and_pipeline_dump_shaped_as_mlir_opt(tmp_path, capsys):
    f = tmp_path / "f.mlir"
    f.write_text(FUNCS)
    r = subprocess.run([MLIR_OPT, str(f), f"--pass-pipeline={PIPELINE}", "--mlir-timing", "--dump-pass-pipeline",
                        "-o", "/dev/null"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    code, _, err = _run(capsys, f, "-p", PIPELINE, "--mlir-timing", "--dump-pass-pipeline")
    assert code == 0
    theirs = _shape(r.stderr.splitlines())
    # mlir-opt shows analyses (A); fixflow shows its verifier (V) (mlir-opt's runs inside its passes)
    theirs = [line for line in theirs if "(A)" not in line]
    ours = [line for line in _shape(err.splitlines()) if "(V) verifier" not in line]

    def options_aside(line: str) -> str:  # fixflow's passes have their own options
        return re.sub(r"\{.*\}", "{...}", line)
    assert [options_aside(x) for x in ours] == [options_aside(x) for x in theirs]


@needs_mlir
def test_mlir_opt_accepts_the_dumped_pipeline(tmp_path, capsys):
    """fixflow-opt's pipeline text (nests kept) reads back in fixflow and has the syntax mlir-opt reads."""
    f = tmp_path / "f.mlir"
    f.write_text(FUNCS)
    code, _, err = _run(capsys, f, "-p", "func.func(cse),symbol-dce", "--dump-pass-pipeline")
    text = "".join(line.strip() for line in err.splitlines()[1:] if line.strip())
    assert text == "builtin.module(func.func(cse),symbol-dce)"
    r = subprocess.run([MLIR_OPT, str(f), f"--pass-pipeline={text}"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
