"""Separate bit widths for weights / biases / activations / the input, per-layer overrides and layers
left in float: the config, calibration, quant_info.json, test mode, the _int.xmodel, the partition."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _lib.small_quantizer import data as _data
from _lib.small_quantizer import quantizer as _quantizer
from fixflow.quantizer import QuantizerError, load_config

W4A8 = {"tensor_quantize_config": {"weights": {"bit_width": 4}}}
W8A4 = {"tensor_quantize_config": {"activation": {"bit_width": 4}}}
W6A8 = {"tensor_quantize_config": {"weights": {"bit_width": 6}}}
FC_FLOAT = {"layer_quantize_config": [{"layer_type": None, "layer_name": "fc", "quantizable_data_type": []}]}


def _calib_test(path, config):
    q = _quantizer(path, config=config)
    q.quant_model(_data())
    q.export_quant_config()
    return json.loads((path / "quant_info.json").read_text()), _quantizer(path, "test", config=config)


# ---- the config
@pytest.mark.parametrize("cfg,bits", [
    ({}, (8, 8, 8, 8)), (W4A8, (4, 8, 8, 8)), (W6A8, (6, 8, 8, 8)), (W8A4, (8, 4, 8, 8)),
    ({"overall_quantize_config": {"bit_width": 6}, "tensor_quantize_config": {"bias": {"bit_width": 8}}},
     (6, 6, 8, 6)),
])
def test_tensor_bit_widths(cfg, bits):
    c = load_config(cfg)
    assert (c.weights_bit_width, c.activation_bit_width, c.bias_bit_width, c.input_bit_width) == bits


def test_layer_override_entries():
    c = load_config({"tensor_quantize_config": {"weights": {"bit_width": 4}}, "layer_quantize_config": [
        {"layer_type": "torch.nn.Linear", "layer_name": None, "quantizable_data_type": ["weights", "bias", "activation"],
         "overall_quantize_config": {"bit_width": 6}, "tensor_quantize_config": {"weights": {"bit_width": 5}}},
        {"layer_type": None, "layer_name": "Net::conv", "quantizable_data_type": []}]})
    a, b = c.layers
    assert a.layer_type == "Linear" and a.bits == {"weights": 5, "bias": 6, "activation": 6}
    assert b.layer_name == "Net::conv" and b.float


@pytest.mark.parametrize("cfg,match", [
    ({"overall_quantize_config": {"bit_width": 0}}, r"'overall_quantize_config.bit_width' must be an integer in \[2, 16\], got 0"),
    ({"tensor_quantize_config": {"weights": {"bit_width": 17}}},
     r"'tensor_quantize_config.weights.bit_width' must be an integer in \[2, 16\], got 17"),
    ({"tensor_quantize_config": {"weights": {"bit_width": 4.0}}}, r"must be an integer in \[2, 16\], got 4.0"),
    ({"tensor_quantize_config": {"weight": {"bit_width": 4}}}, "unknown tensor type 'tensor_quantize_config.weight'"),
    ({"tensor_quantize_config": {"activation": {"round_mode": "std_round"}}}, "activation rounds \"half_up\""),
    ({"tensor_quantize_config": {"weights": {"method": "maxmin"}}}, "fixflow calibrates every tensor with one method"),
    ({"layer_quantize_config": {"layer_name": "fc"}}, "must be a list"),
    ({"layer_quantize_config": [{"layer_name": "fc", "layer_type": "torch.nn.Linear", "quantizable_data_type": []}]},
     "exactly one of 'layer_type' and 'layer_name'"),
    ({"layer_quantize_config": [{"layer_type": "torch.nn.LSTM", "quantizable_data_type": []}]},
     "not a layer type fixflow quantizes"),
    ({"layer_quantize_config": [{"layer_name": "fc"}]}, "quantizable_data_type' is missing"),
    ({"layer_quantize_config": [{"layer_name": "fc", "quantizable_data_type": ["weights"]}]},
     "leaves bias, activation unquantized"),
    ({"layer_quantize_config": [{"layer_name": "fc", "quantizable_data_type": [],
                                 "overall_quantize_config": {"bit_width": 4}}]}, "leaves the layer in float"),
    ({"layer_quantize_config": [{"layer_name": "fc", "quantizable_data_type": ["weights", "bias", "activation"],
                                 "tensor_quantize_config": {"weights": {"bit_width": 0}}}]},
     r"'layer_quantize_config\[0\].tensor_quantize_config.weights.bit_width' must be an integer in \[2, 16\], got 0"),
    ({"layer_quantize_config": [{"layer_name": "fc", "quantizable_data_type": ["input", "weights", "bias", "activation"],
                                 "overall_quantize_config": {"bit_width": 4}}]}, "a layer's input is the previous"),
    ({"layer_quantize_config": [{"layer_name": "fc", "quantizable_data_type": [], "layer_bits": 3}]},
     r"unknown config key 'layer_quantize_config\[0\].layer_bits'"),
])
def test_bad_config(cfg, match):
    with pytest.raises(QuantizerError, match=match) as e:
        load_config(cfg)
    assert "\n" not in e.value.message


def test_layer_name_that_names_no_layer_lists_near_matches(tmp_path):
    cfg = {"layer_quantize_config": [{"layer_name": "fcc", "quantizable_data_type": []}]}
    with pytest.raises(QuantizerError, match=r"'layer_quantize_config\[0\].layer_name' 'fcc' names no layer of Net; "
                                             r"did you mean Net::fc\?"):
        _quantizer(tmp_path, config=cfg)
    cfg = {"layer_quantize_config": [{"layer_name": "zzzz", "quantizable_data_type": []}]}
    with pytest.raises(QuantizerError, match=r"names no layer of Net \(its layers: Net::conv, Net::fc"):
        _quantizer(tmp_path, config=cfg)
    cfg = {"layer_quantize_config": [{"layer_type": "torch.nn.ConvTranspose2d", "quantizable_data_type": []}]}
    with pytest.raises(QuantizerError, match=r"torch.nn.ConvTranspose2d matches no layer of Net \(its layer types: "
                                             r"torch.nn.Conv2d, torch.nn.LeakyReLU, torch.nn.Linear, torch.nn.MaxPool2d"):
        _quantizer(tmp_path, config=cfg)


# ---- calibration, quant_info.json, test mode
@pytest.mark.parametrize("cfg,w,b,a", [(W4A8, 4, 8, 8), (W8A4, 8, 8, 4), (W6A8, 6, 8, 8)])
def test_quant_info_carries_each_width(tmp_path, cfg, w, b, a):
    info, qt = _calib_test(tmp_path, cfg)
    assert info["param"]["Net::conv.weight"][0][0] == w and info["param"]["Net::fc.weight"][0][0] == w
    assert info["param"]["Net::conv.bias"][0][0] == b
    assert {v[0][0] for v in info["output"].values()} == {a}
    assert info["input"]["Net::x"][0][0] == 8
    # the fix module's tensors have those widths, and its float simulation is its integer execution
    from fixflow.runtime.fix_executor import run_quantized, simulate_quantized
    x = _data(16).numpy()
    np.testing.assert_array_equal(simulate_quantized(qt.fix_module, [x])[0], run_quantized(qt.fix_module, [x])[0])
    conv = next(op for op in qt.fix_module.walk() if op.name == "fix.conv2d")
    assert [v.type.element_type.bit_width for v in conv.operands] == [8, w, b]
    assert conv.results[0].type.element_type.bit_width == a
    # calibration's fake-quant forward is what test mode computes
    qc = _quantizer(tmp_path / "again", config=cfg)
    qc.quant_model(_data())
    np.testing.assert_allclose(qc.runner.forward([x])[0], qt.quant_model(_data(16)).numpy(), atol=1e-6)


def test_narrow_weights_really_are_narrow(tmp_path):
    """Every 4-bit weight is one of 16 levels; at 8 bits there are more."""
    _, qt = _calib_test(tmp_path, W4A8)
    for op in qt.fix_module.walk():
        if op.name == "fix.const" and op.results[0].type.element_type.bit_width == 4:
            assert op.ints.min() >= -8 and op.ints.max() <= 7
            assert len(np.unique(op.ints)) <= 16


def test_layer_override_by_name_and_type(tmp_path):
    cfg = {**W4A8, "layer_quantize_config": [
        {"layer_type": "torch.nn.Conv2d", "layer_name": None, "quantizable_data_type": ["weights", "bias", "activation"],
         "tensor_quantize_config": {"weights": {"bit_width": 6}}},
        {"layer_type": None, "layer_name": "Net::fc", "quantizable_data_type": ["weights", "bias", "activation"],
         "overall_quantize_config": {"bit_width": 8}}]}
    info, _ = _calib_test(tmp_path, cfg)
    assert info["param"]["Net::conv.weight"][0][0] == 6
    assert info["param"]["Net::fc.weight"][0][0] == 8


def test_vai_q_layer_names_are_understood(tmp_path):
    cfg = {"layer_quantize_config": [{"layer_type": None, "layer_name": "Net::Net/Linear[fc]/input.5",
                                      "quantizable_data_type": []}]}
    q = _quantizer(tmp_path, config=cfg)
    assert [op.name for op in q.func.walk() if "fix.keep_float" in op.attributes] == ["graph.linear"]


def test_test_mode_with_another_config_is_refused(tmp_path):
    _calib_test(tmp_path, W4A8)
    with pytest.raises(QuantizerError, match=r"quant_info.json: 'param' entry 'Net::conv.weight': bit_width 4, but "
                                             r"this quantizer's config gives it 8 bits"):
        _quantizer(tmp_path, "test")
    with pytest.raises(QuantizerError, match="config leaves 'Net::fc' in float, but the quant config was calibrated "
                                             "with it quantized"):
        _quantizer(tmp_path, "test", config={**W4A8, **FC_FLOAT})


# ---- layers left in float
def test_float_layer(tmp_path):
    logs = []
    q = _quantizer(tmp_path, config=FC_FLOAT, log=logs.append)
    assert any("'Net::fc' stays in float and will run on the CPU" in line for line in logs)
    q.quant_model(_data())
    q.export_quant_config()
    info = json.loads((tmp_path / "quant_info.json").read_text())
    assert not any(k.startswith("Net::fc.") for k in info["param"])
    assert list(info["float_layers"]) == ["Net::fc"]
    qt = _quantizer(tmp_path, "test", config=FC_FLOAT)
    fc = next(op for op in qt.fix_module.walk() if op.name == "graph.linear")
    assert fc.attributes["device"].value == "CPU" and "left in float" in fc.attributes["fix.reason"].value
    # the layer computes with its float weights: feed it the quantized features of test mode
    x = _data(8)
    y = qt.quant_model(x).numpy()
    from fixflow.runtime.fix_executor import run_quantized
    np.testing.assert_array_equal(run_quantized(qt.fix_module, [x.numpy()])[0], y)
    # the _int.xmodel holds it as XIR's float matmul and reads back to the same module
    from fixflow.backends.xmodel import read_xmodel
    from fixflow.backends.xmodel.fix_xmodel import read_int_xmodel
    from fixflow.runtime.fix_executor import simulate_quantized
    path = qt.export_xmodel()
    op = next(o for o in read_xmodel(path).ops if o.name == "fc")
    assert op.type == "matmul" and op.attr("transpose_b") is True and op.output.data_type == "FLOAT32"
    np.testing.assert_array_equal(simulate_quantized(read_int_xmodel(path), [x.numpy()])[0], y)


# ---- the _int.xmodel and the DPU
def test_int_xmodel_writes_each_width(tmp_path):
    from fixflow.backends.xmodel import read_xmodel
    _, qt = _calib_test(tmp_path, W4A8)
    g = read_xmodel(qt.export_xmodel())
    w = next(o for o in g.ops if o.type == "conv2d-fix")
    wt = next(o for o in g.ops if o.name == w.inputs["weights"][0]).output
    assert wt.data_type == "XINT4" and wt.attr("bit_width") == 4
    assert w.output.data_type == "XINT8" and w.output.attr("bit_width") == 8


def test_partition_runs_narrow_weights_on_the_dpu_and_narrow_maps_on_the_cpu(tmp_path):
    from fixflow.ir.diagnostics import capture_diagnostics
    from fixflow.ir.interpreter import find_function
    from fixflow.passes.dpu.partition import placements
    from fixflow.target import get_target
    t = get_target("DPUCZDX8G_ISA1_B4096")
    _, q4 = _calib_test(tmp_path / "w4", W4A8)
    placed = placements(find_function(q4.fix_module), t)
    conv = next(op for op in placed if op.name == "fix.conv2d")
    assert placed[conv] == ("DPU", None)
    _, qa4 = _calib_test(tmp_path / "a4", W8A4)
    with capture_diagnostics() as diags:
        placed = placements(find_function(qa4.fix_module), t)
    conv = next(op for op in placed if op.name == "fix.conv2d")
    dev, why = placed[conv]
    assert dev == "CPU" and "a 4-bit output (the DPU computes 8-bit feature maps" in why
    msgs = [d.message for d in diags]
    assert any(m.startswith("'leaky' (fix.conv2d)") and "runs on the CPU: a 4-bit output" in m for m in msgs), msgs


def test_inspector_says_why_a_layer_is_on_the_cpu():
    from fixflow.quantizer.inspector import Inspector
    from _lib.small_quantizer import Net
    r = Inspector("DPUCZDX8G_ISA1_B4096").inspect(Net().eval(), (_data(1),), config={**W8A4, **FC_FLOAT})
    by_name = {o.name: o for o in r.ops}
    fc = next(o for o in r.ops if o.kind == "graph.linear")
    assert fc.device == "CPU" and "left in float by the quant config (layer_quantize_config[0]: layer 'Net::fc')" \
        in fc.reason
    conv = next(o for o in by_name.values() if o.kind == "fix.conv2d")
    assert conv.device == "CPU" and "a 4-bit output" in conv.reason


@pytest.mark.parametrize("cfg", [W4A8, W8A4], ids=["W4A8", "W8A4"])
def test_generated_module_is_test_mode_at_other_widths(tmp_path, cfg):
    import torch
    from _quantizer_gen_lib import load_generated
    _, qt = _calib_test(tmp_path, cfg)
    gen = load_generated(tmp_path, "Net").Net().eval()
    x = _data(16)
    with torch.no_grad():
        np.testing.assert_array_equal(gen(x).numpy(), qt.quant_model(x).numpy())


@pytest.mark.skipif(not __import__("os").environ.get("FIXFLOW_AMD_TOOLS"),
                    reason="AMD's xir not configured: set FIXFLOW_AMD_TOOLS=<install dir> (docs/amd-reference.md)")
def test_amd_xir_loads_mixed_width_and_float_layer_xmodels(tmp_path):
    """AMD's xir takes XINT4 const-fix weights (tensor_bit_width 4) and the float matmul of a float layer."""
    from reference._amd_tools_lib import run_amd
    _, qt = _calib_test(tmp_path / "w4", {**W4A8, **FC_FLOAT})
    path = qt.export_xmodel()
    txt = run_amd("xir", "dump_txt", path, tmp_path / "dump.txt", cwd=tmp_path)
    txt = txt or (tmp_path / "dump.txt").read_text()
    assert 'string_value: "XINT4"' in txt and "tensor_bit_width: 4" in txt and 'op_type: "matmul"' in txt
    run_amd("xir", "subgraph", path, cwd=tmp_path)
