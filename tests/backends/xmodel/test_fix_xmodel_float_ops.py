"""Float (CPU) ops in an `_int.xmodel` that need more than a name: a conv left in float and a float pad.

XIR's float conv2d is NHWC with OHWI weights, the graph's conv NCHW with OIHW weights: the writer records
the transposes (`<conv>_nhwc`, `<conv>` conv2d, `<conv>_nchw`) and writes the weight constant OHWI; the
reader turns them back. Swin's window padding is a float pad of a (B, H, W, C) map: XIR's `pad` with its
own `paddings` / `mode` / `constant_values` (the graph op's `mode` is not written: XIR's value differs).
Each file is read back and run by `GraphRunner` at another batch than the traced one and must equal the
Quantizer's test mode bit for bit; AMD's xir loads them when FIXFLOW_AMD_TOOLS is set.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fixflow.backends.xmodel import XAttr, XModelError, read_xmodel, write_xmodel
from fixflow.backends.xmodel.fix_xmodel import read_int_xmodel
from fixflow.quantizer import Quantizer
from fixflow.runtime import GraphRunner

AMD = pytest.mark.skipif(not os.environ.get("FIXFLOW_AMD_TOOLS"),
                         reason="AMD's xir not configured: set FIXFLOW_AMD_TOOLS=<install dir> (docs/amd-reference.md)")


def _float_layer(name: str) -> dict:
    return {"layer_quantize_config": [{"layer_type": None, "layer_name": name, "quantizable_data_type": []}]}


def _export(model: nn.Module, shape, tmp_path, config=None, n: int = 3):
    """calib -> test -> _int.xmodel; the file run at batch `n` equals test mode. Returns (path, quantizer)."""
    model.eval()
    g = torch.Generator().manual_seed(0)
    kw = dict(output_dir=tmp_path, log=None, progress=False, config=config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = Quantizer(model, (torch.zeros(shape),), mode="calib", **kw)
        q.quant_model(torch.randn((8,) + shape[1:], generator=g))
        q.export_quant_config()
        q = Quantizer(model, (torch.zeros(shape),), mode="test", **kw)
        x = torch.randn((n,) + shape[1:], generator=g)
        sim = np.asarray(q.quant_model(x))
        path = q.export_xmodel()
    got = GraphRunner.from_xmodel(path).run([x.numpy()])[0]
    np.testing.assert_array_equal(got, sim)
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.linalg.norm(sim - ref) <= 0.1 * np.linalg.norm(ref)
    return path, q


class Convs(nn.Module):
    def __init__(self, groups=1, stride=1, dilation=1, padding=1):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.mid = nn.Conv2d(8, 8, 3, stride=stride, dilation=dilation, padding=padding, groups=groups)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.head(F.relu(self.mid(F.relu(self.stem(x)))))


# ---- a conv left in float ---------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [dict(), dict(groups=8), dict(groups=2, stride=2), dict(dilation=2, padding=(2, 1))],
                         ids=["plain", "depthwise", "grouped_strided", "dilated_uneven_pad"])
def test_conv_left_in_float_is_xirs_nhwc_conv_between_transposes(tmp_path, kw):
    path, q = _export(Convs(**kw), (1, 3, 9, 8), tmp_path, _float_layer("mid"))
    mid = next(op for op in q.fix_module.walk() if op.name == "graph.conv2d")
    assert mid.attributes["device"].value == "CPU"
    g = read_xmodel(path)
    ops = {o.name: o for o in g.ops}
    conv = ops["mid"]
    assert conv.type == "conv2d" and conv.output.data_type == "FLOAT32"
    (src,) = conv.inputs["input"]
    assert ops[src].type == "transpose" and ops[src].attr("order") == [0, 2, 3, 1]
    n, c, h, w = mid.input.type.shape
    assert ops[src].output.shape == [n, h, w, c]
    on, oc, oh, ow = mid.results[0].type.shape
    assert conv.output.shape == [on, oh, ow, oc]                       # NHWC
    (wname,) = conv.inputs["weights"]
    oihw = mid.weight.type.shape
    assert ops[wname].type == "const" and ops[wname].output.shape == [oihw[0], oihw[2], oihw[3], oihw[1]]  # OHWI
    back = [o for o in g.ops if o.inputs.get("input") == ["mid"]]
    assert [(o.type, o.attr("order"), o.output.shape) for o in back] == [("transpose", [0, 3, 1, 2], [on, oc, oh, ow])]
    assert conv.attr("group") == mid.groups and conv.attr("pad_mode") == "FLOOR"
    t, b, l, r = mid.padding
    assert conv.attr("pad") == [l, r, t, b] and conv.attr("stride") == [mid.stride[1], mid.stride[0]]


def test_float_conv_with_a_wrong_kernel_is_refused(tmp_path):
    path, _ = _export(Convs(), (1, 3, 6, 6), tmp_path, _float_layer("mid"))
    g = read_xmodel(path)
    next(o for o in g.ops if o.type == "conv2d").attrs["kernel"] = XAttr("int32_vec", [1, 3])
    bad = tmp_path / "bad.xmodel"
    write_xmodel(g, bad)
    with pytest.raises(XModelError, match=r"op 'mid' \(conv2d\): attribute 'kernel' \[1, 3\] contradicts"):
        read_int_xmodel(bad)


# ---- float pad ---------------------------------------------------------------------------------------
class WindowPad(nn.Module):
    """Swin's window padding: F.pad of a (B, H, W, C) map (pads W and H, not the last dimension)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 1)
        self.lin = nn.Conv2d(6, 4, 1)

    def forward(self, x):
        y = F.pad(self.conv(x).permute(0, 2, 3, 1), (0, 0, 0, 2, 1, 1))
        return self.lin(y.permute(0, 3, 1, 2))


