"""Issue 14 item 3: vai_q_pytorch scripts port: quant_model is a torch.nn.Module, `device=`, the
`torch_quantizer` alias with vai_q's signature, vai_q-style xmodel names."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
import torch

from fixflow import zoo
from fixflow.quantizer import Quantizer, QuantizerError, QuantizerWarning, torch_quantizer

#: vai_q_pytorch 3.5 pytorch_nndct/apis.py, torch_quantizer.__init__ (parameter names, in order)
VAIQ_PARAMS = ["quant_mode", "module", "input_args", "state_dict_file", "output_dir", "bitwidth", "mix_bit", "device",
               "lstm", "app_deploy", "qat_proc", "custom_quant_ops", "quant_config_file", "target"]
VAIQ_METHODS = ["fast_finetune", "load_ft_param", "export_quant_config", "export_xmodel", "export_onnx_model",
                "export_torch_script", "quant_model", "deploy_model"]


def test_signature_is_vaiqs():
    params = list(inspect.signature(torch_quantizer.__init__).parameters)[1:]
    assert params[:len(VAIQ_PARAMS)] == VAIQ_PARAMS
    for m in VAIQ_METHODS:
        assert hasattr(torch_quantizer, m), m
    xm = inspect.signature(torch_quantizer.export_xmodel).parameters
    assert list(xm)[1:] == ["output_dir", "deploy_check", "dynamic_batch"] and xm["output_dir"].default == "quantize_result"


def test_quant_model_is_a_module(tmp_path):
    model = zoo.get_model("digits_cnn")
    x = torch.from_numpy(zoo.sample_inputs("digits_cnn", 8))
    q = Quantizer(model, (x[:1],), mode="calib", output_dir=tmp_path, log=None, progress=False)
    qm = q.quant_model
    assert isinstance(qm, torch.nn.Module)
    assert qm.eval() is qm and qm.to("cpu") is qm and qm.to(torch.device("cpu"), torch.float32) is qm
    names = dict(qm.named_parameters())
    assert "features.0.0.weight" in names and "classifier.bias" in names
    assert all(not p.requires_grad for p in qm.parameters())
    assert set(qm.state_dict()) == set(names)
    assert next(qm.parameters()).device.type == "cpu"
    y = qm(x)
    assert isinstance(y, torch.Tensor) and y.shape == (8, 10)
    with pytest.warns(QuantizerWarning, match="device 'cuda' is mapped to 'cpu'"):
        assert qm.to("cuda") is qm
    with pytest.raises(QuantizerError, match="float32"):
        qm.to(torch.float64)


def test_device_argument(tmp_path):
    model = zoo.get_model("digits_cnn")
    x = torch.zeros(1, 1, 28, 28)
    with pytest.warns(QuantizerWarning, match="device 'cuda:0' is mapped to 'cpu'") as rec:
        q = Quantizer(model, (x,), mode="float", log=None, device=torch.device("cuda:0"))
    assert rec[0].filename == __file__
    assert q.device == torch.device("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Quantizer(model, (x,), mode="float", log=None, device="cpu")
    with pytest.raises(QuantizerError, match="is not a torch device"):
        Quantizer(model, (x,), mode="float", log=None, device="gpu7")


def test_torch_quantizer_flow_and_vaiq_names(tmp_path):
    model = zoo.get_model("resnet18_cifar")
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32))
    qz = torch_quantizer("calib", model, (x[:1],), output_dir=str(tmp_path), device=torch.device("cpu"))
    qz.quant_model(x)
    qz.export_quant_config()
    qz = torch_quantizer("test", model, (x[:1],), output_dir=str(tmp_path), device=torch.device("cpu"))
    y = qz.quant_model(x)
    assert qz.deploy_model is None
    path = qz.export_xmodel(output_dir=str(tmp_path), deploy_check=True)
    from fixflow.backends.xmodel.fix_xmodel import read_int_xmodel
    from fixflow.runtime.fix_executor import run_quantized
    m = read_int_xmodel(path)
    np.testing.assert_array_equal(run_quantized(m, [x.numpy()])[0], y.numpy())
    from fixflow.backends.xmodel.serial import read_xmodel
    names = [op.name for op in read_xmodel(path).ops]                 # the xmodel's op (and tensor) names
    assert "ResNet__input_0" in names
    assert any(n.startswith("ResNet__ResNet_Conv2d_conv1__") for n in names)
    assert any(n.startswith("ResNet__ResNet_Sequential_layer1__BasicBlock_0__Conv2d_conv1__") for n in names)
    assert any(n.startswith("ResNet__ResNet_Sequential_layer1__BasicBlock_0__") and n.split("__")[-1].isdigit()
               for n in names)                                          # the residual add (functional)
    # fixflow's own readable names stay the default of Quantizer.export_xmodel
    plain = [op.name for op in read_xmodel(qz.quantizer.export_xmodel(tmp_path / "plain")).ops]
    assert "x" in plain and "conv1_weight_bnfold" in plain and not any("__" in n for n in plain)


def test_vaiq_name_rule():
    from fixflow.quantizer.vaiq import vaiq_scope, vaiq_xname
    assert vaiq_xname("Net", "Net/Conv2d[conv1]", 168) == "Net__Net_Conv2d_conv1__168"   # Vitis AI tutorial names
    assert vaiq_xname("Net", "Net/Tanh[tanh]", "input.3") == "Net__Net_Tanh_tanh__input_3"
    types = {"layer1": "Sequential", "layer1.0": "BasicBlock", "layer1.0.conv1": "Conv2d"}
    assert vaiq_scope("ResNet", "layer1.0.conv1", types) == "ResNet/Sequential[layer1]/BasicBlock[0]/Conv2d[conv1]"
    assert vaiq_scope("ResNet", "layer1.0.add", types) == "ResNet/Sequential[layer1]/BasicBlock[0]"
    assert vaiq_scope("Net", "flatten", types) == "Net"


def test_unsupported_vaiq_options_are_refused(tmp_path):
    model = zoo.get_model("digits_cnn")
    x = torch.zeros(1, 1, 28, 28)
    with pytest.raises(QuantizerError, match="lstm=... is not supported"):
        torch_quantizer("calib", model, (x,), lstm=True)
    with pytest.raises(QuantizerError, match="unknown quant_mode 'calibration'"):
        torch_quantizer("calibration", model, (x,))
    sd = tmp_path / "w.pth"
    torch.save({"state_dict": model.state_dict()}, sd)
    q = torch_quantizer("float", zoo.get_model("digits_cnn", pretrained=False), (x,), state_dict_file=str(sd),
                        output_dir=str(tmp_path))
    xs = torch.from_numpy(zoo.sample_inputs("digits_cnn", 4))
    torch.testing.assert_close(q.quant_model(xs), model(xs), rtol=1e-4, atol=1e-4)
