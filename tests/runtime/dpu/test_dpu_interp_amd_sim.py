"""Opt-in: the interpreter against AMD's functional DPU simulator (VART sim-runner via the `sim_run`
driver of ../shared/tools/amd-reference/). Runs only when FIXFLOW_AMD_TOOLS points at the install
(the folder holding bin/sim_run); the simulator is never a dependency of fixflow.

The simulator executes `ac_code` only, so each case attaches the program as AC text (and as mc_code,
which the simulator re-assembles and compares word for word) to the first super-layer child of a copy
of AMD's compiled MNIST model,
whose output tensor is widened to the whole REG_3 for the random programs."""

import os
import subprocess

import numpy as np
import pytest

from _dpu_interp_lib import random_program
from fixflow.backends.mc import decode, encode, format_instruction
from fixflow.backends.xmodel import XAttr, read_xmodel, write_xmodel
from fixflow.runtime.dpu import DPUExecError, DPUInterpreter, DPUSubgraph

TOOLS = os.environ.get("FIXFLOW_AMD_TOOLS", "")
SIM = os.path.join(TOOLS, "bin", "sim_run")
MNIST = "/work/shared/reference/amd-compiled-mnist"
pytestmark = [pytest.mark.skipif(not (TOOLS and os.access(SIM, os.X_OK)),
                                 reason="FIXFLOW_AMD_TOOLS does not point at an install with bin/sim_run"),
              pytest.mark.skipif(not os.path.isdir(MNIST), reason="shared reference data not found"),
              pytest.mark.slow]
OUT_NAME = "quant_dense_1_softmax_fix"


def sim_run(tmp_path, graph, x: np.ndarray, n_out: int) -> np.ndarray:
    write_xmodel(graph, str(tmp_path / "m.xmodel"))
    x.astype(np.int8).tofile(tmp_path / "in.bin")
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(TOOLS, "lib") + ":" + os.environ.get("LD_LIBRARY_PATH", ""))
    r = subprocess.run([SIM, "m.xmodel", "in.bin"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = np.fromfile(tmp_path / f"{OUT_NAME}.bin", dtype=np.int8)
    assert out.size == n_out
    return out


def mnist_graph(program=None, const: np.ndarray | None = None, n_out: int = 10):
    g = read_xmodel(os.path.join(MNIST, "dpu_mnist_classifier.xmodel"))
    dpu = next(s for s in g.root.walk() if s.device == "DPU")
    if program is None:
        program = decode(dpu.attr("mc_code"))
    else:
        dpu.set_attr("mc_code", XAttr("bytes", encode(program)))
    # the simulator runs the children in children_topological_sort order, each child's own ac_code:
    # the whole program goes on the first child (with its mc_code, which the simulator checks)
    first = next(c for c in dpu.children if c.name == dpu.attr("children_topological_sort")[0])
    first.set_attr("ac_code", XAttr("string_vec", [format_instruction(i) for i in program]))
    first.set_attr("mc_code", XAttr("bytes", encode(program)))
    if const is not None:
        dpu.set_attr("reg_id_to_parameter_value", XAttr("map_string_2_bytes", {"REG_0": const.tobytes()}))
        sizes = {"REG_0": const.size, "REG_1": 4096, "REG_2": 784, "REG_3": n_out}
        dpu.set_attr("reg_id_to_size", XAttr("map_string_2_int32", sizes))
    if n_out != 10:
        ops = g.op_map()
        for op in g.ops[-4:]:
            op.output.shape = [1, n_out]
            if "stride" in op.output.attrs:
                op.output.attrs["stride"] = XAttr("int32_vec", [n_out, 1])
        ops["quant_dense_1(TransferMatMulToConv2d)_inserted_fix_3_reshaped"].attrs["shape"] = \
            XAttr("int32_vec", [1, n_out])
        ops["quant_dense_1(TransferMatMulToConv2d)"].output.shape = [1, 1, 1, n_out]
    return g


@pytest.mark.parametrize("k", range(5))
def test_mnist_inputs_equal_the_simulator(tmp_path, k):
    x = np.fromfile(os.path.join(MNIST, "inputs", f"in{k}.bin"), dtype=np.int8)
    want = sim_run(tmp_path, mnist_graph(), x, 10)
    dpu = DPUSubgraph.from_xmodel(os.path.join(MNIST, "dpu_mnist_classifier.xmodel"))
    for mode in ("reference", "fast"):
        np.testing.assert_array_equal(dpu.run([x.reshape(1, 28, 28, 1)], mode=mode)[OUT_NAME][0], want)


DUMP_LINES = 128


def with_bank_dump(program, machine, at: int):
    """The program (without its END), then SAVEs of lines 0..DUMP_LINES-1 of every feature-map bank into
    REG_3 from byte `at` on, then END: the comparison sees the banks, not only what the program saved."""
    from _dpu_interp_lib import I
    body = [i for i in program if i.name != "END"]
    for b in range(machine.convw_base):
        body.append(I("SAVE", bank_id=b, bank_addr=0, jump_read=1, jump_write=machine.icp, channel=machine.icp,
                      length=DUMP_LINES, reg_id=3, ddr_addr=at + b * DUMP_LINES * machine.icp))
    return body + [I("END")]


@pytest.mark.parametrize("target,seed", [("DPUCZDX8G_ISA1_B4096", s) for s in range(6)]
                         + [(t, s) for t in ("DPUCZDX8G_ISA1_B512", "DPUCZDX8G_ISA1_B1152") for s in range(3)])
def test_random_programs_equal_the_simulator(tmp_path, target, seed):
    from fixflow.runtime.dpu import Machine
    from fixflow.target import get_target
    rng = np.random.default_rng(500 + seed)
    m = Machine.from_target(target)
    n_out = 4096 + m.convw_base * DUMP_LINES * m.icp
    sizes = {0: 8192, 1: 4096, 2: 784, 3: n_out}
    program = with_bank_dump(random_program(rng, n=50, sizes={**sizes, 3: 4096}, target=target,
                                            lines=DUMP_LINES), m, 4096)
    const = rng.integers(-128, 128, sizes[0]).astype(np.int8)
    x = rng.integers(-128, 128, 784).astype(np.int8)
    regions = {0: const, 1: np.zeros(4096, np.int8), 2: x, 3: np.zeros(n_out, np.int8)}
    try:
        ours = DPUInterpreter(target, program, regions, mode="reference").run()[3]
    except DPUExecError:
        pytest.skip("this random program is not executable")
    fast = DPUInterpreter(target, program, regions, mode="fast").run()[3]
    np.testing.assert_array_equal(ours, fast)
    assert np.count_nonzero(ours) > 200                    # the comparison is not only about zeros
    g = mnist_graph(program, const, n_out)
    dpu = next(s for s in g.root.walk() if s.device == "DPU")
    t = get_target(target)
    dpu.set_attr("dpu_fingerprint", XAttr("uint64", t.fingerprint))
    dpu.set_attr("dpu_name", XAttr("string", t.name))
    np.testing.assert_array_equal(ours, sim_run(tmp_path, g, x, n_out))
