"""A ShuffleNet-style block: a DPU concat (its inputs placed side by side in the output, strided views)
feeding a channel shuffle on the CPU. Compiling it once failed the emitted-xmodel check (a strided
input's span was taken as stride x rows from its channel offset); the compiled graph must run bit for
bit as the _int.xmodel."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _runtime_testlib import compile_xmodel
from fixflow.quantizer import Quantizer
from fixflow.runtime import GraphRunner


class ShuffleBlock(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = torch.cat((F.relu(self.a(x)), F.relu(self.b(x))), 1)
        n, c, h, w = y.shape
        return y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)


def test_concat_into_cpu_shuffle_compiles_and_runs_bit_exact(tmp_path):
    m = ShuffleBlock().eval()
    ex = (torch.zeros(1, 3, 8, 8),)
    q = Quantizer(m, ex, mode="calib", output_dir=tmp_path / "q", log=None, progress=False)
    q.quant_model(torch.randn(8, 3, 8, 8))
    q.export_quant_config()
    q = Quantizer(m, ex, mode="test", output_dir=tmp_path / "q", log=None, progress=False)
    int_path = q.export_xmodel()
    compiled = compile_xmodel(int_path, tmp_path / "c", "kv260", "shuffle")
    g = GraphRunner.from_xmodel(compiled)
    assert {"DPU", "CPU"} <= {"DPU" if hasattr(s, "dpu") else "CPU" for s in g.steps}
    x = np.random.default_rng(1).standard_normal((4, 3, 8, 8)).astype(np.float32)
    want, = GraphRunner.from_xmodel(int_path).run([x])
    for mode in ("fast", "reference"):
        out, = g.run([x], mode=mode)
        np.testing.assert_array_equal(out, want, err_msg=mode)