class SeqPad(nn.Module):
    """A padding of a (B, C, L) sequence (reflect / replicate pad the last dimension of a rank-3 input)."""

    def __init__(self, mode, pad):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 1)
        self.mode, self.pad = mode, pad

    def forward(self, x):
        return F.pad(self.conv(x).flatten(2), self.pad, mode=self.mode)


def test_float_pad_of_an_nhwc_map_is_xirs_pad(tmp_path):
    path, q = _export(WindowPad(), (1, 3, 5, 6), tmp_path)
    pads = [op for op in q.fix_module.walk() if op.name == "graph.pad"]
    assert len(pads) == 1 and pads[0].attributes["device"].value == "CPU"
    (xp,) = [o for o in read_xmodel(path).ops if o.type == "pad"]
    # (B, H, W, C): H (1, 1), W (0, 2), C (0, 0) - F.pad lists the last dimension first
    assert xp.attr("paddings") == [0, 0, 1, 1, 0, 2, 0, 0] and xp.attr("mode") == "CONSTANT"
    assert xp.attr("constant_values") == [0.0] * 8 and not xp.has_attr("pads")
    assert xp.output.shape == [1, 7, 8, 6]


def test_float_pad_reads_back_as_the_graph_op(tmp_path):
    path, q = _export(WindowPad(), (1, 3, 4, 4), tmp_path)
    m = read_int_xmodel(path)
    (pad,) = [op for op in m.walk() if op.name == "graph.pad"]
    (orig,) = [op for op in q.fix_module.walk() if op.name == "graph.pad"]
    # F.pad order (last dimension first), every dimension listed
    assert tuple(pad.pads) == tuple(orig.pads) + (0, 0) and pad.mode == "constant" and pad.value == 0.0


@pytest.mark.parametrize("mode,value,message", [
    ("EDGE", None, "attribute 'mode' = 'EDGE' is not supported by the reader"),
    ("FOO", None, "attribute 'mode' = 'FOO' is not one of"),
    ("CONSTANT", [0.0, 1.0], "'constant_values' must hold one value"),
])
def test_malformed_float_pad_is_one_error(tmp_path, mode, value, message):
    path, _ = _export(WindowPad(), (1, 3, 4, 4), tmp_path)
    g = read_xmodel(path)
    xp = next(o for o in g.ops if o.type == "pad")
    xp.attrs["mode"] = XAttr("string", mode)
    if value is not None:
        xp.attrs["constant_values"] = XAttr("float_vec", value)
    bad = tmp_path / "bad.xmodel"
    write_xmodel(g, bad)
    with pytest.raises(XModelError) as ei:
        read_int_xmodel(bad)
    assert f"op '{xp.name}' (pad)" in ei.value.message and message in ei.value.message


@pytest.mark.parametrize("mode,pad,xmode", [("reflect", (2, 1), "REFLECT"), ("replicate", (1, 0), "SYMMETRIC")])
def test_reflect_and_narrow_replicate_pads(tmp_path, mode, pad, xmode):
    path, _ = _export(SeqPad(mode, pad), (1, 3, 3, 4), tmp_path)
    (xp,) = [o for o in read_xmodel(path).ops if o.type == "pad"]
    assert xp.attr("mode") == xmode and xp.attr("paddings") == [0, 0, 0, 0, *pad]


def test_wide_replicate_pad_is_refused_with_its_reason(tmp_path):
    with pytest.raises(XModelError, match="replicate padding wider than 1 has no XIR pad mode"):
        _export(SeqPad("replicate", (2, 0)), (1, 3, 3, 4), tmp_path)


# ---- AMD's xir loads the files ------------------------------------------------------------------------
@AMD
def test_amd_xir_loads_float_conv_pad_and_pool_conv(tmp_path):
    from reference._amd_tools_lib import check_xir
    from _lib.torch_fn import Fn
    files = [_export(Convs(groups=2, stride=2), (1, 3, 9, 8), tmp_path / "conv", _float_layer("mid"))[0],
             _export(WindowPad(), (1, 3, 5, 6), tmp_path / "pad")[0],
             _export(nn.Sequential(nn.Conv2d(3, 4, 1), nn.AdaptiveAvgPool2d(7)), (1, 3, 5, 5), tmp_path / "pool")[0],
             _export(Fn(lambda m, x: m.conv(x).mean((2, 3)).expand(3, -1, -1), conv=nn.Conv2d(3, 4, 1)),
                     (1, 3, 4, 5), tmp_path / "expand", n=1)[0]]
    for p in files:
        out = check_xir(p, p.parent)
        types = {o.type for o in read_xmodel(p).ops}
        assert types & {"conv2d", "pad", "conv2d-fix", "reshape-fix"}
        assert "root" in out["subgraph"]
