"""Layers left in float (`layer_quantize_config`) whose float form is XIR's float op in the `_int.xmodel`:
ReLU / ReLU6 / hard swish / hard sigmoid (element-wise: `relu`, `relu6`, `hard-swish`, `hard-sigmoid` on the
NCHW map as it is), max / average / adaptive average pools and upsampling (XIR's `maxpool2d`, `avgpool2d`,
`resize` are NHWC: written between the transposes `<op>_nhwc` / `<op>_nchw`, as a conv left in float is).

Each file is read back and run by `GraphRunner` at another batch than the traced one and equals the
Quantizer's test mode bit for bit (the helper `_export` of test_fix_xmodel_float_ops.py checks it); the
forms XIR cannot hold are refused with the reason; AMD's xir loads the files when FIXFLOW_AMD_TOOLS is set.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fixflow.backends.xmodel import XModelError, read_xmodel
from fixflow.quantizer import Quantizer
from test_fix_xmodel_float_ops import AMD, _export, _float_layer

SHAPE = (1, 3, 8, 8)


class Around(nn.Module):
    """conv `a` -> the layer `f` under test (left in float by name) -> conv `b`."""

    def __init__(self, f: nn.Module, mid: int = 8):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(3, mid, 3, padding=1)
        self.f = f
        self.b = nn.Conv2d(mid, 4, 3, padding=1)

    def forward(self, x):
        return self.b(self.f(self.a(x)))


def _cpu_types(path) -> list[str]:
    """The XIR types of the file's float ops other than constants and the fix / fix2float around them."""
    return [o.type for o in read_xmodel(path).ops if not o.type.endswith("-fix") and o.type not in
            ("const", "fix", "fix2float")]


ELEMENTWISE = [(nn.ReLU(), "relu"), (nn.ReLU6(), "relu6"), (nn.Hardswish(), "hard-swish"),
               (nn.Hardsigmoid(), "hard-sigmoid")]


@pytest.mark.parametrize("f,xtype", ELEMENTWISE, ids=[t for _, t in ELEMENTWISE])
def test_float_activation_is_xirs_float_op(tmp_path, f, xtype):
    path, _ = _export(Around(f), SHAPE, tmp_path, _float_layer("f"))
    assert _cpu_types(path) == [xtype]
    op = next(o for o in read_xmodel(path).ops if o.type == xtype)
    assert list(op.inputs) == ["input"] and op.output.data_type == "FLOAT32"


POOLS = [(nn.MaxPool2d(2), "maxpool2d"), (nn.MaxPool2d(3, 2, 1, ceil_mode=True), "maxpool2d"),
         (nn.AvgPool2d(2), "avgpool2d"), (nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), "avgpool2d"),
         (nn.AdaptiveAvgPool2d(1), "avgpool2d"), (nn.AdaptiveAvgPool2d((4, 2)), "avgpool2d"),
         (nn.Upsample(scale_factor=2), "resize"), (nn.Upsample(scale_factor=2, mode="bilinear"), "resize"),
         (nn.Upsample(size=(13, 11), mode="bilinear", align_corners=True), "resize"),
         (nn.Upsample(size=(12, 16)), "resize")]
POOL_IDS = ["max2", "max3s2p1ceil", "avg2", "avg3s2p1ceil_nopad", "adaptive1", "adaptive4x2", "nearest_x2",
            "bilinear_x2", "bilinear_align_size", "nearest_size"]


@pytest.mark.parametrize("f,xtype", POOLS, ids=POOL_IDS)
def test_float_pool_and_resize_are_nhwc_between_transposes(tmp_path, f, xtype):
    path, _ = _export(Around(f), SHAPE, tmp_path, _float_layer("f"))
    assert _cpu_types(path) == ["transpose", xtype, "transpose"]
    ops = {o.name: o for o in read_xmodel(path).ops}
    core = next(o for o in ops.values() if o.type == xtype)
    assert ops[core.inputs["input"][0]].attr("order") == [0, 2, 3, 1]
    back = next(o for o in ops.values() if o.inputs.get("input") == [core.name])
    n, h, w, c = core.output.shape
    assert c == 8 and back.attr("order") == [0, 3, 1, 2] and back.output.shape == [n, c, h, w]


