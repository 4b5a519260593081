"""AMD's own tools judge fixflow's files (opt-in; docs/amd-reference.md).

Skipped unless ``FIXFLOW_AMD_TOOLS`` points at the install directory made by
``/work/shared/tools/amd-reference/build.sh`` (``bin/xir``: AMD's ``xir`` command;
``bin/sim_run``: a driver of AMD VART's functional DPU simulator). The tools are reference
instruments, never dependencies: nothing else in fixflow needs them.

- every zoo model's ``_int.xmodel`` (and the one ``fixflow-quantize`` writes for digits_cnn),
  plus one small file per op type fixflow's exporter emits: AMD's ``xir subgraph``,
  ``dump_txt``, ``dump_reg``, ``svg`` and ``graph`` build the graph without aborting and show
  what fixflow wrote (every op, with its type, and one drawn node per op, one edge per argument);
- compiled xmodels: the AMD-compiled MNIST rewritten by fixflow's compiled-xmodel writer, and
  (hook) every zoo model compiled by ``fixflow-compile`` once that exists;
- AMD's simulator runs the AMD-compiled MNIST from the ``ac_code`` that fixflow's decoder and
  ac writer make of its ``mc_code`` (it assembles the text itself and stops unless it equals
  ``mc_code`` word for word) and gives exactly ``expected_outputs.json``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _amd_files import OP_NETS, op_net_int_xmodel, scalar_const_int_xmodel, zoo_int_xmodel, zoo_names

from _amd_tools_lib import TOOLS, _ops, _tool, check_xir, run_amd
pytestmark = pytest.mark.skipif(
    not TOOLS, reason="AMD's xir/sim_run not configured: set FIXFLOW_AMD_TOOLS=<install dir> (docs/amd-reference.md)")

REF = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "amd-compiled-mnist"
MNIST = REF / "dpu_mnist_classifier.xmodel"
B4096 = "DPUCZDX8G_ISA1_B4096"
#: AMD's simulator reads ./config/SIMCfg.txt: release mode runs the DPU subgraph's own ac_code
SIM_CONFIG = "run_mode:release\ndebug:false\n"


def sim_dir(path: Path) -> Path:
    """`path` set up as the simulator's working directory (its config, and `.log` for its case.cfg)."""
    (path / "config").mkdir(parents=True, exist_ok=True)
    (path / "config" / "SIMCfg.txt").write_text(SIM_CONFIG)
    (path / ".log").mkdir(exist_ok=True)
    return path


# ---- the files -------------------------------------------------------------------------------------
# ---- _int.xmodel -----------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", zoo_names())
def test_zoo_int_xmodel_loads_in_amd_xir(name, tmp_path, tmp_path_factory):
    path = zoo_int_xmodel(name, tmp_path_factory)
    out = check_xir(path, tmp_path)
    assert out["subgraph"].strip() == "root"          # the quantizer does not partition: one leaf root
    assert out["dump_reg"].strip() == ""              # no DPU subgraph, no registers
    assert '"origin" = fixflow' in out["graph"]
    from torch import nn

    from fixflow import zoo
    types = [o.type for o in _ops(path)]
    linears = sum(isinstance(m, nn.Linear) for m in zoo.get_model(name).modules())
    assert "inner-product-fix" not in types and types.count("matmul-fix") == linears


def test_fixflow_quantize_cli_int_xmodel_loads_in_amd_xir(tmp_path):
    """The user's path: fixflow-quantize calib + test on digits_cnn."""
    pytest.importorskip("torch")
    from fixflow.tools.quantize import main
    q = tmp_path / "q"
    for mode in ("calib", "test"):
        assert main(["--model", "digits_cnn", "--data", "digits", "--mode", mode, "--output-dir", str(q)]) in (0, None)
    check_xir(q / "DigitsCNN_int.xmodel", tmp_path)


@pytest.mark.parametrize("key", sorted(OP_NETS))
def test_every_exported_op_type_loads_in_amd_xir(key, tmp_path):
    check_xir(op_net_int_xmodel(key, tmp_path), tmp_path)


def test_scalar_float_constant_loads_in_amd_xir(tmp_path):
    """A CPU op reading a rank-0 float constant (written as XIR `const` of shape [1])."""
    check_xir(scalar_const_int_xmodel(tmp_path), tmp_path)


# ---- compiled xmodels ------------------------------------------------------------------------------
def _mnist_with_fixflow_ac(path: Path) -> Path:
    """The AMD-compiled MNIST read and rewritten by fixflow's compiled-xmodel writer, with `ac_code`
    (fixflow's ac writer on fixflow's decoding of its `mc_code`) on the DPU subgraph."""
    from fixflow.backends.mc import decode, write_ac
    from fixflow.backends.xmodel.compiled import read_compiled, write_compiled
    if not MNIST.exists():
        pytest.skip(f"reference data not found: {MNIST}")
    m = read_compiled(MNIST)
    (dpu,) = m.dpu_subgraphs
    dpu.ac_code = write_ac(decode(dpu.mc_code)).splitlines()
    write_compiled(m, path)
    return path


