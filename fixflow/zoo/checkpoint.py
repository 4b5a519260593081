"""State dicts as small ``.npz`` files (numpy only on disk; torch needed to load into a module)."""

from __future__ import annotations

import os
import zipfile
from typing import Any

import numpy as np

from fixflow.zoo.errors import ZooError


class CheckpointError(ZooError):
    """A weights file is missing, unreadable or does not match the model."""


def save_npz(model_or_state: Any, path: str | os.PathLike[str]) -> None:
    """Write a module's (or a state dict's) tensors to ``path`` as a compressed ``.npz``."""
    state = model_or_state.state_dict() if hasattr(model_or_state, "state_dict") else model_or_state
    arrays = {k: v.detach().cpu().numpy() for k, v in state.items()}
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def read_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a ``.npz`` weights file into a dict of numpy arrays."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except OSError as e:
        raise CheckpointError(f"{os.fspath(path)}: cannot read weights ({e})") from None
    except (ValueError, EOFError):  # numpy's fallback to pickle for anything that is not .npy/.npz
        raise CheckpointError(f"{os.fspath(path)}: cannot read weights (not a .npz file)") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise CheckpointError(f"{os.fspath(path)}: cannot read weights (a single .npy array, not a .npz of "
                              "named tensors)")
    try:
        with loaded as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{os.fspath(path)}: cannot read weights ({e})") from None


def load_npz(model: Any, path: str | os.PathLike[str]) -> Any:
    """Load ``path`` into ``model`` (strict: same keys and shapes); returns the model."""
    import torch

    arrays = read_npz(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(arrays))
    extra = sorted(set(arrays) - set(own))
    if missing or extra:
        raise CheckpointError(
            f"{os.fspath(path)}: weights do not match {type(model).__name__}"
            f" (missing: {missing[:5]}, unexpected: {extra[:5]})"
        )
    for k, v in arrays.items():
        if v.dtype.kind not in "biuf":
            raise CheckpointError(f"{os.fspath(path)}: {k} holds {v.dtype} values, not numbers")
        if tuple(v.shape) != tuple(own[k].shape):
            raise CheckpointError(
                f"{os.fspath(path)}: {k} has shape {tuple(v.shape)}, model expects {tuple(own[k].shape)}"
            )
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()})
    return model
