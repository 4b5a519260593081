"""Mistakes with the data fed to the Quantizer, reported when they happen (issue 14 item 2).

- A calibration batch whose shape (beyond the batch dimension) differs from the example inputs' is
  refused, naming both shapes: the model was traced, and will be exported, at the example shape.
- Calibration data on another scale than the model expects: the first layer's batch norm statistics
  (a conv + batch norm reading the input) say what its output should look like; data 255x too large
  (uint8 pixels for a model trained on 0..1) gives outputs hundreds of standard deviations away. Without
  such a layer, the example inputs' range is the reference (when they are not all one value).
- Test data on another scale than the calibration data (their statistics are saved next to
  quant_info.json in `input_stats.json`), and test-mode example inputs of another shape than the ones
  calibration traced (which would otherwise only show as a graph_md5 mismatch).

Warnings are `QuantizerWarning`s issued at the user's line (the first frame outside fixflow and torch)
and also written to the Quantizer's log.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..ir.core import Operation, OpResult
from ..ir.diagnostics import format_diagnostic
from ..ir.location import FileLineColLoc
from .errors import QuantizerError

__all__ = ["QuantizerWarning", "InputChecker", "INPUT_STATS", "read_input_stats", "warn_user"]

INPUT_STATS = "input_stats.json"
#: how far (as a factor) data may stray from the reference before a warning
SCALE_FACTOR = 16.0
#: the first layer's output, standardized by its batch norm statistics: RMS above this is "far"
BN_RMS_LIMIT = 12.0

_PKG = str(Path(__file__).resolve().parents[1])


class QuantizerWarning(UserWarning):
    """Something about the data given to the Quantizer is probably a mistake (the message says what)."""


def _user_frame() -> tuple[str, int]:
    """(file, line) of the innermost caller outside fixflow, torch and the standard library."""
    import inspect
    skip = (_PKG, os.path.dirname(os.__file__))
    try:
        import torch
        skip += (os.path.dirname(torch.__file__),)
    except ImportError:  # pragma: no cover - the Quantizer needs torch
        pass
    f = sys._getframe(1)
    while f is not None:
        fn = f.f_code.co_filename
        if not fn.startswith(skip) and not fn.startswith("<frozen"):
            return fn, f.f_lineno
        f = f.f_back
    frame = inspect.stack()[-1]  # pragma: no cover - there is always a user frame
    return frame.filename, frame.lineno


def warn_user(message: str, log: Callable[[str], None] | None = None) -> str:
    """Issue a QuantizerWarning at the user's line; also log it as `[fixflow] file:line: warning: ...`."""
    filename, line = _user_frame()
    text = format_diagnostic("warning", message, FileLineColLoc(filename, line, 1)).splitlines()[0]
    if log is not None:
        log(f"[fixflow] {text}")
    warnings.warn_explicit(message, QuantizerWarning, filename, line)
    return text


def _stats(x: np.ndarray) -> dict[str, float]:
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return {"min": 0.0, "max": 0.0, "mean": 0.0, "std": 0.0, "absmax": 0.0}
    return {"min": float(x.min()), "max": float(x.max()), "mean": float(x.mean()), "std": float(x.std()),
            "absmax": float(np.abs(x).max())}


def _range(s: dict[str, float]) -> str:
    return f"[{s['min']:.4g}, {s['max']:.4g}]"


def _shape(s: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(d)) for d in s) + ")"


def _const(v: Any) -> np.ndarray | None:
    op = v.op if isinstance(v, OpResult) else None
    if op is None or op.name != "graph.constant":
        return None
    return np.asarray(op.attributes["value"].array, np.float32)


class _FirstLayer:
    """A conv (or linear) reading a network input, followed by a batch norm with known statistics."""

    def __init__(self, op: Operation, bn: Operation, name: str):
        self.op = op
        self.name = name
        self.args = [_const(v) for v in op.operands[1:]]
        self.mean = _const(bn.mean)
        self.std = np.sqrt(_const(bn.var) + bn.eps)

    def rms(self, x: np.ndarray) -> float:
        """RMS of the layer's output standardized with the batch norm's running statistics."""
        y = np.asarray(self.op.evaluate([x[:16]] + self.args)[0], np.float64)
        shape = (1, -1) + (1,) * (y.ndim - 2)
        z = (y - self.mean.reshape(shape)) / self.std.reshape(shape)
        return float(np.sqrt(np.mean(z * z)))


def _first_layers(func: Operation) -> dict[int, _FirstLayer]:
    """Input index -> its first layer, when that is a conv/linear followed by a batch norm."""
    from .api import node_name
    out = {}
    for i, a in enumerate(func.regions[0].blocks[0].args):
        users = a.users
        if len(users) != 1 or users[0].name not in ("graph.conv2d", "graph.linear"):
            continue
        op = users[0]
        if op.operands[0] is not a or any(_const(v) is None for v in op.operands[1:]):
            continue
        r = op.results[0]
        if r.num_uses != 1 or r.users[0].name != "graph.batch_norm":
            continue
        bn = r.users[0]
        if _const(bn.mean) is None or _const(bn.var) is None:
            continue
        out[i] = _FirstLayer(op, bn, node_name(op))
    return out


