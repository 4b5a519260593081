"""The DPU compiler's passes from the shell: `fixflow-opt` lists them, runs the pipeline on text IR
(the printed result parses and re-verifies), and reports user errors as one located line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from _dpu_testlib import conv_ops, module_with, pool_ops
from fixflow.ir import parse_module, print_module
from fixflow.ir.passes import PassManager
from fixflow.passes.dpu.program import load_programs

PIPELINE = "partition{target=DPUCZDX8G_ISA1_B1024},allocate-ddr,lower-to-dpu,schedule-dpu,verify-dpu-schedule"


def _opt(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "fixflow.tools.opt", *args], input=stdin, capture_output=True,
                          text=True)


def _small_text():
    rng = np.random.default_rng(0)

    def build(x):
        ops = conv_ops(x, rng, 12, (3, 3), pad=(1, 1, 1, 1), act="RELU", name="c1")
        return ops + pool_ops(ops[-1].results[0], "MAX", (2, 2), (2, 2), name="p1")

    return print_module(module_with((1, 10, 10, 3), 5, build))


def test_help_lists_the_passes():
    out = _opt("--help").stdout
    for name in ("partition", "allocate-ddr", "lower-to-dpu", "schedule-dpu", "verify-dpu-schedule"):
        assert name in out


def test_pipeline_from_the_shell(tmp_path):
    src = tmp_path / "net.mlir"
    src.write_text(_small_text())
    out = tmp_path / "net.dpu.mlir"
    proc = _opt(str(src), "-p", PIPELINE, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert '"dpu.program"' in text and 'target = "DPUCZDX8G_ISA1_B1024"' in text
    m = parse_module(text)
    PassManager.parse("verify-dpu-schedule").run(m)
    (prog,) = load_programs(m)
    assert prog.instructions[-1].name == "END"
    # the same pipeline in Python gives the same program
    m2 = parse_module(_small_text())
    PassManager.parse(PIPELINE).run(m2)
    assert print_module(m2).strip() == text.strip()


def test_tiling_option_changes_the_program(tmp_path):
    src = tmp_path / "net.mlir"
    src.write_text(_small_text())
    a = _opt(str(src), "-p", PIPELINE)
    b = _opt(str(src), "-p", PIPELINE.replace("lower-to-dpu", "lower-to-dpu{tiling=c1:8:3}"))
    assert a.returncode == 0 and b.returncode == 0, b.stderr
    convs = lambda t: t.count('"dpu.conv"')
    assert convs(b.stdout) > convs(a.stdout)           # 4 column tiles instead of 1


def test_errors_are_one_located_line(tmp_path):
    src = tmp_path / "net.mlir"
    src.write_text(_small_text())
    proc = _opt(str(src), "-p", "allocate-ddr")
    assert proc.returncode == 1
    assert "run 'partition' first" in proc.stderr and "Traceback" not in proc.stderr
    proc = _opt(str(src), "-p", "partition{target=DPUCZDX8G_ISA1_B123}")
    assert proc.returncode == 1 and "B123" in proc.stderr and "Traceback" not in proc.stderr
    proc = _opt(str(src), "-p", "partition,allocate-ddr,lower-to-dpu{tiling=c1:x:2}")
    assert proc.returncode == 1 and "rows and cols must be integers" in proc.stderr
    assert "Traceback" not in proc.stderr