def test_amd_compiled_mnist_in_amd_xir(tmp_path):
    """The reference itself, as AMD's xir shows it (the baseline for fixflow's compiled files)."""
    if not MNIST.exists():
        pytest.skip(f"reference data not found: {MNIST}")
    out = check_xir(MNIST, tmp_path)
    assert f"[device=DPU,fingerprint=0x101000056010407,DPU={B4096}," in out["subgraph"]
    assert "REG_0 => 712704 bytes md5sum= 94c15707b16260f6cb9a9a682ddb56ba" in out["dump_reg"]


def test_fixflow_written_compiled_mnist_in_amd_xir(tmp_path):
    path = _mnist_with_fixflow_ac(tmp_path / "mnist_fixflow.xmodel")
    out = check_xir(path, tmp_path)
    (tmp_path / "ref").mkdir()
    ref = check_xir(MNIST, tmp_path / "ref")
    # same tree (AMD prints tensor addresses in I=[...]/O=[...]: compare without them)
    strip = lambda s: re.sub(r"0x[0-9a-f]{8,}", "0x?", s)  # noqa: E731
    assert strip(out["subgraph"]) == strip(ref["subgraph"])
    assert out["dump_reg"] == ref["dump_reg"]


def _fixflow_compile_available() -> bool:
    return shutil.which("fixflow-compile") is not None


def _sim_equals_interpreter(path: Path, inputs: list[np.ndarray], cwd: Path) -> None:
    """AMD's simulator (release mode: it assembles each ac_code and checks it against mc_code word for word)
    runs the first DPU subgraph of `path` on each int8 input; its outputs must equal fixflow's interpreter."""
    from fixflow.backends.xmodel.compiled import read_compiled
    from fixflow.runtime.dpu import DPUSubgraph
    sg = read_compiled(path).dpu_subgraphs[0]
    dpu = DPUSubgraph.from_xmodel(path, sg.name)
    sim_dir(cwd)
    for k, x in enumerate(inputs):
        x = np.ascontiguousarray(x, dtype=np.int8).reshape(dpu.inputs[0].shape)
        x.tofile(cwd / f"in{k}.bin")
        stdout = run_amd("sim_run", path, cwd / f"in{k}.bin", sg.name, cwd=cwd)
        assert f"running {sg.name} on the sim-runner" in stdout
        sim = _sim_outputs(stdout, cwd)
        ours = dpu.run([x], mode="fast")
        assert len(sim) == len(ours)
        for t in dpu.outputs:
            np.testing.assert_array_equal(sim[f"{t.name}.bin"], ours[t.name].reshape(-1), err_msg=f"input {k}")


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo_names())
def test_zoo_compiled_xmodel_in_amd_tools(name, tmp_path, tmp_path_factory):
    """Each zoo model's `_int.xmodel` compiled by `fixflow-compile` for B4096 loads in AMD's xir and runs on
    AMD's simulator (whose ac == mc check passes) with the outputs of fixflow's DPU interpreter."""
    if not _fixflow_compile_available():
        pytest.skip("fixflow-compile is not installed (pip install -e .)")
    src = zoo_int_xmodel(name, tmp_path_factory)
    out = tmp_path / "compiled"
    p = subprocess.run(["fixflow-compile", "-x", str(src), "-a", B4096, "-o", str(out), "-n", name, "--no-progress"],
                       capture_output=True, text=True, timeout=900, check=False)
    assert p.returncode == 0, p.stderr
    path = out / f"{name}.xmodel"
    res = check_xir(path, tmp_path)
    assert f"DPU={B4096}" in res["subgraph"] and "reg_id_to_hw_segment" in res["dump_reg"]
    from fixflow.backends.xmodel.compiled import read_compiled
    from fixflow.runtime.dpu import DPUSubgraph
    sg = read_compiled(path).dpu_subgraphs[0]
    shape = DPUSubgraph.from_xmodel(path, sg.name).inputs[0].shape
    rng = np.random.default_rng(0)
    _sim_equals_interpreter(path, [rng.integers(-128, 128, size=shape, dtype=np.int8)], tmp_path / "sim")


