"""Seeded mutants of AMD's compiled MNIST through the reader and fixflow-xir's views: one FixflowError or a
model, never another exception (and never a hang: the run ends)."""

import numpy as np
import pytest

from fixflow.backends.xmodel import read_xmodel_bytes
from fixflow.backends.xmodel.amd_views import dump_reg, subgraph_tree, to_dot
from fixflow.backends.xmodel.compiled import from_xgraph, read_compiled_bytes
from fixflow.ir.diagnostics import FixflowError

from _compiled_testlib import MNIST  # noqa: E402  (same folder)

if not MNIST.is_file():
    pytest.skip(f"AMD's compiled MNIST is not at {MNIST} (shared/ beside the checkout)", allow_module_level=True)
DATA = MNIST.read_bytes()
# the 712,704-byte REG_0 blob: overwriting bytes there only changes parameter values, so most go elsewhere
_BLOB_START = DATA.find(read_compiled_bytes(DATA).dpu_subgraphs[0].parameters["REG_0"][:4096])
_BLOB_END = _BLOB_START + 712704


def mutant(rng: np.random.Generator, data: bytes) -> bytes:
    b = bytearray(data)
    kind = rng.integers(6)
    if kind == 0:  # truncate
        return bytes(b[: rng.integers(len(b))])
    if kind == 1:  # delete a short range
        i = int(rng.integers(len(b)))
        del b[i:i + int(rng.integers(1, 64))]
        return bytes(b)
    if kind == 2:  # insert random bytes
        i = int(rng.integers(len(b)))
        b[i:i] = rng.integers(0, 256, int(rng.integers(1, 16)), dtype=np.uint8).tobytes()
        return bytes(b)
    # overwrite 1-8 bytes, mostly outside the parameter blob (structure: lengths, tags, varints)
    for _ in range(int(rng.integers(1, 9))):
        i = int(rng.integers(len(b)))
        if kind != 5 and _BLOB_START <= i < _BLOB_END:
            i = int(rng.integers(_BLOB_START)) if rng.integers(2) else int(rng.integers(_BLOB_END, len(b)))
        b[i] = int(rng.integers(256)) if kind != 4 else b[i] ^ (1 << int(rng.integers(8)))
    return bytes(b)


def _sweep(seed: int, n: int) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    seen = {"compiled": 0, "graph": 0, "error": 0}
    for i in range(n):
        data = mutant(rng, DATA)
        try:
            g = read_xmodel_bytes(data, f"mutant{i}.xmodel")
        except FixflowError as e:
            assert e.message.startswith(f"mutant{i}.xmodel: ") and "\n" not in e.message
            seen["error"] += 1
            continue
        try:  # the compiled layout (read_compiled_bytes = read_xmodel_bytes + from_xgraph)
            from_xgraph(g)
            seen["compiled"] += 1
        except FixflowError as e:
            assert "\n" not in e.message
            seen["graph"] += 1
        try:  # fixflow-xir's views on whatever still parses as an XIR graph
            subgraph_tree(g)
            dump_reg(g)
            to_dot(g)
        except FixflowError:
            pass
    return seen


def test_1000_mutants_only_fixflow_errors():
    seen = _sweep(0, 1000)
    assert min(seen.values()) >= 5, seen  # unreadable, readable-but-not-compiled and compiled mutants all occur


@pytest.mark.slow
def test_20000_mutants_only_fixflow_errors():
    for seed in range(1, 21):
        _sweep(seed, 1000)
