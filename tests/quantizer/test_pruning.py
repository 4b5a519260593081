"""Channel pruning (fixflow.quantizer.pruning): channel groups from the traced graph, channel choice by
filter norm, slim models against sparse (zeroed) ones and against an independent slicing, MACs against
fixflow.zoo.count_macs, the sensitivity file's reuse and invalidation, per-layer ratios from the
sensitivity, specs, and one clear message per bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from fixflow.quantizer.pruning import (PruningError, PruningGraph, finetune, get_pruning_runner, load_state_dict,
                                       slim)
from fixflow.zoo import count_macs, get_model
from fixflow.zoo.models import BasicBlock


def _runner(model, shape, tmp_path, **kw):
    return get_pruning_runner(model, (torch.zeros(shape),), "iterative", output_dir=tmp_path / "vai",
                              log=None, progress=False, **kw)


def _macs(model, shape):
    return sum(count_macs(model, (1, *shape[1:])).values())


class ConcatNet(nn.Module):
    """Two branches concatenated along channels, batch norm and a depthwise conv after the concat, global
    average pooling by mean, a dense layer."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3, padding=1)
        self.b = nn.Conv2d(3, 4, 1)
        self.bn = nn.BatchNorm2d(10)
        self.dw = nn.Conv2d(10, 10, 3, padding=1, groups=10)
        self.pw = nn.Conv2d(10, 8, 1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        y = torch.relu(self.bn(torch.cat([self.a(x), self.b(x)], 1)))
        y = torch.relu(self.pw(self.dw(y)))
        return self.fc(y.mean((2, 3)))


class TinyResNet(nn.Module):
    """A stem and two residual blocks (one with a strided downsample), global pooling, dense."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.block1 = BasicBlock(16, 16)
        self.block2 = BasicBlock(16, 32, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.block2(self.block1(self.stem(x)))), 1))


def _randomize_bn(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


# ---------------------------------------------------------------------------- the channel groups

def test_digits_cnn_groups_bn_follows_and_dense_reads_flatten():
    g = PruningGraph(get_model("digits_cnn"), (torch.zeros(1, 1, 28, 28),))
    groups = {n: (c.size, c.producers, c.followers, c.consumers) for n, c in g.groups.items()}
    assert groups == {
        "features.0.0": (16, ["features.0.0"], ["features.0.1"], ["features.2.0"]),
        "features.2.0": (32, ["features.2.0"], ["features.2.1"], ["features.3.0"]),
        "features.3.0": (64, ["features.3.0"], ["features.3.1"], ["classifier"]),
    }
    assert all(c.prunable for c in g.groups.values())
    assert g.layers["classifier"].in_layout[0] == "f" and g.layers["classifier"].in_layout[1][0][1:] == (64, 49)


def test_residual_adds_couple_the_convs_of_a_stage():
    g = PruningGraph(get_model("resnet18_cifar"), (torch.zeros(1, 3, 32, 32),))
    stem = g.groups["conv1"]
    assert stem.producers == ["conv1", "layer1.0.conv2", "layer1.1.conv2"]
    assert stem.followers == ["bn1", "layer1.0.bn2", "layer1.1.bn2"]
    assert g.groups["layer2.0.downsample.0"].producers == ["layer2.0.downsample.0", "layer2.0.conv2",
                                                            "layer2.1.conv2"]
    assert g.groups["layer4.0.downsample.0"].consumers[-1] == "fc"
    assert len(g.prunable()) == 12


def test_depthwise_convs_follow_their_input_and_the_output_is_fixed():
    g = PruningGraph(get_model("tiny_mobilenet"), (torch.zeros(1, 1, 28, 28),))
    assert g.groups["stem.0"].followers == ["stem.1", "blocks.0.dw", "blocks.0.dw_bn"]
    assert g.groups["stem.0"].consumers == ["blocks.0.pw"]
    sq = PruningGraph(get_model("squeezenet1_1"), (torch.zeros(1, 3, 224, 224),))
    assert sq.groups["classifier.1"].fixed == "it reaches the model output"
    assert sq.groups["features.3.expand1x1.0"].consumers == ["features.4.squeeze.0"]


def test_concat_lays_groups_side_by_side():
    g = PruningGraph(_randomize_bn(ConcatNet()), (torch.zeros(1, 3, 8, 8),))
    assert g.groups["a"].followers == ["bn", "dw"] and g.groups["b"].followers == ["bn", "dw"]
    assert g.groups["a"].consumers == ["pw"] and g.groups["pw"].consumers == ["fc"]


# ---------------------------------------------------------------------------- slim models

def _independent_slim_digits(model, keep):
    """DigitsCNN pruned by hand-written slicing (no fixflow code): keep[i] = channels of conv i."""
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    convs = ["features.0", "features.2", "features.3"]
    prev = None
    for c, k in zip(convs, keep):
        idx = torch.tensor(k)
        w = sd[f"{c}.0.weight"][idx]
        sd[f"{c}.0.weight"] = w[:, torch.tensor(prev)] if prev is not None else w
        for p in ("weight", "bias", "running_mean", "running_var"):
            sd[f"{c}.1.{p}"] = sd[f"{c}.1.{p}"][idx]
        prev = k
    feat = torch.tensor([c * 49 + i for c in prev for i in range(49)])
    sd["classifier.weight"] = sd["classifier.weight"][:, feat]
    return sd


@pytest.mark.parametrize("criterion", ["l1", "l2"])
def test_slim_digits_equals_independent_slicing_of_the_largest_filters(tmp_path, criterion):
    model = get_model("digits_cnn")
    r = _runner(model, (1, 1, 28, 28), tmp_path)
    s = r.prune(channel_ratio=0.5, criterion=criterion)
    keep = []
    for conv, n in (("features.0.0", 8), ("features.2.0", 16), ("features.3.0", 32)):
        w = model.get_submodule(conv).weight.detach().numpy().reshape(model.get_submodule(conv).out_channels, -1)
        norm = np.abs(w).sum(1) if criterion == "l1" else np.sqrt((w ** 2).sum(1))
        keep.append(sorted(np.argsort(-norm, kind="stable")[:n].tolist()))
    assert r.last_spec.kept == dict(zip(("features.0.0", "features.2.0", "features.3.0"), keep))
    ref = _independent_slim_digits(model, keep)
    got = s.state_dict()
    assert set(got) == set(ref)
    for k in ref:
        assert torch.equal(got[k], ref[k]), k
    assert [m.out_channels for m in s.modules() if isinstance(m, nn.Conv2d)] == [8, 16, 32]
    assert s.classifier.in_features == 32 * 49
    assert type(s) is type(model) and model.features[0][0].out_channels == 16   # the original is untouched


@pytest.mark.parametrize("name, make, shape", [
    ("digits_cnn", lambda: get_model("digits_cnn"), (2, 1, 28, 28)),
    ("tiny_mobilenet", lambda: get_model("tiny_mobilenet"), (2, 1, 28, 28)),
    ("concat", lambda: _randomize_bn(ConcatNet()), (2, 3, 8, 8)),
    ("tiny_resnet", lambda: _randomize_bn(TinyResNet()), (2, 1, 16, 16)),
    pytest.param("resnet18_cifar", lambda: get_model("resnet18_cifar"), (1, 3, 32, 32), marks=pytest.mark.slow),
])
def test_slim_computes_what_the_sparse_model_computes(tmp_path, name, make, shape):
    model = make()
    r = _runner(model, shape, tmp_path)
    s = r.prune(channel_ratio=0.5, mode="slim", channel_divisible=1)
    sp = r.prune(channel_ratio=0.5, mode="sparse", channel_divisible=1)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b, full = s(x), sp(x), model(x)
    assert a.shape == full.shape
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(a, full, atol=1e-3)             # something was really removed
    assert sum(p.numel() for p in s.parameters()) < sum(p.numel() for p in model.parameters())
    # the spec's MAC count is the zoo's count of the slim model
    assert r.last_spec.macs_after == _macs(s, shape) < _macs(model, shape) == r.last_spec.macs_before


def test_slim_state_dict_saved_and_loaded_into_the_original_architecture(tmp_path):
    model = get_model("tiny_mobilenet")
    s = _runner(model, (1, 1, 28, 28), tmp_path).prune(channel_ratio=0.5)
    torch.save(s.state_dict(), tmp_path / "pruned.pth")
    from fixflow.zoo.models import TinyMobileNet
    loaded = load_state_dict(TinyMobileNet(), torch.load(tmp_path / "pruned.pth", weights_only=True)).eval()
    assert loaded.blocks[0].dw.groups == loaded.blocks[0].dw.out_channels == 8    # depthwise stays depthwise
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), s(x))


def test_sparse_model_stays_sparse_through_finetuning_then_slims(tmp_path):
    model = get_model("digits_cnn")
    r = _runner(model, (1, 1, 28, 28), tmp_path)
    sp = r.prune(channel_ratio=0.5, mode="sparse")
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    finetune(sp, [(x[:32], y[:32]), (x[32:], y[32:])], epochs=2, lr=1e-2, progress=False, log=None)
    dropped = sorted(set(range(16)) - set(r.last_spec.kept["features.0.0"]))
    assert float(sp.features[0][0].weight.detach()[dropped].abs().sum()) == 0.0
    sl = r.get_slim_model(sp)
    with torch.no_grad():
        assert torch.allclose(sl(x), sp(x), atol=1e-5)
    assert sl.features[0][0].out_channels == 8


# ---------------------------------------------------------------------------- sensitivity and ratios

class _Eval:
    """Agreement of the model's top-1 with the unpruned model's on fixed inputs; counts its calls."""

    def __init__(self, model, x):
        self.x = x
        with torch.no_grad():
            self.ref = model(x).argmax(1)
        self.calls = 0

    def __call__(self, m):
        self.calls += 1
        with torch.no_grad():
            return float((m(self.x).argmax(1) == self.ref).float().mean())


RATIOS = (0.25, 0.5, 0.75)


def test_sensitivity_is_saved_reused_and_invalidated(tmp_path):
    model = get_model("digits_cnn")
    from fixflow.zoo import load_data
    x, _ = load_data("digits_cnn", "test")
    ev = _Eval(model, torch.from_numpy(x[:48]))
    r = _runner(model, (1, 1, 28, 28), tmp_path, )
    s = r.ana(ev, ratios=RATIOS)
    first = ev.calls
    assert first == 1 + len({(n, slim.kept_count(s.sizes[n], q, 2)) for n in s.scores for q in s.ratios
                             if slim.kept_count(s.sizes[n], q, 2) < s.sizes[n]})
    saved = json.loads((tmp_path / "vai" / "DigitsCNN.sens.json").read_text())
    assert saved["baseline"] == 1.0 and list(saved["layers"]) == ["features.0.0", "features.2.0", "features.3.0"]
    assert saved["layers"]["features.0.0"]["scores"] == s.scores["features.0.0"]
    # a new runner on the unchanged model reuses the file
    r2 = _runner(get_model("digits_cnn"), (1, 1, 28, 28), tmp_path)
    s2 = r2.ana(ev, ratios=RATIOS)
    assert ev.calls == first and s2.reused and s2.scores == s.scores
    # changed weights: redone
    changed = get_model("digits_cnn")
    with torch.no_grad():
        changed.features[0][0].weight.mul_(1.01)
    log = []
    r3 = get_pruning_runner(changed, (torch.zeros(1, 1, 28, 28),), output_dir=tmp_path / "vai", log=log.append,
                            progress=False)
    r3.ana(ev, ratios=RATIOS)
    assert ev.calls == 2 * first and any("weights changed" in line for line in log)
    # changed graph (another width): redone
    other = _randomize_bn(TinyResNet())
    (tmp_path / "vai" / "TinyResNet.sens.json").write_text((tmp_path / "vai" / "DigitsCNN.sens.json").read_text())
    log.clear()
    r4 = get_pruning_runner(other, (torch.zeros(1, 1, 16, 16),), output_dir=tmp_path / "vai", log=log.append,
                            progress=False)
    r4.ana(_Eval(other, torch.randn(8, 1, 16, 16)), ratios=RATIOS)
    assert any("graph changed" in line for line in log)
    # forced
    before = ev.calls
    _runner(get_model("digits_cnn"), (1, 1, 28, 28), tmp_path).ana(ev, forced=True, ratios=RATIOS)
    assert ev.calls == before + first
    # other ratios: redone
    log.clear()
    get_pruning_runner(get_model("digits_cnn"), (torch.zeros(1, 1, 28, 28),), output_dir=tmp_path / "vai",
                       log=log.append, progress=False).ana(lambda m: 1.0)
    assert any("the ratios changed" in line for line in log)


def test_removal_ratio_and_mac_budget_follow_the_sensitivity(tmp_path):
    model = get_model("digits_cnn")
    from fixflow.zoo import load_data
    x, _ = load_data("digits_cnn", "test")
    ev = _Eval(model, torch.from_numpy(x[:100]))
    r = _runner(model, (1, 1, 28, 28), tmp_path)
    s = r.ana(ev)
    before = _macs(model, (1, 1, 28, 28))
    sl = r.prune(removal_ratio=0.5)
    after = _macs(sl, (1, 1, 28, 28))
    assert after <= before * 0.5 and r.last_spec.macs_after == after
    # the smallest common tolerance t that fits the budget (t: the smallest analysed drop at which every
    # layer pruned at its largest ratio within t fits), then layers stepped back to smaller ratios within t
    # while the budget holds: every layer at a ratio within t, none prunable one step less within the budget
    kept = {n: len(k) for n, k in r.last_spec.kept.items()}
    g = r.graph()
    target = int(before * 0.5)

    def macs(counts):
        return g.macs({g.groups[n].root: k for n, k in counts.items()})

    def largest_within(t):
        return {n: max((slim.kept_count(s.sizes[n], q, 2) for i, q in enumerate(s.ratios)
                        if s.baseline - s.scores[n][i] <= t + 1e-12), key=lambda k: -k, default=s.sizes[n])
                for n in kept}
    t = min(d for d in {s.baseline - v for row in s.scores.values() for v in row} if macs(largest_within(d)) <= target)
    within = {n: {slim.kept_count(s.sizes[n], q, 2) for i, q in enumerate(s.ratios)
                  if s.baseline - s.scores[n][i] <= t + 1e-12} | {s.sizes[n]} for n in kept}
    for n in kept:
        assert kept[n] in within[n]
        less = [k for k in within[n] if k > kept[n]]
        assert not less or macs({**kept, n: min(less)}) > target, n
    # the most sensitive layer (the first conv, 16 channels) loses fewer channels than the last
    assert kept["features.0.0"] / 16 > kept["features.3.0"] / 64
    budget = int(before * 0.3)
    sb = r.prune(mac_budget=budget)
    assert _macs(sb, (1, 1, 28, 28)) <= budget
    st = r.prune(threshold=0.0001)
    assert all(s.baseline - s.scores[n][s.ratios.index(0.1)] > 0.0001 or len(k) < s.sizes[n]
               for n, k in r.last_spec.kept.items()) and isinstance(st, nn.Module)


def test_spec_reapplies_the_same_channels(tmp_path):
    model = get_model("digits_cnn")
    r = _runner(model, (1, 1, 28, 28), tmp_path)
    a = r.prune(channel_ratio=0.4, criterion="l2")
    path = r.last_spec_path
    assert (tmp_path / "vai" / "latest_spec").read_text().strip() == str(path)
    b = _runner(get_model("digits_cnn"), (1, 1, 28, 28), tmp_path).prune(spec_path=path)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])


def test_excludes_keep_a_layer_whole(tmp_path):
    r = _runner(get_model("digits_cnn"), (1, 1, 28, 28), tmp_path)
    s = r.prune(channel_ratio=0.5, excludes=["features.0"])     # a Sequential: its conv and bn
    assert s.features[0][0].out_channels == 16 and s.features[2][0].out_channels == 16
    g = {c.name: c.fixed for c in r.groups(excludes=[r.model.features[3][0]])}
    assert g["features.3.0"] == "'features.3.0' is excluded"


# ---------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("kw, message", [
    ({"channel_ratio": 1.0}, "channel_ratio must be in (0, 1) (the fraction removed), got 1.0"),
    ({"channel_ratio": 0}, "channel_ratio must be in (0, 1) (the fraction removed), got 0"),
    ({"removal_ratio": -0.2}, "removal_ratio must be in (0, 1) (the fraction removed), got -0.2"),
    ({"removal_ratio": "half"}, "removal_ratio must be a number in (0, 1), got 'half'"),
    ({}, "prune() needs exactly one of removal_ratio, mac_budget, threshold, channel_ratio, spec_path (got none)"),
    ({"channel_ratio": 0.5, "mac_budget": 10}, "prune() needs exactly one of removal_ratio, mac_budget, threshold, "
                                               "channel_ratio, spec_path (got channel_ratio, mac_budget)"),
    ({"channel_ratio": 0.5, "mode": "thin"}, "mode must be one of slim, sparse, got 'thin'"),
    ({"channel_ratio": 0.5, "excludes": ["features.9"]},
     "excludes[0]: 'features.9' names no layer of DigitsCNN (conv layers: features.0.0, features.2.0, features.3.0)"),
    ({"mac_budget": 10**9}, "mac_budget 1,000,000,000 is not below the model's 1,950,592 MACs: nothing to prune"),
])
def test_bad_prune_arguments_one_message_each(tmp_path, kw, message):
    r = _runner(get_model("digits_cnn"), (1, 1, 28, 28), tmp_path)
    with pytest.raises(PruningError) as e:
        r.prune(**kw)
    assert str(e.value) == f"error: {message}"


def test_mac_budget_below_reachable(tmp_path):
    model = get_model("digits_cnn")
    r = _runner(model, (1, 1, 28, 28), tmp_path)
    with pytest.raises(PruningError, match=r"call runner.ana\(eval_fn, args\) first"):
        r.prune(mac_budget=100_000)
    r.ana(lambda m: 1.0)
    with pytest.raises(PruningError) as e:
        r.prune(mac_budget=1000)
    g = PruningGraph(model, (torch.zeros(1, 1, 28, 28),))
    fewest = g.macs({c.root: slim.kept_count(c.size, 0.9, 2) for c in g.prunable()})
    assert str(e.value) == (f"error: mac_budget 1000 asks for at most 1,000 MACs, below the fewest this model can "
                            f"reach: {fewest:,} of 1,950,592 ({100 * fewest / 1950592:.1f}%, every prunable layer at "
                            "ratio 0.9; the layers that cannot be pruned take the rest)")
    assert r.prune(mac_budget=fewest) is not None


class DenseOnly(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 8), nn.Linear(8, 2)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class ConvToOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize("model, shape, message", [
    (DenseOnly(), (1, 8), "DenseOnly has no prunable conv layer (it has no Conv2d layer)"),
    (ConvToOutput(), (1, 1, 6, 6), "ConvToOutput has no prunable conv layer ('conv': it reaches the model output)"),
])
def test_model_without_prunable_layer(tmp_path, model, shape, message):
    r = _runner(model, shape, tmp_path)
    for call in (lambda: r.prune(channel_ratio=0.5), lambda: r.ana(lambda m: 1.0)):
        with pytest.raises(PruningError) as e:
            call()
        assert str(e.value) == f"error: {message}"


def test_other_bad_inputs(tmp_path):
    r = _runner(get_model("digits_cnn"), (1, 1, 28, 28), tmp_path)
    with pytest.raises(PruningError, match="eval_fn returned str for the unpruned model; it must return a number"):
        r.ana(lambda m: "good")
    with pytest.raises(PruningError, match="eval_fn returned nan for the unpruned model"):
        r.ana(lambda m: float("nan"))
    with pytest.raises(PruningError, match="method 'one_step' is not supported"):
        get_pruning_runner(get_model("digits_cnn"), torch.zeros(1, 1, 28, 28), "one_step")
    with pytest.raises(PruningError, match="finetune: the loader yielded no batch"):
        finetune(get_model("digits_cnn"), [], epochs=1, progress=False, log=None)
    with pytest.raises(PruningError, match="finetune: the loss is nan at epoch 1, batch 1"):
        finetune(get_model("digits_cnn"), [(torch.full((2, 1, 28, 28), float("nan")), torch.zeros(2))],
                 progress=False, log=None)
    with pytest.raises(PruningError, match="state dict does not fit TinyMobileNet: missing stem.0.weight"):
        from fixflow.zoo.models import TinyMobileNet
        load_state_dict(TinyMobileNet(), get_model("digits_cnn").state_dict())
    spec = tmp_path / "bad.spec.json"
    spec.write_text("{}")
    with pytest.raises(PruningError, match="not a fixflow pruning spec"):
        r.prune(spec_path=spec)
    other = _runner(get_model("tiny_mobilenet"), (1, 1, 28, 28), tmp_path)
    other.prune(channel_ratio=0.5)
    with pytest.raises(PruningError, match=r"the pruning spec is for another graph \(TinyMobileNet"):
        r.prune(spec_path=other.last_spec_path)
