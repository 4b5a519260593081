"""The DSL frontend: parsing, lowering to graph ops, weights, numerics against PyTorch, and error messages."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fixflow.frontends.dsl import (GRAMMAR_PATH, DslError, export_weights, import_dsl, import_dsl_file,
                                   op_names)
from fixflow.ir import FileLineColLoc, parse_module, print_module
from fixflow.ir.interpreter import run_module


ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"


def run(module, *xs, function=None):
    return run_module(module, [np.asarray(x, np.float32) for x in xs], function=function)


def t(a):
    return torch.from_numpy(np.array(a, dtype=np.float32))


def rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# ---- examples ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cnn.ffn", "resblock.ffn"])
def test_example_parses_verifies_and_round_trips(name):
    m = import_dsl_file(EXAMPLES / name)
    m.verify()
    for locs in (False, True):
        text = print_module(m, print_locations=locs)
        again = parse_module(text, "roundtrip.mlir")
        again.verify()
        assert print_module(again, print_locations=locs) == text
    y = run(parse_module(print_module(m), "x.mlir"), rand(2, *m.functions()[0].args[0].type.shape[1:]))[0]
    assert np.isfinite(y).all() and y.std() > 0.1  # not degenerate


def _digits_cnn_npz():
    """The zoo's trained DigitsCNN weights under the statement names of examples/cnn.ffn."""
    sd = dict(np.load(ROOT / "fixflow/zoo/weights/digits_cnn.npz"))
    out = {}
    for i, feat in ((1, "features.0"), (2, "features.2"), (3, "features.3")):
        out[f"conv{i}.weight"] = sd[f"{feat}.0.weight"]
        out[f"bn{i}.gamma"] = sd[f"{feat}.1.weight"]
        out[f"bn{i}.beta"] = sd[f"{feat}.1.bias"]
        out[f"bn{i}.mean"] = sd[f"{feat}.1.running_mean"]
        out[f"bn{i}.var"] = sd[f"{feat}.1.running_var"]
    out["fc.weight"] = sd["classifier.weight"]
    out["fc.bias"] = sd["classifier.bias"]
    return out


def test_cnn_with_trained_npz_matches_torch_on_digits(tmp_path):
    from fixflow.zoo.data import load_digits
    from fixflow.zoo.models import DigitsCNN
    npz = tmp_path / "cnn.npz"
    np.savez(npz, **_digits_cnn_npz())
    m = import_dsl_file(EXAMPLES / "cnn.ffn", weights_npz=npz)

    model = DigitsCNN().eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in np.load(ROOT / "fixflow/zoo/weights/digits_cnn.npz").items()})
    x, labels = load_digits("test", size=28)
    x, labels = x[:64], labels[:64]
    ours = run(m, x)[0]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)
    assert (ours.argmax(1) == labels).mean() > 0.95


def test_cnn_random_weights_match_torch_functional():
    m = import_dsl_file(EXAMPLES / "cnn.ffn")
    w = {k: t(v) for k, v in export_weights(m).items()}
    x = rand(3, 1, 28, 28)

    def cbr(h, i, stride=1):
        h = F.conv2d(h, w[f"conv{i}.weight"], None, stride, 1)
        h = F.batch_norm(h, w[f"bn{i}.mean"], w[f"bn{i}.var"], w[f"bn{i}.gamma"], w[f"bn{i}.beta"], eps=1e-5)
        return F.relu(h)

    h = F.max_pool2d(cbr(t(x), 1), 2, 2)
    h = cbr(cbr(h, 2), 3, stride=2)
    ref = F.linear(h.flatten(1), w["fc.weight"], w["fc.bias"]).numpy()
    np.testing.assert_allclose(run(m, x)[0], ref, rtol=1e-4, atol=1e-4)


def test_resblock_matches_torch():
    m = import_dsl_file(EXAMPLES / "resblock.ffn")
    w = {k: t(v) for k, v in export_weights(m).items()}

    def bn(h, n):
        return F.batch_norm(h, w[f"{n}_bn.mean"], w[f"{n}_bn.var"], w[f"{n}_bn.gamma"], w[f"{n}_bn.beta"])

    x = t(rand(2, 16, 16, 16))
    a = F.relu(bn(F.conv2d(F.relu(bn(F.conv2d(x, w["a1.weight"], padding=1), "a1")), w["a2.weight"], padding=1),
                  "a2") + x)
    b1 = F.relu(bn(F.conv2d(a, w["b1.weight"], stride=2, padding=1), "b1"))
    b2 = bn(F.conv2d(b1, w["b2.weight"], padding=1), "b2")
    ref = F.relu(b2 + bn(F.conv2d(a, w["short.weight"], stride=2), "short")).numpy()
    np.testing.assert_allclose(run(m, x.numpy())[0], ref, rtol=1e-4, atol=1e-4)