class InputChecker:
    """Watches the inputs of a Quantizer's quant_model (see the module docstring)."""

    def __init__(self, func: Operation, example_inputs: Sequence[np.ndarray], log: Callable[[str], None] | None):
        self.example_shapes = [tuple(np.shape(x)) for x in example_inputs]
        self.example_stats = [_stats(x) for x in example_inputs]
        self.first = _first_layers(func)
        self.log = log
        self.batches = 0
        self.calib_stats: list[dict[str, float]] | None = None
        self.warned: set[str] = set()

    def _warn(self, key: str, message: str) -> None:
        if key not in self.warned:
            self.warned.add(key)
            warn_user(message, self.log)

    # ---- calib
    def calib_batch(self, xs: Sequence[np.ndarray]) -> None:
        n = self.batches + 1
        for i, x in enumerate(xs):
            want = self.example_shapes[i] if i < len(self.example_shapes) else None
            if want is not None and tuple(np.shape(x)[1:]) != tuple(want[1:]):
                raise QuantizerError(f"calibration batch {n} (input {i}): expected shape (N, "
                                     f"{', '.join(map(str, want[1:]))}) as the example inputs given to the Quantizer, "
                                     f"{_shape(want)}; got {_shape(np.shape(x))}: the model was traced, and will be "
                                     "exported, at the example shape; calibrate with data of that shape or give example "
                                     "inputs of the calibration data's shape")
        self.batches = n
        stats = [_stats(x) for x in xs]
        if self.calib_stats is None:
            self.calib_stats = stats
        else:
            for acc, s in zip(self.calib_stats, stats):
                acc["min"], acc["max"] = min(acc["min"], s["min"]), max(acc["max"], s["max"])
                acc["absmax"] = max(acc["absmax"], s["absmax"])
        for i, (x, s) in enumerate(zip(xs, stats)):
            if self.batches == 1:
                self._check_scale(i, x, s)

    def _check_scale(self, i: int, x: np.ndarray, s: dict[str, float]) -> None:
        layer = self.first.get(i)
        if layer is not None:
            try:
                rms = layer.rms(np.asarray(x, np.float32))
            except Exception:  # noqa: BLE001 - a shape problem is reported by the calibration itself
                return
            if rms > BN_RMS_LIMIT or rms < 1.0 / BN_RMS_LIMIT:
                self._warn(f"scale{i}", f"calibration input {i} ranges over {_range(s)} (mean {s['mean']:.4g}, std "
                           f"{s['std']:.4g}); the first layer '{layer.name}' then gives outputs {rms:.3g} standard "
                           "deviations from what its batch norm statistics expect (about 1 on the training data): "
                           "is the data scaled and normalized as in training (e.g. pixels in 0..1, not 0..255)?")
            return
        ref = self.example_stats[i] if i < len(self.example_stats) else None
        if ref is None or ref["std"] == 0 or ref["absmax"] == 0 or s["absmax"] == 0:
            return
        ratio = s["absmax"] / ref["absmax"]
        if ratio > SCALE_FACTOR or ratio < 1 / SCALE_FACTOR:
            self._warn(f"scale{i}", f"calibration input {i} ranges over {_range(s)}, the example inputs over "
                       f"{_range(ref)} ({ratio:.3g}x): is the calibration data scaled as the model expects?")

    def save(self, output_dir: Path) -> None:
        """Write `input_stats.json` (example shapes, calibration data statistics) next to quant_info.json."""
        data = {"example_shapes": [list(s) for s in self.example_shapes], "calibration": self.calib_stats or []}
        (Path(output_dir) / INPUT_STATS).write_text(json.dumps(data, indent=2) + "\n")

    # ---- test
    def test_batch(self, xs: Sequence[np.ndarray], saved: dict[str, Any] | None) -> None:
        if not saved or not saved.get("calibration"):
            return
        for i, (x, ref) in enumerate(zip(xs, saved["calibration"])):
            s = _stats(x)
            if ref.get("absmax", 0) <= 0 or s["absmax"] <= 0:
                continue
            ratio = s["absmax"] / ref["absmax"]
            if ratio > SCALE_FACTOR or ratio < 1 / SCALE_FACTOR:
                self._warn(f"test{i}", f"test input {i} ranges over {_range(s)} but the calibration data ranged over "
                           f"{_range(ref)} ({ratio:.3g}x; {INPUT_STATS} next to quant_info.json): were both "
                           "preprocessed the same way?")


def read_input_stats(output_dir: Path) -> dict[str, Any] | None:
    """The saved `input_stats.json` (None when absent or unreadable: it is advisory)."""
    path = Path(output_dir) / INPUT_STATS
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def shape_mismatch(saved: dict[str, Any] | None, shapes: Sequence[Sequence[int]]) -> str | None:
    """A sentence naming both shapes when test-mode example inputs differ from the calibration's."""
    if not saved or not isinstance(saved.get("example_shapes"), list):
        return None
    old = [tuple(int(d) for d in s) for s in saved["example_shapes"]]
    new = [tuple(int(d) for d in s) for s in shapes]
    if old == new:
        return None
    return (f"calibration traced the model with example inputs of shape {', '.join(map(_shape, old))}, this "
            f"quantizer with {', '.join(map(_shape, new))}; give test mode example inputs of the calibration's shape "
            "(or calibrate again with data of the new shape)")
