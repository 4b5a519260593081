"""fixflow.passes.data.load_inputs, the one input loader of the calibrate pass and the tools: every
source kind, and one DataError (never a numpy/PIL exception) for every bad one."""

from __future__ import annotations

import numpy as np
import pytest

from fixflow.ir.diagnostics import FixflowError
from fixflow.passes.data import DataError, load_inputs

SHAPE = (1, 1, 8, 8)


def _x(n=6, shape=SHAPE[1:]):
    return np.random.default_rng(0).random((n, *shape)).astype(np.float32)


def test_npy_npz_and_labels(tmp_path):
    np.save(tmp_path / "x.npy", _x())
    d = load_inputs(str(tmp_path / "x.npy"), SHAPE)
    assert d.x.shape == (6, 1, 8, 8) and d.x.dtype == np.float32 and d.y is None
    np.savez(tmp_path / "d.npz", images=_x(), labels=np.arange(6))
    d = load_inputs(str(tmp_path / "d.npz"), SHAPE)
    assert d.x.shape == (6, 1, 8, 8) and list(d.y) == list(range(6))
    np.savez(tmp_path / "first.npz", whatever=_x(3).astype(np.uint8))
    assert load_inputs(str(tmp_path / "first.npz")).x.dtype == np.float32


def test_named_data_set():
    d = load_inputs("digits", (1, 1, 28, 28))
    assert d.x.shape[1:] == (1, 28, 28) and len(d.x) > 100
    with pytest.raises(DataError, match="1-channel square images"):
        load_inputs("digits", (1, 3, 28, 28))


def test_image_folder_with_classes(tmp_path):
    from PIL import Image
    for c, value in (("cat", 0), ("dog", 255)):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((16, 12, 3), value, np.uint8)).save(tmp_path / "imgs" / c / f"{i}.png")
    d = load_inputs(str(tmp_path / "imgs"), (1, 3, 8, 8))
    assert d.x.shape == (4, 3, 8, 8) and list(d.y) == [0, 0, 1, 1]
    assert d.x[:2].max() == 0.0 and d.x[2:].min() == 1.0          # scaled to 0..1 as ToTensor()
    gray = load_inputs(str(tmp_path / "imgs"), (1, 1, 5, 5))
    assert gray.x.shape == (4, 1, 5, 5)
    (tmp_path / "imgs" / "dog" / "2.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read image .*2.png"):
        load_inputs(str(tmp_path / "imgs"), (1, 3, 8, 8))


@pytest.mark.parametrize("make,match", [
    (lambda p: np.save(p / "bad.npy", _x(4, (1, 4, 8))), r"array of shape \(4, 1, 4, 8\) does not fit the network input "
                                                         r"\(N, 1, 8, 8\)"),
    (lambda p: np.save(p / "bad.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True), "holds Python objects"),
    (lambda p: (p / "bad.npy").write_bytes(b"\x93NUMPY garbage"), "cannot read"),
    (lambda p: (p / "bad.npz").write_bytes(b"PK\x03\x04garbage"), "cannot read"),
    (lambda p: np.savez(p / "bad.npz"), "holds no arrays"),
    (lambda p: np.save(p / "bad.npy", _x(0)), "holds no inputs"),
    (lambda p: np.savez(p / "bad.npz", x=_x(), y=np.zeros(3, np.int64)), "labels .y. must be integer class indices"),
    (lambda p: np.save(p / "bad.npy", np.array(["a", "b"])), "numeric array"),
    (lambda p: (p / "bad").mkdir(), "holds no images"),
    (lambda p: None, "file .*nope.npy not found"),
])
def test_bad_sources_are_one_data_error(tmp_path, make, match):
    make(tmp_path)
    path = next((str(p) for p in tmp_path.iterdir() if p.name.startswith("bad")), str(tmp_path / "nope.npy"))
    with pytest.raises(DataError, match=match) as info:
        load_inputs(path, SHAPE, what="--data")
    assert isinstance(info.value, FixflowError) and info.value.message.startswith("--data: ")


def test_an_unknown_name_lists_the_data_sets():
    with pytest.raises(DataError, match=r"'mnist' is neither a file, a folder nor a named data set \(.*digits"):
        load_inputs("mnist", SHAPE)
