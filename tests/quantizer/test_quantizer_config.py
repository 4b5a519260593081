"""Quantizer configuration: value types, file encodings, graph options that must agree between calib and test."""

from __future__ import annotations

import pytest

from _lib.small_quantizer import data as _data
from _lib.small_quantizer import quantizer as _quantizer
from fixflow.quantizer import QuantizerError


# ---- config files
@pytest.mark.parametrize("config,match", [
    ({"quantizable_data_type": [["input"]]}, "quantizable_data_type"),
    ({"overall_quantize_config": {"symmetry": 1}}, "'overall_quantize_config.symmetry' must be true or false"),
    ({"overall_quantize_config": {"per_channel": 0}}, "'overall_quantize_config.per_channel' must be true or false"),
    ({"overall_quantize_config": {"signed": 1.0}}, "'overall_quantize_config.signed' must be true or false"),
    ({"overall_quantize_config": {"method": ["diffs"]}}, "'overall_quantize_config.method' must be one of"),
])
def test_config_wrong_value_types(config, match):
    from fixflow.quantizer import load_config
    with pytest.raises(QuantizerError, match=match):
        load_config(config)


def test_config_file_encodings(tmp_path):
    from fixflow.quantizer import load_config
    p = tmp_path / "c.json"
    p.write_bytes(b"\xef\xbb\xbf" + b'{"include_cle": false}')   # UTF-8 BOM, as some editors write
    assert load_config(p).include_cle is False
    p.write_bytes(b"\xff\xfe{\x00}\x00")
    with pytest.raises(QuantizerError, match="not a UTF-8 JSON file"):
        load_config(p)


@pytest.mark.parametrize("key", ["include_cle", "convert_relu6_to_relu"])
def test_graph_options_must_agree_between_calib_and_test(tmp_path, key):
    cfg = {key: key == "convert_relu6_to_relu"}
    flipped = {key: not cfg[key]}
    q = _quantizer(tmp_path, config=flipped)
    q.quant_model(_data())
    q.export_quant_config()
    with pytest.raises(QuantizerError, match=f"calibrated with '{key}'"):
        _quantizer(tmp_path, "test", config=cfg)
    _quantizer(tmp_path, "test", config=flipped)
