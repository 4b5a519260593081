"""The DSL frontend against mutated programs and weights (issue 8: deep lists, NaN weights, no crash).

Seeded mutants of valid programs (character edits, token swaps, numbers replaced by extreme values,
brackets nested deep) and of weights dicts (NaN, inf, wrong shapes and dtypes) are imported. Oracle:
`import_dsl` raises a one-line `FixflowError` with a location, or returns a verified module that runs
on the reference interpreter without a non-`FixflowError` exception. Weights holding NaN / inf / values
beyond float32 must be rejected. `FIXFLOW_FUZZ_SEED` explores other seeds.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import numpy as np
import pytest

from fixflow.frontends.dsl import DslError, import_dsl
from fixflow.ir.diagnostics import FixflowError
from fixflow.ir.interpreter import run_module

SEED = int(os.environ.get("FIXFLOW_FUZZ_SEED", "2026"))
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SMALL = """\
net Small(x: f32[1, 2, 8, 8]) with seed=3 {
  c1 = conv2d(x, out=4, kernel=3, pad=1)
  b1 = batch_norm(c1)
  r1 = relu(b1)
  d1 = depthwise_conv2d(r1, kernel=3, pad=1)
  p1 = max_pool2d(d1, kernel=2, stride=2)
  u1 = upsample(p1, scale=2)
  s1 = add(u1, r1)
  k1 = concat(s1, r1, axis=1)
  t1 = conv_transpose2d(k1, out=2, kernel=2, stride=2)
  a1 = avg_pool2d(t1, kernel=4, stride=4)
  h1 = hardswish(a1)
  q1 = pad(h1, pads=[1, 1, 1, 1])
  f1 = flatten(q1)
  l1 = linear(f1, out=5)
  w1 = const([1.0, 2.0, 3.0, 4.0, 5.0])
  m1 = mul(l1, w1)
  y = softmax(m1, axis=1)
  return y
}
"""


def _run(text: str, weights=None, what: str = "") -> str:
    try:
        module = import_dsl(text, "fuzz.ffn", weights)
        func_inputs = [op for op in module.walk() if op.name == "func.func"][0].regions[0].blocks[0].args
        xs = [np.random.default_rng(0).standard_normal(a.type.shape).astype(np.float32) for a in func_inputs]
        if sum(int(np.prod(a.type.shape)) for a in func_inputs) <= 1 << 16:
            run_module(module, xs)
    except FixflowError as e:
        assert "\n" not in e.message, f"{what}: multi-line message {e.message!r}"
        return "rejected"
    except Exception as e:  # noqa: BLE001 - the point of the test
        raise AssertionError(f"{what}: {type(e).__name__}: {e}\n--- program:\n{text}") from e
    return "accepted"


def test_seed_programs_are_valid():
    assert _run(SMALL) == "accepted"
    for f in sorted(EXAMPLES.glob("*.ffn")):
        assert _run(f.read_text()) == "accepted", f


@pytest.mark.parametrize("depth", [33, 3000, 100_000])
def test_deeply_nested_list_is_an_error(depth):
    text = SMALL.replace("pads=[1, 1, 1, 1]", "pads=" + "[" * depth + "1" + "]" * depth)
    with pytest.raises(DslError, match="list literal nested deeper than 32 levels") as e:
        import_dsl(text, "deep.ffn")
    assert e.value.location.file_line_col().line == 13


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e39, 1e300])
def test_non_finite_weights_are_rejected(bad):
    w = np.full((4, 2, 3, 3), 0.1, np.float64)
    w[1, 0, 2, 2] = bad
    with pytest.raises(DslError, match=r"weights entry 'c1.weight': element 26 is .*not a finite float32 value"):
        import_dsl(SMALL, "w.ffn", {"c1.weight": w})


# ---- seeded mutations ------------------------------------------------------------------------------
_TOKEN = re.compile(r"\d+\.\d+|\d+|[A-Za-z_]\w*|\S")
_NUMBERS = ["0", "-1", "1", "2", "7", "65536", "99999999999", "9" * 30, "1.5", "0.0", "-0.5", "1e39", "3e38",
            "nan", "inf", "[]", "[0]", "[1, 1]", "[[1]]", '"s"', "true", "none"]


def _mutate_text(rng: random.Random, text: str) -> str:
    toks = [(m.start(), m.end()) for m in _TOKEN.finditer(text)]
    kind = rng.randrange(6)
    s, e = rng.choice(toks)
    if kind == 0:   # a number or literal somewhere
        nums = [(a, b) for a, b in toks if text[a].isdigit()]
        s, e = rng.choice(nums)
        return text[:s] + rng.choice(_NUMBERS) + text[e:]
    if kind == 1:   # delete a token
        return text[:s] + text[e:]
    if kind == 2:   # duplicate a token
        return text[:e] + " " + text[s:e] + text[e:]
    if kind == 3:   # swap with another token
        s2, e2 = rng.choice(toks)
        if s2 < s:
            s, e, s2, e2 = s2, e2, s, e
        if e > s2:
            return text
        return text[:s] + text[s2:e2] + text[e:s2] + text[s:e] + text[e2:]
    if kind == 4:   # a random character
        i = rng.randrange(len(text))
        return text[:i] + rng.choice("[](){},=:.-+x#\"\\\n\t\x00é0") + text[i:]
    d = rng.choice([2, 5, 40, 2000])   # nested brackets
    return text[:s] + "[" * d + text[s:e] + "]" * d + text[e:]


def _mutate_weights(rng: random.Random) -> tuple[dict, bool | None]:
    w = {"c1.weight": np.full((4, 2, 3, 3), 0.1, np.float32), "l1.bias": np.zeros(5, np.float32)}
    key = rng.choice(sorted(w))
    kind = rng.randrange(4)
    if kind == 0:
        a = w[key].astype(np.float64)
        a.flat[rng.randrange(a.size)] = rng.choice([np.nan, np.inf, -np.inf, 1e39, -1e300])
        w[key] = a
        return w, True
    if kind == 1:
        w[key] = w[key].reshape(-1)[: rng.randrange(w[key].size)]
        return w, True
    if kind == 2:
        dtype = rng.choice([np.int8, np.float16, np.complex64, np.bool_, np.str_])
        w[key] = w[key].astype(dtype)
        return w, True if dtype in (np.complex64, np.str_) else None
    w[key] = w[key] * np.float32(rng.choice([0.0, -3.0, 1e30]))
    return w, None


def _fuzz(seed: int, n: int) -> dict[str, int]:
    rng = random.Random(seed)
    seeds = [SMALL] + [f.read_text() for f in sorted(EXAMPLES.glob("*.ffn"))]
    stats = {"cases": 0, "rejected": 0, "accepted": 0}
    for i in range(n):
        if rng.random() < 0.85:
            text = rng.choice(seeds) if rng.random() < 0.2 else SMALL
            for _ in range(rng.randint(1, 3)):
                text = _mutate_text(rng, text)
            out = _run(text, what=f"case {i} (seed {seed})")
        else:
            w, must = _mutate_weights(rng)
            out = _run(SMALL, w, what=f"case {i} (seed {seed}) weights")
            assert not (must and out == "accepted"), f"case {i} (seed {seed}): bad weights accepted"
        stats["cases"] += 1
        stats[out] += 1
    return stats


@pytest.mark.filterwarnings("error")
def test_dsl_fuzz():
    stats = _fuzz(SEED, 300)
    print(f"\nDSL fuzz seed {SEED}: {stats}")
    assert stats["rejected"] > 100 and stats["accepted"] > 20


@pytest.mark.slow
def test_dsl_fuzz_sweep():
    stats = _fuzz(SEED + 1, 4000)
    print(f"\nDSL fuzz sweep seed {SEED + 1}: {stats}")
