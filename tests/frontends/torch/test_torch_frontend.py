"""PyTorch frontend: every supported op form imports, round-trips through text and runs like PyTorch."""

from __future__ import annotations

import operator

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from _lib.torch_fn import Fn  # noqa: E402
from fixflow.frontends.torch import FrontendError, import_module, supported_ops  # noqa: E402
from fixflow.ir import FileLineColLoc, NameLoc, parse_module, print_module  # noqa: E402
from fixflow.ir.interpreter import run_module  # noqa: E402


def roundtrip(model: nn.Module, *inputs: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-5, batch: int = 3):
    """Import, print, parse, interpret; compare with PyTorch at the traced batch and at another batch."""
    module = import_module(model, inputs)
    module.verify()
    text = print_module(module, print_locations=True)
    parsed = parse_module(text, "roundtrip.mlir")
    parsed.verify()
    assert print_module(parsed, print_locations=True) == text
    model.eval()
    with torch.no_grad():
        ref = model(*inputs)
    refs = [ref] if isinstance(ref, torch.Tensor) else list(ref)
    got = run_module(parsed, [x.numpy() for x in inputs])
    assert len(got) == len(refs)
    for g, r in zip(got, refs):
        np.testing.assert_allclose(g, r.numpy(), rtol=rtol, atol=atol)
    if batch is not None and all(x.shape[0] == inputs[0].shape[0] for x in inputs):
        gen = torch.Generator().manual_seed(1)
        more = [torch.randn((batch,) + tuple(x.shape[1:]), generator=gen) for x in inputs]
        with torch.no_grad():
            ref = model(*more)
        refs = [ref] if isinstance(ref, torch.Tensor) else list(ref)
        for g, r in zip(run_module(parsed, [x.numpy() for x in more]), refs):
            np.testing.assert_allclose(g, r.numpy(), rtol=rtol, atol=atol)
    return module


def op_names(module) -> list[str]:
    return [op.name for op in module.walk() if op.name.startswith("graph.") and op.name != "graph.constant"]


def seq(*layers):
    return nn.Sequential(*layers)


def _randomize_bn(m: nn.Module) -> nn.Module:
    for b in m.modules():
        if isinstance(b, nn.modules.batchnorm._BatchNorm) and b.running_mean is not None:
            with torch.no_grad():
                b.running_mean.uniform_(-0.5, 0.5)
                b.running_var.uniform_(0.5, 2.0)
                if b.affine:
                    b.weight.uniform_(0.5, 1.5)
                    b.bias.uniform_(-0.5, 0.5)
    return m


