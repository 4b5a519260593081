"""The files the reference tests judge: every zoo model's `_int.xmodel`, one small net per XIR op type
fixflow's exporter writes, and a torch model with a scalar float constant on a CPU op."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def zoo_names() -> list[str]:
    from fixflow.zoo import registry
    return registry.list_models()


_INT_CACHE: dict[str, Path] = {}


def zoo_int_xmodel(name: str, tmp_factory) -> Path:
    """`<Model>_int.xmodel` of zoo model `name`: the Quantizer calibrated on one or two inputs, then the
    calibrated module lowered and exported as test mode does (quantize + write_int_xmodel)."""
    if name in _INT_CACHE:
        return _INT_CACHE[name]
    torch = pytest.importorskip("torch")
    from fixflow import zoo
    from fixflow.backends.xmodel.fix_xmodel import write_int_xmodel
    from fixflow.passes.fix.quantize import quantize_module
    from fixflow.quantizer import Quantizer
    from fixflow.zoo import registry

    spec = registry.get_spec(name)
    shape = tuple(spec.input_shape[1:])
    big = int(np.prod(shape)) > 100_000
    x = np.random.default_rng(0).standard_normal((1 if big else 2, *shape)).astype(np.float32)
    out = tmp_factory.mktemp(f"int_{name}")
    q = Quantizer(zoo.get_model(name), (torch.from_numpy(x[:1]),), mode="calib", output_dir=out)
    q.quant_model(torch.from_numpy(x))
    q.export_quant_config()
    m = q.module.clone()
    quantize_module(m)
    path = out / f"{q.name}_int.xmodel"
    write_int_xmodel(m, path, q.name)
    _INT_CACHE[name] = path
    return path


#: one small net per exporter op type (DSL bodies over x: f32[1, 4, 8, 8])
OP_NETS = {
    "conv_relu6_leaky": "c = conv2d(x, out=8, kernel=3, pad=1)\n  r = relu6(c)\n  d = conv2d(r, out=6, kernel=1)\n"
                        "  l = leaky_relu(d, alpha=0.1015625)\n  return l",
    "depthwise": "d = depthwise_conv2d(x, kernel=3, pad=1)\n  r = relu(d)\n  return r",
    "transposed": "t = conv_transpose2d(x, out=3, kernel=3, stride=2, pad=1, output_pad=1)\n  return t",
    "pools": "m = max_pool2d(x, kernel=3, stride=2, pad=1, ceil_mode=true)\n  a = avg_pool2d(m, kernel=2)\n"
             "  g = adaptive_avg_pool2d(x, size=1)\n  return a, g",
    "eltwise_concat": "c = conv2d(x, out=4, kernel=1)\n  s = add(c, x)\n  r = relu(s)\n  m = mul(r, c)\n"
                      "  k = concat(m, x, axis=1)\n  return k",
    "flatten_linear": "c = conv2d(x, out=6, kernel=3, stride=2, pad=1)\n  f = flatten(c)\n  l = linear(f, out=10)\n"
                      "  return l",
    "upsample_pad_hard": "u = upsample(x, scale=2)\n  p = pad(u, pads=[1, 1, 2, 0])\n  h = hardswish(p)\n"
                         "  s = hardsigmoid(h)\n  return s",
    "transpose_reshape": "c = conv2d(x, out=4, kernel=1)\n  t = transpose(c, perm=[0, 1, 3, 2])\n"
                         "  r = reshape(t, shape=[0, 8, 4, 8])\n  return r",
    "cpu_ops": "c = conv2d(x, out=4, kernel=3, pad=1)\n  s = sigmoid(c)\n  t = tanh(c)\n  u = silu(c)\n"
               "  p = prelu(c, per_channel=true)\n  d = sub(s, t)\n  m = matmul(u, p)\n  f = flatten(d)\n"
               "  o = softmax(f, axis=-1)\n  return o, m",
    "issue15_cpu_ops": "c = conv2d(x, out=4, kernel=3, pad=1)\n  g = gelu(c)\n  h = mish(c)\n"
                       "  n = layer_norm(c, dims=1)\n  q = group_norm(c, groups=2)\n  s = sum(g, axes=[1], keepdim=true)\n"
                       "  a = amax(h, axes=[2], keepdim=true)\n  b = amin(n, axes=[3], keepdim=true)\n"
                       "  z = normalize(q, axis=1)\n  return s, a, b, z",
    "strided_slice": "c = conv2d(x, out=4, kernel=1)\n  t = slice(c, axes=[1, 3], starts=[1, 0], ends=[3, 8], steps=[1, 2])\n"
                     "  return t",
    "standalone_leaky_mean": "c = conv2d(x, out=4, kernel=1)\n  l = leaky_relu(x, alpha=0.2)\n"
                             "  m = mean(c, axes=[1], keepdim=true)\n  return l, m",
    # ops named fl_* are left in float (as layer_quantize_config does): XIR's float ops
    "float_layers": "c = conv2d(x, out=4, kernel=3, pad=1)\n  fl_r = relu(c)\n  fl_r6 = relu6(fl_r)\n"
                    "  fl_hs = hardswish(fl_r6)\n  fl_hg = hardsigmoid(fl_hs)\n"
                    "  fl_m = max_pool2d(fl_hg, kernel=3, stride=2, pad=1, ceil_mode=true)\n"
                    "  fl_a = avg_pool2d(fl_m, kernel=2)\n  fl_g = adaptive_avg_pool2d(c, size=2)\n"
                    "  fl_u = upsample(fl_a, scale=2)\n"
                    "  fl_t = conv_transpose2d(fl_u, out=3, kernel=3, stride=2, pad=1, output_pad=1)\n"
                    "  return fl_t, fl_g",
}


def op_net_int_xmodel(key: str, tmp: Path) -> Path:
    from fixflow.backends.xmodel.fix_xmodel import write_int_xmodel
    from fixflow.frontends.dsl import import_dsl
    from fixflow.passes.fix.calibrate import calibrate_module
    from fixflow.passes.graph.transforms import fold_batch_norm
    from fixflow.passes.fix.legalize import legalize_fix
    from fixflow.passes.fix.quantize import quantize_module

    m = import_dsl(f"net {key}(x: f32[1, 4, 8, 8]) with seed=3 {{\n  {OP_NETS[key]}\n}}")
    from fixflow.ir.attributes import StringAttr
    from fixflow.passes.fix.annotations import KEEP_FLOAT
    for op in m.walk():
        if op.results and (op.results[0].name_hint or "").startswith("fl_"):
            op.attributes[KEEP_FLOAT] = StringAttr("left in float by the op net")
    fold_batch_norm(m)
    x = np.random.default_rng(0).standard_normal((3, 4, 8, 8)).astype(np.float32)
    calibrate_module(m, [[x]])
    legalize_fix(m)
    quantize_module(m)
    path = tmp / f"{key}_int.xmodel"
    write_int_xmodel(m, path)
    return path


def scalar_const_int_xmodel(tmp: Path) -> Path:
    """A torch model whose CPU op (sigmoid(x) - 0.5) reads a rank-0 float constant, and ends in a Linear."""
    torch = pytest.importorskip("torch")
    from torch import nn

    from fixflow.backends.xmodel.fix_xmodel import write_int_xmodel
    from fixflow.passes.fix.quantize import quantize_module
    from fixflow.quantizer import Quantizer

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 4, 3), nn.Linear(4 * 6 * 6, 3)

        def forward(self, x):
            return self.fc(torch.flatten(torch.sigmoid(self.conv(x)) - 0.5, 1))

    torch.manual_seed(0)
    x = torch.randn(2, 1, 8, 8)
    q = Quantizer(Net().eval(), (x[:1],), mode="calib", output_dir=tmp / "scalar")
    q.quant_model(x)
    q.export_quant_config()
    m = q.module.clone()
    quantize_module(m)
    path = tmp / "Scalar_int.xmodel"
    write_int_xmodel(m, path)
    return path
