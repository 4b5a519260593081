"""Shared data for the compiled-xmodel tests: AMD's MNIST and a small compiled model built in Python."""

from pathlib import Path

import numpy as np

from fixflow.backends.xmodel import XOp, XTensor
from fixflow.backends.xmodel.compiled import CompiledModel, DpuSubgraph, HostSubgraph, Region, SuperLayer
from fixflow.target import get_target

MNIST_DIR = Path(__file__).resolve().parents[4] / "shared" / "reference" / "amd-compiled-mnist"
MNIST = MNIST_DIR / "dpu_mnist_classifier.xmodel"


def _fix(fp, **ddr):
    return {"fix_point": fp, "bit_width": 8, "if_signed": True, "round_mode": "DPU_ROUND", **ddr}


def _ddr(reg, addr, stride=None, location=1):
    d = {"reg_id": reg, "ddr_addr": addr, "location": location}
    if stride is not None:
        d["stride"] = stride
    return d


def build_model(target="DPUCZDX8G_ISA1_B1024") -> CompiledModel:
    """data -> upload -> conv(3x3, 4 ch) -> download -> fix2float (CPU)."""
    rng = np.random.default_rng(1)
    w = rng.integers(-128, 128, (4, 3, 3, 1), dtype=np.int8).tobytes()
    b = rng.integers(-128, 128, 4, dtype=np.int8).tobytes()
    params = b + bytes(4096 - len(b)) + w
    ops = [
        XOp("x", "data-fix", {"shape": [1, 6, 6, 1], "data_type": "XINT8"},
            output=XTensor("x", [1, 6, 6, 1], "XINT8", _fix(7))),
        XOp("x_upload_0", "upload", {}, {"input": ["x"]},
            output=XTensor("x_upload_0", [1, 6, 6, 1], "XINT8", _fix(7, **_ddr(2, 0, [36, 6, 1, 1])))),
        XOp("w", "const-fix", {"data": b"", "shape": [4, 3, 3, 1], "data_type": "XINT8"},
            output=XTensor("w", [4, 3, 3, 1], "XINT8", _fix(7, **_ddr(0, 4096)))),
        XOp("b", "const-fix", {"data": b"", "shape": [4], "data_type": "XINT8"},
            output=XTensor("b", [4], "XINT8", _fix(6, **_ddr(0, 0)))),
        XOp("conv", "conv2d-fix", {"kernel": [3, 3], "stride": [1, 1], "pad": [0, 0, 0, 0], "nonlinear": "RELU"},
            {"input": ["x_upload_0"], "weights": ["w"], "bias": ["b"]},
            output=XTensor("conv_download_0", [1, 4, 4, 4], "XINT8", _fix(4, **_ddr(3, 0, [64, 16, 4, 1])))),
        XOp("conv_download_0", "download", {}, {"input": ["conv"]},
            output=XTensor("conv", [1, 4, 4, 4], "XINT8", _fix(4))),
        XOp("y", "fix2float", {"fix_point": 4, "bit_width": 8, "if_signed": True, "round_mode": "DPU_ROUND"},
            {"input": ["conv_download_0"]}, output=XTensor("y", [1, 4, 4, 4], "FLOAT32")),
    ]
    mc = bytes.fromhex("00002072")  # END (dpdon SAVE)
    dpu = DpuSubgraph(
        "subgraph_conv_dpu", get_target(target), mc,
        [Region(0, "CONST", "CONST", len(params), parameter=params), Region(1, "DATA", "WORKSPACE", 0),
         Region(2, "DATA", "INTERFACE", 36), Region(3, "DATA", "INTERFACE", 64)],
        [SuperLayer("subgraph_x_upload_0", ["x_upload_0"], "upload"),
         SuperLayer("subgraph_conv", ["w", "b", "conv"], "code", mc_code=mc, ac_code=["END 0010 0000"],
                    workload=2 * 16 * 4 * 9),
         SuperLayer("subgraph_conv_download_0", ["conv_download_0"], "download")],
        ac_code=["END 0010 0000"], workload=2 * 16 * 4 * 9)
    return CompiledModel("tiny", ops, [HostSubgraph("subgraph_x", "USER", ["x"]), dpu,
                                       HostSubgraph("subgraph_y", "CPU", ["y"])], {"origin": "fixflow"})
