"""The digits dataset bundled with scikit-learn (8x8 greyscale, 1797 samples, 10 classes).

Nothing is downloaded: ``sklearn.datasets.load_digits`` reads a file shipped with scikit-learn.
The split is a fixed stratified 80/20 train/test split (seed 0, computed here with numpy so it does
not depend on scikit-learn's internal RNG use). Images are float32 NCHW ``(N, 1, H, W)`` scaled to
[0, 1] (pixel / 16), optionally upscaled to 28x28 with bilinear interpolation (identical to
``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``) to mimic MNIST, and
optionally normalized with the train split's mean/std (as the MNIST tutorial does with
0.1307/0.3081). Importing this module does not import torch or scikit-learn.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import numpy as np

from fixflow.zoo.errors import ZooError

NUM_CLASSES = 10
NATIVE_SIZE = 8
MNIST_SIZE = 28
SPLIT_SEED = 0
TEST_FRACTION = 0.2
SPLITS = ("train", "test", "all")


class DigitsDataError(ZooError):
    """Bad arguments to the digits loader (unknown split, bad size, ...)."""


@functools.lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    images = np.ascontiguousarray(bunch.images, dtype=np.float32) / np.float32(16.0)
    labels = np.asarray(bunch.target, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def split_indices(
    labels: np.ndarray | None = None, *, seed: int = SPLIT_SEED, test_fraction: float = TEST_FRACTION
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split: per class (in class order) a seeded permutation; the first
    ``round(test_fraction * n_class)`` samples go to test. Returns sorted (train_idx, test_idx)."""
    if labels is None:
        labels = _raw()[1]
    if not 0.0 < test_fraction < 1.0:
        raise DigitsDataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(idx.size)]
        n_test = int(round(test_fraction * idx.size))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) interpolation matrix, half-pixel centres, edge-clamped (align_corners=False)."""
    scale = n_in / n_out
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5
    src = np.maximum(src, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = src - i0
    m = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.arange(n_out)
    np.add.at(m, (rows, i0), 1.0 - frac)
    np.add.at(m, (rows, i1), frac)
    return m


def upscale(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinearly resize (N, C, H, W) images to (N, C, size, size), float32."""
    if images.ndim != 4:
        raise DigitsDataError(f"upscale expects NCHW images, got shape {images.shape}")
    h, w = images.shape[2:]
    rh = _bilinear_matrix(h, size)
    rw = _bilinear_matrix(w, size)
    out = np.einsum("oh,nchw,pw->ncop", rh, images.astype(np.float64), rw, optimize=True)
    return out.astype(np.float32)


def _check(split: str, size: int) -> None:
    if split not in SPLITS:
        raise DigitsDataError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise DigitsDataError(f"size must be a positive integer, got {size!r}")


@functools.lru_cache(maxsize=8)
def _images(split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _raw()
    if split != "all":
        train_idx, test_idx = split_indices(labels)
        idx = train_idx if split == "train" else test_idx
        images, labels = images[idx], labels[idx]
    x = images[:, None, :, :]
    if size != NATIVE_SIZE:
        x = upscale(x, size)
    x = np.ascontiguousarray(x, dtype=np.float32)
    x.setflags(write=False)
    labels = np.array(labels)
    labels.setflags(write=False)
    return x, labels


def normalization_stats(size: int = NATIVE_SIZE) -> tuple[float, float]:
    """Mean and standard deviation of the train split's pixels at ``size`` (after /16 scaling)."""
    _check("train", size)
    x, _ = _images("train", int(size))
    return float(x.mean(dtype=np.float64)), float(x.std(dtype=np.float64))


def load_digits(
    split: str = "train", *, size: int = NATIVE_SIZE, normalize: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images, labels)``: float32 ``(N, 1, size, size)`` and int64 ``(N,)``.

    ``split`` is "train" (1438 samples), "test" (359) or "all" (1797). ``size`` 8 is native;
    other sizes are bilinear resizes (28 mimics MNIST). ``normalize`` subtracts the train split's
    mean and divides by its std (computed at the same size). Arrays are fresh, writable copies.
    """
    _check(split, size)
    x, y = _images(split, int(size))
    x = x.copy()
    if normalize:
        mean, std = normalization_stats(int(size))
        x = ((x - np.float32(mean)) / np.float32(std)).astype(np.float32)
    return x, y.copy()


def batches(
    x: np.ndarray,
    y: np.ndarray | None = None,
    batch_size: int = 64,
    *,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
) -> Iterator[Any]:
    """Yield ``(x_batch, y_batch)`` (or ``x_batch`` when ``y`` is None) numpy slices."""
    if batch_size < 1:
        raise DigitsDataError(f"batch_size must be >= 1, got {batch_size}")
    if y is not None and len(y) != len(x):
        raise DigitsDataError(f"x and y differ in length ({len(x)} vs {len(y)})")
    order = np.random.default_rng(seed).permutation(len(x)) if shuffle else np.arange(len(x))
    stop = len(x) - (len(x) % batch_size if drop_last else 0)
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        yield x[idx] if y is None else (x[idx], y[idx])


def torch_loader(
    split: str = "train",
    *,
    size: int = MNIST_SIZE,
    normalize: bool = False,
    batch_size: int = 64,
    shuffle: bool | None = None,
    seed: int = 0,
    drop_last: bool = False,
) -> Any:
    """A ``torch.utils.data.DataLoader`` over the digits split (needs torch).

    Shuffles by default for the train split, with a seeded ``torch.Generator``.
    """
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    x, y = load_digits(split, size=size, normalize=normalize)
    if shuffle is None:
        shuffle = split == "train"
    gen = torch.Generator().manual_seed(seed)
    ds = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=gen, drop_last=drop_last)


def calibration_images(input_shape: tuple[int, ...]) -> np.ndarray:
    """The train split's images at a network's input size: the "digits" calibration data set
    (entry point `fixflow.datasets`, used by `calibrate{data=digits}`)."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 4 or shape[1] != 1 or shape[2] != shape[3]:
        raise ValueError(f"'digits' data is 1-channel square images; the network input is {shape}")
    x, _ = load_digits("train", size=shape[2])
    return np.asarray(x, np.float32)
