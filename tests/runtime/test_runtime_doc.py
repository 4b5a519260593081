"""docs/runtime.md: its GraphRunner and Runner examples run (on AMD's compiled MNIST) and print what the
doc says they return."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from _runtime_testlib import MNIST_DIR, mnist_expected, mnist_inputs

DOC = (Path(__file__).resolve().parents[2] / "docs" / "runtime.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", DOC, re.S)


def test_graph_runner_example(monkeypatch):
    monkeypatch.chdir(MNIST_DIR)
    ns = {"x": mnist_inputs().astype(np.float32) / 64}
    exec(compile(BLOCKS[0], "docs/runtime.md:python-1", "exec"), ns)
    g = ns["g"]
    assert repr(g.inputs) == "[TensorSpec(name='quant_input_1', shape=(1, 28, 28, 1), layout='NHWC', fix_point=6, " \
        "dtype='float32')]"
    assert "TensorSpec(name='quant_input_1', shape=(1, 28, 28, 1), layout='NHWC', fix_point=6)" in BLOCKS[0]
    assert ns["probs"].shape == (5, 10) and np.array_equal(ns["probs"].argmax(1), mnist_expected().argmax(1))


def test_runner_example(monkeypatch):
    monkeypatch.chdir(MNIST_DIR)
    ns = {"images": mnist_inputs().astype(np.float32) / 64}
    exec(compile(BLOCKS[1], "docs/runtime.md:python-2", "exec"), ns)
    i = ns["inp"][0]
    assert (i.name, i.dims, i.dtype, i.fix_point) == ("quant_input_1", (1, 28, 28, 1), "xint8", 6)
    assert "'quant_input_1', (1, 28, 28, 1), 'xint8', 6" in BLOCKS[1]
    assert np.array_equal(ns["y"], mnist_expected())