# ---- structure: locations, names, functions ----------------------------------------------------
SRC = """# two nets
net A(x: f32[1, 4, 6, 6]) {
  c = conv2d(x, out=8, kernel=3)
  r = relu(c)
  return r, c
}

net B(u: f32[2, 3], v: f32[2, 3]) with seed=5 {
  s = add(u, v)
  return s
}
"""


def test_locations_name_hints_and_functions():
    m = import_dsl(SRC, "two.ffn")
    fa, fb = m.functions()
    assert (fa.sym_name, fb.sym_name) == ("A", "B")
    assert fa.location == FileLineColLoc("two.ffn", 2, 1)
    ops = {op.results[0].name_hint: op for op in fa.body.ops if op.results}
    assert ops["c"].name == "graph.conv2d" and ops["c"].location == FileLineColLoc("two.ffn", 3, 3)
    assert ops["c.weight"].location == FileLineColLoc("two.ffn", 3, 3)
    assert ops["r"].location == FileLineColLoc("two.ffn", 4, 3)
    assert [a.name_hint for a in fb.args] == ["u", "v"]
    assert [str(r) for r in fa.function_type.results] == ["tensor<1x8x4x4xf32>"] * 2
    # several nets: resource keys are prefixed by the net name
    assert set(export_weights(m)) == {"A.c.weight", "A.c.bias"}
    text = print_module(m)
    assert "%c.weight = \"graph.constant\"" in text and "%r = \"graph.relu\"(%c)" in text
    r, c = run(m, rand(1, 4, 6, 6), function="A")
    np.testing.assert_array_equal(r, np.maximum(c, 0))


def test_seeds_are_deterministic_and_local():
    src = "net N(x: f32[1, 2, 5, 5]) {\n a = conv2d(x, out=3, kernel=3)\n b = conv2d(a, out=3, kernel=1)\n return b\n}"
    w0 = export_weights(import_dsl(src))
    assert all(np.array_equal(v, export_weights(import_dsl(src))[k]) for k, v in w0.items())
    w1 = export_weights(import_dsl(src, seed=1))
    assert not np.array_equal(w0["a.weight"], w1["a.weight"])
    w_opt = export_weights(import_dsl(src.replace("N(x: f32[1, 2, 5, 5])", "N(x: f32[1, 2, 5, 5]) with seed=1")))
    assert np.array_equal(w_opt["a.weight"], w1["a.weight"])
    assert np.array_equal(export_weights(import_dsl(src.replace("with seed=1", ""), seed=1))["a.weight"],
                          w1["a.weight"])
    # editing one statement leaves the other's weights alone
    w2 = export_weights(import_dsl(src.replace("out=3, kernel=1", "out=5, kernel=1")))
    assert np.array_equal(w0["a.weight"], w2["a.weight"])
    # Kaiming scale: std ~ sqrt(2 / fan_in)
    big = export_weights(import_dsl("net N(x: f32[1, 64, 3, 3]) { c = conv2d(x, out=64, kernel=3)\n return c }"))
    assert abs(big["c.weight"].std() - np.sqrt(2 / (64 * 9))) < 0.005


def test_any_batch_size_runs_through_reshape():
    src = "net N(x: f32[1, 2, 4, 4]) { r = reshape(x, [1, -1])\n l = linear(r, out=3)\n return l }"
    m = import_dsl(src)
    (reshape,) = [op for op in m.walk() if op.name == "graph.reshape"]
    assert tuple(reshape.shape) == (0, -1)
    w = export_weights(m)
    x = rand(5, 2, 4, 4)
    np.testing.assert_allclose(run(m, x)[0], x.reshape(5, -1) @ w["l.weight"].T + w["l.bias"], rtol=1e-5, atol=1e-5)


# ---- weights ------------------------------------------------------------------------------------
def test_torch_state_dict_names_are_accepted():
    bn = torch.nn.BatchNorm2d(3).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    weights = {f"bn.{k}": v.numpy() for k, v in bn.state_dict().items()}
    m = import_dsl("net N(x: f32[1, 3, 4, 4]) { bn = batch_norm(x)\n return bn }", weights=weights)
    x = rand(2, 3, 4, 4)
    with torch.no_grad():
        np.testing.assert_allclose(run(m, x)[0], bn(t(x)).numpy(), rtol=1e-5, atol=1e-5)


