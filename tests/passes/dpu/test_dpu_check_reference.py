"""The vectorized checker against a brute-force reference: on a compiled program (concat by placement,
pool, convs) with random whole tokens (sender and taker flag) removed or random single flags cleared, `check` raises exactly when
the reference finds a deadlock, unbalanced tokens, or two conflicting instructions on different units
that no chain of program order and tokens orders (every pair compared, happens-before as bit sets)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from _dpu_testlib import FT, compile_module, conv_ops, module_with, pool_ops
from fixflow.dialects.fix import ops as Q
from fixflow.passes.dpu.codegen import Arch
from fixflow.passes.dpu.program import load_programs
from fixflow.passes.dpu.schedule import Geometry, ScheduleError, check, footprints, unit


@pytest.fixture(scope="module")
def program():
    rng = np.random.default_rng(3)

    def build(x):
        a = conv_ops(x, rng, 10, (1, 1), act="RELU", fps=(7, 6, 4), name="a")
        b = conv_ops(x, rng, 6, (3, 3), pad=(1, 1, 1, 1), act="RELU", fps=(7, 6, 4), name="b")
        cat = Q.ConcatOp.build([a[-1].results[0], b[-1].results[0]], axis=3, result_types=[FT((1, 10, 9, 16), 8, 4)])
        cat.results[0].name_hint = "cat"
        p = pool_ops(cat.results[0], "MAX", (2, 2), (2, 2), name="p")
        return a + b + [cat] + p + conv_ops(p[-1].results[0], rng, 5, (3, 3), pad=(1, 1, 1, 1), fps=(7, 6, 3))

    m = module_with((1, 10, 9, 4), 4, build)
    compile_module(m, "DPUCZDX8G_ISA1_B512", tiling="a:4:5,b:4:")
    (prog,) = load_programs(m)
    g = Geometry.of(Arch.of(prog.target))
    return prog.instructions, g, footprints(prog.instructions, g)


def reference_ok(instrs, fps) -> bool:
    n = len(instrs)
    units = [unit(i) for i in instrs]
    dpdon = [i.dpdon & ~(1 << u) for i, u in zip(instrs, units)]
    dpdby = [i.dpdby & ~(1 << u) for i, u in zip(instrs, units)]
    preds: list[list[int]] = [[] for _ in range(n)]
    last = [-1] * 4
    for j in range(n):
        if last[units[j]] >= 0:
            preds[j].append(last[units[j]])
        last[units[j]] = j
    for a in range(4):
        for b in range(4):
            senders = [j for j in range(n) if units[j] == a and dpdby[j] >> b & 1]
            takers = [j for j in range(n) if units[j] == b and dpdon[j] >> a & 1]
            if len(senders) != len(takers):
                return False
            for s, t in zip(senders, takers):
                preds[t].append(s)
    # happens-before as bit sets over a topological order (Kahn); a cycle is a deadlock
    succ: list[list[int]] = [[] for _ in range(n)]
    indeg = [len(p) for p in preds]
    for j, ps in enumerate(preds):
        for p in ps:
            succ[p].append(j)
    ready = [j for j in range(n) if indeg[j] == 0]
    anc = [0] * n
    seen = 0
    while ready:
        j = ready.pop()
        seen += 1
        for p in preds[j]:
            anc[j] |= anc[p] | (1 << p)
        for s in succ[j]:
            indeg[s] -= 1
            if indeg[s] == 0:
                ready.append(s)
    if seen != n:
        return False
    rs = [set(r.tolist()) for r in fps.reads]
    ws = [set(w.tolist()) for w in fps.writes]
    for j in range(n):
        for i in range(j):
            if units[i] == units[j]:
                continue
            if (ws[i] & (rs[j] | ws[j]) or rs[i] & ws[j]) and not anc[j] >> i & 1:
                return False
    return True


def _checker_ok(instrs, g) -> bool:
    try:
        check(instrs, g)
        return True
    except ScheduleError:
        return False


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.data())
def test_checker_equals_reference(program, data):
    instrs, g, fps = program
    instrs = copy.deepcopy(instrs)
    units = [unit(i) for i in instrs]
    for _ in range(data.draw(st.integers(0, 3), label="edits")):
        j = data.draw(st.integers(0, len(instrs) - 1), label="instruction")
        cross = [b for b in range(4) if b != units[j] and (instrs[j].dpdon | instrs[j].dpdby) >> b & 1]
        if not cross:
            continue
        b = data.draw(st.sampled_from(cross), label="unit bit")
        which = data.draw(st.sampled_from(["dpdon", "dpdby", "pair"]), label="mask")
        if which != "pair":
            setattr(instrs[j], which, getattr(instrs[j], which) & ~(1 << b))
            continue
        # a whole token (balanced): instruction j's k-th token to unit b and its k-th taker there
        a = units[j]
        senders = [i for i in range(len(instrs)) if units[i] == a and instrs[i].dpdby >> b & 1]
        takers = [i for i in range(len(instrs)) if units[i] == b and instrs[i].dpdon >> a & 1]
        if j in senders and len(senders) == len(takers):
            k = senders.index(j)
            instrs[j].dpdby &= ~(1 << b)
            instrs[takers[k]].dpdon &= ~(1 << a)
    assert _checker_ok(instrs, g) == reference_ok(instrs, fps)


def test_scheduled_program_passes_both(program):
    instrs, g, fps = program
    assert _checker_ok(instrs, g) and reference_ok(instrs, fps)
