"""Helpers for the profiler tests: instructions by hand and an independent check of a timeline."""

from __future__ import annotations

from fixflow.dialects.dpu.isa import Instruction

LOAD, SAVE, CONV, MISC = 1, 2, 4, 8          # dpdon/dpdby bits


def ins(name, dpdon=0, dpdby=0, **fields):
    return Instruction.make(name, dpdon, dpdby, **fields)


def check_tokens(instrs, costs, slots):
    """Independently of the timeline's own loop: every unit runs in program order without overlap,
    every token's receiver starts after its sender completed (k-th sent with k-th taken per unit
    pair), and nothing starts later than these two rules force."""
    units = [c.unit for c in costs]
    per_unit = {u: [j for j in range(len(instrs)) if units[j] == u] for u in range(4)}
    need = {j: 0 for j in range(len(instrs))}
    for a in range(4):
        for u in range(4):
            if a == u:
                continue
            senders = [j for j in per_unit[a] if instrs[j].dpdby >> u & 1]
            takers = [j for j in per_unit[u] if instrs[j].dpdon >> a & 1]
            assert len(takers) <= len(senders)
            for s, t in zip(senders, takers):
                assert slots[t].start >= slots[s].end, (s, t)
                need[t] = max(need[t], slots[s].end)
    for u, idx in per_unit.items():
        prev_busy, prev_end = 0, 0
        for j in idx:
            s = slots[j]
            assert s.unit == u and s.start >= prev_busy
            assert s.start == max(prev_busy, need[j])                 # as early as allowed
            assert s.busy_end == s.start + costs[j].cycles
            assert s.end == max(s.busy_end + costs[j].latency, prev_end)
            prev_busy, prev_end = s.busy_end, s.end
