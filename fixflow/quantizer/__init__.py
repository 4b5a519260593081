"""Post-training quantization for the DPU: the `Quantizer` API (float / calib / test modes),
quant_info.json, the JSON config file and the generated quantizable module source.

    from fixflow.quantizer import Quantizer
    q = Quantizer(model, (x,), mode="calib", output_dir="build/quant_model")
    for xb in batches: q.quant_model(xb)
    q.export_quant_config()

Channel pruning of float models (vai_p's optimizer) is in ``fixflow.quantizer.pruning`` (docs/pruning.md).
"""

from typing import Any

from .api import Quantizer, graph_md5, node_name, param_name
from .config import QuantConfig, load_config
from .errors import QuantizerError
from .input_checks import QuantizerWarning

__all__ = ["Quantizer", "QuantModel", "QuantizerError", "QuantizerWarning", "QuantConfig", "load_config", "graph_md5",
           "node_name", "param_name", "torch_quantizer"]

_LAZY = {"QuantModel": "torch_module", "torch_quantizer": "vaiq"}   # these import torch


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
