"""Small, hand-built XIR graphs for tests, docs and trying the ``fixflow-xir`` tool.

They are structurally faithful (ops, attribute kinds, subgraph tree, DPU attributes)
but the DPU payloads are sample bytes, not a compiled program.
"""

from __future__ import annotations

import numpy as np

from .model import XAttr, XGraph, XOp, XSubgraph, XTensor

DPU_NAME = "DPUCZDX8G_ISA1_B4096"
DPU_FINGERPRINT = 0x0101000056010407


def _fix(fp: int, bits: int = 8) -> dict:
    return {"fix_point": fp, "bit_width": bits, "if_signed": True, "round_mode": "DPU_ROUND"}


def sample_graph() -> XGraph:
    """A quantized conv -> relu -> pool -> softmax net as the quantizer would export it."""
    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, size=(4, 3, 3, 1), dtype=np.int8)
    b = rng.integers(-128, 128, size=(4,), dtype=np.int8)
    ops = [
        XOp("input", "data-fix", {"shape": [1, 8, 8, 1], "data_type": "XINT8"},
            output=XTensor("input", [1, 8, 8, 1], "XINT8", _fix(7))),
        XOp("conv/weights", "const-fix",
            {"data": w.tobytes(), "shape": list(w.shape), "data_type": "XINT8"},
            output=XTensor("conv/weights", list(w.shape), "XINT8", _fix(6))),
        XOp("conv/bias", "const-fix", {"data": b.tobytes(), "shape": [4], "data_type": "XINT8"},
            output=XTensor("conv/bias", [4], "XINT8", _fix(5))),
        XOp("conv", "conv2d-fix",
            {"kernel": [3, 3], "stride": [1, 1], "pad": [1, 1, 1, 1], "dilation": [1, 1],
             "pad_mode": "FLOOR", "nonlinear": "RELU", "group": 1},
            {"input": ["input"], "weights": ["conv/weights"], "bias": ["conv/bias"]},
            output=XTensor("conv", [1, 8, 8, 4], "XINT8", _fix(4))),
        XOp("pool", "pool-fix",
            {"type": "MAX", "kernel": [2, 2], "stride": [2, 2], "pad": [0, 0, 0, 0],
             "global": False},
            {"input": ["conv"]}, output=XTensor("pool", [1, 4, 4, 4], "XINT8", _fix(4))),
        XOp("flatten", "reshape-fix", {"shape": [1, 64]}, {"input": ["pool"]},
            output=XTensor("flatten", [1, 64], "XINT8", _fix(4))),
        XOp("softmax", "softmax", {"axis": -1}, {"input": ["flatten"]},
            output=XTensor("softmax", [1, 64], "FLOAT32")),
    ]
    return XGraph("sample_net", ops, {"origin": "fixflow", "files_md5sum": {"net.py": "0" * 32}})


def sample_dpu_graph() -> XGraph:
    """:func:`sample_graph` partitioned like a compiled model: USER / DPU (2 super-layers) / CPU."""
    g = sample_graph()
    params = bytes(range(256)) * 3
    ac_conv = ["LOAD 1, 0, 0, 0, 0, 8, 8, 0, 0, 1, 0, 0, 0, 0",
               "CONVINIT 0, 0, 3, 3, 1, 1, 0, 7, 0, 1, 1, 1, 1",
               "CONV 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0"]
    ac_pool = ["POOLINIT 0, 1, 2, 2, 2, 2, 0", "POOL 0, 0, 0, 0, 0, 0, 0, 0", "END 0, 0"]
    conv = XSubgraph("subgraph_conv__super0", ["conv/weights", "conv/bias", "conv"],
                     {"ac_code": ac_conv, "mc_code": bytes([1, 2, 3, 4] * 6)})
    pool = XSubgraph("subgraph_conv__super1", ["pool", "flatten"],
                     {"ac_code": ac_pool, "mc_code": bytes([5, 6, 7, 8] * 4)})
    dpu = XSubgraph("subgraph_conv", attrs={
        "device": "DPU",
        "dpu_name": DPU_NAME,
        "dpu_fingerprint": XAttr("uint64", DPU_FINGERPRINT),
        "mc_code": bytes([1, 2, 3, 4] * 6 + [5, 6, 7, 8] * 4),
        "ac_code": ac_conv + ac_pool,
        "reg_id_to_context_type": {"REG_0": "CONST", "REG_1": "DATA", "REG_2": "DATA"},
        "reg_id_to_context_type_v2": {"REG_0": "CONST", "REG_1": "WORKSPACE", "REG_2": "INTERFACE"},
        "reg_id_to_size": {"REG_0": len(params), "REG_1": 4096, "REG_2": 64},
        "reg_id_to_hw_segment": {"REG_0": "W0", "REG_1": "D0", "REG_2": "D0"},
        "reg_id_to_parameter_value": {"REG_0": params},
        "workload": XAttr("uint64", 2 * 8 * 8 * 4 * 9),
        "children_topological_sort": [conv.name, pool.name],
    }, children=[conv, pool])
    g.root = XSubgraph("root", attrs={"__runner": "fixflow"}, children=[
        XSubgraph("subgraph_input", ["input"], {"device": "USER"}),
        dpu,
        XSubgraph("subgraph_softmax", ["softmax"], {"device": "CPU"}),
    ])
    return g