def test_inline_weights_and_consts():
    src = """net N(x: f32[1, 2]) {
  w = const([[1, 2], [3, 4], [5, 6]])
  a = linear(x, w, bias=[0.5, 0, -1])
  b = linear(x, weight=[[1, 0], [0, 1]], bias=false)
  s = mul(b, 2)
  k = const(shape=[1, 2], init="ones")
  o = sub(s, k)
  return a, o
}"""
    m = import_dsl(src)
    x = np.array([[1.0, -2.0], [0.5, 3.0]], np.float32)
    a, o = run(m, x)
    np.testing.assert_allclose(a, x @ np.array([[1, 2], [3, 4], [5, 6]]).T + [0.5, 0, -1])
    np.testing.assert_allclose(o, 2 * x - 1)
    assert any(op.name == "graph.linear" and len(op.operands) == 2 for op in m.walk())  # bias=false


def test_npz_roundtrip_and_const_from_weights(tmp_path):
    src = "net N(x: f32[1, 3]) { k = const(shape=[1, 3])\n y = add(x, k)\n return y }"
    npz = tmp_path / "w.npz"
    np.savez(npz, k=np.array([[1, 2, 3]], np.float32))
    path = tmp_path / "n.ffn"
    path.write_text(src)
    m = import_dsl_file(path, weights_npz=npz)
    np.testing.assert_array_equal(run(m, np.zeros((1, 3)))[0], [[1, 2, 3]])
    # exported weights read back give the same module text
    m1 = import_dsl_file(EXAMPLES / "resblock.ffn", seed=3)
    np.savez(tmp_path / "r.npz", **export_weights(m1))
    m2 = import_dsl_file(EXAMPLES / "resblock.ffn", weights_npz=tmp_path / "r.npz", seed=99)
    assert print_module(m1) == print_module(m2)


def test_weights_errors(tmp_path):
    src = "net N(x: f32[1, 2, 4, 4]) {\n  c = conv2d(x, out=3, kernel=3)\n  return c\n}"
    with pytest.raises(DslError) as e:
        import_dsl(src, "w.ffn", weights={"c.weight": np.zeros((3, 1, 3, 3))})
    assert e.value.location == FileLineColLoc("w.ffn", 2, 3)
    assert "'c.weight' has shape [3, 1, 3, 3] but [3, 2, 3, 3] is needed" in e.value.message
    with pytest.raises(DslError, match=r"not used by any statement: cc\.weight"):
        import_dsl(src, weights={"cc.weight": np.zeros((3, 2, 3, 3))})
    with pytest.raises(DslError, match="cannot read weights"):
        import_dsl_file(EXAMPLES / "cnn.ffn", weights_npz=tmp_path / "missing.npz")


# ---- every op against PyTorch -----------------------------------------------------------------
X4 = rand(2, 4, 6, 6, seed=1)
X2 = rand(3, 5, seed=2)