X4 = (1, 3, 9, 9)
MODULE_CASES = {
    "conv": (lambda: seq(nn.Conv2d(3, 4, 3)), X4, "graph.conv2d"),
    "conv_stride_pad_tuple": (lambda: seq(nn.Conv2d(3, 4, (3, 5), stride=(2, 1), padding=(1, 2))), X4, "graph.conv2d"),
    "conv_groups_dilation": (lambda: seq(nn.Conv2d(4, 8, 3, padding=2, dilation=2, groups=2)), (1, 4, 9, 9),
                             "graph.conv2d"),
    "conv_depthwise": (lambda: seq(nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)), (1, 4, 8, 8), "graph.conv2d"),
    "conv_same_even": (lambda: seq(nn.Conv2d(3, 4, 4, padding="same")), X4, "graph.conv2d"),
    "conv_same_dilated": (lambda: seq(nn.Conv2d(3, 4, 3, padding="same", dilation=3)), X4, "graph.conv2d"),
    "conv_valid": (lambda: seq(nn.Conv2d(3, 4, 3, padding="valid")), X4, "graph.conv2d"),
    "conv_reflect": (lambda: seq(nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect")), X4, "graph.pad"),
    "conv_transpose": (lambda: seq(nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1)), X4,
                       "graph.conv_transpose2d"),
    "conv_transpose_groups": (lambda: seq(nn.ConvTranspose2d(4, 4, 2, stride=2, groups=2, bias=False)), (1, 4, 5, 5),
                              "graph.conv_transpose2d"),
    "linear": (lambda: seq(nn.Linear(7, 5)), (2, 7), "graph.linear"),
    "linear_nobias": (lambda: seq(nn.Linear(7, 5, bias=False)), (2, 7), "graph.linear"),
    "batchnorm2d": (lambda: _randomize_bn(seq(nn.BatchNorm2d(3, eps=1e-3))), X4, "graph.batch_norm"),
    "batchnorm2d_noaffine": (lambda: _randomize_bn(seq(nn.BatchNorm2d(3, affine=False))), X4, "graph.batch_norm"),
    "batchnorm1d": (lambda: _randomize_bn(seq(nn.Linear(6, 4), nn.BatchNorm1d(4))), (2, 6), "graph.batch_norm"),
    "relu": (lambda: seq(nn.ReLU()), X4, "graph.relu"),
    "relu_inplace": (lambda: seq(nn.Conv2d(3, 3, 1), nn.ReLU(inplace=True)), X4, "graph.relu"),
    "relu6": (lambda: seq(nn.ReLU6()), X4, "graph.relu6"),
    "hardtanh06": (lambda: seq(nn.Hardtanh(0.0, 6.0)), X4, "graph.relu6"),
    "leaky": (lambda: seq(nn.LeakyReLU(0.1)), X4, "graph.leaky_relu"),
    "prelu": (lambda: seq(nn.PReLU(3, init=0.2)), X4, "graph.prelu"),
    "prelu_shared": (lambda: seq(nn.PReLU()), X4, "graph.prelu"),
    "hardsigmoid": (lambda: seq(nn.Hardsigmoid()), X4, "graph.hardsigmoid"),
    "hardswish": (lambda: seq(nn.Hardswish()), X4, "graph.hardswish"),
    "sigmoid": (lambda: seq(nn.Sigmoid()), X4, "graph.sigmoid"),
    "tanh": (lambda: seq(nn.Tanh()), X4, "graph.tanh"),
    "silu": (lambda: seq(nn.SiLU()), X4, "graph.silu"),
    "maxpool": (lambda: seq(nn.MaxPool2d(2)), X4, "graph.max_pool2d"),
    "maxpool_full": (lambda: seq(nn.MaxPool2d(3, 2, 1, dilation=1, ceil_mode=True)), X4, "graph.max_pool2d"),
    "maxpool_dilated": (lambda: seq(nn.MaxPool2d(2, 1, dilation=2)), X4, "graph.max_pool2d"),
    "avgpool": (lambda: seq(nn.AvgPool2d(2)), X4, "graph.avg_pool2d"),
    "avgpool_full": (lambda: seq(nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)), X4,
                     "graph.avg_pool2d"),
    "avgpool_divisor": (lambda: seq(nn.AvgPool2d(3, 1, divisor_override=5)), X4, "graph.avg_pool2d"),
    "adaptive_avg": (lambda: seq(nn.AdaptiveAvgPool2d((3, 2))), X4, "graph.adaptive_avg_pool2d"),
    "adaptive_avg_none": (lambda: seq(nn.AdaptiveAvgPool2d((None, 1))), X4, "graph.adaptive_avg_pool2d"),
    "dropout": (lambda: seq(nn.Dropout(0.3)), X4, "graph.dropout"),
    "dropout2d": (lambda: seq(nn.Dropout2d(0.3)), X4, "graph.dropout"),
    "identity": (lambda: seq(nn.Identity()), X4, "graph.identity"),
    "flatten": (lambda: seq(nn.Flatten()), X4, "graph.flatten"),
    "flatten_range": (lambda: seq(nn.Flatten(2, 3)), X4, "graph.flatten"),
    "unflatten": (lambda: seq(nn.Flatten(), nn.Unflatten(1, (3, 81))), X4, "graph.reshape"),
    "upsample_nearest": (lambda: seq(nn.Upsample(scale_factor=2)), X4, "graph.upsample"),
    "upsample_nearest_size": (lambda: seq(nn.Upsample(size=(13, 20))), X4, "graph.upsample"),
    "upsample_bilinear": (lambda: seq(nn.Upsample(scale_factor=1.5, mode="bilinear")), X4, "graph.upsample"),
    "upsample_bilinear_ac": (lambda: seq(nn.Upsample(size=(12, 17), mode="bilinear", align_corners=True)), X4,
                             "graph.upsample"),
    "upsampling_bilinear2d": (lambda: seq(nn.UpsamplingBilinear2d(scale_factor=2)), X4, "graph.upsample"),
    "softmax": (lambda: seq(nn.Softmax(dim=1)), X4, "graph.softmax"),
    "softmax_last": (lambda: seq(nn.Linear(7, 5), nn.Softmax(dim=-1)), (2, 7), "graph.softmax"),
    "zeropad": (lambda: seq(nn.ZeroPad2d((1, 2, 0, 3))), X4, "graph.pad"),
    "constpad": (lambda: seq(nn.ConstantPad2d(2, 0.5)), X4, "graph.pad"),
    "reflectpad": (lambda: seq(nn.ReflectionPad2d((1, 2, 2, 1))), X4, "graph.pad"),
    "replicatepad": (lambda: seq(nn.ReplicationPad2d(2)), X4, "graph.pad"),
}


