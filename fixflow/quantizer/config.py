"""The quantizer's JSON configuration file (the keys of vai_q_pytorch's `quant_config_file`).

Unknown keys and values fixflow does not implement are errors naming the key; nothing is ignored.

Bit widths: `overall_quantize_config.bit_width` (or the Quantizer's `bitwidth`) is the default of the
four tensor types; `tensor_quantize_config` sets one type's (`{"weights": {"bit_width": 4}}` is W4A8);
`layer_quantize_config` is a list of per-layer overrides, each naming a `layer_type`
("torch.nn.Conv2d") or a `layer_name` (a node name as in quant_info.json, `"Model::features.0.0"` or
`"features.0.0"`), with its own `overall_quantize_config` / `tensor_quantize_config`; a layer whose
`quantizable_data_type` is `[]` is left in float (it then runs on the CPU).
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import attrs

from .errors import QuantizerError

__all__ = ["QuantConfig", "LayerOverride", "load_config", "TOP_KEYS", "OVERALL_KEYS", "TENSOR_TYPES", "LAYER_KEYS",
           "BIT_WIDTH_MIN", "BIT_WIDTH_MAX", "LAYER_TYPES"]

TOP_KEYS = ("convert_relu6_to_relu", "include_cle", "include_bias_corr", "target_device", "quantizable_data_type",
            "overall_quantize_config", "tensor_quantize_config", "layer_quantize_config")
TENSOR_TYPES = ("input", "weights", "bias", "activation")
LAYER_KEYS = ("layer_type", "layer_name", "quantizable_data_type", "overall_quantize_config", "tensor_quantize_config")
BIT_WIDTH_MIN, BIT_WIDTH_MAX = 2, 16
#: torch module types a `layer_type` may name -> the graph ops they become
LAYER_TYPES = {
    "Conv2d": ("graph.conv2d",), "ConvTranspose2d": ("graph.conv_transpose2d",), "Linear": ("graph.linear",),
    "ReLU": ("graph.relu",), "ReLU6": ("graph.relu6",), "LeakyReLU": ("graph.leaky_relu",),
    "MaxPool2d": ("graph.max_pool2d",), "AvgPool2d": ("graph.avg_pool2d",),
    "AdaptiveAvgPool2d": ("graph.adaptive_avg_pool2d",), "Hardsigmoid": ("graph.hardsigmoid",),
    "Hardswish": ("graph.hardswish",), "Upsample": ("graph.upsample",),
}
OVERALL_KEYS = ("bit_width", "method", "round_mode", "symmetry", "per_channel", "signed", "narrow_range",
                "scale_type", "calib_statistic_method")
# what fixflow implements (the DPU's numerics); anything else is refused with a clear message
_SUPPORTED = {
    "method": ("diffs", "maxmin"),
    "round_mode": ("half_up",),
    "symmetry": (True,),
    "per_channel": (False,),
    "signed": (True,),
    "narrow_range": (False,),
    "scale_type": ("poweroftwo",),
    "calib_statistic_method": ("modal",),
}
_KNOWN_VALUES = {
    "method": ("maxmin", "percentile", "mse", "entropy", "diffs"),
    "round_mode": ("half_even", "half_up", "half_down", "std_round"),
    "scale_type": ("float", "poweroftwo"),
    "calib_statistic_method": ("modal", "max", "mean", "median"),
}


@attrs.define
class LayerOverride:
    """One `layer_quantize_config` entry: which layers (a torch type or a node name) and their bit widths
    per tensor type (`None` for `float`: the layer is left in float)."""

    where: str                      # "layer_quantize_config[1]", for messages
    layer_type: str | None = None   # "Conv2d" (the torch class name)
    layer_name: str | None = None
    bits: dict[str, int] | None = None

    @property
    def float(self) -> bool:
        return self.bits is None


@attrs.define
class QuantConfig:
    """The effective configuration (`bit_width` is the default; `tensor_bits` per tensor type)."""

    convert_relu6_to_relu: bool = False
    include_cle: bool = True
    include_bias_corr: bool = True
    target_device: str = "DPU"
    quantizable_data_type: tuple[str, ...] = ("input", "weights", "bias", "activation")
    bit_width: int = 8
    method: str = "diffs"
    round_mode: str = "half_up"
    calib_statistic_method: str = "modal"
    tensor_bits: dict[str, int] = attrs.field(factory=dict)
    layers: list[LayerOverride] = attrs.field(factory=list)

    def bits(self, tensor_type: str) -> int:
        """The model-wide bit width of a tensor type (input, weights, bias, activation)."""
        return self.tensor_bits.get(tensor_type, self.bit_width)

    @property
    def weights_bit_width(self) -> int:
        return self.bits("weights")

    @property
    def bias_bit_width(self) -> int:
        return self.bits("bias")

    @property
    def activation_bit_width(self) -> int:
        return self.bits("activation")

    @property
    def input_bit_width(self) -> int:
        return self.bits("input")


def _bool(where: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise QuantizerError(f"config: '{where}' must be true or false, got {json.dumps(v)}")
    return v


def load_config(config: None | str | os.PathLike | Mapping[str, Any], bitwidth: int = 8) -> QuantConfig:
    """Parse a config (None, a JSON file path or a dict) into a `QuantConfig`."""
    if not _is_bits(bitwidth):
        raise QuantizerError(f"bitwidth must be an integer in [{BIT_WIDTH_MIN}, {BIT_WIDTH_MAX}], got {bitwidth!r}")
    cfg = QuantConfig(bit_width=bitwidth)
    if config is None:
        return cfg
    src = "config"
    if isinstance(config, (str, os.PathLike)):
        src = str(config)
        try:
            with open(config, encoding="utf-8-sig") as f:
                config = json.load(f)
        except OSError as e:
            raise QuantizerError(f"cannot read config file {src}: {e.strerror or e}") from None
        except UnicodeDecodeError as e:
            raise QuantizerError(f"{src}: not a UTF-8 JSON file ({e.reason} at byte {e.start})") from None
        except json.JSONDecodeError as e:
            raise QuantizerError(f"{src}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    if not isinstance(config, Mapping):
        raise QuantizerError(f"{src}: the configuration must be a JSON object")
    for key, v in config.items():
        if key not in TOP_KEYS:
            raise QuantizerError(f"{src}: unknown config key '{key}' (known keys: {', '.join(TOP_KEYS)})")
        if key in ("convert_relu6_to_relu", "include_cle", "include_bias_corr"):
            setattr(cfg, key, _bool(key, v))
        elif key == "target_device":
            if str(v).upper() != "DPU":
                raise QuantizerError(f"{src}: 'target_device' {json.dumps(v)} is not supported (only \"DPU\")")
        elif key == "quantizable_data_type":
            vals = tuple(v) if isinstance(v, (list, tuple)) else (v,)
            if any(not isinstance(x, str) for x in vals) or set(vals) != set(cfg.quantizable_data_type):
                raise QuantizerError(f"{src}: 'quantizable_data_type' must list input, weights, bias and activation "
                                     "(fixflow quantizes all of them for the DPU)")
        elif key == "overall_quantize_config":
            _overall(cfg, v, src)
    # tensor and layer settings refine the overall one, whatever the key order in the file
    if config.get("tensor_quantize_config") is not None:
        cfg.tensor_bits = _tensor_config(cfg, config["tensor_quantize_config"], src, "tensor_quantize_config")
    layers = config.get("layer_quantize_config")
    if layers is not None:
        if not isinstance(layers, list):
            raise QuantizerError(f"{src}: 'layer_quantize_config' must be a list of layer configurations")
        cfg.layers = [_layer(cfg, entry, src, f"layer_quantize_config[{i}]") for i, entry in enumerate(layers)]
    return cfg


def _is_bits(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and BIT_WIDTH_MIN <= v <= BIT_WIDTH_MAX


def _bit_width(src: str, where: str, val: Any) -> int:
    if not _is_bits(val):
        raise QuantizerError(f"{src}: '{where}' must be an integer in [{BIT_WIDTH_MIN}, {BIT_WIDTH_MAX}], got "
                             f"{json.dumps(val)}")
    return val


def _tensor_config(cfg: QuantConfig, v: Any, src: str, where: str,
                   base: Mapping[str, int] | None = None) -> dict[str, int]:
    """Per-tensor-type settings -> bit width per tensor type (only those it sets, plus `base`)."""
    if not isinstance(v, Mapping):
        raise QuantizerError(f"{src}: '{where}' must be an object keyed by tensor type ({', '.join(TENSOR_TYPES)})")
    out = dict(base or {})
    for ttype, params in v.items():
        w = f"{where}.{ttype}"
        if ttype not in TENSOR_TYPES:
            raise QuantizerError(f"{src}: unknown tensor type '{w}' (known: {', '.join(TENSOR_TYPES)})")
        if not isinstance(params, Mapping):
            raise QuantizerError(f"{src}: '{w}' must be an object of quantization parameters")
        bits = _params(cfg, params, src, w, tensor_type=ttype)
        if bits is not None:
            out[ttype] = bits
    return out


def _layer(cfg: QuantConfig, entry: Any, src: str, where: str) -> LayerOverride:
    if not isinstance(entry, Mapping):
        raise QuantizerError(f"{src}: '{where}' must be an object with {', '.join(LAYER_KEYS)}")
    for k in entry:
        if k not in LAYER_KEYS:
            raise QuantizerError(f"{src}: unknown config key '{where}.{k}' (known keys: {', '.join(LAYER_KEYS)})")
    ltype, lname = entry.get("layer_type"), entry.get("layer_name")
    if (ltype is None) == (lname is None):
        raise QuantizerError(f"{src}: '{where}' must give exactly one of 'layer_type' and 'layer_name' (the "
                             "other null)")
    if ltype is not None:
        if not isinstance(ltype, str) or ltype.rsplit(".", 1)[-1] not in LAYER_TYPES:
            raise QuantizerError(f"{src}: '{where}.layer_type' {json.dumps(ltype)} is not a layer type fixflow "
                                 f"quantizes (known: {', '.join('torch.nn.' + t for t in LAYER_TYPES)})")
        ltype = ltype.rsplit(".", 1)[-1]
    elif not isinstance(lname, str) or not lname:
        raise QuantizerError(f"{src}: '{where}.layer_name' must be a node name (as in quant_info.json), got "
                             f"{json.dumps(lname)}")
    if "quantizable_data_type" not in entry:
        raise QuantizerError(f"{src}: '{where}.quantizable_data_type' is missing (list the tensor types to "
                             "quantize, or [] to leave the layer in float)")
    qdt = entry["quantizable_data_type"]
    if not isinstance(qdt, list) or any(t not in TENSOR_TYPES for t in qdt):
        raise QuantizerError(f"{src}: '{where}.quantizable_data_type' must be a list of {', '.join(TENSOR_TYPES)}, "
                             f"got {json.dumps(qdt)}")
    if not qdt:
        if entry.get("overall_quantize_config") or entry.get("tensor_quantize_config"):
            raise QuantizerError(f"{src}: '{where}' leaves the layer in float (quantizable_data_type is []) but "
                                 "also gives quantization parameters; remove them or list the tensor types")
        return LayerOverride(where, ltype, lname, None)
    missing = [t for t in ("weights", "bias", "activation") if t not in qdt]
    if missing:
        raise QuantizerError(f"{src}: '{where}.quantizable_data_type' leaves {', '.join(missing)} unquantized; "
                             "the DPU needs all of a layer's tensors in fixed point (use [] to leave the whole "
                             "layer in float)")
    bits: dict[str, int] = {t: cfg.bits(t) for t in TENSOR_TYPES}
    overall = entry.get("overall_quantize_config")
    if overall is not None:
        if not isinstance(overall, Mapping):
            raise QuantizerError(f"{src}: '{where}.overall_quantize_config' must be an object")
        b = _params(cfg, overall, src, f"{where}.overall_quantize_config")
        if b is not None:
            bits = {t: b for t in TENSOR_TYPES}
    if entry.get("tensor_quantize_config") is not None:
        bits = _tensor_config(cfg, entry["tensor_quantize_config"], src, f"{where}.tensor_quantize_config", bits)
    if "input" in qdt and bits["input"] != cfg.bits("input"):
        raise QuantizerError(f"{src}: '{where}' gives the input {bits['input']} bits, but a layer's input is the "
                             f"previous layer's output (the network input has {cfg.bits('input')} bits); set the "
                             "activation bit width of the layer before it instead")
    bits.pop("input")
    return LayerOverride(where, ltype, lname, bits)


def _params(cfg: QuantConfig, v: Mapping[str, Any], src: str, where: str, tensor_type: str | None = None) -> int | None:
    """Check a set of quantization parameters (an `overall_quantize_config` below the top level); returns its
    bit_width (or None). Parameters other than the bit width must be what the model-wide config uses."""
    bits = None
    for k, val in v.items():
        w = f"{where}.{k}"
        if k not in OVERALL_KEYS:
            raise QuantizerError(f"{src}: unknown config key '{w}' (known keys: {', '.join(OVERALL_KEYS)})")
        if k == "bit_width":
            bits = _bit_width(src, w, val)
            continue
        if k == "round_mode" and tensor_type is not None:
            want = "half_up" if tensor_type == "activation" else "std_round"
            if val != want:
                raise QuantizerError(f"{src}: '{w}' = {json.dumps(val)} is not supported by fixflow ({tensor_type} "
                                     f"rounds {json.dumps(want)}, as the DPU does)")
            continue
        _check_value(src, w, k, val)
        if k in ("method", "calib_statistic_method") and val != getattr(cfg, k):
            raise QuantizerError(f"{src}: '{w}' = {json.dumps(val)} differs from the model-wide "
                                 f"{json.dumps(getattr(cfg, k))}; fixflow calibrates every tensor with one {k} "
                                 "(set it in the top-level overall_quantize_config)")
    return bits


def _check_value(src: str, where: str, k: str, val: Any) -> None:
    if k in _KNOWN_VALUES and (not isinstance(val, str) or val not in _KNOWN_VALUES[k]):
        raise QuantizerError(f"{src}: '{where}' must be one of {', '.join(_KNOWN_VALUES[k])}, got "
                             f"{json.dumps(val)}")
    if k not in _KNOWN_VALUES and not isinstance(val, bool):
        raise QuantizerError(f"{src}: '{where}' must be true or false, got {json.dumps(val)}")
    if val not in _SUPPORTED[k]:
        raise QuantizerError(f"{src}: '{where}' = {json.dumps(val)} is not supported by fixflow (supported: "
                             f"{', '.join(json.dumps(s) for s in _SUPPORTED[k])})")


def _overall(cfg: QuantConfig, v: Any, src: str) -> None:
    if not isinstance(v, Mapping):
        raise QuantizerError(f"{src}: 'overall_quantize_config' must be an object")
    for k, val in v.items():
        where = f"overall_quantize_config.{k}"
        if k not in OVERALL_KEYS:
            raise QuantizerError(f"{src}: unknown config key '{where}' (known keys: {', '.join(OVERALL_KEYS)})")
        if k == "bit_width":
            cfg.bit_width = _bit_width(src, where, val)
            continue
        _check_value(src, where, k, val)
        if k in ("method", "round_mode", "calib_statistic_method"):
            setattr(cfg, k, val)
