"""Bad input: seeded mutants of the AMD MNIST mc stream (and its ac text) give FixflowError or decode
to instructions that encode back to the same bytes; nothing else escapes.

decode() always advances by at least one word per instruction, so it cannot loop forever; the mutants
below run it on every kind of damage (bit flips, truncation, insertion, deletion, duplication).
"""

from __future__ import annotations

import random

from _mnist_ref import mnist_mc_code
from fixflow.backends.mc import AcError, McError, decode, encode, parse_ac, write_ac
from fixflow.ir.diagnostics import FixflowError


def _mutants(data: bytes, rng: random.Random, n: int):
    for i in range(n):
        b = bytearray(data)
        kind = i % 6
        if kind == 0:  # bit flips
            for _ in range(rng.randint(1, 8)):
                pos = rng.randrange(len(b) * 8)
                b[pos // 8] ^= 1 << (pos % 8)
        elif kind == 1:  # truncation
            del b[rng.randrange(len(b)):]
        elif kind == 2:  # insertion of random bytes
            at = rng.randrange(len(b) + 1)
            b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 24)))
        elif kind == 3:  # deletion of a span
            at = rng.randrange(len(b))
            del b[at:at + rng.randint(1, 24)]
        elif kind == 4:  # one word overwritten with a random word
            at = 4 * rng.randrange(len(b) // 4)
            b[at:at + 4] = rng.getrandbits(32).to_bytes(4, "little")
        else:  # duplicate a word-aligned span somewhere else
            at = 4 * rng.randrange(len(b) // 4)
            span = bytes(b[at:at + 4 * rng.randint(1, 6)])
            to = 4 * rng.randrange(len(b) // 4 + 1)
            b[to:to] = span
        yield kind, bytes(b)


def test_mc_mutants():
    mc = mnist_mc_code()
    rng = random.Random(20261204)
    accepted = rejected = 0
    for kind, data in _mutants(mc, rng, 1200):
        try:
            prog = decode(data)
        except McError as e:
            assert e.offset is not None and e.index is not None and 0 <= e.offset <= len(data)
            assert f"byte {e.offset}" in str(e) and f"instruction {e.index}" in str(e)
            rejected += 1
            continue
        # what decodes must re-encode to the very same bytes, and survive the ac text
        assert encode(prog) == data, kind
        assert parse_ac(write_ac(prog)) == prog
        accepted += 1
    assert accepted + rejected == 1200
    assert accepted > 50 and rejected > 50  # both paths were exercised


def test_ac_text_mutants():
    text = write_ac(decode(mnist_mc_code()))
    lines = text.splitlines(keepends=True)
    rng = random.Random(7)
    alphabet = "0123456789 _abcdelnorstuvwxyzLOADCNVE#\n,;-"
    rejected = 0
    for i in range(600):
        start = rng.randrange(len(lines) - 4)
        chunk = list("".join(lines[start:start + 4]))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(chunk))
            op = rng.randrange(3)
            if op == 0:
                chunk[at] = rng.choice(alphabet)
            elif op == 1:
                del chunk[at]
            else:
                chunk.insert(at, rng.choice(alphabet))
        try:
            prog = parse_ac("".join(chunk), "mutant.ac", comments=bool(i % 2))
        except AcError as e:
            assert e.line >= 1 and e.col >= 1
            rejected += 1
            continue
        except FixflowError as e:  # pragma: no cover - any other user error would be a bug here
            raise AssertionError(f"unexpected error kind {type(e).__name__}: {e}") from None
        assert parse_ac(write_ac(prog)) == prog
        assert decode(encode(prog)) == prog
    assert rejected > 100