OP_CASES = [
    # (statement(s) using input x: f32[...], input, reference(x, w) -> torch tensor)
    ("y = conv2d(x, out=6, kernel=[3, 1], stride=2, pad=[1, 0, 0, 2], dilation=[1, 2])", X4,
     lambda x, w: F.conv2d(F.pad(x, (0, 2, 1, 0)), w["y.weight"], w["y.bias"], 2, 0, (1, 2))),
    ('y = conv2d(x, out=4, kernel=3, pad="same", groups=2)', X4,
     lambda x, w: F.conv2d(x, w["y.weight"], w["y.bias"], 1, 1, 1, 2)),
    ("y = depthwise_conv2d(x, kernel=3, multiplier=2, bias=false)", X4,
     lambda x, w: F.conv2d(x, w["y.weight"], None, 1, 0, 1, 4)),
    ("y = conv_transpose2d(x, out=3, kernel=3, stride=2, pad=1, output_pad=1)", X4,
     lambda x, w: F.conv_transpose2d(x, w["y.weight"], w["y.bias"], 2, 1, 1)),
    ("y = linear(x, out=7)", X2, lambda x, w: F.linear(x, w["y.weight"], w["y.bias"])),
    ("k = const(shape=[5, 2])\n y = matmul(x, k)", X2, lambda x, w: x @ w["k"]),
    ("y = batch_norm(x, eps=0.001)", X4,
     lambda x, w: F.batch_norm(x, w["y.mean"], w["y.var"], w["y.gamma"], w["y.beta"], eps=1e-3)),
    ("y = relu(x)", X4, lambda x, w: F.relu(x)),
    ("y = relu6(x)", X4 * 4, lambda x, w: F.relu6(x)),
    ("y = sigmoid(x)", X4, lambda x, w: torch.sigmoid(x)),
    ("y = tanh(x)", X4, lambda x, w: torch.tanh(x)),
    ("y = silu(x)", X4, lambda x, w: F.silu(x)),
    ("y = hardsigmoid(x)", X4 * 3, lambda x, w: F.hardsigmoid(x)),
    ("y = hardswish(x)", X4 * 3, lambda x, w: F.hardswish(x)),
    ("y = identity(x)", X4, lambda x, w: x),
    ("y = dropout(x, p=0.2)", X4, lambda x, w: x),
    ("y = leaky_relu(x, alpha=0.1)", X4, lambda x, w: F.leaky_relu(x, 0.1)),
    ("y = prelu(x)", X4, lambda x, w: F.prelu(x, torch.tensor([0.25]))),
    ("y = prelu(x, per_channel=true, slope=[0.1, 0.2, 0.3, 0.4])", X4,
     lambda x, w: F.prelu(x, torch.tensor([0.1, 0.2, 0.3, 0.4]))),
    ("y = max_pool2d(x, kernel=3, stride=2, pad=1, ceil_mode=true)", X4,
     lambda x, w: F.max_pool2d(x, 3, 2, 1, ceil_mode=True)),
    ("y = max_pool2d(x, kernel=2, dilation=2)", X4, lambda x, w: F.max_pool2d(x, 2, 2, 0, dilation=2)),
    ("y = avg_pool2d(x, kernel=3, stride=1, pad=1, count_include_pad=false)", X4,
     lambda x, w: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)),
    ("y = avg_pool2d(x, kernel=2, divisor=3)", X4, lambda x, w: F.avg_pool2d(x, 2, divisor_override=3)),
    ("y = adaptive_avg_pool2d(x, size=[2, 3])", X4, lambda x, w: F.adaptive_avg_pool2d(x, (2, 3))),
    ("y = global_avg_pool2d(x)", X4, lambda x, w: F.adaptive_avg_pool2d(x, 1)),
    ("a = relu(x)\n y = add(x, a)", X4, lambda x, w: x + F.relu(x)),
    ("y = sub(1.5, x)", X4, lambda x, w: 1.5 - x),
    ("k = const([[[1]], [[2]], [[3]], [[4]]])\n y = mul(x, k)", X4,
     lambda x, w: x * torch.arange(1, 5.0).reshape(4, 1, 1)),
    ("a = relu(x)\n y = concat(x, a, x, axis=2)", X4, lambda x, w: torch.cat([x, F.relu(x), x], 2)),
    ("y = reshape(x, shape=[0, 8, -1])", X4, lambda x, w: x.reshape(x.shape[0], 8, -1)),
    ("y = flatten(x, start_dim=2)", X4, lambda x, w: x.flatten(2)),
    ("y = transpose(x, [0, 2, 3, 1])", X4, lambda x, w: x.permute(0, 2, 3, 1)),
    ('y = pad(x, [1, 2, 0, 1], mode="reflect")', X4, lambda x, w: F.pad(x, (1, 2, 0, 1), mode="reflect")),
    ("y = pad(x, pads=[1, 1], value=-2)", X4, lambda x, w: F.pad(x, (1, 1), value=-2.0)),
    ("y = upsample(x, scale=2)", X4, lambda x, w: F.interpolate(x, scale_factor=2, mode="nearest")),
    ('y = upsample(x, size=[9, 7], mode="bilinear", align_corners=true)', X4,
     lambda x, w: F.interpolate(x, size=(9, 7), mode="bilinear", align_corners=True)),
    ('y = upsample(x, scale=[1.5, 2], mode="bilinear")', X4,
     lambda x, w: F.interpolate(x, scale_factor=(1.5, 2), mode="bilinear", align_corners=False)),
    ("y = softmax(x, axis=1)", X4, lambda x, w: F.softmax(x, 1)),
    ("y = mean(x, axes=[2, 3], keepdim=true)", X4, lambda x, w: x.mean((2, 3), keepdim=True)),
    # issue 15: slicing, splitting, broadcasting, reductions, norms, activations
    ("y = slice(x, axes=[1, -1], starts=[1, -4], ends=[4, -1], steps=[2, 1])", X4, lambda x, w: x[:, 1:4:2, :, -4:-1]),
    ("y = chunk(x, chunks=3, index=1, axis=-1)", X4, lambda x, w: x.chunk(3, -1)[1]),
    ("y = split(x, sizes=[1, 3], index=1)", X4, lambda x, w: torch.split(x, [1, 3], 1)[1]),
    ("y = split(x, sizes=3, index=1, axis=2)", X4, lambda x, w: torch.split(x, 3, 2)[1]),
    ("y = select(x, index=-1, axis=2)", X4, lambda x, w: x.unbind(2)[-1]),
    ("t = const(shape=[1, 1, 5])\n y = expand(t, [0, 4, -1], like=x)", np.tile(X2[:, None, :], (1, 4, 1)),
     lambda x, w: w["t"].expand(x.shape[0], 4, -1)),
    ("y = tile(x, [1, 2, 1, 3])", X4, lambda x, w: x.repeat(1, 2, 1, 3)),
    ("y = sum(x, axes=[-1], keepdim=true)", X4, lambda x, w: x.sum(-1, keepdim=True)),
    ("y = amax(x, axes=[1, 2])", X4, lambda x, w: x.amax((1, 2))),
    ("y = amin(x, axes=[3])", X4, lambda x, w: x.amin(3)),
    ("y = layer_norm(x, dims=2, eps=0.000001)", X4,
     lambda x, w: F.layer_norm(x, (6, 6), w["y.weight"], w["y.bias"], 1e-6)),
    ("y = group_norm(x, groups=2, weight=[1, 2, 3, 4], bias=[0, 1, 0, 1])", X4,
     lambda x, w: F.group_norm(x, 2, torch.tensor([1.0, 2, 3, 4]), torch.tensor([0.0, 1, 0, 1]))),
    ("y = instance_norm(x)", X4, lambda x, w: F.instance_norm(x, weight=w["y.weight"], bias=w["y.bias"])),
    ("y = gelu(x)", X4 * 3, lambda x, w: F.gelu(x)),
    ('y = gelu(x, approximate="tanh")', X4 * 3, lambda x, w: F.gelu(x, approximate="tanh")),
    ("y = mish(x)", X4 * 3, lambda x, w: F.mish(x)),
    ("y = roll(x, shifts=[1, -2], axes=[2, 3])", X4, lambda x, w: torch.roll(x, (1, -2), (2, 3))),
    ("y = normalize(x, axis=1)", X4, lambda x, w: F.normalize(x, dim=1)),
    ("y = channel_shuffle(x, groups=2)", X4, lambda x, w: F.channel_shuffle(x, 2)),
]


