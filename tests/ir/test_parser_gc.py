"""`parse_module` hands a large parse's objects to the collector's oldest generation: the IR is the same,
stays collectable once dropped, and nothing frozen by the caller is touched."""

from __future__ import annotations

import gc
import sys
import weakref
from pathlib import Path

import pytest

from fixflow.ir import parse_module, print_module
from fixflow.ir import parser as parser_mod

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from gen import mixed_arith  # noqa: E402

TEXT = mixed_arith(5000)  # about 40k tracked objects: above the promotion threshold


@pytest.fixture
def gc_enabled():
    was = gc.isenabled()
    gc.enable()
    gc.collect()
    yield
    if not was:
        gc.disable()


def test_large_parse_is_promoted_and_stays_collectable(gc_enabled):
    before = gc.get_stats()[2]["collections"]
    module = parse_module(TEXT)
    assert gc.get_count()[0] < 100  # nothing young left to traverse
    assert print_module(module) == TEXT
    assert gc.get_stats()[2]["collections"] == before
    ref = weakref.ref(module.regions[0].blocks[0].first_op.regions[0].blocks[0].first_op)
    del module
    assert ref() is not None  # cyclic: held until a collection
    gc.collect()
    assert ref() is None


_FROZEN_CHECK = """
import gc, sys
sys.path.insert(0, sys.argv[1])
from gen import mixed_arith
from fixflow.ir import parse_module, print_module
text = mixed_arith(5000)
parse_module(text)                 # warm: lazy imports and caches are built before the freeze
gc.enable(); gc.collect()
keep = [[object()] for _ in range(10)]
gc.freeze()
frozen = gc.get_freeze_count()
module = parse_module(text)
assert gc.get_freeze_count() == frozen, (gc.get_freeze_count(), frozen)
assert print_module(module) == text
print("ok")
"""


def test_frozen_objects_of_the_caller_stay_frozen():
    """In a fresh interpreter: in a long test session, objects frozen here can be freed by others while
    the parse runs (e.g. `re`'s pattern cache evicting entries), which lowers the count without the parser
    touching the permanent generation."""
    import subprocess
    bench = str(Path(__file__).resolve().parents[2] / "benchmarks")
    r = subprocess.run([sys.executable, "-c", _FROZEN_CHECK, bench], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_promotion_is_bounded_between_full_collections(gc_enabled, monkeypatch):
    monkeypatch.setattr(parser_mod, "_GC_PROMOTE_MAX", 60_000)
    gc.collect()
    parse_module(TEXT)
    promoted = parser_mod._gc_promoted[0]
    assert promoted > 20_000
    parse_module(TEXT)  # over the bound: left young, as without promotion
    assert parser_mod._gc_promoted[0] == promoted
    gc.collect()  # a full collection starts a new allowance
    parse_module(TEXT)
    assert parser_mod._gc_promoted[0] > 20_000 and parser_mod._gc_promoted[0] < promoted + 20_000


def test_small_parse_and_paused_collector_are_left_alone(gc_enabled):
    small = mixed_arith(10)
    gc.collect()
    parse_module(small)
    assert 0 < gc.get_count()[0] < 20_000
    gc.disable()
    try:
        gc.collect()
        parse_module(TEXT)
        assert gc.get_count()[0] > 20_000  # the caller paused the collector: it decides (fixflow-opt freezes)
    finally:
        gc.enable()
