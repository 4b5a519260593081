"""Post-training quantization for the DPU: the `Quantizer` API (float / calib / test modes),
quant_info.json, the JSON config file and the generated quantizable module source.

    from fixflow.quantizer import Quantizer
    q = Quantizer(model, (x,), mode="calib", output_dir="build/quant_model")
    for xb in batches: q.quant_model(xb)
    q.export_quant_config()
"""

from .api import QuantModel, Quantizer, graph_md5, node_name, param_name
from .config import QuantConfig, load_config
from .errors import QuantizerError

__all__ = ["Quantizer", "QuantModel", "QuantizerError", "QuantConfig", "load_config", "graph_md5", "node_name",
           "param_name"]
