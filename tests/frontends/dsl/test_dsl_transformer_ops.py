"""DSL spellings of the issue-15 ops: a small attention block written in the DSL against the same computation
in PyTorch at several batch sizes, and the located error messages of bad arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fixflow.frontends.dsl import DslError, export_weights, import_dsl
from fixflow.ir import parse_module, print_module
from fixflow.ir.interpreter import run_module

BLOCK = """
net Block(x: f32[1, 4, 8, 8]) with seed=3 {
  c  = conv2d(x, out=8, kernel=1)
  a  = chunk(c, chunks=2, index=0)
  b  = chunk(c, chunks=2, index=1)
  s  = concat(b, a, axis=1)
  sh = channel_shuffle(s, groups=2)
  f  = reshape(sh, [0, 8, -1])
  t  = transpose(f, [0, 2, 1])          # [N, 64, 8] tokens
  tok = const(shape=[1, 1, 8])
  cls = expand(tok, [0, -1, -1], like=t)
  seq = concat(cls, t, axis=1)          # [N, 65, 8]
  n  = layer_norm(seq, eps=0.000001)
  kt = transpose(n, [0, 2, 1])
  sc = matmul(n, kt)
  sm = softmax(sc, axis=-1)
  o  = matmul(sm, n)
  g  = gelu(o, approximate="tanh")
  r  = add(seq, g)
  h  = select(r, index=0, axis=1)       # the class token
  m  = amax(r, axes=[1])
  y  = add(h, m)
  return y
}
"""


def _torch_block(x: torch.Tensor, w: dict[str, torch.Tensor]) -> torch.Tensor:
    c = F.conv2d(x, w["c.weight"], w["c.bias"])
    a, b = c.chunk(2, 1)
    s = F.channel_shuffle(torch.cat([b, a], 1), 2)
    t = s.reshape(x.shape[0], 8, -1).transpose(1, 2)
    seq = torch.cat([w["tok"].expand(x.shape[0], -1, -1), t], 1)
    n = F.layer_norm(seq, (8,), w["n.weight"], w["n.bias"], 1e-6)
    o = torch.softmax(n @ n.transpose(1, 2), -1) @ n
    r = seq + F.gelu(o, approximate="tanh")
    return r[:, 0] + r.amax(1)


def test_attention_block_matches_torch_at_any_batch():
    m = import_dsl(BLOCK, "block.ffn")
    parsed = parse_module(print_module(m))
    parsed.verify()
    w = {k: torch.from_numpy(v) for k, v in export_weights(m).items()}
    for n in (1, 3):
        x = np.random.default_rng(n).standard_normal((n, 4, 8, 8)).astype(np.float32)
        (got,) = run_module(parsed, [x])
        with torch.no_grad():
            ref = _torch_block(torch.from_numpy(x), w).numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stmt,fragment", [
    ("y = slice(x, axes=[1], starts=[0, 1])", "'starts' needs one value per axis (1), got 2"),
    ("y = slice(x, axes=[1], steps=[0])", "steps must be positive"),
    ("y = slice(x, axes=[4])", "axis 4 is out of range"),
    ("y = chunk(x, chunks=3, index=2)", "index 2 is out of range for 2 pieces"),
    ("y = chunk(x, chunks=0, index=0)", "chunks must be positive"),
    ("y = split(x, sizes=[1, 2], index=0)", "add up to 3, but axis 1 has size 4"),
    ("y = select(x, index=6, axis=2)", "index 6 is out of range for axis 2 of size 6"),
    ("y = expand(x, [0, 4, 6, 6])", "needs a 'like' operand"),
    ("y = expand(x, [1, 8, 6, 6])", "cannot expand"),
    ("y = tile(x, [2])", "repeats (2,) must have at least"),
    ("y = sum(x, axes=[1, -3])", "repeated dimension"),
    ("y = layer_norm(x, dims=5)", "dims must be between 1 and the rank 4"),
    ("y = group_norm(x, groups=3)", "groups=3 must divide the 4 channels"),
    ('y = gelu(x, approximate="erf")', "'approximate' must be one of"),
    ("y = roll(x, shifts=[1, 2], axes=[1])", "shifts (1, 2) and axes (1,)"),
    ("y = channel_shuffle(x, groups=3)", "groups=3 must divide the 4 channels"),
    ("y = layer_norm(x, weight=[1, 2])", "inline 'weight' has shape [2] but [6] is needed"),
])
def test_errors_are_located(stmt, fragment):
    src = f"net N(x: f32[1, 4, 6, 6]) {{\n  {stmt}\n  return y\n}}\n"
    with pytest.raises(DslError) as info:
        import_dsl(src, "bad.ffn")
    text = info.value.render()
    assert fragment in text, text
    assert text.startswith("bad.ffn:2:")
