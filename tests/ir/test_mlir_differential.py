"""Differential tests of the IR text parser against mlir-opt-22 (see _mlir_difflib.py): wherever mlir-opt
rejects a text, fixflow must reject it too (documented extensions aside, docs/reliability.md), fixflow never
fails with anything but a FixflowError, and what fixflow prints of a text both accept is accepted by mlir-opt.

CI runs a few hundred seeded mutants (one or two mlir-opt processes, a few seconds); the slow sweep runs
thousands. Set FIXFLOW_FUZZ_SEED to explore other mutants."""

from __future__ import annotations

import os

import pytest

import _mlir_difflib as diff
from _parser_cases import ACCEPTED, OP, REJECTED, SYNTAX_REJECTED

needs_mlir = pytest.mark.skipif(diff.MLIR_OPT is None, reason="mlir-opt-22 (Debian mlir-22-tools) is not installed")
pytestmark = [needs_mlir, pytest.mark.mlir]

SEED = int(os.environ.get("FIXFLOW_FUZZ_SEED", "2026"))

# constants fixflow rejects and mlir-opt reads (as infinity, or crashes on): fixflow is stricter on purpose
FIXFLOW_ONLY = {"1.0e6 : f16", "1.0e39 : f32", "1.0e400", "array<f16: 1.0e6>", "dense<1.0e6> : tensor<2xf16>"}
MLIR_CRASHES = {"array<index: 1>"}


def _explain(rep: diff.Report) -> str:
    lines = [rep.summary()]
    for text, why in rep.failures[:5]:
        lines += ["-" * 60, why, text[:2000]]
    return "\n".join(lines)


def test_seeds_are_valid_for_both():
    assert diff.mlir_verdicts(diff.SEEDS) == ["accept"] * len(diff.SEEDS)
    assert [diff.fixflow_verdict(s)[0] for s in diff.SEEDS] == ["accept"] * len(diff.SEEDS)


def test_named_rejections_agree_with_mlir_opt():
    """Every constant test_parser_strict expects fixflow to reject, mlir-opt rejects as well (or, for the few
    stricter ones, reads as a different value); the valid spellings are valid for both."""
    rejected = [a for a in REJECTED if a not in MLIR_CRASHES]
    verdicts = diff.mlir_verdicts([OP.format(a) for a in rejected])
    expected = ["accept" if a in FIXFLOW_ONLY else "reject" for a in rejected]
    assert dict(zip(rejected, verdicts)) == dict(zip(rejected, expected))
    accepted = list(ACCEPTED)
    assert diff.mlir_verdicts([OP.format(a) for a in accepted]) == ["accept"] * len(accepted)
    syntax = list(SYNTAX_REJECTED)
    assert dict(zip(syntax, diff.mlir_verdicts(syntax))) == dict.fromkeys(syntax, "reject")


def test_mutants_against_mlir_opt():
    rep = diff.differential(diff.mutants(diff.SEEDS, 400, SEED))
    print(rep.summary())
    assert not rep.failures, _explain(rep)
    assert rep.both_accept > 20 and rep.both_reject > 100  # the mutants exercise both outcomes


@pytest.mark.slow
def test_mutant_sweep_against_mlir_opt():
    rep = diff.differential(diff.mutants(diff.SEEDS, 6000, SEED + 1))
    print(rep.summary())
    assert not rep.failures, _explain(rep)
