"""The fixflow DSL frontend: `.ffn` text (a Lark grammar) -> graph dialect.

    from fixflow.frontends.dsl import import_dsl
    module = import_dsl('''
    net Tiny(x: f32[1, 3, 8, 8]) with seed=1 {
      c = conv2d(x, out=4, kernel=3, pad=1)
      r = relu(c)
      return r
    }''')

Each net becomes a `func.func @<name>` in one `builtin.module`; each statement one graph op (plus
`graph.constant`s for its parameters) whose location is the statement's `file:line:col` and whose result
is named after the statement. Errors raise `DslError` (a `FixflowError`) with that location.
See docs/dsl.md for the language.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from .syntax import GRAMMAR_PATH, DslError, parse_program

__all__ = ["import_dsl", "import_dsl_file", "export_weights", "parse_program", "DslError", "GRAMMAR_PATH", "op_names"]


def import_dsl(text: str, filename: str = "<dsl>", weights: Mapping[str, np.ndarray] | None = None,
               seed: int | None = None, weights_name: str | None = None, resized: list[str] | None = None):
    """Parse DSL `text` and build a verified `builtin.module` of graph ops.

    `weights` maps `<stmt>.<role>` keys (see docs/dsl.md) to arrays; parameters not in it are drawn from a
    generator seeded by `seed` (which overrides the nets' `with seed=` option; default 0). Every weights
    entry must be used. Raises `DslError` for any problem in the program.

    With `resized` (a list), the weights may be a channel-pruned model's: a `conv2d` whose weights entry has
    fewer output channels than its `out` takes them from the entry (a depthwise one, groups = out, follows its
    input), and its statement name is appended to `resized`; every other shape still has to match.
    """
    from .lower import import_program
    return import_program(text, filename, weights, seed, weights_name, resized)


def import_dsl_file(path: str | Path, weights_npz: str | Path | None = None, seed: int | None = None):
    """`import_dsl` on a file, with weights from an optional `.npz`."""
    from .weights import load_npz
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DslError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    weights = None
    if weights_npz is not None:
        try:
            weights = load_npz(weights_npz)
        except (OSError, ValueError) as e:
            raise DslError(f"cannot read weights {weights_npz}: {e}") from None
    return import_dsl(text, str(path), weights, seed, str(weights_npz) if weights_npz is not None else None)


def op_names() -> list[str]:
    """The DSL's op names."""
    from .ops import OPS
    return sorted(OPS)


def export_weights(module) -> dict[str, np.ndarray]:
    """The module's `dense_resource` constants by key (the `.npz` keys `import_dsl` reads back)."""
    from ...ir.attributes import DenseResourceElementsAttr
    out: dict[str, np.ndarray] = {}
    for op in module.walk():
        if op.name == "graph.constant":
            v = op.attributes.get("value")
            if isinstance(v, DenseResourceElementsAttr):
                out[v.key] = np.array(v.array)
    return out