def test_pool_attributes_are_xirs(tmp_path):
    """XIR's spelling: kernel / stride (w, h), pad (left, right, top, bottom), pad_mode, global."""
    tmp = tmp_path
    path, _ = _export(Around(nn.MaxPool2d((3, 2), (2, 1), (1, 0), ceil_mode=True)), SHAPE, tmp, _float_layer("f"))
    op = next(o for o in read_xmodel(path).ops if o.type == "maxpool2d")
    assert (op.attr("kernel"), op.attr("stride"), op.attr("pad"), op.attr("pad_mode"), op.attr("global")) == \
        ([2, 3], [1, 2], [0, 0, 1, 1], "CEIL", False)
    path, _ = _export(Around(nn.AdaptiveAvgPool2d(1)), SHAPE, tmp / "g", _float_layer("f"))
    op = next(o for o in read_xmodel(path).ops if o.type == "avgpool2d")
    assert op.attr("global") is True and op.attr("kernel") == [8, 8]


class ConvRelu6(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c = nn.Conv2d(3, 8, 3, padding=1)
        self.d = nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x):
        return self.d(nn.functional.relu6(self.c(x)))


def test_the_relu6_a_float_conv_leaves_behind_is_written(tmp_path):
    path, _ = _export(ConvRelu6(), SHAPE, tmp_path, _float_layer("c"))
    assert _cpu_types(path) == ["transpose", "conv2d", "transpose", "relu6"]


def test_uneven_adaptive_pool_is_refused_with_its_reason(tmp_path):
    with pytest.raises(XModelError, match="adaptive average pool from 8x8 to 3x3 has uneven windows"):
        _export(Around(nn.AdaptiveAvgPool2d(3)), SHAPE, tmp_path, _float_layer("f"))


def test_dilated_max_pool_is_refused_with_its_reason(tmp_path):
    with pytest.raises(XModelError, match="a dilated max pool has no XIR maxpool2d form"):
        _export(Around(nn.MaxPool2d(2, dilation=2)), SHAPE, tmp_path, _float_layer("f"))


def test_no_config_warning_for_the_ops_that_now_export(tmp_path):
    from fixflow.quantizer.bitwidths import unwritable_float_ops
    for f in [f for f, _ in ELEMENTWISE + POOLS[:2]]:
        q = Quantizer(Around(f).eval(), (torch.zeros(SHAPE),), mode="calib", output_dir=tmp_path, log=None,
                      progress=False, config=_float_layer("f"))
        assert unwritable_float_ops(q.func) == {}, f
    q = Quantizer(ConvRelu6().eval(), (torch.zeros(SHAPE),), mode="calib", output_dir=tmp_path, log=None,
                  progress=False, config=_float_layer("c"))
    assert unwritable_float_ops(q.func) == {}


@AMD
def test_amd_xir_loads_float_activations_pools_and_resize(tmp_path):
    from reference._amd_tools_lib import check_xir
    mods = [f for f, _ in ELEMENTWISE] + [f for f, _ in POOLS]
    for i, f in enumerate(mods):
        path, _ = _export(Around(f), SHAPE, tmp_path / str(i), _float_layer("f"))
        out = check_xir(path, path.parent)
        assert out["subgraph"].splitlines()[0] == "root"


TCONVS = [dict(kernel_size=4, stride=2, padding=1), dict(kernel_size=3, stride=2, padding=1, output_padding=1),
          dict(kernel_size=3, stride=2, padding=0, output_padding=1), dict(kernel_size=(3, 2), stride=(1, 2)),
          dict(kernel_size=3, stride=1, padding=1, bias=False)]


