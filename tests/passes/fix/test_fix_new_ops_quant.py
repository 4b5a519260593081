"""Quantization and placement of the frontend's new ops (issue 15): slices, chunk/split, roll,
repeat/expand, transformer linear layers, and the float-only ops left on the CPU.

Each small model goes through the Quantizer (calib -> test -> `_int.xmodel`); the written file, read
back and run by `GraphRunner`, must equal test mode bit for bit, and each op must be placed as designed:
slices as `fix.strided_slice` (XIR `strided_slice-fix`), roll / repeat / expand as strided slices and
concats, a linear layer on [N, T, D] tokens as a 1x1 `fix.conv2d`, and layer_norm / gelu / mish / sum /
amax / group_norm as float CPU ops with their reason and XIR's float op type.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fixflow.backends.xmodel import read_xmodel
from fixflow.dialects.fix import ops as Q
from fixflow.quantizer import Quantizer
from fixflow.runtime import GraphRunner


def _quantize(model: nn.Module, shape: tuple[int, ...], tmp_path, n_calib: int = 16):
    torch.manual_seed(0)
    model.eval()
    g = torch.Generator().manual_seed(1)
    calib = torch.randn((n_calib,) + shape[1:], generator=g)
    q = Quantizer(model, (torch.zeros(shape),), mode="calib", output_dir=tmp_path, log=None, progress=False)
    q.quant_model(calib)
    q.export_quant_config()
    q = Quantizer(model, (torch.zeros(shape),), mode="test", output_dir=tmp_path, log=None, progress=False)
    x = torch.randn((3,) + shape[1:], generator=g)
    sim = np.asarray(q.quant_model(x))
    path = q.export_xmodel()
    got = GraphRunner.from_xmodel(path).run([x.numpy()])[0]
    np.testing.assert_array_equal(got, sim)        # the written file computes what test mode computes
    with torch.no_grad():
        ref = model(x).numpy()
    return q, path, sim, ref, x


def _ops(q, name):
    return [op for op in q.fix_module.walk() if op.name == name]


def _assert_close(sim, ref, tol=0.1):
    """8-bit quantization stays near the float model: relative RMS error (an outlier may clip at the
    calibrated range, so no max-error bound)."""
    assert np.linalg.norm(sim - ref) <= tol * np.linalg.norm(ref)


class ShuffleBlock(nn.Module):
    """ShuffleNetV2's unit: chunk, a conv branch, concat, channel shuffle (view-transpose-view)."""

    def __init__(self, c=8):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.branch = nn.Sequential(nn.Conv2d(c // 2, c // 2, 1), nn.ReLU())
        self.head = nn.Conv2d(c, 4, 3, stride=2, padding=1)

    def forward(self, x):
        x = F.relu(self.stem(x))
        a, b = x.chunk(2, dim=1)
        x = torch.cat((a, self.branch(b)), dim=1)
        n, c, h, w = x.shape
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.head(x)


def test_chunk_becomes_strided_slices_on_the_cpu(tmp_path):
    q, path, sim, ref, _x = _quantize(ShuffleBlock(), (1, 3, 8, 8), tmp_path)
    _assert_close(sim, ref)
    slices = _ops(q, "fix.strided_slice")
    assert len(slices) == 2
    # NHWC: the two channel halves of a 1x8x8x8 map
    assert [(list(s.begin), list(s.end), list(s.strides)) for s in slices] == [
        ([0, 0, 0, 0], [1, 8, 8, 4], [1, 1, 1, 1]), ([0, 0, 0, 4], [1, 8, 8, 8], [1, 1, 1, 1])]
    assert all(s.attributes["device"].value == "CPU" and "strided_slice" in s.attributes["fix.reason"].value
               for s in slices)
    g = read_xmodel(path)
    xs = [o for o in g.ops if o.type == "strided_slice-fix"]
    assert [o.attr("end") for o in xs] == [[1, 8, 8, 4], [1, 8, 8, 8]]


def test_a_model_with_cpu_slices_compiles_and_runs_bit_exact(tmp_path):
    """fixflow-compile splits it into DPU and CPU subgraphs; GraphRunner runs the CPU ones (the channel
    halves and the shuffle's transposes) and the whole equals test mode bit for bit."""
    import contextlib
    import io

    from fixflow.tools.compile import main as compile_main

    q, path, sim, _, x = _quantize(ShuffleBlock(), (1, 3, 8, 8), tmp_path)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = compile_main(["-x", str(path), "-a", "kv260", "-o", str(tmp_path / "c"), "-n", "net"])
    assert rc == 0, buf.getvalue()
    log = buf.getvalue()
    assert "CPU subgraph subgraph_chunk_0" in log and "DPU subgraph number 3" in log
    got = GraphRunner.from_xmodel(tmp_path / "c" / "net.xmodel", mode="fast").run([x.numpy()])[0]
    np.testing.assert_array_equal(got, sim)


class Slicing(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(2, 4, 1)

    def forward(self, x):
        y = self.conv(x)
        y = y[:, 1:-1:2, ::2, 1:]          # steps, negative end, a slice of H and W
        y = torch.roll(y, shifts=(1, -2), dims=(2, 3))
        return self.conv2(y)


def test_steps_negative_bounds_and_roll(tmp_path):
    q, _, sim, ref, _x = _quantize(Slicing(), (1, 3, 9, 8), tmp_path)
    _assert_close(sim, ref)
    first = _ops(q, "fix.strided_slice")[0]
    # graph [:, 1:-1:2, ::2, 1:] of 1x6x9x8 -> NHWC begin/end/strides (end normalized and clamped)
    assert (list(first.begin), list(first.strides)) == ([0, 0, 1, 1], [1, 2, 1, 2])
    assert first.results[0].type.shape == (1, 5, 7, 2)
    assert len(_ops(q, "fix.concat")) == 2              # roll: one concat per rolled axis


class Repeat(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.token = nn.Parameter(0.5 * torch.randn(1, 4, 1, 1))

    def forward(self, x):
        y = self.conv(x)
        t = self.token.expand(x.shape[0], -1, y.shape[2], 5)   # class-token style broadcast
        return torch.cat((y.repeat(1, 1, 1, 2)[..., :5], t), dim=1)


def test_repeat_and_expand_become_concats(tmp_path):
    q, _, sim, ref, _x = _quantize(Repeat(), (1, 3, 4, 5), tmp_path)
    _assert_close(sim, ref)
    assert not [op for op in q.fix_module.walk() if op.name in ("graph.tile", "graph.expand")]


class Tokens(nn.Module):
    """A transformer block's pieces: layer_norm, linear on tokens, gelu, attention-style matmul/softmax."""

    def __init__(self, d=8):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 16)
        self.fc2 = nn.Linear(16, d)

    def forward(self, x):                       # x: N x T x D
        h = self.fc2(F.gelu(self.fc1(self.norm(x))))
        att = torch.softmax(h @ h.transpose(1, 2), dim=-1)
        return (att @ x).sum(dim=1) + x.amax(dim=1)


def test_transformer_pieces_quantize_with_float_ops_on_the_cpu(tmp_path):
    q, path, sim, ref, _x = _quantize(Tokens(), (1, 5, 8), tmp_path)
    _assert_close(sim, ref, tol=0.2)
    convs = _ops(q, "fix.conv2d")
    assert len(convs) == 2 and all(c.results[0].type.shape[2] == 1 for c in convs)   # N x T x 1 x D
    assert "device" not in convs[0].attributes
    reasons = {op.name: op.attributes["fix.reason"].value for op in q.fix_module.walk()
               if op.name.startswith("graph.") and "fix.reason" in op.attributes}
    assert set(reasons) >= {"graph.layer_norm", "graph.gelu", "graph.sum", "graph.amax", "graph.softmax"}
    assert "layer normalization" in reasons["graph.layer_norm"]
    types = {o.type for o in read_xmodel(path).ops}
    assert {"layernorm", "gelu", "reduction_sum", "reduction_max", "softmax", "conv2d-fix"} <= types


class Norms(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.gn = nn.GroupNorm(2, 4)
        self.inorm = nn.InstanceNorm2d(4, affine=True)

    def forward(self, x):
        return F.normalize(F.mish(self.inorm(self.gn(self.conv(x)))), dim=1)


def test_group_and_instance_norm_mish_and_normalize_stay_in_float(tmp_path):
    q, path, sim, ref, _x = _quantize(Norms(), (1, 3, 6, 6), tmp_path)
    _assert_close(sim, ref, tol=0.2)
    g = read_xmodel(path)
    gn = [o for o in g.ops if o.type == "groupnorm"]
    assert len(gn) == 2 and sorted(o.attr("num_groups") for o in gn) == [2, 4]
    assert all(o.attr("num_channels") == 4 for o in gn)
    assert any(o.type == "mish" for o in g.ops)
    (l2,) = [o for o in g.ops if o.type == "l2_normalize"]
    assert l2.attr("axis") == [1] and l2.attr("epsilon") == pytest.approx(1e-24)


def test_strided_slice_op_semantics():
    """fix.strided_slice: integer evaluate is a numpy slice; simulate is its float twin."""
    from fixflow.ir.builder import Builder  # noqa: F401  (the op builds standalone)
    from fixflow.dialects.builtin import FuncOp

    f = FuncOp.create_function("f", [Q.fix_tensor((1, 5, 6, 4), 8, 3)], [])
    x = f.body.args[0]
    op = Q.StridedSliceOp.build(x, begin=[0, 1, 0, 1], end=[1, 5, 6, 4], strides=[1, 2, 3, 2],
                                result_types=[Q.fix_tensor((1, 2, 2, 2), 8, 3)])
    f.body.append(op)
    op.verify_()
    q = np.arange(120, dtype=np.int64).reshape(1, 5, 6, 4) - 60
    np.testing.assert_array_equal(op.evaluate([q])[0], q[:, 1:5:2, 0:6:3, 1:4:2])
    np.testing.assert_array_equal(op.simulate([q / 8.0])[0], q[:, 1:5:2, 0:6:3, 1:4:2] / 8.0)
    bad = Q.StridedSliceOp.build(x, begin=[0, 4, 0, 0], end=[1, 2, 6, 4], strides=[1, 1, 1, 1],
                                 result_types=[Q.fix_tensor((1, 0, 6, 4), 8, 3)])
    f.body.append(bad)
    with pytest.raises(Exception, match="0 <= begin <= end <= size"):
        bad.verify_()


class SmallMap(nn.Module):
    """AlexNet on a small input: an adaptive average pool that enlarges a 1x1 map (each window one pixel)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 4, stride=4)
        self.pool = nn.AdaptiveAvgPool2d((3, 2))
        self.fc = nn.Linear(24, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(F.relu(self.conv(x))), 1))


def test_adaptive_pool_that_enlarges_is_a_nearest_upsample(tmp_path):
    q, _, sim, ref, _x = _quantize(SmallMap(), (1, 3, 4, 4), tmp_path)
    _assert_close(sim, ref)
    (up,) = _ops(q, "fix.upsample")
    assert tuple(up.scale) == (3, 2)
    assert not _ops(q, "graph.adaptive_avg_pool2d")


class Grouped(nn.Module):
    """ResNeXt / RegNet: a grouped 3x3 conv with a fused ReLU."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 1)
        self.group = nn.Conv2d(8, 12, 3, padding=1, groups=4)
        self.head = nn.Conv2d(12, 4, 1)

    def forward(self, x):
        return self.head(F.relu(self.group(F.relu(self.stem(x)))))


def test_grouped_conv_is_one_conv_per_group(tmp_path):
    q, _, sim, ref, _x = _quantize(Grouped(), (1, 3, 6, 6), tmp_path)
    _assert_close(sim, ref)
    convs = [c for c in _ops(q, "fix.conv2d") if c.results[0].type.shape[3] == 3]
    assert len(convs) == 4 and all(c.nonlinear == "RELU" and "device" not in c.attributes for c in convs)
    assert len(_ops(q, "fix.strided_slice")) == 4
    assert not [op for op in q.fix_module.walk() if op.name == "graph.conv2d"]


class PreActivation(nn.Module):
    """DenseNet's layer: batch norm and ReLU *before* the conv, on a concatenation (fold-bn cannot fold it)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(7)
        self.conv = nn.Conv2d(7, 4, 1)
        with torch.no_grad():
            self.norm.running_mean.uniform_(-0.5, 0.5)
            self.norm.running_var.uniform_(0.5, 2.0)
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.2, 0.2)

    def forward(self, x):
        y = torch.cat((x, self.stem(x)), dim=1)
        return self.conv(F.relu(self.norm(y)))


def test_unfoldable_batch_norm_is_a_depthwise_conv(tmp_path):
    q, _, sim, ref, _x = _quantize(PreActivation(), (1, 3, 6, 6), tmp_path)
    _assert_close(sim, ref)
    (dw,) = _ops(q, "fix.depthwise_conv2d")
    assert tuple(dw.kernel) == (1, 1) and dw.nonlinear == "RELU"


class Windows(nn.Module):
    """Swin's window partition: the batch folded into the windows' dim (`reshape(-1, 4, C)`) and back."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):                       # N x 4 x 4 x C (channels last, as Swin)
        n, h, w, c = x.shape
        t = x.view(n, 2, 2, 2, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, 4, c)
        t = self.fc(t)
        return t.view(-1, 2, 2, 2, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


def test_a_batch_folded_into_windows_runs_at_any_batch(tmp_path):
    q, _, sim, ref, _x = _quantize(Windows(), (1, 4, 4, 4), tmp_path)   # test mode runs batch 3
    _assert_close(sim, ref)
    assert any(-1 in tuple(op.shape) for op in _ops(q, "fix.reshape"))


class WindowScores(nn.Module):
    """Swin / MaxViT attention scores: per-window scores unfolded to (B*windows, heads, T, T) and a
    rank-4 position bias added to a rank-5 tensor."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(0.1 * torch.randn(1, 2, 4, 4))
        self.fc = nn.Linear(3, 4)

    def forward(self, x):                       # x: N x 4 x 3 -> scores N x 2 x 4 x 4
        s = self.fc(x).unsqueeze(1).expand(-1, 2, -1, -1)
        s = s.reshape(-1, 1, 2, 4, 4) + self.bias.unsqueeze(0) * 2.0
        s = s.view(-1, 2, 4, 4) + torch.relu(self.bias)
        return s


def test_window_scores_keep_their_batch_and_layout(tmp_path):
    q, _, sim, ref, _x = _quantize(WindowScores(), (1, 4, 3), tmp_path)
    _assert_close(sim, ref, tol=0.2)


class BiasedScores(nn.Module):
    """MaxViT: a rank-4 constant position bias added to rank-5 attention scores."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.register_buffer("bias", 0.1 * torch.randn(1, 2, 4, 4))

    def forward(self, x):                       # x: N x 3 x 2 x 4 x 4
        return torch.relu(x) + self.bias


def test_rank4_constant_broadcast_into_rank5(tmp_path):
    q, _, sim, ref, _x = _quantize(BiasedScores(), (1, 3, 2, 4, 4), tmp_path)
    _assert_close(sim, ref)


def test_scalar_constant_operand_is_written_with_shape_1(tmp_path):
    """A scalar multiplier (MaxViT's attention scale on a float path) is a rank-0 fix.const: XIR gets [1]."""
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Flatten(), nn.Linear(64, 6))

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, x):
            return torch.softmax(self.m(x), dim=-1) * 0.5

    _quantize(Scaled(), (1, 3, 4, 4), tmp_path)   # the written file runs bit-exact with test mode
