"""The `_int.xmodel` reader against contradicting attributes and corrupt bytes.

A model with one op of nearly every type the writer emits (conv, depthwise, transposed conv, pools,
eltwise, concat, upsample, pad, hard-swish, reshape, matmul, a CPU sigmoid) is quantized and written;
then mutated at the XIR level (tensor and op attributes, arguments) and at the byte level.

Oracle: reading raises `XModelError` (one line) or returns a verified module that runs on the fix
executor without a non-`FixflowError` exception. The contradictions issue 8 names (a `bit_width`
other than the data type's, unknown `round_mode` / `pad_mode` / `mode` / `layout` strings, a `shape`
attribute that is not the tensor's, an argument the op type does not take, several producers for a
single argument, `if_signed` false on an XINT tensor) must be rejected. `FIXFLOW_FUZZ_SEED` explores
other seeds; the slow sweep runs more cases.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fixflow.backends.xmodel import XModelError
from fixflow.backends.xmodel.fix_xmodel import xgraph_to_module
from fixflow.backends.xmodel.model import XOp, XTensor
from fixflow.backends.xmodel.serial import read_xmodel_bytes, xmodel_bytes
from fixflow.ir.diagnostics import FixflowError
from fixflow.quantizer import Quantizer
from fixflow.runtime.fix_executor import simulate_quantized

SEED = int(os.environ.get("FIXFLOW_FUZZ_SEED", "2026"))


class Wide(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.up = nn.ConvTranspose2d(4, 4, 2, stride=2)
        self.c2 = nn.Conv2d(8, 4, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.avg = nn.AvgPool2d(2)
        self.hs = nn.Hardswish()
        self.fc = nn.Linear(4 * 2 * 2, 3)
        self.pad = nn.ZeroPad2d(1)
        self.act = nn.LeakyReLU(0.1)

    def forward(self, x):
        a = torch.relu(self.c1(x))
        b = self.act(self.dw(a))
        u = F.interpolate(self.pool(b), scale_factor=2, mode="nearest")
        t = self.up(self.pool(a))
        c = torch.cat([u + t, a * 1.0], 1)
        d = self.hs(self.c2(self.pad(c)))
        return torch.sigmoid(self.fc(torch.flatten(self.avg(d), 1)))


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """(xmodel bytes, an input batch, the output of the unmodified file)."""
    torch.manual_seed(0)
    model = Wide().eval()
    x = torch.randn(4, 1, 8, 8)
    d = tmp_path_factory.mktemp("q")
    q = Quantizer(model, (x[:1],), mode="calib", output_dir=d, log=None, progress=False)
    q.quant_model(x)
    q.export_quant_config()
    q = Quantizer(model, (x[:1],), mode="test", output_dir=d, log=None, progress=False)
    data = q.export_xmodel().read_bytes()
    y = _read_and_run(data, x.numpy())
    return data, x.numpy(), y


def _read_and_run(data: bytes, x: np.ndarray) -> np.ndarray:
    m = xgraph_to_module(read_xmodel_bytes(data, "m.xmodel"))
    return simulate_quantized(m, [x])[0]


def _outcome(data: bytes, x: np.ndarray, what: str) -> str:
    """'rejected' or 'accepted'; any exception but a one-line FixflowError fails the test."""
    try:
        _read_and_run(data, x)
    except FixflowError as e:
        assert "\n" not in e.message, f"{what}: multi-line message {e.message!r}"
        return "rejected"
    except Exception as e:  # noqa: BLE001 - the point of the test
        raise AssertionError(f"{what}: {type(e).__name__}: {e}") from e
    return "accepted"


def test_good_file_reads_and_runs(good):
    data, x, y = good
    assert y.shape == (4, 3) and np.isfinite(y).all()


def _with(g, name: str, *, attrs=None, tensor_attrs=None, inputs=None, shape=None, dtype=None) -> bytes:
    """The graph with op `name` rebuilt with changed attributes / arguments / output tensor, as bytes."""
    ops = []
    for o in g.ops:
        if o.name == name:
            t = o.output
            ta = {**t.attrs, **(tensor_attrs or {})}
            out = XTensor(t.name, shape if shape is not None else t.shape, dtype or t.data_type, ta)
            o = XOp(o.name, o.type, {**o.attrs, **(attrs or {})}, inputs if inputs is not None else o.inputs,
                    output=out)
        ops.append(o)
    g2 = type(g)(g.name, ops, g.attrs, g.root)
    return xmodel_bytes(g2)


def _op_of(g, xtype: str):
    return next(o for o in g.ops if o.type == xtype)


NAMED = [
    ("conv2d-fix", dict(tensor_attrs={"bit_width": 4})),
    ("conv2d-fix", dict(tensor_attrs={"bit_width": 0})),
    ("conv2d-fix", dict(tensor_attrs={"if_signed": False})),
    ("conv2d-fix", dict(tensor_attrs={"round_mode": "ROUND_TO_ODD"})),
    ("conv2d-fix", dict(tensor_attrs={"fix_point": 100000})),
    ("conv2d-fix", dict(attrs={"pad_mode": "SIDEWAYS"})),
    ("conv2d-fix", dict(attrs={"pad_mode": "SAME"})),
    ("pool-fix", dict(attrs={"pad_mode": "CEIL"})),
    ("pool-fix", dict(attrs={"global": 3})),
    ("conv2d-fix", dict(attrs={"group": 0})),
    ("conv2d-fix", dict(attrs={"stride": [0, 1]})),
    ("pad-fix", dict(attrs={"mode": "WRAP"})),
    ("fix", dict(attrs={"round_mode": "BANKERS"})),
    ("fix", dict(attrs={"bit_width": 4})),
    ("data-fix", dict(attrs={"shape": [1, 8, 8, 2]})),
    ("data-fix", dict(attrs={"data_type": "XINT4"})),
    ("data-fix", dict(attrs={"layout": "NWHC"})),
    ("const-fix", dict(attrs={"shape": [1]})),
    ("reshape-fix", dict(attrs={"shape": [1, 17]})),
]


@pytest.mark.parametrize("xtype,edit", NAMED, ids=[f"{t}-{next(iter(e.values()))}" for t, e in NAMED])
def test_contradicting_attributes_are_rejected(good, xtype, edit):
    data, x, _ = good
    g = read_xmodel_bytes(data)
    op = _op_of(g, xtype)
    with pytest.raises(XModelError) as e:
        _read_and_run(_with(g, op.name, **edit), x)
    assert op.name in e.value.message and "\n" not in e.value.message


def test_extra_arguments_are_rejected(good):
    data, x, _ = good
    g = read_xmodel_bytes(data)
    conv = _op_of(g, "conv2d-fix")
    first = g.ops[0].name
    for inputs in ({**conv.inputs, "scale": [first]}, {**conv.inputs, "input": conv.inputs["input"] * 2}):
        with pytest.raises(XModelError, match=conv.name):
            _read_and_run(_with(g, conv.name, inputs=inputs), x)
    sig = _op_of(g, "sigmoid")
    with pytest.raises(XModelError, match="argument 'weights' is not an argument of sigmoid"):
        _read_and_run(_with(g, sig.name, inputs={**sig.inputs, "weights": [first]}), x)


# ---- seeded mutations ----------------------------------------------------------------------------
_POOL = [0, 1, -1, 2, 3, 4, 8, 16, 64, 2 ** 31 - 1, -(2 ** 31), 0.5, -2.0, True, False, "", "NONE", "RELU",
         "FLOOR", "CEIL", "SAME", "CONSTANT", "REFLECT", "DPU_ROUND", "STD_ROUND", "NCHW", "NHWC", "XINT8", "x",
         [], [0], [1, 1], [2, 2], [0, 0, 0, 0], [1, 2, 3, 4], [-1, 1], [1, 8, 8, 4], [4, 2, 2, 4], b"", b"\x00\x01"]
_MUST = {   # (where, key): the values a reader must accept; anything else must be rejected
    ("tensor", "round_mode"): ("STD_ROUND", "DPU_ROUND", "PY3_ROUND"),
    ("op", "pad_mode"): ("FLOOR",),
    ("op", "layout"): ("NHWC", "NCHW"),
}


def _mutate(rng: random.Random, g) -> tuple[bytes, bool | None, str]:
    """(bytes, must_reject (None: either is fine), description)."""
    op = rng.choice(g.ops)
    kind = rng.randrange(6)
    if kind == 0:   # a tensor attribute
        key = rng.choice(["bit_width", "fix_point", "if_signed", "round_mode"])
        v = rng.choice(_POOL)
        old = op.output.attrs.get(key)
        same = old is not None and old.value == v and type(old.value) is type(v)
        must = None
        if op.output.data_type.startswith("XINT") and not same:
            if key == "bit_width":
                must = not (type(v) is int and v == op.output.bit_width)
            elif key == "if_signed":
                must = v is not True
            elif key == "round_mode":
                must = v not in _MUST[("tensor", key)]
            else:
                must = not (type(v) is int and -128 <= v <= 64) or None
        return _with(g, op.name, tensor_attrs={key: v}), must, f"{op.name} tensor {key}={v!r}"
    if kind == 1:   # an existing op attribute
        keys = sorted(k for k in op.attrs if k not in ("data",))
        if not keys:
            return _mutate(rng, g)
        key = rng.choice(keys)
        v = rng.choice(_POOL)
        must = None
        if op.attrs[key].value != v and (op.type, key) != ("pad-fix", "mode"):
            allowed = _MUST.get(("op", key))
            if allowed is not None:
                must = v not in allowed
            elif key == "shape" and op.type in ("data-fix", "const-fix", "const"):
                must = v != op.output.shape
            elif key in ("global", "transpose_a", "transpose_b"):
                must = not isinstance(v, bool) or None
        return _with(g, op.name, attrs={key: v}), must, f"{op.name} ({op.type}) {key}={v!r}"
    if kind == 2:   # an extra argument, or a second producer
        producer = rng.choice(g.ops[: g.ops.index(op)] or g.ops[:1]).name
        arg = rng.choice(sorted(op.inputs) + ["bogus", "scale"])
        inputs = {k: list(v) for k, v in op.inputs.items()}
        inputs.setdefault(arg, []).append(producer)
        variadic = op.type in ("eltwise-fix", "concat-fix") and arg == "input"
        must = None if variadic else True
        return _with(g, op.name, inputs=inputs), must, f"{op.name} ({op.type}) +{arg}<-{producer}"
    if kind == 3:   # a different output shape
        shape = list(op.output.shape)
        if shape:
            i = rng.randrange(len(shape))
            shape[i] = max(0, shape[i] + rng.choice([-1, 1, 3]))
        return _with(g, op.name, shape=shape), None, f"{op.name} shape {shape}"
    if kind == 4:   # another data type of the same kind
        dtype = rng.choice(["XINT4", "XINT16", "XINT1", "XINT32", "FLOAT32", "INT8"])
        return _with(g, op.name, dtype=dtype), None, f"{op.name} dtype {dtype}"
    attrs = dict(op.attrs)   # drop an attribute
    if not attrs:
        return _mutate(rng, g)
    key = rng.choice(sorted(attrs))
    del attrs[key]
    ops = [XOp(o.name, o.type, attrs, o.inputs, output=o.output) if o.name == op.name else o for o in g.ops]
    return xmodel_bytes(type(g)(g.name, ops, g.attrs, g.root)), None, f"{op.name} -{key}"


def _flip(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(3)
    if kind == 0:
        return bytes(b[:rng.randrange(len(b))])
    if kind == 1:
        for _ in range(rng.randint(1, 6)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    i = rng.randrange(len(b))
    return bytes(b[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 12))) + b[i:])


def _fuzz(good, seed: int, n: int) -> dict[str, int]:
    data, x, _ = good
    g = read_xmodel_bytes(data)
    rng = random.Random(seed)
    stats = {"cases": 0, "rejected": 0, "accepted": 0, "must_reject": 0}
    for i in range(n):
        if rng.random() < 0.7:
            try:
                mutated, must, what = _mutate(rng, g)
            except XModelError:
                continue   # the writer refused the edit (e.g. a Python value with no XIR attribute kind)
        else:
            mutated, must, what = _flip(rng, data), None, "bytes"
        stats["cases"] += 1
        out = _outcome(mutated, x, f"case {i} (seed {seed}): {what}")
        stats[out] += 1
        if must:
            stats["must_reject"] += 1
            assert out == "rejected", f"case {i} (seed {seed}): {what}: accepted"
    return stats


def test_int_xmodel_fuzz(good):
    stats = _fuzz(good, SEED, 400)
    print(f"\n_int.xmodel fuzz seed {SEED}: {stats}")
    assert stats["rejected"] > 100 and stats["accepted"] > 20 and stats["must_reject"] > 30


@pytest.mark.slow
def test_int_xmodel_fuzz_sweep(good):
    stats = _fuzz(good, SEED + 1, 5000)
    print(f"\n_int.xmodel fuzz sweep seed {SEED + 1}: {stats}")
