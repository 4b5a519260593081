"""Float reference interpreter on ResNet-18 (3x224x224, batch 1) vs. PyTorch eager on the same weights.

The graph IR is built by hand from the zoo model's modules (independent of the torch frontend), so
both sides use the same random weights. Also measured: the same graph after fold-bn.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from fixflow.dialects.builtin import FuncOp, ModuleOp, ReturnOp  # noqa: E402
from fixflow.dialects.graph import (AdaptiveAvgPool2dOp, AddOp, BatchNormOp, ConstantOp, Conv2dOp,  # noqa: E402
                                    FlattenOp, LinearOp, MaxPool2dOp, ReluOp)
from fixflow.ir import Builder, TensorType, f32  # noqa: E402
from fixflow.passes.graph.transforms import fold_batch_norm  # noqa: E402
from fixflow.ir.interpreter import run_module  # noqa: E402
from fixflow.zoo.models import ResNet18  # noqa: E402


class _Emitter:
    def __init__(self, builder: Builder):
        self.b = builder

    def const(self, key: str, t: torch.Tensor):
        return self.b.insert(ConstantOp.from_array(t.detach().numpy(), key)).result

    def op(self, cls, *operands, name: str, **attrs):
        v = self.b.create(cls, *operands, **attrs).result
        v.name_hint = name
        return v

    def conv(self, x, m: nn.Conv2d, key: str):
        w = self.const(f"{key}.weight", m.weight)
        b = self.const(f"{key}.bias", m.bias) if m.bias is not None else None
        ph, pw = m.padding
        return self.op(Conv2dOp, x, w, b, stride=m.stride, padding=(ph, ph, pw, pw), dilation=m.dilation,
                       groups=m.groups, name=key)

    def bn(self, x, m: nn.BatchNorm2d, key: str):
        ps = [self.const(f"{key}.{n}", t) for n, t in (("running_mean", m.running_mean),
                                                      ("running_var", m.running_var), ("weight", m.weight),
                                                      ("bias", m.bias))]
        return self.op(BatchNormOp, x, *ps, eps=m.eps, name=key)


def resnet_to_graph(model, input_shape=(1, 3, 224, 224)) -> ModuleOp:
    """The graph IR of a zoo ResNet with BasicBlocks (an ImageNet stem)."""
    module = ModuleOp.empty()
    func = FuncOp.create_function("ResNet", [TensorType(input_shape, f32)], [])
    module.body.append(func)
    e = _Emitter(Builder.at_end(func.body))
    x = func.args[0]
    x.name_hint = "input"
    y = e.op(ReluOp, e.bn(e.conv(x, model.conv1, "conv1"), model.bn1, "bn1"), name="relu")
    y = e.op(MaxPool2dOp, y, kernel=(3, 3), stride=(2, 2), padding=(1, 1, 1, 1), name="maxpool")
    for li in range(1, 5):
        for bi, blk in enumerate(getattr(model, f"layer{li}")):
            p = f"layer{li}.{bi}"
            out = e.op(ReluOp, e.bn(e.conv(y, blk.conv1, f"{p}.conv1"), blk.bn1, f"{p}.bn1"), name=f"{p}.relu")
            out = e.bn(e.conv(out, blk.conv2, f"{p}.conv2"), blk.bn2, f"{p}.bn2")
            if blk.downsample is not None:
                y = e.bn(e.conv(y, blk.downsample[0], f"{p}.downsample.0"), blk.downsample[1],
                         f"{p}.downsample.1")
            y = e.op(ReluOp, e.op(AddOp, out, y, name=f"{p}.add"), name=f"{p}.relu2")
    y = e.op(AdaptiveAvgPool2dOp, y, output_size=(1, 1), name="avgpool")
    y = e.op(FlattenOp, y, start_dim=1, name="flatten")
    y = e.op(LinearOp, y, e.const("fc.weight", model.fc.weight), e.const("fc.bias", model.fc.bias), name="fc")
    e.b.insert(ReturnOp.build([y]))
    func.update_function_type()
    module.verify()
    return module


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    model = ResNet18().eval()
    with torch.no_grad():  # non-trivial BN statistics so that fold-bn matters
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    return model, resnet_to_graph(model), x, ref


def _check(out, ref):
    np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-3 * float(np.abs(ref).max()))


@pytest.mark.benchmark(group="resnet18-b1")
def test_resnet18_interpreter(benchmark, resnet):
    _, module, x, ref = resnet
    out = benchmark(run_module, module, [x])[0]
    _check(out, ref)


@pytest.mark.benchmark(group="resnet18-b1")
def test_resnet18_interpreter_fold_bn(benchmark, resnet):
    _, module, x, ref = resnet
    folded = module.clone()
    fold_batch_norm(folded)
    assert not list(folded.walk(BatchNormOp))
    out = benchmark(run_module, folded, [x])[0]
    _check(out, ref)


@pytest.mark.benchmark(group="resnet18-b1")
def test_resnet18_torch_eager(benchmark, resnet):
    model, _, x, ref = resnet
    xt = torch.from_numpy(x)

    def run():
        with torch.no_grad():
            return model(xt)

    out = benchmark(run).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
