"""Channel pruning on models fixflow did not write: hand-written nn.Modules of the kinds users write
(tests/quantizer/_qat_pruning_models.py) and torchvision architectures with seeded random weights at 64x64.

For each: the sensitivity analysis, pruning to a MAC ratio, the slim model (smaller layers, fewer MACs and
parameters) computing what an independent reference computes (a copy of the original whose removed channels
are zeroed by this test: filters, biases, and the batch-norm scale and shift / depthwise filters carrying
them, run by PyTorch), its state dict loaded into a fresh model, then quantized (calib, test mode, the
_int.xmodel run by GraphRunner equal to test mode), compiled and run. A model pruning cannot handle is one
PruningError naming the layer and the reason."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from _qat_pruning_models import SHAPE, build, images  # noqa: E402
from fixflow.quantizer.pruning import PruningError, get_pruning_runner, load_state_dict  # noqa: E402

#: what each hand-written model must prune to (MACs after / before at removal_ratio 0.3, at most)
PRUNABLE = ["DenseMiddle", "EncoderDecoder", "GroupedDepthwise", "NormAfterAct", "OddOps", "ResidualConcat",
            "ReusedActivation", "VggHead"]


def masked_reference(model: nn.Module, groups, kept: dict[str, list[int]]) -> nn.Module:
    """A copy of `model` whose removed channels are zero: each producing conv's filters and biases, and the
    batch norms (scale and shift) and depthwise convs (filters and biases) that carry them. Every op after
    them maps 0 to 0 (or multiplies it with another removed channel), so the consumers read zeros there."""
    ref = copy.deepcopy(model)
    mods = dict(ref.named_modules())
    by_name = {g.name: g for g in groups}
    with torch.no_grad():
        for name, keep in kept.items():
            g = by_name[name]
            removed = torch.tensor(sorted(set(range(g.size)) - set(keep)), dtype=torch.long)
            if not len(removed):
                continue
            for layer in g.producers + g.followers:
                m = mods[layer]
                if isinstance(m, nn.ConvTranspose2d):
                    m.weight[:, removed] = 0
                else:
                    m.weight[removed] = 0
                if getattr(m, "bias", None) is not None:      # (a PReLU has none)
                    m.bias[removed] = 0
    return ref


def _close(got: np.ndarray, want: np.ndarray) -> bool:
    return float(np.abs(got - want).max()) <= 1e-5 * max(1.0, float(np.abs(want).max()))


def _prune(model, shape, tmp_path, removal_ratio=0.3):
    """Analyse (score: minus the MSE to the float outputs), prune to `removal_ratio` of the MACs; returns
    (runner, slim, images)."""
    x = torch.randn((8,) + tuple(shape[1:]), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        want = model(x)

    def score(m, xb):
        with torch.no_grad():
            return -float((m(xb) - want).pow(2).mean())

    runner = get_pruning_runner(model, torch.zeros(shape), output_dir=tmp_path / "prune", log=None, progress=False)
    sens = runner.ana(score, args=(x,), ratios=(0.25, 0.5, 0.75))
    assert runner.ana(score, args=(x,), ratios=(0.25, 0.5, 0.75)).reused and sens.scores
    slim = runner.prune(removal_ratio=removal_ratio)
    return runner, slim, x


def _check_slim(model, runner, slim, x, fresh, effect=True):
    spec = runner.last_spec
    assert spec.macs_after <= 0.7 * spec.macs_before
    n_params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n_params(slim) < n_params(model) and type(slim) is type(model)
    ref = masked_reference(model, runner.groups(), spec.kept)
    with torch.no_grad():
        got, want, orig = slim(x).numpy(), ref(x).numpy(), model(x).numpy()
        assert _close(got, want), float(np.abs(got - want).max())
        if hasattr(model, "features"):         # random deep nets' logits hardly depend on the input: also the features
            f_got, f_want = slim.features(x).numpy(), ref.features(x).numpy()
            assert _close(f_got, f_want), float(np.abs(f_got - f_want).max())
            orig, want = model.features(x).numpy(), f_want
    # the channels removed did matter (random deep nets hardly depend on them: there, only that they changed
    # the result at all)
    assert not _close(orig, want) if effect else not np.array_equal(orig, want)
    loaded = load_state_dict(fresh, slim.state_dict()).eval()
    with torch.no_grad():
        np.testing.assert_array_equal(loaded(x).numpy(), got)


def _quantize(slim, shape, x, out):
    """calib -> test -> _int.xmodel; the written file run by GraphRunner equals test mode; returns the path."""
    from fixflow.quantizer import Quantizer
    from fixflow.runtime import GraphRunner
    q = Quantizer(slim, (torch.zeros(shape),), mode="calib", output_dir=out, log=None, progress=False)
    q.quant_model(x)
    q.export_quant_config()
    q = Quantizer(slim, (torch.zeros(shape),), mode="test", output_dir=out, log=None, progress=False)
    y = np.asarray(q.quant_model(x[:2]))
    path = q.export_xmodel()
    np.testing.assert_array_equal(GraphRunner.from_xmodel(path).run([x[:2].numpy()])[0], y)
    with torch.no_grad():
        ref = slim(x[:2]).numpy()
    assert float(np.linalg.norm(y - ref) / np.linalg.norm(ref)) < 0.2   # 8-bit numerics track the float model
    return path, y


@pytest.mark.parametrize("name", PRUNABLE)
def test_hand_written_model_prunes_slims_and_quantizes(name, tmp_path):
    model = build(name)
    runner, slim, x = _prune(model, SHAPE, tmp_path)
    _check_slim(model, runner, slim, x, build(name, seed=9))
    _quantize(slim, SHAPE, x, tmp_path / "q")


def test_transposed_conv_is_pruned_on_both_sides(tmp_path):
    """EncoderDecoder's ConvTranspose2d loses output channels (with its batch norm and the skip add's
    partner) and input channels (those its input conv lost)."""
    model = build("EncoderDecoder")
    runner = get_pruning_runner(model, torch.zeros(SHAPE), output_dir=tmp_path, log=None, progress=False)
    groups = {g.name: g for g in runner.groups()}
    up = next(g for g in groups.values() if "up" in g.producers)
    assert up.prunable and "enc1.0" in up.producers and "up_bn" in up.followers
    assert groups["enc2.0"].prunable and "up" in groups["enc2.0"].consumers
    slim = runner.prune(channel_ratio=0.5)
    assert tuple(slim.up.weight.shape) == (8, 4, 2, 2)
    _check_slim(model, runner, slim, images(4), build("EncoderDecoder", seed=9))


def test_sparse_transposed_conv_computes_the_slim_model(tmp_path):
    model = build("EncoderDecoder")
    runner = get_pruning_runner(model, torch.zeros(SHAPE), output_dir=tmp_path, log=None, progress=False)
    slim = runner.prune(channel_ratio=0.5)
    sparse = runner.prune(spec_path=runner.last_spec_path, mode="sparse")
    x = images(4)
    with torch.no_grad():
        assert _close(slim(x).numpy(), sparse(x).numpy())
    with torch.no_grad():
        again = runner.get_slim_model(sparse)(x).numpy()
        np.testing.assert_array_equal(again, slim(x).numpy())


def test_pruned_hand_written_model_compiles_and_runs(tmp_path):
    """slim -> quantize -> fixflow-compile -> the compiled program run equals test mode."""
    from fixflow.runtime import GraphRunner
    from fixflow.tools.compile import main as compile_main
    model = build("ResidualConcat")
    _, slim, x = _prune(model, SHAPE, tmp_path)
    path, y = _quantize(slim, SHAPE, x, tmp_path / "q")
    assert compile_main(["-x", str(path), "-a", "DPUCZDX8G_ISA1_B4096", "-o", str(tmp_path / "c"),
                         "--no-progress"]) == 0
    (got,) = GraphRunner.from_xmodel(tmp_path / "c" / "ResidualConcat.xmodel", mode="fast").run([x[:2].numpy()])
    np.testing.assert_array_equal(got, y)


# ---- torchvision architectures (seeded random weights, 64x64)
def _torchvision(name, seed=0):
    from _lib.torchvision_lib import build as tv_build
    try:
        return tv_build(name, seed)
    except ImportError:
        pytest.skip("torchvision is not installed (scripts/setup.sh installs it)")


TV = ["resnet18", "mobilenet_v2", "squeezenet1_1", "shufflenet_v2_x0_5", "mnasnet0_5", "efficientnet_b0"]


@pytest.mark.slow
@pytest.mark.parametrize("name", TV)
def test_torchvision_model_prunes_slims_and_quantizes(name, tmp_path):
    shape = (1, 3, 64, 64)
    model = _torchvision(name)
    runner, slim, x = _prune(model, shape, tmp_path)
    _check_slim(model, runner, slim, x, _torchvision(name, 3), effect=False)
    _quantize(slim, shape, x[:4], tmp_path / "q")


def test_efficientnet_stochastic_depth_keeps_channels():
    """torchvision's stochastic_depth (the identity in eval) no longer stops the analysis: every group of
    EfficientNet-B0 but none is prunable."""
    runner = get_pruning_runner(_torchvision("efficientnet_b0"), torch.zeros(1, 3, 64, 64), log=None, progress=False)
    fixed = [g for g in runner.groups() if not g.prunable]
    assert not [g for g in fixed if "stochastic_depth" in (g.fixed or "")]


# ---- what pruning cannot handle: one message naming the layer
class _DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.c, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 10)

    def forward(self, x):
        x = self.c(x)
        if x.sum() > 0:
            x = F.relu(x)
        return self.fc(x.mean((2, 3)))


def test_unprunable_models_are_one_message(tmp_path):
    runner = get_pruning_runner(build("Reused"), torch.zeros(SHAPE), output_dir=tmp_path, log=None, progress=False)
    with pytest.raises(PruningError, match=r"Reused has no prunable conv layer \('c1': 'shared' is called more than "
                                           r"once; 'shared': 'shared' is called more than once\)"):
        runner.prune(channel_ratio=0.5)
    runner = get_pruning_runner(_DataDependent(), torch.zeros(SHAPE), output_dir=tmp_path, log=None, progress=False)
    with pytest.raises(PruningError, match=r"cannot trace _DataDependent with torch.fx: TraceError: .*pruning needs a "
                                           r"traceable model"):
        runner.groups()


def test_per_channel_prelu_follows_its_conv_and_spatial_slices_and_pads_keep_channels(tmp_path):
    """A PReLU with a slope per channel loses the channels its conv loses (and reloads from the slim state
    dict); x[:, :, 1:, 1:] and F.pad of H/W keep the channel layout (OddOps' c3 and c4 are prunable)."""
    runner = get_pruning_runner(build("DenseMiddle"), torch.zeros(SHAPE), output_dir=tmp_path, log=None,
                                progress=False)
    g = next(g for g in runner.groups() if g.name == "features.1.0")
    assert g.prunable and g.followers == ["features.1.1", "features.1.2"]
    slim = runner.prune(channel_ratio=0.5)
    assert slim.features[1][2].num_parameters == 8
    assert load_state_dict(build("DenseMiddle", seed=4), slim.state_dict()).features[1][2].num_parameters == 8
    groups = {g.name: g for g in get_pruning_runner(build("OddOps"), torch.zeros(SHAPE), log=None).groups()}
    assert groups["c3"].prunable and groups["c4"].prunable and groups["c4"].consumers == ["fc"]
    assert "chunk" in groups["c1.0"].fixed      # a channel split is not followed: kept whole, with the reason



def test_removal_ratio_does_not_overshoot_on_ties(tmp_path):
    """A score that never moves (every drop 0: all tolerances tie) used to prune every group at its largest
    ratio; groups now step back while the target holds: the MACs land under the target, well above what
    every group at its largest ratio gives."""
    runner = get_pruning_runner(build("ResidualConcat"), torch.zeros(SHAPE), output_dir=tmp_path, log=None,
                                progress=False)
    runner.ana(lambda m: 1.0, ratios=(0.3, 0.6, 0.9))
    runner.prune(removal_ratio=0.3)
    after, before = runner.last_spec.macs_after, runner.last_spec.macs_before
    runner.prune(channel_ratio=0.9)                    # every group at the largest analysed ratio
    assert runner.last_spec.macs_after < 0.5 * before < after <= int(before * 0.7)