@pytest.mark.parametrize("case", sorted(MODULE_CASES))
@pytest.mark.filterwarnings("ignore:Using padding=.same.")
def test_module_forms(case):
    make, shape, expected = MODULE_CASES[case]
    torch.manual_seed(0)
    module = roundtrip(make(), torch.randn(shape))
    assert expected in op_names(module)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.w = nn.Parameter(torch.randn(4, 3, 3, 3) * 0.2)
        self.b = nn.Parameter(torch.randn(4) * 0.1)
        self.lw = nn.Parameter(torch.randn(5, 36) * 0.2)
        self.register_buffer("scale", torch.rand(1, 4, 1, 1) + 0.5)
        self.slope = nn.Parameter(torch.full((4,), 0.25))


FUNCTIONAL_CASES = {
    "F.conv2d": (lambda m, x: F.conv2d(x, m.w, m.b, stride=2, padding=1), ["graph.conv2d"]),
    "F.conv2d_same": (lambda m, x: F.conv2d(x, m.w, padding="same", dilation=2), ["graph.conv2d"]),
    "F.conv2d_groups": (lambda m, x: F.conv2d(x[:, :0].sum() * 0 + m.conv(x), m.w[:, :1].repeat(1, 1, 1, 1),
                                              groups=4) if False else F.conv2d(m.conv(x), m.w.sum(1, keepdim=True),
                                                                               None, 1, 1, 1, 4),
                        ["graph.conv2d"]),
    "F.conv_transpose2d": (lambda m, x: F.conv_transpose2d(x, m.w.transpose(0, 1).contiguous(), None, 2, 1, 1),
                           ["graph.conv_transpose2d"]),
    "F.relu": (lambda m, x: F.relu(x), ["graph.relu"]),
    "F.relu_inplace": (lambda m, x: F.relu(m.conv(x), inplace=True), ["graph.relu"]),
    "torch.relu": (lambda m, x: torch.relu(x), ["graph.relu"]),
    "F.relu6": (lambda m, x: F.relu6(x * 4), ["graph.relu6"]),
    "F.hardtanh": (lambda m, x: F.hardtanh(x * 4, 0.0, 6.0), ["graph.relu6"]),
    "clamp_relu6": (lambda m, x: torch.clamp(x * 4, 0, 6), ["graph.relu6"]),
    "clamp_min": (lambda m, x: x.clamp(min=0), ["graph.relu"]),
    "F.leaky_relu": (lambda m, x: F.leaky_relu(x, 0.2), ["graph.leaky_relu"]),
    "F.prelu": (lambda m, x: F.prelu(m.conv(x), m.slope), ["graph.prelu"]),
    "F.hardsigmoid": (lambda m, x: F.hardsigmoid(x * 3), ["graph.hardsigmoid"]),
    "F.hardswish": (lambda m, x: F.hardswish(x * 3), ["graph.hardswish"]),
    "F.silu": (lambda m, x: F.silu(x), ["graph.silu"]),
    "torch.sigmoid": (lambda m, x: torch.sigmoid(x), ["graph.sigmoid"]),
    "F.sigmoid": (lambda m, x: F.sigmoid(x), ["graph.sigmoid"]),
    "torch.tanh": (lambda m, x: torch.tanh(x), ["graph.tanh"]),
    "F.max_pool2d": (lambda m, x: F.max_pool2d(x, 3, 2, 1), ["graph.max_pool2d"]),
    "F.max_pool2d_kw": (lambda m, x: F.max_pool2d(x, kernel_size=2, ceil_mode=True), ["graph.max_pool2d"]),
    "F.avg_pool2d": (lambda m, x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), ["graph.avg_pool2d"]),
    "F.adaptive_avg_pool2d": (lambda m, x: F.adaptive_avg_pool2d(x, 1), ["graph.adaptive_avg_pool2d"]),
    "F.interpolate_nearest": (lambda m, x: F.interpolate(x, scale_factor=2), ["graph.upsample"]),
    "F.interpolate_size": (lambda m, x: F.interpolate(x, size=(4, 6), mode="bilinear"), ["graph.upsample"]),
    "F.interpolate_ac": (lambda m, x: F.interpolate(x, scale_factor=(2, 3), mode="bilinear", align_corners=True),
                         ["graph.upsample"]),
    "F.pad": (lambda m, x: F.pad(x, (1, 2, 3, 0)), ["graph.pad"]),
    "F.pad_value": (lambda m, x: F.pad(x, (1, 1, 1, 1), value=-2.0), ["graph.pad"]),
    "F.pad_reflect": (lambda m, x: F.pad(x, (2, 1, 1, 2), mode="reflect"), ["graph.pad"]),
    "F.pad_replicate": (lambda m, x: F.pad(x, (2, 1, 1, 2), mode="replicate"), ["graph.pad"]),
    "F.softmax": (lambda m, x: F.softmax(x, dim=1), ["graph.softmax"]),
    "x.softmax": (lambda m, x: x.softmax(-1), ["graph.softmax"]),
    "torch.softmax": (lambda m, x: torch.softmax(x, 2), ["graph.softmax"]),
    "F.linear": (lambda m, x: F.linear(torch.flatten(m.conv(F.adaptive_avg_pool2d(x, 3)), 1), m.lw),
                 ["graph.linear", "graph.flatten"]),
    "F.dropout_eval": (lambda m, x: F.dropout(x, 0.5, training=m.training), ["graph.dropout"]),
    "torch.flatten": (lambda m, x: torch.flatten(x, 1), ["graph.flatten"]),
    "torch.flatten_all": (lambda m, x: torch.flatten(x.mean((2, 3))), ["graph.flatten"]),
    "torch.cat": (lambda m, x: torch.cat([x, m.conv(x)], dim=1), ["graph.concat"]),
    "torch.cat_neg": (lambda m, x: torch.cat((x, x * 2), -1), ["graph.concat"]),
    "torch.add": (lambda m, x: torch.add(x, m.conv(x)[:, :3] if False else x * 0.5), ["graph.add"]),
    "torch.add_alpha": (lambda m, x: torch.add(x, x, alpha=2.0), ["graph.add"]),
    "torch.mul_buffer": (lambda m, x: torch.mul(m.conv(x), m.scale), ["graph.mul"]),
    "torch.sub": (lambda m, x: torch.sub(x, 1.5), ["graph.sub"]),
    "operator_add": (lambda m, x: x + m.conv(x)[:, :3] if False else x + x.relu(), ["graph.add"]),
    "operator_radd": (lambda m, x: 1 + x, ["graph.add"]),
    "operator_rsub": (lambda m, x: 2 - x, ["graph.sub"]),
    "operator_mul": (lambda m, x: x * x, ["graph.mul"]),
    "operator_sub": (lambda m, x: x - 0.25, ["graph.sub"]),
    "operator_div": (lambda m, x: x / 4, ["graph.mul"]),
    "operator_neg": (lambda m, x: -x, ["graph.mul"]),
    "inplace_iadd": (lambda m, x: _iadd(m.conv(x), m.scale), ["graph.add"]),
    "torch.matmul": (lambda m, x: torch.matmul(x, x.transpose(2, 3)), ["graph.matmul", "graph.transpose"]),
    "operator_matmul": (lambda m, x: x @ x, ["graph.matmul"]),
    "torch.mean": (lambda m, x: torch.mean(x, dim=(2, 3)), ["graph.mean"]),
    "x.mean_keepdim": (lambda m, x: x.mean(-1, keepdim=True), ["graph.mean"]),
    "x.mean_all": (lambda m, x: x.mean(), ["graph.mean"]),
}


