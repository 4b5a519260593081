"""Where a statement's parameters come from: a weights dict (`.npz`), inline values, or a seeded generator.

Keys are `<stmt>.<role>` (`c1.weight`, `c1.bias`, `b1.mean`, `b1.var`, `b1.gamma`, `b1.beta`), optionally
prefixed by the net name (`CNN.c1.weight`) when a file holds several nets. PyTorch state-dict names are
accepted as aliases (`running_mean`, `running_var`, `weight`/`bias` for batch norm, `weight` for a PReLU
slope), so `np.savez(path, **{k: v.numpy() for k, v in model.state_dict().items()})` works when the
statement names match the module names.

Random parameters are deterministic: each one is drawn from its own generator seeded by
(seed, net, statement, role), so editing one statement does not change the others. Weights use a
Kaiming-normal scale (std = sqrt(2 / fan_in)) and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)) like PyTorch,
so activations keep their magnitude through a deep net.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Mapping

import numpy as np

#: role -> alternative key suffixes accepted in a weights file
ALIASES: dict[str, tuple[str, ...]] = {
    "mean": ("running_mean",),
    "var": ("running_var",),
    "gamma": ("weight",),
    "beta": ("bias",),
    "slope": ("weight",),
}


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """All arrays of an `.npz` file as a dict; `ValueError` (or `OSError`) if it is not a readable archive."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive (a single .npy array)")
            return {k: np.asarray(data[k]) for k in data.files}
    except (zipfile.BadZipFile, EOFError, KeyError, zlib.error) as e:
        raise ValueError(f"not a readable .npz archive ({e})") from None


def _crc(s: str) -> int:
    return zlib.crc32(s.encode("utf-8"))


def random_param(seed: int, net: str, stmt: str, role: str, shape: tuple[int, ...], init: str,
                 fan_in: int = 1) -> np.ndarray:
    """A deterministic float32 parameter for `init` in normal/kaiming/bias/bn_var/bn_gamma/bn_shift/const:<v>."""
    rng = np.random.default_rng([seed & 0xFFFFFFFF, _crc(net), _crc(stmt), _crc(role)])
    fan_in = max(int(fan_in), 1)
    if init == "kaiming":
        a = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)
    elif init == "bias":
        bound = 1.0 / np.sqrt(fan_in)
        a = rng.uniform(-bound, bound, size=shape)
    elif init == "bn_var" or init == "bn_gamma":
        a = rng.uniform(0.5, 1.5, size=shape)
    elif init == "bn_shift":
        a = rng.normal(0.0, 0.1, size=shape)
    elif init == "normal":
        a = rng.normal(0.0, 1.0, size=shape)
    elif init == "uniform":
        a = rng.uniform(-1.0, 1.0, size=shape)
    elif init == "zeros":
        a = np.zeros(shape)
    elif init == "ones":
        a = np.ones(shape)
    elif init.startswith("const:"):
        a = np.full(shape, float(init.split(":", 1)[1]))
    else:
        raise ValueError(f"unknown init {init!r}")
    return np.asarray(a, dtype=np.float32)


def _check_finite(key: str, arr: np.ndarray) -> None:
    """A weights entry must hold real, finite values that float32 can hold (NaN, inf, 1e39 and complex
    values are errors)."""
    from .syntax import DslError
    if arr.dtype.kind == "c":
        raise DslError(f"weights entry '{key}' holds complex values ({arr.dtype}); parameters are real")
    if arr.dtype.kind not in "iuf" or arr.size == 0:
        return   # non-numeric entries are reported with the statement's location by the caller
    with np.errstate(over="ignore", invalid="ignore"):
        bad = ~np.isfinite(arr.astype(np.float32, copy=False))
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise DslError(f"weights entry '{key}': element {i} is {float(arr.ravel()[i])}, not a finite float32 value")


class WeightStore:
    """Looks up parameters in a weights mapping and remembers which keys were used."""

    def __init__(self, weights: Mapping[str, np.ndarray] | None, resized: list[str] | None = None):
        self.weights = dict(weights or {})
        self.used: set[str] = set()
        #: when a list: conv2d statements take their output channels from a narrower weights entry (a
        #: channel-pruned model's), and their names are appended here
        self.resized = resized

    def candidates(self, net: str, stmt: str, role: str) -> list[str]:
        suffixes = (role,) + ALIASES.get(role, ())
        return [f"{net}.{stmt}.{s}" for s in suffixes] + [f"{stmt}.{s}" for s in suffixes]

    def peek_shape(self, net: str, stmt: str, role: str) -> tuple[int, ...] | None:
        """The shape of the weights entry for this parameter, if any (without marking it used)."""
        for key in self.candidates(net, stmt, role):
            if key in self.weights:
                return tuple(np.shape(self.weights[key]))
        return None

    def lookup(self, net: str, stmt: str, role: str) -> tuple[str, np.ndarray] | None:
        """The (key, array) given for this parameter, if any."""
        for key in self.candidates(net, stmt, role):
            if key in self.weights:
                self.used.add(key)
                arr = np.asarray(self.weights[key])
                _check_finite(key, arr)
                return key, arr
        return None

    def unused(self) -> list[str]:
        """Keys no statement asked for (PyTorch's `num_batches_tracked` counters are ignored)."""
        return sorted(k for k in self.weights if k not in self.used and not k.endswith("num_batches_tracked"))