@pytest.mark.parametrize("body,x,ref", OP_CASES, ids=[c[0].split("=", 1)[1].split("(")[0].strip()
                                                       + f"-{i}" for i, c in enumerate(OP_CASES)])
def test_op_matches_torch(body, x, ref):
    dims = ", ".join(str(d) for d in (1,) + x.shape[1:])
    m = import_dsl(f"net N(x: f32[{dims}]) {{\n {body}\n return y\n}}", "op.ffn")
    text = print_module(m)
    assert print_module(parse_module(text, "op.mlir")) == text
    w = {k: t(v) for k, v in export_weights(m).items()}
    with torch.no_grad():
        expected = ref(t(x), w).numpy()
    got = run(m, x)[0]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_every_op_is_tested_and_documented():
    tested = {c[0].split("=", 1)[1].split("(")[0].strip() for c in OP_CASES}
    tested |= {op for c in OP_CASES for op in re.findall(r"= (\w+)\(", c[0])}
    assert set(op_names()) <= tested
    doc = (ROOT / "docs/dsl.md").read_text()
    for name in op_names():
        assert f"`{name}(" in doc, name
    assert GRAMMAR_PATH.read_text().strip() in doc  # the docs quote the grammar verbatim
    from fixflow.frontends.dsl.ops import reference_markdown
    assert reference_markdown() in doc  # the op reference is generated from the op table


def test_docs_examples_import():
    doc = (ROOT / "docs/dsl.md").read_text()
    blocks = [b.split("```")[0] for b in doc.split("```\n")[1:] if re.match(r"(#.*\n)*net \w+\(", b)]
    assert len(blocks) == 2
    m = import_dsl(blocks[0], "doc.ffn")
    assert run(m, rand(2, 1, 28, 28))[0].shape == (2, 10)
    m = import_dsl(blocks[1], "doc2.ffn")
    assert run(m, rand(2, 3, 8, 8), function="Stack")[0].shape == (2, 16, 8, 8)


