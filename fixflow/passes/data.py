"""Input data for calibration, evaluation and running: the one loader behind `calibrate{data=...}`,
`fixflow-quantize --data`, `fixflow-inspect --data` and `fixflow-run --input`.

A data source is
- a named data set: an entry point of the `fixflow.datasets` group, `f(input_shape) -> images`
  (fixflow's own: `digits`, the zoo's train split at the network's input size);
- a `.npy` file: the inputs, first axis = samples;
- a `.npz` file: the inputs under `x` (or `inputs`, `input`, `images`, else the first array), optional
  integer labels under `y` (or `labels`);
- a folder of images (`.png`, `.jpg`, `.jpeg`, `.bmp`, `.pgm`, `.ppm`), directly or in one subfolder per
  class (torchvision's ImageFolder layout: labels are the sorted subfolder indices). Images are resized
  to the input's height and width, converted to its channel count, and scaled to 0..1 as torchvision's
  `ToTensor()` does (no mean/std normalization: give a `.npy` for other preprocessing).

Every problem is one `DataError` naming the source (never a numpy or PIL traceback).
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import attrs
import numpy as np

from ..ir.diagnostics import FixflowError

__all__ = ["DataError", "InputData", "load_inputs", "named_dataset", "DATASET_ENTRY_POINTS", "IMAGE_SUFFIXES"]

#: entry-point group of named data sets: name -> f(input_shape) -> array of inputs
DATASET_ENTRY_POINTS = "fixflow.datasets"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm")
_X_KEYS = ("x", "inputs", "input", "images")
_Y_KEYS = ("y", "labels")


class DataError(FixflowError):
    """Input data that cannot be read or does not fit the network."""


@attrs.frozen
class InputData:
    """Inputs (float32, samples first), their integer labels if the source has them, and the source."""

    x: np.ndarray
    y: np.ndarray | None
    source: str


def named_dataset(name: str) -> Callable[[tuple[int, ...]], np.ndarray] | None:
    """The loader registered under `name` in the `fixflow.datasets` entry points, None if there is none."""
    if not name or name.endswith((".npy", ".npz")) or "/" in name or "\\" in name or os.path.exists(name):
        return None
    from importlib.metadata import entry_points
    for ep in entry_points(group=DATASET_ENTRY_POINTS):
        if ep.name == name:
            return ep.load()
    return None


def _dataset_names() -> list[str]:
    from importlib.metadata import entry_points
    return sorted(ep.name for ep in entry_points(group=DATASET_ENTRY_POINTS))


def _what(what: str) -> str:
    return f"{what}: " if what else ""


def load_inputs(source: str, input_shape: Sequence[int] | None = None, *, what: str = "") -> InputData:
    """Read `source` (see the module doc). With `input_shape` (the network input, batch first) the
    samples must have its shape after the first axis (a named data set and an image folder are made at
    that size). `what` prefixes messages (e.g. "--data")."""
    shape = tuple(int(d) for d in input_shape) if input_shape is not None else None
    pre = _what(what)
    loader = named_dataset(source)
    label_name = "y"
    if loader is not None:
        if shape is None:
            raise DataError(f"{pre}the named data set '{source}' needs the network's input shape")
        try:
            x, y = np.asarray(loader(shape), np.float32), None
        except ValueError as e:
            raise DataError(f"{pre}{e}") from None
    elif os.path.isdir(source):
        x, y = _image_folder(source, shape, pre)
    elif not os.path.exists(source) and (source.lower().endswith((".npy", ".npz")) or os.sep in source):
        raise DataError(f"{pre}file {source} not found")
    elif not os.path.exists(source):
        names = ", ".join(_dataset_names()) or "none installed"
        raise DataError(f"{pre}'{source}' is neither a file, a folder nor a named data set ({names}); "
                        "give a .npy or .npz of inputs, a folder of images, or a data set name")
    else:
        x, y, label_name = _array_file(source, pre)
    if x.ndim == 0 or len(x) == 0:
        raise DataError(f"{pre}{source} holds no inputs (an array of shape {x.shape})")
    if shape is not None and tuple(x.shape[1:]) != shape[1:]:
        raise DataError(f"{pre}{source}: the inputs' array of shape {tuple(x.shape)} does not fit the network input "
                        f"(N, {', '.join(map(str, shape[1:]))})")
    if y is not None and (y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer)):
        raise DataError(f"{pre}{source}: labels {label_name!r} must be integer class indices of shape ({len(x)},), "
                        f"got {y.dtype} {y.shape}")
    return InputData(x, y, source)


def _array_file(path: str, pre: str) -> tuple[np.ndarray, np.ndarray | None, str]:
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise DataError(f"{pre}cannot read {path}: {e.strerror or e}") from None
    if magic != b"\x93NUMPY" and not magic.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise DataError(f"{pre}cannot read {path}: not a .npy or .npz file (np.save / np.savez write them)")
    try:
        z = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise DataError(f"{pre}{path} holds Python objects, not a numeric array (save the inputs with "
                            "np.save(path, array) or np.savez(path, x=inputs, y=labels))") from None
        raise DataError(f"{pre}cannot read {path} as .npy/.npz: {' '.join(str(e).split())}") from None
    except Exception as e:  # noqa: BLE001 - numpy raises many kinds for a foreign or corrupt file
        raise DataError(f"{pre}cannot read {path} as .npy/.npz: {' '.join(str(e).split()) or type(e).__name__}") \
            from None
    y, label_key = None, "y"
    try:
        if isinstance(z, np.ndarray):
            x = z
        else:
            with z:
                if not z.files:
                    raise DataError(f"{pre}{path} holds no arrays")
                key = next((k for k in _X_KEYS if k in z.files), z.files[0])
                x = z[key]
                label_key = next((k for k in _Y_KEYS if k in z.files and k != key), "y")
                y = z[label_key] if label_key in z.files and label_key != key else None
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - a corrupt member, pickled objects in an .npz
        raise DataError(f"{pre}cannot read {path}: {' '.join(str(e).split()) or type(e).__name__}") from None
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_):
        raise DataError(f"{pre}{path} must hold a numeric array of inputs, got {x.dtype} {x.shape}")
    return np.asarray(x, np.float32), (np.asarray(y) if y is not None else None), label_key


def _image_folder(folder: str, shape: tuple[int, ...] | None, pre: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Images directly in `folder`, or one subfolder per class (labels = sorted subfolder index)."""
    def images(d: str) -> list[str]:
        return sorted(os.path.join(d, f) for f in os.listdir(d) if f.lower().endswith(IMAGE_SUFFIXES))
    files = images(folder)
    labels: list[int] | None = None
    if not files:
        classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
        labels = []
        for i, c in enumerate(classes):
            found = images(os.path.join(folder, c))
            files += found
            labels += [i] * len(found)
    if not files:
        raise DataError(f"{pre}folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}), directly or in "
                        "class subfolders")
    if shape is None or len(shape) != 4:
        raise DataError(f"{pre}images in {folder} need a network input of shape (N, C, H, W), got "
                        f"{shape if shape is not None else 'none'}")
    _, c, h, w = shape
    if c not in (1, 3):
        raise DataError(f"{pre}images in {folder} give 1 or 3 channels; the network input has {c}")
    try:
        from PIL import Image
    except ImportError:
        raise DataError(f"{pre}reading images needs Pillow (pip install pillow); or give a .npy of inputs") from None
    out = np.empty((len(files), c, h, w), np.float32)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as im:
                im = im.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
                a = np.asarray(im, np.float32) / 255.0
        except Exception as e:  # noqa: BLE001 - PIL's errors for a broken or foreign file
            raise DataError(f"{pre}cannot read image {f}: {' '.join(str(e).split()) or type(e).__name__}") from None
        out[i] = a[None] if c == 1 else a.transpose(2, 0, 1)
    return out, (np.asarray(labels, np.int64) if labels is not None else None)