@pytest.mark.parametrize("kw", TCONVS, ids=["k4s2p1", "k3s2p1op1", "k3s2p0op1", "k3x2s1x2", "k3s1p1_nobias"])
def test_float_transposed_conv_is_xirs_nhwc_transposed_conv2d(tmp_path, kw):
    path, _ = _export(TConv(kw), SHAPE, tmp_path, _float_layer("f"))
    assert _cpu_types(path) == ["transpose", "transposed-conv2d", "transpose"]
    ops = {o.name: o for o in read_xmodel(path).ops}
    tc = next(o for o in ops.values() if o.type == "transposed-conv2d")
    w = ops[tc.inputs["weights"][0]]
    k = kw["kernel_size"] if isinstance(kw["kernel_size"], tuple) else (kw["kernel_size"],) * 2
    assert w.output.shape == [6, k[0], k[1], 8] and w.type == "const"   # [OC, KH, KW, IC]
    assert tc.attr("kernel") == [k[1], k[0]] and tc.attr("pad_mode") == "FLOOR"


class TConv(nn.Module):
    def __init__(self, kw):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.f = nn.ConvTranspose2d(8, 6, **kw)
        self.b = nn.Conv2d(6, 4, 3, padding=1)

    def forward(self, x):
        return self.b(self.f(self.a(x)))


def test_grouped_transposed_conv_is_refused_with_its_reason(tmp_path):
    with pytest.raises(XModelError, match="a grouped or dilated transposed conv left in float"):
        _export(TConv(dict(kernel_size=2, stride=2, groups=2)), SHAPE, tmp_path, _float_layer("f"))


@AMD
def test_amd_xir_loads_float_transposed_convs(tmp_path):
    from reference._amd_tools_lib import check_xir
    for i, kw in enumerate(TCONVS):
        path, _ = _export(TConv(kw), SHAPE, tmp_path / str(i), _float_layer("f"))
        check_xir(path, path.parent)


def _xir_transposed_conv(x, w, b, kernel, stride, pad):
    """XIR's float transposed-conv2d as its op definition states it (NHWC, weights [OC, KH, KW, IC]): the input
    dilated by `stride`, padded by kernel - 1 - pad per side (pad: left, right, top, bottom), correlated."""
    import numpy as np
    (kw_, kh), (sw, sh) = kernel, stride
    n, h, w_, c = x.shape
    d = np.zeros((n, (h - 1) * sh + 1, (w_ - 1) * sw + 1, c), np.float64)
    d[:, ::sh, ::sw, :] = x
    l, r, t, bt = (kw_ - 1 - pad[0], kw_ - 1 - pad[1], kh - 1 - pad[2], kh - 1 - pad[3])
    d = np.pad(d, ((0, 0), (t, bt), (l, r), (0, 0)))
    oh, ow = d.shape[1] - kh + 1, d.shape[2] - kw_ + 1
    out = np.zeros((n, oh, ow, w.shape[0]))
    for i in range(kh):
        for j in range(kw_):
            out += d[:, i:i + oh, j:j + ow, :] @ w[:, i, j, :].T
    return out + (0 if b is None else b)


@pytest.mark.parametrize("kw", TCONVS, ids=["k4s2p1", "k3s2p1op1", "k3s2p0op1", "k3x2s1x2", "k3s1p1_nobias"])
def test_written_transposed_conv_means_torchs_under_xirs_definition(tmp_path, kw):
    """Independent of fixflow's reader: the written weights and attributes, computed as XIR defines the op,
    give torch's conv_transpose2d of the layer."""
    import numpy as np
    m = TConv(kw)
    path, _ = _export(m, SHAPE, tmp_path, _float_layer("f"))
    ops = {o.name: o for o in read_xmodel(path).ops}
    tc = next(o for o in ops.values() if o.type == "transposed-conv2d")
    wop = ops[tc.inputs["weights"][0]]
    w = np.frombuffer(wop.attr("data"), "<f4").reshape(wop.output.shape)
    b = np.frombuffer(ops[tc.inputs["bias"][0]].attr("data"), "<f4") if "bias" in tc.inputs else None
    x = torch.randn(2, 8, 5, 6, generator=torch.Generator().manual_seed(1))
    got = _xir_transposed_conv(x.permute(0, 2, 3, 1).numpy().astype(np.float64), w, b, tc.attr("kernel"),
                               tc.attr("stride"), tc.attr("pad"))
    with torch.no_grad():
        ref = m.f(x).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make", [lambda: Around(nn.ReLU6()), lambda: Around(nn.MaxPool2d(2)),
                                  lambda: Around(nn.Upsample(scale_factor=2)),
                                  lambda: TConv(dict(kernel_size=4, stride=2, padding=1))],
                         ids=["relu6", "maxpool", "upsample", "tconv"])