# ---- errors ---------------------------------------------------------------------------------
ERRORS = [
    # (source, line, col, message fragment)
    ("net N(x: f32[1, 4]) {\n  y = relu(x\n  return y\n}", 3, 3, "expected ',', '=' or ')', found 'return'"),
    ("net N(x: f32[1, 4]) {\n  y = relu(x)\n  return y\n", 3, 11, "unexpected end of file (is a '}' missing?)"),
    ("net N(x: f32[1, 4]) {\n  y = relu(x) $\n}", 2, 15, "unexpected character '$'"),
    ("net N(x: f32[1, 4]) {\n  y = relu(x=)\n}", 2, 14, "expected a value, found ')'"),
    ("net N(x) {}", 1, 8, "expected ':', found ')'"),
    ("net N(x: f32[1, 4]) {\n  y = reluu(x)\n  return y\n}", 2, 7, "unknown op 'reluu' (did you mean 'relu'?); the ops are: "),
    ("net N(x: f32[1, 4]) {\n  y = relu(z)\n  return y\n}", 2, 12, "unknown name 'z'"),
    ("net N(x: f32[1, 4]) {\n  y = relu(x)\n  return q\n}", 3, 10, "unknown name 'q'"),
    ("net N(x: f32[1, 4]) {\n  y = relu(x)\n  y = relu(y)\n  return y\n}", 3, 3, "'y' is already defined (at line 2)"),
    ("net N(x: f32[1, 4]) {\n  y = relu(x)\n}", 3, 1, "net 'N' has no 'return' statement"),
    ("net N(x: f32[1, 4]) {\n  return x\n  y = relu(x)\n}", 3, 3, "statement after 'return'"),
    ("net N(x: f32[1, 4]) {\n  y = leaky_relu(x, slope=0.1)\n  return y\n}", 2, 21,
     "leaky_relu: unknown parameter 'slope'; it takes alpha"),
    ("net N(x: f32[1, 1, 4, 4]) {\n  y = conv2d(x, out=2, kernal=3)\n  return y\n}", 2, 24,
     "unknown parameter 'kernal' (did you mean 'kernel'?)"),
    ("net N(x: f32[1, 1, 4, 4]) {\n  y = conv2d(x, out=2)\n  return y\n}", 2, 7, "conv2d: missing parameter 'kernel'"),
    ("net N(x: f32[1, 1, 4, 4]) {\n  y = conv2d(x, out=2.5, kernel=3)\n  return y\n}", 2, 21,
     "conv2d: 'out' expects an integer, got 2.5"),
    ("net N(x: f32[1, 1, 4, 4]) {\n  y = upsample(x, scale=2, mode=nearest)\n  return y\n}", 2, 33,
     "'mode' expects a string, got 'nearest' (strings are quoted: \"nearest\")"),
    ("net N(x: f32[1, 1, 4, 4]) {\n  y = upsample(x, scale=2, mode=\"cubic\")\n  return y\n}", 2, 33,
     "'mode' must be one of \"nearest\", \"bilinear\""),
    ("net N(x: f32[1, 1, 4, 4]) {\n  y = relu(x, x)\n  return y\n}", 2, 15, "relu: too many positional arguments"),
    ("net N(x: f32[1, 1, 4, 4]) {\n  y = add(x)\n  return y\n}", 2, 7, "add: expects 2 tensor inputs"),
    ("net N(x: f32[1, 16, 4, 4]) {\n  y = linear(x, out=10)\n  return y\n}", 2, 3,
     "linear: expects a 2-D [batch, features] input, got f32[1, 16, 4, 4]; flatten it first"),
    ("net N(x: f32[1, 16, 4, 4], z: f32[1, 8, 4, 4]) {\n  y = add(x, z)\n  return y\n}", 2, 3, "add: "),
    ("net N(x: f32[1, 3, 4, 4]) {\n  y = conv2d(x, out=4, kernel=3, groups=2)\n  return y\n}", 2, 41,
     "groups=2 must divide the 3 input channels"),
    ("net N(x: f32[1, 3, 4, 4]) {\n  y = conv2d(x, out=4, kernel=5)\n  return y\n}", 2, 3, "conv2d: "),
    ("net N(x: f32[1, 3, 4]) {\n  y = max_pool2d(x, kernel=2)\n  return y\n}", 2, 3,
     "max_pool2d: expects a 4-D NCHW input, got f32[1, 3, 4]"),
    ("net N(x: f32[1, 3, 4, 4]) {\n  y = concat(x, x, axis=4)\n  return y\n}", 2, 3, "concat: "),
    ("net N(x: f32[1, 3, 4, 4]) {\n  y = reshape(x, [5, -1])\n  return y\n}", 2, 3, "reshape: "),
    ("net N(x: f32[1, 3, 4, 4]) {\n  y = conv2d(x, out=4, kernel=3, stride=2, pad=\"same\")\n  return y\n}", 2, 48,
     'pad="same" needs stride 1'),
    ("net N(x: f32[1, 2]) {\n  w = const([[1, 2], [3]])\n  return w\n}", 2, 13, "not rectangular"),
    ("net N(x: f32[1, 2]) {\n  y = linear(x, weight=[[1, 2, 3]])\n  return y\n}", 2, 24,
     "inline 'weight' has shape [1, 3] but [1, 2] is needed"),
    ("net N(x: i8[1, 2]) {\n  return x\n}", 1, 10, "unknown element type 'i8'"),
    ("net N(x: f32[1, 2]) with sed=1 {\n  return x\n}", 1, 26, "unknown net option 'sed' (did you mean 'seed'?)"),
    ("net N(x: f32[1, 2]) {\n  return x\n}\nnet N(x: f32[1, 2]) {\n  return x\n}", 4, 1,
     "net 'N' is already defined at line 1"),
    ("net N(x: f32[1, 2]) {\n  y = upsample(x, scale=2)\n  return y\n}", 2, 3, "expects a 4-D NCHW input"),
]


