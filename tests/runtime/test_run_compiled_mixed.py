"""A network that fixflow-compile splits into DPU -> CPU -> DPU -> CPU (a float sigmoid between two DPU
programs), from a user's file through fixflow-quantize and fixflow-compile: the whole-graph runner gives
the _int.xmodel's integer execution bit for bit, with the DPU subgraphs on the interpreter or as fix ops."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from _runtime_testlib import compile_xmodel
from fixflow.runtime import GraphRunner

pytestmark = pytest.mark.slow   # quantizes and compiles a network first

NET = '''
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16 * 14 * 14, 10)

    def forward(self, x):
        x = torch.relu(self.c1(x))
        x = torch.sigmoid(x) * x          # the sigmoid stays a float op on the CPU
        x = torch.relu(self.c2(x))
        return self.fc(torch.flatten(x, 1))
'''


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    from fixflow.tools.quantize import main as quantize
    from fixflow.zoo.data import load_digits
    d = tmp_path_factory.mktemp("mixnet")
    (d / "net.py").write_text(NET)
    x, y = load_digits("test", size=28)
    np.savez(d / "in.npz", x=x[:200], y=y[:200])
    for mode in ("calib", "test"):
        with contextlib.redirect_stdout(io.StringIO()):
            assert quantize(["--model", f"{d}/net.py:Net", "--random-weights", "--data", str(d / "in.npz"), "--mode", mode,
                             "--output-dir", str(d / "q")]) == 0
    int_path = d / "q" / "Net_int.xmodel"
    return int_path, compile_xmodel(int_path, d / "c", "kv260", "mix"), x[:200]


def test_dpu_cpu_dpu_cpu_equals_int_xmodel(mixed):
    int_path, compiled, x = mixed
    g = GraphRunner.from_xmodel(compiled)
    kinds = ["DPU" if hasattr(s, "dpu") else "CPU" for s in g.steps]
    assert kinds == ["DPU", "CPU", "DPU", "CPU"], [s.name for s in g.steps]
    want, = GraphRunner.from_xmodel(int_path).run([x])
    for mode in ("fast", "fix"):
        out, = g.run([x], mode=mode)
        assert np.array_equal(out, want), mode
    ref, = g.run([x[:3]], mode="reference")
    assert np.array_equal(ref, want[:3])
    t = g.run_tensors([x[:8]])
    between = [k for k, v in t.items() if v.dtype == np.int8]
    assert len(between) >= 4          # int8 tensors crossed the subgraph boundaries
