"""Opt-in check of a fix-level module against AMD's functional simulator: `fixflow-compile` it for a target,
run the DPU subgraph on AMD's `sim_run` (FIXFLOW_AMD_TOOLS=<install dir>, docs/amd-reference.md; the
simulator assembles the ac_code and stops unless it equals mc_code) and compare with the fix-level integer
execution and fixflow's interpreter."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from _dpu_testlib import fix_reference

TOOLS = os.environ.get("FIXFLOW_AMD_TOOLS", "")
SIM = Path(TOOLS) / "bin" / "sim_run"
needs_sim = pytest.mark.skipif(not (TOOLS and os.access(SIM, os.X_OK)),
                               reason="AMD's sim_run not configured: set FIXFLOW_AMD_TOOLS=<install dir> "
                                      "(docs/amd-reference.md)")


def compile_and_simulate(m, xs, tmp_path: Path, target: str = "DPUCZDX8G_ISA1_B4096"):
    """Compile `m` with fixflow-compile; for each float input of `xs`, AMD's simulator's output must equal the
    fix-level result and fixflow's interpreter's. Returns the DPU subgraph's mc_code instructions."""
    from fixflow.backends.mc import decode
    from fixflow.backends.xmodel.compiled import read_compiled
    from fixflow.ir import print_module
    from fixflow.runtime.dpu import DPUSubgraph
    from fixflow.tools.compile import main as compile_main
    src = tmp_path / "net.mlir"
    src.write_text(print_module(m))
    assert compile_main(["-x", str(src), "-a", target, "-o", str(tmp_path / "c"), "-n", "net", "--no-progress"]) == 0
    path = tmp_path / "c" / "net.xmodel"
    sg = read_compiled(path).dpu_subgraphs[0]
    dpu = DPUSubgraph.from_xmodel(path, sg.name)
    sim = tmp_path / "sim"
    (sim / "config").mkdir(parents=True)
    (sim / "config" / "SIMCfg.txt").write_text("run_mode:release\ndebug:false\n")
    (sim / ".log").mkdir()
    env = dict(os.environ, LD_LIBRARY_PATH=str(Path(TOOLS) / "lib") + ":" + os.environ.get("LD_LIBRARY_PATH", ""))
    for n, x in enumerate(xs):
        xin, ref = fix_reference(m, x)
        xin = np.ascontiguousarray(xin, dtype=np.int8).reshape(dpu.inputs[0].shape)
        xin.tofile(sim / f"in{n}.bin")
        r = subprocess.run([str(SIM), str(path), f"in{n}.bin", sg.name], cwd=sim, env=env, capture_output=True,
                           text=True, timeout=900)
        assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
        (fname, _), = re.findall(r"^output .* -> (\S+\.bin) \((\d+) bytes\)", r.stdout, re.M)
        got = np.fromfile(sim / fname, dtype=np.int8)
        np.testing.assert_array_equal(got, ref.reshape(-1).astype(np.int8))
        ours = dpu.run([xin], mode="fast")
        np.testing.assert_array_equal(next(iter(ours.values())).reshape(-1), got)
    return decode(dpu.mc_code)
