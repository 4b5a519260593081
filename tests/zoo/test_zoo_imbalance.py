"""make_imbalanced: the float function is preserved while per-channel ranges spread."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from fixflow import zoo  # noqa: E402
from fixflow.zoo import registry  # noqa: E402
from fixflow.zoo.data import load_digits  # noqa: E402
from fixflow.zoo.imbalance import find_dw_bn_relu_conv_chains, make_imbalanced  # noqa: E402


@pytest.fixture(scope="module")
def base():
    return zoo.get_model("tiny_mobilenet")


@pytest.fixture(scope="module")
def x_test():
    return torch.from_numpy(load_digits("test", size=28)[0])


@torch.no_grad()
def _folded_dw_range_spread(model, dw_name, bn_name):
    """max/min over channels of max|w| of the depthwise weights with BN folded in."""
    mods = dict(model.named_modules())
    w, bn = mods[dw_name].weight, mods[bn_name]
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    r = (w * scale.view(-1, 1, 1, 1)).abs().amax(dim=(1, 2, 3))
    return float(r.max() / r.min())


def test_chains_found(base):
    chains = find_dw_bn_relu_conv_chains(base)
    assert chains == [(f"blocks.{i}.dw", f"blocks.{i}.dw_bn", f"blocks.{i}.pw") for i in range(4)]
    assert find_dw_bn_relu_conv_chains(registry.build("resnet18_cifar")) == []
    assert find_dw_bn_relu_conv_chains(registry.build("mobilenet_v2")) == []  # ReLU6 does not commute


def test_function_preserved(base, x_test):
    imb = make_imbalanced(base, seed=0)
    with torch.no_grad():
        ref, got = base(x_test), imb(x_test)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
    assert torch.equal(got.argmax(1), ref.argmax(1))


@torch.no_grad()
def test_ranges_spread(base):
    imb = make_imbalanced(base, seed=0, max_log2=8)
    for dw, bn, _ in find_dw_bn_relu_conv_chains(base):
        before = _folded_dw_range_spread(base, dw, bn)
        after = _folded_dw_range_spread(imb, dw, bn)
        ratio = dict(imb.named_modules())[bn].weight / dict(base.named_modules())[bn].weight
        log2s = torch.log2(ratio)
        assert float(log2s.min()) >= -4 - 1e-5 and float(log2s.max()) <= 4 + 1e-5
        assert float(log2s.max() - log2s.min()) > 5  # spread of scales close to 2^8
        assert after > 4 * before


@torch.no_grad()
def test_per_channel_scaling_is_exact_relation(base):
    imb = make_imbalanced(base, seed=3, symmetric=False)
    b, m = dict(base.named_modules()), dict(imb.named_modules())
    for _, bn, nxt in find_dw_bn_relu_conv_chains(base):
        s = m[bn].weight / b[bn].weight
        assert float(s.min()) >= 1.0 - 1e-6 and float(s.max()) <= 2**8 + 1e-3
        torch.testing.assert_close(m[bn].bias, b[bn].bias * s)
        torch.testing.assert_close(m[nxt].weight * s.view(1, -1, 1, 1), b[nxt].weight)
        torch.testing.assert_close(m[bn].running_mean, b[bn].running_mean, rtol=0, atol=0)


def test_input_untouched_and_deterministic(base):
    before = {k: v.clone() for k, v in base.state_dict().items()}
    a = make_imbalanced(base, seed=5)
    b = make_imbalanced(base, seed=5)
    c = make_imbalanced(base, seed=6)
    for k, v in base.state_dict().items():
        assert torch.equal(v, before[k])
        assert torch.equal(a.state_dict()[k], b.state_dict()[k])
    assert not torch.equal(a.blocks[0].dw_bn.weight, c.blocks[0].dw_bn.weight)


def test_registry_variant(base, x_test):
    imb = zoo.get_model("tiny_mobilenet_imbalanced")
    assert not imb.training
    with torch.no_grad():
        torch.testing.assert_close(imb(x_test), base(x_test), rtol=1e-4, atol=1e-4)
    assert not torch.equal(imb.blocks[1].pw.weight, base.blocks[1].pw.weight)


def test_per_tensor_int8_of_folded_dw_weights_breaks():
    """What the variant is for: per-tensor 8-bit quantization of the folded depthwise weights
    loses small channels entirely (plain numpy, symmetric max-abs scale)."""
    base = zoo.get_model("tiny_mobilenet")
    imb = make_imbalanced(base, seed=0)

    def worst_channel_error(model):
        errs = []
        for dw, bn, _ in find_dw_bn_relu_conv_chains(model):
            mods = dict(model.named_modules())
            b = mods[bn]
            w = (mods[dw].weight * (b.weight / torch.sqrt(b.running_var + b.eps)).view(-1, 1, 1, 1))
            w = w.detach().numpy()
            scale = np.abs(w).max() / 127
            q = np.round(w / scale) * scale
            per_ch = np.abs(q - w).reshape(len(w), -1).max(1) / np.abs(w).reshape(len(w), -1).max(1)
            errs.append(per_ch.max())
        return max(errs)

    assert worst_channel_error(base) < 0.5
    assert worst_channel_error(imb) >= 0.99  # some channel is rounded to all zeros


def test_no_chain_is_an_error():
    with pytest.raises(ValueError, match="no depthwise conv"):
        make_imbalanced(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), seed=0)
