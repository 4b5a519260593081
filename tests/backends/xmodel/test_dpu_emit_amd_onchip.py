"""Opt-in (FIXFLOW_AMD_TOOLS): compiled files with on-chip super-layers in AMD's own tools. A chain whose
every intermediate stays on chip (no REG_1 at all) and a residual block whose conv fuses with its add
(location-0 tensors, one child each) load in AMD's xir and run on AMD's simulator with the outputs of
fixflow's interpreter."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

_TESTS = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(_TESTS / "passes" / "dpu"))
sys.path.insert(0, str(_TESTS / "reference"))
from _amd_tools_lib import TOOLS, check_xir
from _dpu_testlib import FT, compile_module, conv_ops, module_with, pool_ops

from fixflow.backends.xmodel.dpu_emit import emit_compiled
from fixflow.backends.xmodel.vaic import write_compiler_outputs
from fixflow.dialects.fix import ops as Q

pytestmark = pytest.mark.skipif(
    not TOOLS, reason="AMD's xir/sim_run not configured: set FIXFLOW_AMD_TOOLS=<install dir> (docs/amd-reference.md)")


def _chain(x, rng):
    ops = conv_ops(x, rng, 24, (3, 3), pad=(1, 1, 1, 1), act="RELU", fps=(7, 6, 4), name="c1")
    ops += conv_ops(ops[-1].results[0], rng, 32, (3, 3), (2, 2), (1, 1, 1, 1), "RELU", (7, 6, 4), name="c2")
    ops += pool_ops(ops[-1].results[0], "MAX", (2, 2), (2, 2), name="p")
    return ops + conv_ops(ops[-1].results[0], rng, 16, (1, 1), act="NONE", fps=(7, 6, 3), name="c3")


def _residual(x, rng):
    ops = conv_ops(x, rng, 16, (3, 3), pad=(1, 1, 1, 1), act="RELU", fps=(7, 6, 4), name="a")
    ops += conv_ops(ops[-1].results[0], rng, 16, (1, 1), fps=(7, 6, 4), name="b")
    e = Q.EltwiseOp.build([ops[-1].results[0], ops[2].results[0]], type="ADD", nonlinear="RELU",
                          result_types=[FT(tuple(ops[2].results[0].type.shape), 8, 3)])
    e.results[0].name_hint = "add"
    return ops + [e]


@pytest.mark.parametrize("build", [_chain, _residual], ids=["chain", "residual"])
def test_on_chip_super_layers_in_amd_tools(build, tmp_path):
    from test_amd_tools import _sim_equals_interpreter
    rng = np.random.default_rng(7)
    m = module_with((1, 16, 16, 8), 5, lambda x: build(x, rng))
    compile_module(m, "DPUCZDX8G_ISA1_B4096")
    cm = emit_compiled(m, "onchip")
    (sg,) = cm.dpu_subgraphs
    on_chip = [o.name for o in cm.ops if o.output.attrs.get("location") is not None
               and o.output.attr("location") == 0]
    if build is _chain:               # one super-layer; nothing in DDR between the input and the output
        assert on_chip == ["c1", "c2", "p"] and [c.kind for c in sg.children] == ["upload", "code", "download"]
        assert 1 not in {r.reg_id for r in sg.regions}
    else:                             # a -> b -> add(b, a): b fused with the add, a read by both in DDR
        assert on_chip == ["b"] and any({"b", "add"} <= set(c.op_names) for c in sg.children)
    write_compiler_outputs(cm, tmp_path, "onchip")
    path = tmp_path / "onchip.xmodel"
    check_xir(path, tmp_path)
    _sim_equals_interpreter(path, [rng.integers(-128, 128, size=(1, 16, 16, 8), dtype=np.int8)], tmp_path / "sim")