def _iadd(a, b):
    a += b
    return a


@pytest.mark.parametrize("case", sorted(FUNCTIONAL_CASES))
def test_functional_forms(case):
    fn, expected = FUNCTIONAL_CASES[case]
    torch.manual_seed(0)
    model = Fn(fn, **{k: v for k, v in Net().named_children()})
    # parameters and buffers of Net live on the wrapper
    net = Net()
    for k, p in net.named_parameters(recurse=False):
        model.register_parameter(k, p)
    for k, b in net.named_buffers(recurse=False):
        model.register_buffer(k, b)
    x = torch.randn(2, 3, 6, 6) if "matmul" not in case else torch.randn(2, 3, 6, 6)
    module = roundtrip(model, x, batch=None if case == "x.mean_all" else 3)
    names = op_names(module)
    for e in expected:
        assert e in names, (e, names)


METHOD_CASES = {
    "view_batch": (lambda x: x.view(x.size(0), -1), "graph.reshape"),
    "view_shape": (lambda x: x.view(x.shape[0], 3, -1), "graph.reshape"),
    "reshape_tuple": (lambda x: x.reshape((x.size(0), 3 * 6, 6)), "graph.reshape"),
    "torch.reshape": (lambda x: torch.reshape(x, (-1, 36)), "graph.reshape"),
    "flatten": (lambda x: x.flatten(1), "graph.flatten"),
    "permute": (lambda x: x.permute(0, 2, 3, 1), "graph.transpose"),
    "permute_list": (lambda x: x.permute([0, 3, -2, 1]), "graph.transpose"),
    "torch.permute": (lambda x: torch.permute(x, (0, 1, 3, 2)), "graph.transpose"),
    "transpose": (lambda x: x.transpose(1, -1), "graph.transpose"),
    "torch.transpose": (lambda x: torch.transpose(x, 2, 3), "graph.transpose"),
    "contiguous": (lambda x: x.permute(0, 2, 1, 3).contiguous().view(x.size(0), 6, -1), "graph.reshape"),
    "size_arith": (lambda x: x.view(x.size(0), x.size(1) * x.size(2), -1), "graph.reshape"),
    "unsqueeze_squeeze": (lambda x: x.mean(1).unsqueeze(1).squeeze(1), "graph.reshape"),
    "mean": (lambda x: x.mean(dim=[2, 3]), "graph.mean"),
    "relu": (lambda x: x.relu(), "graph.relu"),
    "sigmoid": (lambda x: x.sigmoid(), "graph.sigmoid"),
    "tanh": (lambda x: x.tanh(), "graph.tanh"),
    "softmax": (lambda x: x.softmax(dim=1), "graph.softmax"),
    "add_method": (lambda x: x.add(x.relu()).mul(0.5).sub(x), "graph.sub"),
    "relu_inplace_method": (lambda x: _relu_twice(x), "graph.relu"),
    "div_method": (lambda x: x.div(2.0), "graph.mul"),
    "matmul_method": (lambda x: x.matmul(x), "graph.matmul"),
}


