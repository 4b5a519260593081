"""The quantizer's JSON configuration file (the keys of vai_q_pytorch's `quant_config_file`).

Unknown keys and values fixflow does not implement are errors naming the key; nothing is ignored.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import attrs

from .errors import QuantizerError

__all__ = ["QuantConfig", "load_config", "TOP_KEYS", "OVERALL_KEYS"]

TOP_KEYS = ("convert_relu6_to_relu", "include_cle", "include_bias_corr", "target_device", "quantizable_data_type",
            "overall_quantize_config", "tensor_quantize_config", "layer_quantize_config")
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
class QuantConfig:
    """The effective configuration."""

    convert_relu6_to_relu: bool = False
    include_cle: bool = True
    include_bias_corr: bool = True
    target_device: str = "DPU"
    quantizable_data_type: tuple[str, ...] = ("input", "weights", "bias", "activation")
    bit_width: int = 8
    method: str = "diffs"
    round_mode: str = "half_up"
    calib_statistic_method: str = "modal"


def _bool(where: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise QuantizerError(f"config: '{where}' must be true or false, got {json.dumps(v)}")
    return v


def load_config(config: None | str | os.PathLike | Mapping[str, Any], bitwidth: int = 8) -> QuantConfig:
    """Parse a config (None, a JSON file path or a dict) into a `QuantConfig`."""
    if not isinstance(bitwidth, int) or isinstance(bitwidth, bool) or not 2 <= bitwidth <= 16:
        raise QuantizerError(f"bitwidth must be an integer in [2, 16], got {bitwidth!r}")
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
        elif v:  # tensor_quantize_config / layer_quantize_config
            raise QuantizerError(f"{src}: '{key}' (per-tensor/per-layer overrides) is not supported yet; "
                                 "remove it or leave it empty")
    return cfg


def _overall(cfg: QuantConfig, v: Any, src: str) -> None:
    if not isinstance(v, Mapping):
        raise QuantizerError(f"{src}: 'overall_quantize_config' must be an object")
    for k, val in v.items():
        where = f"overall_quantize_config.{k}"
        if k not in OVERALL_KEYS:
            raise QuantizerError(f"{src}: unknown config key '{where}' (known keys: {', '.join(OVERALL_KEYS)})")
        if k == "bit_width":
            if not isinstance(val, int) or isinstance(val, bool) or not 2 <= val <= 16:
                raise QuantizerError(f"{src}: '{where}' must be an integer in [2, 16], got {json.dumps(val)}")
            cfg.bit_width = val
            continue
        if k in _KNOWN_VALUES and (not isinstance(val, str) or val not in _KNOWN_VALUES[k]):
            raise QuantizerError(f"{src}: '{where}' must be one of {', '.join(_KNOWN_VALUES[k])}, got "
                                 f"{json.dumps(val)}")
        if k not in _KNOWN_VALUES and not isinstance(val, bool):
            raise QuantizerError(f"{src}: '{where}' must be true or false, got {json.dumps(val)}")
        if val not in _SUPPORTED[k]:
            raise QuantizerError(f"{src}: '{where}' = {json.dumps(val)} is not supported by fixflow (supported: "
                                 f"{', '.join(json.dumps(s) for s in _SUPPORTED[k])})")
        if k in ("method", "round_mode", "calib_statistic_method"):
            setattr(cfg, k, val)
