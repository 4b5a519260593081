"""The profiler's speed: cycle model + timeline + layer attribution of AMD's compiled MNIST (230
instructions), and the timeline alone on a long synthetic stream (20,000 instructions)."""

from __future__ import annotations

from pathlib import Path

from fixflow.backends.xmodel.compiled import read_compiled
from fixflow.dialects.dpu.isa import Instruction
from fixflow.runtime.profiler import Machine, costs, profile_xmodel, timeline
from fixflow.target import get_board, get_target

MNIST = Path(__file__).resolve().parents[2] / "shared" / "reference" / "amd-compiled-mnist" / "dpu_mnist_classifier.xmodel"


def test_bench_profile_mnist(benchmark):
    m = read_compiled(MNIST)
    p = benchmark(profile_xmodel, m, "kv260")
    assert p["subgraphs"][1]["cycles"] > 0


def test_bench_timeline_20k(benchmark):
    load = Instruction.make("LOAD", 0, 4, length=8, channel=64)
    conv = Instruction.make("CONV", 1, 2, length=8, channel_group=2)
    save = Instruction.make("SAVE", 4, 0, length=8, channel=16)
    prog = [Instruction.make("CONVINIT")] + [load, conv, save] * 6666 + [Instruction.make("END")]
    c = costs(prog, Machine.of(get_target("DPUCZDX8G_ISA1_B4096"), get_board("kv260")))
    slots, notes = benchmark(timeline, prog, c)
    assert len(slots) == len(prog) and notes == []