def test_compiled_with_the_float_layer_on_the_cpu_equals_test_mode(tmp_path, make):
    """fixflow-compile places the float layer on the CPU (the same XIR float ops in the compiled xmodel);
    the compiled file run by fixflow-run equals test mode bit for bit."""
    import numpy as np
    from fixflow.tools import compile as compile_tool
    from fixflow.tools import run as run_tool
    path, q = _export(make(), SHAPE, tmp_path, _float_layer("f"))
    x = torch.randn((3,) + SHAPE[1:], generator=torch.Generator().manual_seed(2))
    np.save(tmp_path / "x.npy", x.numpy())
    assert compile_tool.main(["-x", str(path), "-a", "kv260", "-o", str(tmp_path / "c"), "-n", "net"]) == 0
    assert any(o.type in ("relu6", "maxpool2d", "resize", "transposed-conv2d")
               for o in read_xmodel(tmp_path / "c" / "net.xmodel").ops)
    assert run_tool.main([str(tmp_path / "c" / "net.xmodel"), "--input", str(tmp_path / "x.npy"), "--no-progress",
                          "-o", str(tmp_path / "dpu.npz")]) == 0
    with np.load(tmp_path / "dpu.npz") as z:
        np.testing.assert_array_equal(z[z.files[0]], np.asarray(q.quant_model(x)))


def test_written_pool_and_resize_mean_torchs_under_xirs_definition(tmp_path):
    """Independent of fixflow's reader, on a non-square pool: XIR's maxpool2d (output[oh, ow] = max over
    input[stride_h * oh + kh, stride_w * ow + kw] of the padded map, kernel / stride width first, pad left,
    right, top, bottom) and NEAREST resize (h_idx = floor(oh * in / out)) from the written attributes give torch's."""
    import numpy as np
    x = torch.randn(2, 8, 7, 9, generator=torch.Generator().manual_seed(3))
    pool = nn.MaxPool2d((3, 2), (2, 1), (1, 0), ceil_mode=True)
    path, _ = _export(Around(pool), SHAPE, tmp_path / "p", _float_layer("f"))
    op = next(o for o in read_xmodel(path).ops if o.type == "maxpool2d")
    (kw, kh), (sw, sh), (pl, pr, pt, pb) = op.attr("kernel"), op.attr("stride"), op.attr("pad")
    ref = pool(x).numpy()
    oh, ow = ref.shape[2:]
    xp = np.full((2, 8, max(7 + pt + pb, (oh - 1) * sh + kh), max(9 + pl + pr, (ow - 1) * sw + kw)), -np.inf)
    xp[:, :, pt:pt + 7, pl:pl + 9] = x.numpy()
    got = np.max([xp[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] for i in range(kh)
                  for j in range(kw)], axis=0)
    np.testing.assert_array_equal(got, ref)
    up = nn.Upsample(size=(12, 20))
    path, _ = _export(Around(up), SHAPE, tmp_path / "u", _float_layer("f"))
    op = next(o for o in read_xmodel(path).ops if o.type == "resize")
    assert (op.attr("mode"), op.attr("align_corners"), op.attr("half_pixel_centers")) == ("NEAREST", False, False)
    sw_, sh_ = op.attr("scale")
    assert (int(np.float32(8) * np.float32(sh_)), int(np.float32(8) * np.float32(sw_))) == (12, 20)
    hi, wi = np.floor(np.arange(12) * 7 / 12).astype(int), np.floor(np.arange(20) * 9 / 20).astype(int)
    np.testing.assert_array_equal(x.numpy()[:, :, hi][:, :, :, wi], up(x).numpy())
