"""Zoo models: shapes, fx-traceability, layer vocabulary, GOPs, seeded weights, bundled weights."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import fx, nn  # noqa: E402

from fixflow import zoo  # noqa: E402
from fixflow.zoo import registry  # noqa: E402
from fixflow.zoo.checkpoint import CheckpointError, load_npz, save_npz  # noqa: E402
from fixflow.zoo.errors import UnknownModelError, ZooError  # noqa: E402
from fixflow.zoo.train import evaluate  # noqa: E402

ALL = registry.list_models()
ALLOWED = (
    nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
    nn.Linear, nn.Dropout, nn.Identity, nn.Sequential,
)


@pytest.fixture(scope="module")
def models():
    return {name: zoo.get_model(name) for name in ALL}


def _input(name, batch=1, seed=0):
    shape = registry.get_spec(name).input_shape
    return torch.randn((batch, *shape[1:]), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ALL)
def test_shape_mode_and_layers(models, name):
    model = models[name]
    spec = registry.get_spec(name)
    assert not model.training
    with torch.no_grad():
        y = model(_input(name, batch=2))
    assert y.shape == (2, spec.num_classes)
    assert torch.isfinite(y).all()
    for mod in model.modules():
        if type(mod).__module__.startswith("torch"):
            assert isinstance(mod, ALLOWED), type(mod)


@pytest.mark.parametrize("name", ALL)
def test_fx_traceable(models, name):
    model = models[name]
    gm = fx.symbolic_trace(model)
    x = _input(name, batch=1, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x), rtol=0, atol=0)
    ops = {n.op for n in gm.graph.nodes}
    assert ops <= {"placeholder", "call_module", "call_function", "call_method", "output"}


def test_gops_match_published_figures():
    assert registry.gops("resnet50") == pytest.approx(8.2, rel=0.01)
    assert registry.gops("resnet18") == pytest.approx(3.6, rel=0.02)
    assert registry.gops("mobilenet_v2") == pytest.approx(0.6, rel=0.01)
    # torchvision's own counts (GMACs): resnet50 4.09, resnet18 1.81, mobilenet_v2 0.30
    assert registry.gops("resnet50") / 2 == pytest.approx(4.089, abs=0.002)
    assert registry.describe("resnet50")["params"] == 25_557_032  # torchvision resnet50
    assert registry.describe("resnet18")["params"] == 11_689_512
    assert registry.describe("mobilenet_v2")["params"] == 3_504_872


def test_count_macs_by_hand():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8),
        nn.Conv2d(8, 4, 1), nn.Flatten(), nn.Linear(4 * 5 * 5, 7),
    )
    macs = registry.count_macs(net, (1, 3, 10, 10))
    assert macs == {"0": 10 * 10 * 8 * 3 * 9, "2": 5 * 5 * 8 * 9, "3": 5 * 5 * 4 * 8, "5": 100 * 7}


def test_count_macs_of_a_transposed_conv_counts_every_tap():
    net = nn.Sequential(nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
                        nn.ConvTranspose2d(6, 6, 2, stride=2, groups=3))
    macs = registry.count_macs(net, (1, 4, 5, 5))
    # the products a direct transposed conv computes: every input pixel x every tap x the group's outputs
    assert macs == {"0": 5 * 5 * 4 * 6 * 9, "2": 10 * 10 * 6 * 2 * 4}


def test_count_macs_meta_equals_real(models):
    real = registry.count_macs(models["tiny_mobilenet"], (1, 1, 28, 28))
    assert 2 * sum(real.values()) / 1e9 == pytest.approx(registry.gops("tiny_mobilenet"), rel=1e-12)


def test_seeded_weights_are_deterministic_and_sane():
    a = zoo.get_model("resnet18_cifar")
    state = torch.get_rng_state()
    b = zoo.get_model("resnet18_cifar")
    assert torch.equal(state, torch.get_rng_state())  # global RNG untouched
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    c = zoo.get_model("resnet18_cifar", seed=1)
    assert not torch.equal(a.conv1.weight, c.conv1.weight)
    for m in a.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert (m.running_var > 0).all() and m.running_mean.abs().max() > 0


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnet18_cifar", "mobilenet_v2"])
def test_random_models_are_not_degenerate(models, name):
    with torch.no_grad():
        y = models[name](_input(name, batch=6, seed=2))
    per_input = (y - y.mean(0)).std()
    assert 0.3 < float(per_input) < 10.0  # logits depend on the input, not only on the bias
    assert len(set(y.argmax(1).tolist())) >= 3


@pytest.mark.parametrize("name", ["digits_cnn", "tiny_mobilenet"])
def test_bundled_weights_reach_recorded_accuracy(models, name):
    recorded = registry.float_accuracy(name)
    assert recorded is not None and recorded > 0.95
    acc = evaluate(models[name], name, "test")
    assert acc == pytest.approx(recorded, abs=1.5 / 359)
    untrained = zoo.get_model(name, pretrained=False)
    assert evaluate(untrained, name, "test") < 0.5


def test_describe_and_names():
    d = registry.describe("Digits-CNN")
    assert d["name"] == "digits_cnn" and d["input_shape"] == [1, 1, 28, 28]
    assert d["float_accuracy"] == registry.float_accuracy("digits_cnn")
    assert d["trainable"] and not registry.describe("resnet50")["trainable"]
    assert registry.describe("tiny_mobilenet_imbalanced")["float_accuracy"] == registry.float_accuracy(
        "tiny_mobilenet"
    )
    with pytest.raises(UnknownModelError, match=r"unknown model 'vgg16' \(available: digits_cnn, "):
        zoo.get_model("vgg16")


def test_checkpoint_roundtrip_and_mismatch(tmp_path, models):
    path = tmp_path / "w.npz"
    save_npz(models["digits_cnn"], path)
    fresh = zoo.get_model("digits_cnn", pretrained=False)
    load_npz(fresh, path)
    for k, v in models["digits_cnn"].state_dict().items():
        assert torch.equal(v, fresh.state_dict()[k])
    with pytest.raises(CheckpointError, match="do not match TinyMobileNet"):
        load_npz(zoo.get_model("tiny_mobilenet", pretrained=False), path)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ZooError, match="cannot read weights"):
        load_npz(fresh, tmp_path / "bad.npz")
    arrays = dict(np.load(path))
    arrays["classifier.weight"] = arrays["classifier.weight"][:5]
    np.savez(tmp_path / "shape.npz", **arrays)
    with pytest.raises(CheckpointError, match="classifier.weight has shape"):
        load_npz(fresh, tmp_path / "shape.npz")


def test_sample_inputs_and_load_data():
    x = registry.sample_inputs("digits_cnn", 5, seed=1)
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32
    train_x, _ = registry.load_data("digits_cnn", "train")
    assert all(any(np.array_equal(xi, t) for t in train_x) for xi in x)
    np.testing.assert_array_equal(x, registry.sample_inputs("digits_cnn", 5, seed=1))
    r = registry.sample_inputs("resnet18_cifar", 3)
    assert r.shape == (3, 3, 32, 32) and r.dtype == np.float32
    assert abs(float(r.std()) - 1.0) < 0.05
    with pytest.raises(ZooError, match="not a digits model"):
        registry.load_data("resnet50")
    with pytest.raises(ZooError, match="at least one"):
        registry.sample_inputs("resnet50", 0)


def test_layer_table_sums_to_gops():
    rows = registry.layer_table("resnet50")
    assert len(rows) == 54  # 53 convs + fc
    assert rows[0] == {"layer": "conv1", "type": "conv7x7/2", "output_shape": [1, 64, 112, 112],
                       "macs": 112 * 112 * 64 * 3 * 49}
    assert 2 * sum(r["macs"] for r in rows) / 1e9 == pytest.approx(registry.gops("resnet50"))
    assert sum(r["type"].startswith("dwconv") for r in registry.layer_table("mobilenet_v2")) == 17


def test_missing_bundled_weights_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ZooError, match=r"'digits_cnn': bundled weights .* are missing"):
        zoo.get_model("digits_cnn")