@pytest.mark.parametrize("src,line,col,fragment", ERRORS, ids=[f"err{i}" for i in range(len(ERRORS))])
def test_error_message_and_location(src, line, col, fragment):
    with pytest.raises(DslError) as info:
        import_dsl(src, "bad.ffn")
    err = info.value
    rendered = err.render()
    assert err.location == FileLineColLoc("bad.ffn", line, col), rendered
    assert fragment in err.message, rendered
    assert rendered.count("error:") == 1 and "Traceback" not in rendered
    head, source_line, caret = rendered.split("\n")
    assert head.startswith(f"bad.ffn:{line}:{col}: error: ")
    assert source_line == src.splitlines()[line - 1] and caret == " " * (col - 1) + "^"


def test_unknown_op_lists_the_ops():
    with pytest.raises(DslError) as info:
        import_dsl("net N(x: f32[1, 4]) { y = conv3d(x)\n return y }")
    assert ", ".join(op_names()) in info.value.message


def test_positional_weight_and_bias_literals():
    m = import_dsl("net N(x: f32[1, 2]) { y = linear(x, [[1, 2]], [3])\n return y }")
    np.testing.assert_allclose(run(m, [[1.0, 1.0]])[0], [[6.0]])


def test_module_main_prints_ir_or_one_error(tmp_path, capsys):
    from fixflow.frontends.dsl.__main__ import main
    out = tmp_path / "cnn.mlir"
    assert main([str(EXAMPLES / "cnn.ffn"), "--seed", "2", "-o", str(out)]) == 0
    assert print_module(parse_module(out.read_text(), "cnn.mlir")) == out.read_text()
    bad = tmp_path / "bad.ffn"
    bad.write_text("net N(x: f32[1, 2]) {\n  y = lin(x)\n  return y\n}\n")
    assert main([str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{bad}:2:7: error: unknown op 'lin' (did you mean 'linear'?)") and "Traceback" not in err


@pytest.mark.mlir
@pytest.mark.skipif(shutil.which("mlir-opt-22") is None, reason="mlir-opt-22 not installed")
@pytest.mark.parametrize("name", ["cnn.ffn", "resblock.ffn"])
def test_mlir_opt_accepts_the_output(tmp_path, name):
    path = tmp_path / "m.mlir"
    path.write_text(print_module(import_dsl_file(EXAMPLES / name), print_locations=True))
    proc = subprocess.run(["mlir-opt-22", "--allow-unregistered-dialect", str(path), "-o", os.devnull],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_missing_file_is_a_dsl_error(tmp_path):
    with pytest.raises(DslError, match="cannot read"):
        import_dsl_file(tmp_path / "nope.ffn")


def test_mangled_programs_give_dsl_errors_only():
    """Random edits of a valid program either import or raise DslError: never another exception."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    base = (EXAMPLES / "resblock.ffn").read_text()
    base = base.replace("x: f32[1, 16, 16, 16]", "x: f32[1, 16, 8, 8]")
    alphabet = st.sampled_from(list("()[]{},=:;#\"'-.0123456789 \nxyzfabr_") + ["relu", "conv2d", "out=", "net "])

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.tuples(st.integers(0, len(base)), st.integers(0, 4), alphabet), min_size=1, max_size=4))
    def check(edits):
        text = base
        for at, cut, ins in edits:
            at = min(at, len(text))
            text = text[:at] + ins + text[at + cut:]
        try:
            import_dsl(text, "fuzz.ffn")
        except DslError as e:
            assert e.location is None or e.location.file_line_col() is not None
            e.render()

    check()


CALLS = """net Block(x: f32[1, 4, 5, 5]) {
  c = conv2d(x, out=4, kernel=3, pad=1)
  r = relu(c)
  s = add(r, x)
  return s
}

net Net(x: f32[1, 2, 5, 5]) {
  stem = conv2d(x, out=4, kernel=1, bias=false)
  b1 = Block(stem)
  b2 = Block(b1)
  return b2
}
"""


def test_calling_a_net_inlines_it_with_its_own_weights():
    m = import_dsl(CALLS, "calls.ffn")
    w = {k: t(v) for k, v in export_weights(m).items()}
    assert {"Net.b1.c.weight", "Net.b2.c.weight", "Block.c.weight"} <= set(w)
    assert not torch.equal(w["Net.b1.c.weight"], w["Net.b2.c.weight"])
    net = m.lookup("Net")
    assert not [op for op in net.walk() if op.name == "func.call"]
    b1 = next(op for op in net.walk() if op.results and op.results[0].name_hint == "b1.c")
    assert b1.location.file_line_col() == FileLineColLoc("calls.ffn", 2, 3)
    assert "callsite(\"calls.ffn\":2:3 at \"calls.ffn\":10:3)" in print_module(m, print_locations=True)
    text = print_module(m, print_locations=True)
    assert print_module(parse_module(text, "c.mlir"), print_locations=True) == text

    def block(h, p):
        return F.relu(F.conv2d(h, w[f"{p}.c.weight"], w[f"{p}.c.bias"], padding=1)) + h

    x = t(rand(3, 2, 5, 5))
    ref = block(block(F.conv2d(x, w["Net.stem.weight"]), "Net.b1"), "Net.b2").numpy()
    np.testing.assert_allclose(run(m, x.numpy(), function="Net")[0], ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("old,new,line,col,fragment", [
    ("b2 = Block(b1)", "b2 = Block(b1, b1)", 11, 8, "net 'Block' takes 1 input(s) (x), got 2"),
    ("b2 = Block(b1)", "b2 = Block(x)", 11, 14, "net 'Block' input 'x' is f32[1, 4, 5, 5] but 'x' is f32[1, 2, 5, 5]"),
    ("b2 = Block(b1)", "b2 = Block(b1, k=1)", 11, 18, "a call to net 'Block' takes tensor names only"),
    ("s = add(r, x)", "s = Block(r)", 4, 7, "net 'Block' calls itself"),
])
def test_call_errors(old, new, line, col, fragment):
    with pytest.raises(DslError) as info:
        import_dsl(CALLS.replace(old, new), "calls.ffn")
    assert info.value.location == FileLineColLoc("calls.ffn", line, col), info.value.render()
    assert fragment in info.value.message


@pytest.mark.parametrize("program, needle, col", [
    ("net A(x: f32[1,3]) { c = const([1e39, 2, 3])\n y = add(x, c)\n return y }", "out of the float32 range", 33),
    ("net A(x: f32[1,3,4,4]) { y = upsample(x, scale=1e999)\n return y }", "out of the float32 range", 48),
    ("net A(x: f32[1,3,4,4]) { y = conv2d(x, out=99999999999999999999, kernel=1)\n return y }",
     "out of the 64-bit range", 44),
    ("net A(x: f32[1,99999999999999999999]) { y = relu(x)\n return y }", "out of the 64-bit range", 16),
    ("net A(x: f32[1,3]) { y = linear(x, out=10000000000)\n return y }", "limited to 2147483647", 22),
    ("net A(x: f32[1,3]) { c = const(shape=[100000,100000,100000])\n return c }", "limited to 2147483647", 22),
    ("net A(x: f32[1,3,4,4]) { y = upsample(x, scale=1e30)\n return y }", "beyond the 64-bit range", 26),
])
def test_dsl_out_of_range_values_are_user_errors(program, needle, col):
    with pytest.raises(DslError, match=needle) as e:
        import_dsl(program, filename="big.ffn")
    loc = e.value.location
    assert (loc.filename, loc.line, loc.col) == ("big.ffn", 1, col)
    assert "internal error" not in str(e.value)