def test_fixflow_compiled_digits_on_amd_simulator(tmp_path):
    """The user's flow: fixflow-quantize (calib, test) then fixflow-compile for kv260. AMD's xir loads the file;
    AMD's simulator gives, on real digits test images, the outputs of fixflow's interpreter, which equal the
    fix-level integer execution of the _int.xmodel."""
    pytest.importorskip("torch")
    from fixflow.backends.xmodel.fix_xmodel import read_int_xmodel
    from fixflow.ir.interpreter import run_function
    from fixflow.tools.compile import main as compile_main
    from fixflow.tools.quantize import main as quantize_main
    from fixflow.zoo import load_digits
    q = tmp_path / "q"
    for mode in ("calib", "test"):
        assert quantize_main(["--model", "digits_cnn", "--data", "digits", "--mode", mode, "--output-dir", str(q)]) == 0
    src = q / "DigitsCNN_int.xmodel"
    assert compile_main(["-x", str(src), "-a", "kv260", "-o", str(tmp_path / "c"), "-n", "digits",
                         "--no-progress"]) == 0
    path = tmp_path / "c" / "digits.xmodel"
    res = check_xir(path, tmp_path)
    assert f"DPU={B4096}" in res["subgraph"]
    func = next(op for op in read_int_xmodel(src).body.ops if op.name == "func.func")
    data = next(op for op in func.body.ops if op.name == "fix.data")
    fl = next(op for op in func.body.ops if op.name == "fix.float")
    vals = {}

    def obs(op, ys):
        for r, v in zip(op.results, ys):
            vals[r] = np.asarray(v)
    run_function(func, [load_digits("test", size=28)[0][:5]], obs)
    xin = vals[data.results[0]].astype(np.int8)
    _sim_equals_interpreter(path, list(xin[:, None]), tmp_path / "sim")
    from fixflow.runtime.dpu import DPUSubgraph
    ours = DPUSubgraph.from_xmodel(path).run([xin], mode="fast")["classifier"]
    np.testing.assert_array_equal(ours, vals[fl.operands[0]].astype(np.int8))


# ---- AMD's simulator -------------------------------------------------------------------------------
def _sim_outputs(stdout: str, cwd: Path) -> dict[str, np.ndarray]:
    found = re.findall(r"^output .* -> (\S+\.bin) \((\d+) bytes\)", stdout, re.M)
    assert found, stdout
    outs = {}
    for fname, n in found:
        data = np.fromfile(cwd / fname, dtype=np.int8)
        assert data.size == int(n)
        outs[fname] = data
    return outs


def test_amd_simulator_runs_fixflow_ac_of_amd_mnist(tmp_path):
    """fixflow's ac text of the MNIST program is what AMD's assembler makes `mc_code` from (the simulator
    aborts otherwise), and executing it gives the outputs recorded from AMD's simulator."""
    path = _mnist_with_fixflow_ac(tmp_path / "mnist_ac.xmodel")
    sim_dir(tmp_path)
    expected = json.loads((REF / "expected_outputs.json").read_text())
    assert len(expected) == 5
    for inp, want in sorted(expected.items()):
        stdout = run_amd("sim_run", path, REF / "inputs" / inp, cwd=tmp_path)
        assert "running subgraph_quant_conv2d on the sim-runner" in stdout
        outs = _sim_outputs(stdout, tmp_path)
        assert len(outs) == 1
        got = next(iter(outs.values()))
        assert got[:10].tolist() == want, inp


def _sim_refuses(path: Path, cwd: Path) -> str:
    p = subprocess.run([str(_tool("sim_run")), str(path), str(REF / "inputs" / "in1.bin")], cwd=sim_dir(cwd),
                       capture_output=True, timeout=900)
    assert p.returncode != 0
    return p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")


def test_amd_simulator_checks_ac_against_mc(tmp_path):
    """Controls: AMD's simulator refuses the file without ac_code (as AMD's compiler writes it: release mode
    assembles nothing, 0 words against 4,572 bytes of mc_code) and with one ac field changed, so the test
    above is decided by fixflow's ac text."""
    if not MNIST.exists():
        pytest.skip(f"reference data not found: {MNIST}")
    assert "mc_code size in xmodel not equal to sim-runner generated" in _sim_refuses(MNIST, tmp_path / "a")
    from fixflow.backends.xmodel.compiled import read_compiled, write_compiled
    m = read_compiled(_mnist_with_fixflow_ac(tmp_path / "ok.xmodel"))
    (dpu,) = m.dpu_subgraphs
    first = dpu.ac_code[0].split()
    assert first[0] == "LOAD" and first[-2] == "ddr_addr"
    dpu.ac_code[0] = " ".join(first[:-1] + [str(int(first[-1]) + 16)])
    write_compiled(m, tmp_path / "bad.xmodel")
    msg = _sim_refuses(tmp_path / "bad.xmodel", tmp_path / "b")
    # the LOAD's ddr_addr is its fifth word: AMD's assembler put 16 there, mc_code has 0
    assert "line 4: mc_code in xmodel diff with sim-runner generate one. xmodel is 0x0 while sim-runner is 0x10" in msg


if __name__ == "__main__":   # pragma: no cover
    sys.exit(pytest.main([__file__, "-v"]))
