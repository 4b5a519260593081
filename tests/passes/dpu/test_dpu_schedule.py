"""dpdon/dpdby: the scheduler's flags pass the checker; the checker catches broken schedules
(a missing token pair = a hazard, a cycle of waits = deadlock, an unconsumed or self token)."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

from _dpu_testlib import compile_module, conv_ops, module_with, pool_ops
from fixflow.ir import parse_module, print_module
from fixflow.ir.diagnostics import FixflowError
from fixflow.ir.passes import PassManager
from fixflow.passes.dpu.codegen import Arch
from fixflow.passes.dpu.program import load_programs
from fixflow.passes.dpu.schedule import (CONV_U, LOAD_U, MISC_U, SAVE_U, Geometry, ScheduleError, check, schedule,
                                         unit)


@pytest.fixture(scope="module")
def program():
    rng = np.random.default_rng(0)

    def build(x):
        ops = conv_ops(x, rng, 20, (3, 3), pad=(1, 1, 1, 1), act="RELU", name="c1")
        ops += pool_ops(ops[-1].results[0], "MAX", (2, 2), (2, 2), name="p1")
        ops += conv_ops(ops[-1].results[0], rng, 12, (3, 3), pad=(1, 1, 1, 1), act="RELU", fps=(7, 6, 3),
                        name="c2")
        return ops

    m = module_with((1, 20, 18, 3), 5, build)
    compile_module(m, "DPUCZDX8G_ISA1_B1024", tiling="c1:8:9")
    (prog,) = load_programs(m)
    return m, prog


def _geom(prog):
    return Geometry.of(Arch.of(prog.target))


def test_scheduled_program_is_safe(program):
    _, prog = program
    stats = check(prog.instructions, _geom(prog))
    assert sum(stats.values()) == len(prog.instructions)
    flagged = [i for i in prog.instructions if i.dpdon or i.dpdby]
    assert flagged, "a program with several units needs tokens"
    # overlap is possible: not every LOAD waits (the next band's LOADs run under the current CONVs)
    assert any(i.name == "LOAD" and not i.dpdon & ~(1 << LOAD_U) for i in prog.instructions[1:])
    # AMD's convention: every instruction carries its own unit's bit in both masks
    assert all(i.dpdon >> unit(i) & 1 and i.dpdby >> unit(i) & 1 for i in prog.instructions)


def _first(instrs, pred):
    return next(k for k, i in enumerate(instrs) if pred(i))


def test_missing_token_pair_is_a_hazard(program):
    _, prog = program
    bad = copy.deepcopy(prog.instructions)
    j = _first(bad, lambda i: i.name == "CONV" and i.dpdon >> LOAD_U & 1)
    p = max(k for k in range(j) if unit(bad[k]) == LOAD_U and bad[k].dpdby >> CONV_U & 1)
    bad[j].dpdon &= ~(1 << LOAD_U)
    bad[p].dpdby &= ~(1 << CONV_U)
    with pytest.raises(ScheduleError, match=r"read-after-write hazard on bank \d+ line \d+: instruction \d+ \(CONV\)"):
        check(bad, _geom(prog))


def test_write_after_read_hazard(program):
    _, prog = program
    bad = copy.deepcopy(prog.instructions)
    # a LOAD that waits for a SAVE or CONV before overwriting banks: drop its wait and the matching signal
    j = _first(bad, lambda i: i.name == "LOAD" and i.dpdon & ~(1 << LOAD_U))
    a = next(u for u in range(4) if u != LOAD_U and bad[j].dpdon >> u & 1)
    p = max(k for k in range(j) if unit(bad[k]) == a and bad[k].dpdby >> LOAD_U & 1)
    bad[j].dpdon &= ~(1 << a)
    bad[p].dpdby &= ~(1 << LOAD_U)
    with pytest.raises(ScheduleError, match="hazard"):
        check(bad, _geom(prog))


def test_deadlock_is_caught(program):
    _, prog = program
    bad = copy.deepcopy(prog.instructions)
    c = _first(bad, lambda i: i.name == "CONV" and i.dpdon >> LOAD_U & 1)
    bad[0].dpdon |= 1 << CONV_U       # the first LOAD waits for the CONV ...
    bad[c].dpdby |= 1 << LOAD_U       # ... which waits for a later LOAD
    with pytest.raises(ScheduleError, match="deadlock: LOAD at instruction 0"):
        check(bad, _geom(prog))


def test_unbalanced_and_self_tokens(program):
    _, prog = program
    bad = copy.deepcopy(prog.instructions)
    k = _first(bad, lambda i: i.name == "ALU")
    bad[k].dpdby |= 1 << SAVE_U
    bad[-1].dpdon = 1 << SAVE_U
    with pytest.raises(ScheduleError, match="never consumed|hazard"):
        check(bad, _geom(prog))
    bad = copy.deepcopy(prog.instructions)
    bad[k].dpdon &= ~(1 << MISC_U)
    with pytest.raises(ScheduleError, match=r"instruction \d+ \(ALU\) sets its own unit's bit as dpdon 0 / dpdby 1"):
        check(bad, _geom(prog))


def test_without_own_unit_bits(program):
    _, prog = program
    bare = copy.deepcopy(prog.instructions)
    schedule(bare, _geom(prog), own_unit_bits=False)
    assert all(not (i.dpdon >> unit(i) & 1 or i.dpdby >> unit(i) & 1) for i in bare)
    assert [(i.dpdon & ~(1 << unit(i)), i.dpdby & ~(1 << unit(i))) for i in prog.instructions] == \
        [(i.dpdon, i.dpdby) for i in bare]
    check(bare, _geom(prog))


def test_amd_compiled_mnist_schedule_passes_the_checker():
    """AMD's own B4096 program obeys the same model: cross-unit tokens balance, no deadlock, no hazard
    on any bank line or DDR block (an independent check of the footprints and of the token semantics)."""
    from pathlib import Path
    from fixflow.backends.mc import decode
    from fixflow.backends.xmodel.serial import read_xmodel
    from fixflow.target import get_target
    path = Path("/work/shared/reference/amd-compiled-mnist/dpu_mnist_classifier.xmodel")
    if not path.exists():
        pytest.skip("the AMD reference program is not available")
    g = read_xmodel(path)
    dpu = next(s for s in g.root.walk() if s.attr("device") == "DPU")
    instrs = decode(dpu.attr("mc_code"))
    geom = Geometry.of(Arch.of(get_target("DPUCZDX8G_ISA1_B4096")))
    stats = check(instrs, geom)
    assert sum(stats.values()) == 230
    k = _first(instrs, lambda i: i.name == "CONV" and i.dpdon >> LOAD_U & 1)   # and the checker has teeth
    p = max(q for q in range(k) if unit(instrs[q]) == LOAD_U and instrs[q].dpdby >> CONV_U & 1)
    instrs[k].dpdon &= ~(1 << LOAD_U)
    instrs[p].dpdby &= ~(1 << CONV_U)
    with pytest.raises(ScheduleError, match="read-after-write hazard"):
        check(instrs, geom)


def test_rescheduling_is_idempotent(program):
    _, prog = program
    again = copy.deepcopy(prog.instructions)
    schedule(again, _geom(prog))
    assert [(i.dpdon, i.dpdby) for i in again] == [(i.dpdon, i.dpdby) for i in prog.instructions]


def test_verify_pass_on_edited_text(program):
    m, _ = program
    text = print_module(m)
    PassManager.parse("verify-dpu-schedule").run(parse_module(text))
    # drop every LOAD -> CONV token (both ends): the pass reports the hazard at the program
    def edit(ln):
        if '"dpu.conv"' in ln:
            return re.sub(r"dpdon = (\d+)", lambda g: f"dpdon = {int(g.group(1)) & ~1}", ln)
        if '"dpu.load"' in ln:
            return re.sub(r"dpdby = (\d+)", lambda g: f"dpdby = {int(g.group(1)) & ~4}", ln)
        return ln

    edited = parse_module("\n".join(edit(ln) for ln in text.splitlines()))
    with pytest.raises(FixflowError, match=r"dpu.program @subgraph_c1: read-after-write hazard on bank"):
        PassManager.parse("verify-dpu-schedule").run(edited)
