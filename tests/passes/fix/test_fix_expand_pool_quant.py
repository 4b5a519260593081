"""Fixed-point forms of issue 15's remaining ops: expand / repeat that add leading dimensions, and an adaptive
average pool with uneven windows (VGG's 7x7 pool on a map smaller than 7x7).

Each model goes through the Quantizer (calib at batch 1 -> test at batch 3 -> `_int.xmodel`); the written
file, read back and run by `GraphRunner`, must equal test mode bit for bit, and test mode must stay near
PyTorch's float model. The pooling matrix is checked against `F.adaptive_avg_pool2d`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from _lib.torch_fn import Fn
from fixflow.passes.fix.quantize import adaptive_pool_matrix
from fixflow.quantizer import Quantizer
from fixflow.runtime import GraphRunner


def _quantize(model: nn.Module, shape: tuple[int, ...], tmp_path, n: int = 3):
    model.eval()
    g = torch.Generator().manual_seed(1)
    calib = torch.randn((16,) + shape[1:], generator=g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = Quantizer(model, (torch.zeros(shape),), mode="calib", output_dir=tmp_path, log=None, progress=False)
        q.quant_model(calib)
        q.export_quant_config()
        q = Quantizer(model, (torch.zeros(shape),), mode="test", output_dir=tmp_path, log=None, progress=False)
        x = torch.randn((n,) + shape[1:], generator=g)
        sim = np.asarray(q.quant_model(x))
        path = q.export_xmodel()
    got = GraphRunner.from_xmodel(path).run([x.numpy()])[0]
    np.testing.assert_array_equal(got, sim)        # the written file computes what test mode computes
    with torch.no_grad():
        ref = model(x).numpy()
    assert sim.shape == ref.shape
    assert np.linalg.norm(sim - ref) <= 0.08 * np.linalg.norm(ref)
    return q


def _names(q) -> set[str]:
    return {op.name for op in q.fix_module.walk() if op.name.startswith(("fix.", "graph."))}


def _cpu_graph_ops(q) -> list[str]:
    return [op.name for op in q.fix_module.walk() if op.name.startswith("graph.") and op.name != "graph.constant"]


# ---- adaptive average pooling with uneven windows ---------------------------------------------------
@pytest.mark.parametrize("size,out", [(5, 7), (6, 7), (2, 7), (3, 7), (10, 7), (9, 4)])
def test_pool_matrix_is_pytorchs_adaptive_pool(size, out):
    x = torch.randn(2, 3, size, size + 1)
    m = np.kron(adaptive_pool_matrix(size, out), adaptive_pool_matrix(size + 1, out + 1))
    got = x.numpy().reshape(2, 3, -1) @ m.T
    want = F.adaptive_avg_pool2d(x, (out, out + 1)).numpy().reshape(2, 3, -1)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


class Pool(nn.Module):
    def __init__(self, out):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(out)

    def forward(self, x):
        return self.pool(F.relu(self.conv(x)))


@pytest.mark.parametrize("hw,out", [(5, 7), (6, 7), (2, 7), ((6, 5), (3, 4)), (10, 7)],
                         ids=["5to7", "6to7", "2to7", "6x5to3x4", "10to7"])
def test_uneven_adaptive_pool_is_a_1x1_conv(tmp_path, hw, out):
    hw = hw if isinstance(hw, tuple) else (hw, hw)
    q = _quantize(Pool(out), (1, 3) + hw, tmp_path)
    assert "fix.conv2d" in _names(q) and not _cpu_graph_ops(q)      # no float op left
    convs = [op for op in q.fix_module.walk() if op.name == "fix.conv2d"]
    pool_conv = convs[-1]
    oh, ow = (out, out) if isinstance(out, int) else out
    assert pool_conv.results[0].type.shape == (1, 1, 8, oh * ow)   # (N, 1, C, OH*OW) from (N, 1, C, H*W)
    assert pool_conv.attributes.get("device") is None              # the DPU runs it


def test_pool_weights_of_a_smaller_map_are_exact(tmp_path):
    """Below the output size every window has 1 or 2 pixels a side: weights 1, 1/2, 1/4, exact in 8 bits."""
    q = _quantize(Pool(7), (1, 3, 5, 5), tmp_path)
    const = next(op for op in q.fix_module.walk()
                 if op.name == "fix.const" and "pool_matrix" in (op.results[0].name_hint or ""))
    m = np.kron(adaptive_pool_matrix(5, 7), adaptive_pool_matrix(5, 7))
    np.testing.assert_array_equal(const.ints.reshape(49, 25) * 2.0 ** -const.fp_out, m)


# ---- expand / repeat adding leading dimensions -----------------------------------------------------------
EXPANDS = [
    ("param_to_batch_rank4", lambda m, x: m.conv(x) + m.p.expand(x.shape[0], 4, -1, -1)),
    ("param_expand_shape", lambda m, x: (lambda y: y * m.p.expand(y.shape))(m.conv(x))),
    ("features_rank2_to_4", lambda m, x: m.conv(x).mean((2, 3)).expand(2, 5, -1, -1)),
    ("features_rank3_to_4", lambda m, x: m.conv(x).mean(1).expand(2, -1, -1, -1)),
    ("rank4_repeat_to_5", lambda m, x: m.conv(x).repeat(2, 1, 1, 1, 1)),
    ("param_repeat_batch", lambda m, x: m.conv(x) + m.p.repeat(x.shape[0], 4, 1, 1)),
]


@pytest.mark.parametrize("name,fn", EXPANDS, ids=[c[0] for c in EXPANDS])
def test_rank_changing_expand_quantizes(tmp_path, name, fn):
    model = Fn(fn, conv=nn.Conv2d(3, 4, 1), p=nn.Parameter(torch.randn(4, 5)))
    q = _quantize(model, (1, 3, 4, 5), tmp_path)
    assert not any(n in ("graph.expand", "graph.tile") for n in _cpu_graph_ops(q))


def test_written_reshape_keeps_a_batch_past_the_first_dim(tmp_path):
    """A reshape that puts the batch second (rank 2 -> 3) is written with its fixflow shape beside XIR's."""
    from fixflow.backends.xmodel import read_xmodel
    from fixflow.backends.xmodel.fix_xmodel import RESHAPE_SHAPE
    q = _quantize(Fn(lambda m, x: m.conv(x).mean((2, 3)).expand(3, -1, -1), conv=nn.Conv2d(3, 4, 1)),
                  (1, 3, 4, 5), tmp_path, n=4)
    xops = [o for o in read_xmodel(q.export_xmodel()).ops if o.has_attr(RESHAPE_SHAPE)]
    assert [o.attr(RESHAPE_SHAPE) for o in xops] == [[1, -1, 4]]
    assert xops[0].attr("shape") == [1, 1, 4]