def _relu_twice(x):
    y = x * 2
    z = y.relu_()  # in place: later uses of y see the relu
    return y + z


@pytest.mark.parametrize("case", sorted(METHOD_CASES))
def test_tensor_methods(case):
    fn, expected = METHOD_CASES[case]
    torch.manual_seed(0)
    module = roundtrip(Fn(lambda m, x: fn(x)), torch.randn(2, 3, 6, 6))
    assert expected in op_names(module)


def test_batch_dim_of_view_is_copied():
    module = import_module(Fn(lambda m, x: x.view(x.size(0), -1)), (torch.randn(1, 3, 4, 4),))
    (op,) = [o for o in module.walk() if o.name == "graph.reshape"]
    assert op.shape == (0, -1)
    module = import_module(Fn(lambda m, x: x.reshape(x.shape[0], 3, 16)), (torch.randn(2, 3, 4, 4),))
    (op,) = [o for o in module.walk() if o.name == "graph.reshape"]
    assert op.shape == (0, 3, 16)


def test_multiple_inputs_and_outputs():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, 1)
            self.b = nn.Conv2d(2, 4, 1)

        def forward(self, x, y):
            s = self.a(x) + self.b(y)
            return s, torch.sigmoid(s)

    torch.manual_seed(0)
    module = roundtrip(Two(), torch.randn(2, 3, 5, 5), torch.randn(2, 2, 5, 5))
    func = module.functions()[0]
    assert [a.name_hint for a in func.args] == ["x", "y"]
    assert len(func.function_type.results) == 2


