"""GraphRunner on a hand-built compiled xmodel with DPU and CPU subgraphs interleaved: USER -> DPU (a
CONV tile) -> CPU (pad-fix) -> DPU (the CONV tile again) -> CPU (fix2float, softmax); int8 tensors cross
subgraphs both ways. Expected values from numpy (the CONV tile's formula, padding, softmax)."""

from __future__ import annotations

import numpy as np
import pytest

from _runtime_testlib import TARGET, tiny_dpu
from fixflow.backends.xmodel import XOp, XTensor
from fixflow.backends.xmodel.compiled import (CompiledModel, DpuSubgraph, HostSubgraph, Region, SuperLayer,
                                              write_compiled)
from fixflow.runtime import GraphRunner
from fixflow.target import get_target

FP_IN, FP_MID = 0, 3


def _t(name, shape, fp=None, **ddr):
    attrs = {} if fp is None else {"fix_point": fp, "bit_width": 8, "if_signed": True, "round_mode": "DPU_ROUND"}
    if ddr:
        attrs.update(location=1, **ddr)
    return XTensor(name, list(shape), "XINT8" if fp is not None else "FLOAT32", attrs)


def _dpu_part(k: int, src: str, dpu) -> tuple[list[XOp], DpuSubgraph]:
    up, conv, down = f"up{k}", f"conv{k}", f"down{k}"
    ops = [XOp(up, "upload", {}, {"input": [src]}, output=_t(up, (1, 6, 6, 16), FP_IN if k == 1 else FP_MID,
                                                              reg_id=2, ddr_addr=0, stride=[576, 96, 16, 1])),
           XOp(conv, "conv2d-fix", {"kernel": [3, 3], "stride": [1, 1], "nonlinear": "RELU"}, {"input": [up]},
               output=_t(conv, (1, 4, 4, 16), FP_MID, reg_id=3, ddr_addr=0, stride=[256, 64, 16, 1])),
           XOp(down, "download", {}, {"input": [conv]}, output=_t(down, (1, 4, 4, 16), FP_MID))]
    regions = [Region(0, "CONST", "CONST", dpu.reg_sizes[0], parameter=dpu.consts[0].tobytes()),
               Region(2, "DATA", "INTERFACE", dpu.reg_sizes[2]), Region(3, "DATA", "INTERFACE", dpu.reg_sizes[3])]
    children = [SuperLayer(f"sl_{up}", [up], "upload"), SuperLayer(f"sl_{conv}", [conv], "code"),
                SuperLayer(f"sl_{down}", [down], "download")]
    return ops, DpuSubgraph(f"subgraph_dpu{k}", get_target(TARGET), dpu.mc_code, regions, children)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    dpu, expected = tiny_dpu(seed=11)
    ops = [XOp("x", "data-fix", {"shape": [1, 6, 6, 16], "data_type": "XINT8"}, output=_t("x", (1, 6, 6, 16), FP_IN))]
    ops1, sg1 = _dpu_part(1, "x", dpu)
    pad = XOp("pad", "pad-fix", {"paddings": [0, 0, 1, 1, 1, 1, 0, 0], "mode": "CONSTANT",
                                 "constant_values": bytes(8)}, {"input": ["down1"]}, output=_t("pad", (1, 6, 6, 16), FP_MID))
    ops2, sg2 = _dpu_part(2, "pad", dpu)
    f2f = XOp("logits", "fix2float", {"fix_point": FP_MID, "bit_width": 8, "if_signed": True, "round_mode": "DPU_ROUND"},
              {"input": ["down2"]}, output=_t("logits", (1, 4, 4, 16)))
    sm = XOp("probs", "softmax", {"axis": -1}, {"input": ["logits"]}, output=_t("probs", (1, 4, 4, 16)))
    m = CompiledModel("mixed", ops + ops1 + [pad] + ops2 + [f2f, sm], [
        HostSubgraph("subgraph_x", "USER", ["x"]), sg1, HostSubgraph("subgraph_pad", "CPU", ["pad"]), sg2,
        HostSubgraph("subgraph_softmax", "CPU", ["logits", "probs"])])
    path = tmp_path_factory.mktemp("mixed") / "mixed.xmodel"
    write_compiled(m, path)
    return GraphRunner.from_xmodel(path), expected


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_dpu_cpu_dpu_cpu(mixed, mode):
    g, conv = mixed
    assert [s.name for s in g.steps] == ["subgraph_dpu1", "subgraph_pad", "subgraph_dpu2", "subgraph_softmax"]
    x = np.random.default_rng(4).integers(-128, 128, (3, 6, 6, 16)).astype(np.float32)   # fix_point 0
    res = g.run_tensors([x], mode=mode)
    a = conv(x.astype(np.int8))
    assert (a != 0).mean() > 0.2 and len(np.unique(a)) > 20      # not a trivial map
    assert np.array_equal(res["down1"], a)
    padded = np.pad(a, ((0, 0), (1, 1), (1, 1), (0, 0)))
    assert np.array_equal(res["pad"], padded)
    b = conv(padded)
    assert (b != 0).mean() > 0.2
    assert np.array_equal(res["down2"], b)
    z = b.astype(np.float64) / 2 ** FP_MID
    want = np.exp(z - z.max(-1, keepdims=True))
    want /= want.sum(-1, keepdims=True)
    probs, = g.run([x], mode=mode)
    assert probs.shape == (3, 4, 4, 16)
    np.testing.assert_allclose(probs, want, rtol=1e-6, atol=1e-7)