def test_function_name_and_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    module = import_module(model, (torch.randn(1, 1, 5, 5),))
    assert module.functions()[0].sym_name == "Sequential"
    module = import_module(model, (torch.randn(1, 1, 5, 5),), name="main")
    func = module.functions()[0]
    assert func.sym_name == "main"
    consts = {op.attributes["value"].key: op.attributes["value"].array for op in module.walk()
              if op.name == "graph.constant"}
    np.testing.assert_array_equal(consts["0.weight"], model[0].weight.detach().numpy())
    np.testing.assert_array_equal(consts["0.bias"], model[0].bias.detach().numpy())
    text = print_module(module)
    assert "dense_resource<" in text and "dialect_resources" in text


def test_shared_parameter_becomes_one_constant():
    conv = nn.Conv2d(3, 3, 3, padding=1)
    model = Fn(lambda m, x: F.conv2d(F.conv2d(x, m.c.weight, padding=1), m.c.weight, padding=1), c=conv)
    module = roundtrip(model, torch.randn(1, 3, 5, 5))
    consts = [op for op in module.walk() if op.name == "graph.constant"]
    assert [c.attributes["value"].key for c in consts] == ["c.weight"]


def test_training_flag_restored_and_eval_semantics():
    torch.manual_seed(0)
    model = _randomize_bn(nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3), nn.Dropout(0.5)))
    model.train()
    x = torch.randn(2, 3, 4, 4)
    module = import_module(model, (x,))
    assert model.training and model[1].training
    model.eval()
    np.testing.assert_allclose(run_module(module, [x.numpy()])[0], model(x).detach().numpy(), rtol=1e-5, atol=1e-6)


# ---- locations ---------------------------------------------------------------------------------------------
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        y = self.conv1(x)  # LOC-conv1
        return self.relu(y) + x  # LOC-add


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer1 = nn.Sequential(Block(), Block())

    def forward(self, x):
        return torch.flatten(self.layer1(x), 1)  # LOC-flatten


def _line_of(marker: str) -> int:
    with open(__file__, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if marker in line and "_line_of" not in line:
                return i
    raise AssertionError(marker)


def test_locations_point_at_user_source():
    module = import_module(Outer(), (torch.randn(1, 3, 4, 4),))
    by_name = {op.location.name: op for op in module.walk()
               if op.name.startswith("graph.") and isinstance(op.location, NameLoc)}
    conv = by_name["layer1.1.conv1"]
    assert conv.name == "graph.conv2d"
    flc = conv.location.child
    assert isinstance(flc, FileLineColLoc)
    assert flc.filename == __file__ and flc.line == _line_of("# LOC-conv1")
    src = open(__file__).read().splitlines()[flc.line - 1]
    assert src[flc.col - 1:].startswith("self.conv1(x)")
    add = [op for op in module.walk() if op.name == "graph.add"][0]
    assert add.location.name.startswith("layer1.0.")
    assert add.location.child.line == _line_of("# LOC-add")
    flat = [op for op in module.walk() if op.name == "graph.flatten"][0]
    assert flat.location.child.line == _line_of("# LOC-flatten")
    w = [op for op in module.walk() if op.name == "graph.constant"][0]
    assert w.location.name == "layer1.0.conv1.weight"
    assert [a.name_hint for a in module.functions()[0].args] == ["x"]
    names = [op.result.name_hint for op in module.walk() if op.name == "graph.conv2d"]
    assert names == ["layer1_0_conv1", "layer1_1_conv1"]
    text = print_module(module, print_locations=True)
    assert f'loc("layer1.1.conv1"("{__file__}":{flc.line}:{flc.col}))' in text


# ---- errors ------------------------------------------------------------------------------------------------
class WithGRU(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Sequential(nn.Flatten(2), nn.Identity())
        self.rnn = nn.GRU(16, 4, batch_first=True)

    def forward(self, x):
        y = self.head(x)
        return self.rnn(y)[0]  # LOC-gru


class WithTopk(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = Fn(lambda m, x: torch.topk(x, 2).values)

    def forward(self, x):
        return self.inner(x).relu()


class Branchy(nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # LOC-branch
            return x
        return -x


class Doubler(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2


class WithAutograd(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)

    def forward(self, x):
        return Doubler.apply(self.conv(x))  # LOC-autograd


def _render(model, x) -> str:
    with pytest.raises(FrontendError) as info:
        import_module(model, (x,))
    return info.value.render()


def test_unsupported_module_names_op_path_and_line():
    text = _render(WithGRU(), torch.randn(1, 4, 4, 4))
    first = text.splitlines()[0]
    assert f"{__file__}:{_line_of('# LOC-gru')}:" in first
    assert "torch.nn.GRU" in first and "module 'rnn'" in first
    assert "supported modules:" in first and "Conv2d" in first
    assert "return self.rnn(y)[0]  # LOC-gru" in text  # the source line is quoted


def test_unsupported_function_names_op_and_path():
    text = _render(WithTopk(), torch.randn(1, 4, 4, 4))
    assert "'torch.topk'" in text and "module 'inner'" in text
    assert "torch.topk(x, 2)" in text


def test_indexing_with_a_tensor_is_unsupported():
    text = _render(Fn(lambda m, x: x[:, [0, 2]]), torch.randn(1, 4, 4, 4))
    assert "operator.getitem" in text and "data-dependent" in text


def test_data_dependent_control_flow():
    text = _render(Branchy(), torch.randn(1, 4))
    assert "data-dependent control flow" in text
    assert f"{__file__}:{_line_of('# LOC-branch')}:" in text.splitlines()[0]
    assert "Traceback" not in text


def test_custom_autograd_function():
    text = _render(WithAutograd(), torch.randn(1, 1, 3, 3))
    assert "custom autograd function 'Doubler'" in text
    assert f"{__file__}:{_line_of('# LOC-autograd')}:" in text.splitlines()[0]


def test_value_dependent_python_scalar_is_refused():
    text = _render(Fn(lambda m, x: x * x.mean().item()), torch.randn(1, 4))
    assert "Tensor.item" in text


@pytest.mark.parametrize("model, needle", [
    (nn.Sequential(nn.Upsample(scale_factor=2, mode="bicubic")), "mode='bicubic'"),
    (nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular")), "padding_mode='circular'"),
    (nn.Sequential(nn.BatchNorm2d(1, track_running_stats=False)), "track_running_stats=False"),
    (Fn(lambda m, x: F.dropout(x, 0.5)), "training=True"),
    (Fn(lambda m, x: x / x), "division by a tensor"),
    (Fn(lambda m, x: torch.clamp(x, -1, 1)), "relu6"),
    (nn.Sequential(nn.ELU()), "torch.nn.ELU"),
    (nn.Sequential(nn.MaxPool2d(2, return_indices=True)), "returns a tuple"),
])
def test_unsupported_variants(model, needle):
    assert needle in _render(model, torch.randn(1, 1, 4, 4))


def test_bad_inputs():
    with pytest.raises(FrontendError, match="float32"):
        import_module(nn.Sequential(nn.ReLU()), (torch.randn(1, 3).double(),))
    with pytest.raises(FrontendError, match="torch.nn.Module"):
        import_module(lambda x: x, (torch.randn(1),))
    with pytest.raises(FrontendError, match="example inputs failed"):
        import_module(nn.Sequential(nn.Linear(3, 2)), (torch.randn(1, 4),))


def test_supported_ops_lists_everything():
    s = supported_ops()
    for name in ("Conv2d", "ConvTranspose2d", "Linear", "BatchNorm2d", "BatchNorm1d", "ReLU", "ReLU6", "LeakyReLU",
                 "PReLU", "Hardsigmoid", "Hardswish", "Sigmoid", "Tanh", "SiLU", "MaxPool2d", "AvgPool2d",
                 "AdaptiveAvgPool2d", "Dropout", "Identity", "Flatten", "Upsample", "Softmax", "ZeroPad2d",
                 "ConstantPad2d"):
        assert name in s["modules"], name
    for name in ("view", "reshape", "flatten", "permute", "transpose", "mean", "relu", "sigmoid", "contiguous",
                 "softmax"):
        assert name in s["methods"], name
    fns = " ".join(s["functions"])
    for name in ("conv2d", "interpolate", "pad", "softmax", "linear", "torch.flatten", "torch.cat", "torch.matmul",
                 "operator.add"):
        assert name in fns, name


# ---- the zoo ---------------------------------------------------------------------------------------------------
ZOO = [
    ("DigitsCNN", (2, 1, 28, 28), False),
    ("TinyMobileNet", (2, 1, 28, 28), False),
    ("ResNet18Cifar", (1, 3, 32, 32), True),
    ("ResNet18", (1, 3, 224, 224), True),
    ("MobileNetV2", (1, 3, 224, 224), True),
    ("ResNet50", (1, 3, 224, 224), True),
]


@pytest.mark.parametrize("name, shape, slow", [pytest.param(n, s, sl, marks=pytest.mark.slow if sl else ())
                                               for n, s, sl in ZOO])
def test_zoo_models(name, shape, slow):
    from fixflow.zoo import models
    torch.manual_seed(0)
    model = _randomize_bn(getattr(models, name)()).eval()
    module = roundtrip(model, torch.randn(shape), rtol=1e-3, atol=1e-4, batch=None if slow else 3)
    assert module.functions()[0].sym_name == type(model).__name__


class AliasedInplace(nn.Module):
    def forward(self, x):
        y = x * 1
        z = y
        z += 1  # fx records an out-of-place add: y would silently differ
        return y + z


def test_trace_that_differs_from_eager_is_refused():
    x = torch.zeros(1, 3)
    with pytest.raises(FrontendError, match="computes a different result"):
        import_module(AliasedInplace(), (x,))
    assert torch.equal(x, torch.zeros(1, 3))  # example inputs are not modified


def test_inplace_on_input_does_not_modify_example():
    x = torch.randn(1, 3, 4, 4)
    before = x.clone()
    module = import_module(Fn(lambda m, x: F.relu(x, inplace=True) + 1), (x,))
    assert torch.equal(x, before)
    np.testing.assert_allclose(run_module(module, [x.numpy()])[0], F.relu(x).numpy() + 1, rtol=1e-6)
