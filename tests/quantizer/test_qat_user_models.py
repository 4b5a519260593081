"""QAT on models fixflow did not write: hand-written nn.Modules of the kinds users write
(tests/quantizer/_qat_pruning_models.py) and torchvision architectures with seeded random weights at 64x64.

For each: wrap, train a few steps, convert, export quant_info.json and the _int.xmodel; the trained module in
eval mode must equal the deployed test mode bit for bit (docs/qat.md), and the written _int.xmodel run by
GraphRunner must equal test mode. The first forward after wrapping applies the DPU's fix-position rules as
every later one does. A model QAT cannot handle is one QatError naming the layer and the reason."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from _qat_pruning_models import MODELS, SHAPE, build, images  # noqa: E402
from fixflow.quantizer.qat import QatError, QatProcessor  # noqa: E402


def _train(qm, shape, steps, lr=3e-3, seed=1):
    """`steps` Adam steps of cross-entropy against random labels on random images (what is learnt does not
    matter here: the parameters and thresholds move)."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(qm.parameters(), lr=lr)
    qm.train()
    for _ in range(steps):
        x = torch.randn((8,) + tuple(shape[1:]), generator=g)
        y = torch.randint(0, 10, (8,), generator=g)
        out = qm(x)
        out = out[0] if isinstance(out, tuple) else out
        loss = F.cross_entropy(out, y) if out.dim() == 2 and out.shape[1] >= 10 else out.pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    qm.eval()


def _qat_round_trip(model, shape, tmp_path, steps=3, config=None, export=True):
    """Wrap, train, convert, export; returns (qat, trained outputs, test-mode outputs) on 6 test images."""
    from fixflow.runtime import GraphRunner
    torch.manual_seed(0)
    qat = QatProcessor(model, (torch.zeros(shape),), config=config, log=None)
    qm = qat.trainable_model()
    _train(qm, shape, steps)
    qat.to_deployable(qm, tmp_path)
    assert (tmp_path / "quant_info.json").exists()
    x = torch.randn((6,) + tuple(shape[1:]), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        trained = _numpy(qm(x))
    deployed = _numpy(qat.quantizer().quant_model(x))
    if export:
        path = qat.export_xmodel(tmp_path)
        assert path.name.endswith("_int.xmodel")
        ran = GraphRunner.from_xmodel(path).run([x.numpy()])
        np.testing.assert_array_equal(np.concatenate([r.ravel() for r in ran]), deployed)
    return qat, qm, trained, deployed


def _numpy(out) -> np.ndarray:
    """A model's output (one tensor or several) as one flat array."""
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return np.concatenate([np.asarray(o.detach() if hasattr(o, "detach") else o).ravel() for o in outs])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_qat_hand_written_model_matches_test_mode(name, tmp_path):
    _, _, trained, deployed = _qat_round_trip(build(name), SHAPE, tmp_path)
    np.testing.assert_array_equal(trained, deployed)


def test_qat_layers_left_in_float_match_test_mode(tmp_path):
    """A conv and a dense layer left in float (CPU ops: fixflow's float kernels) with 4-bit weights elsewhere."""
    config = {"tensor_quantize_config": {"weights": {"bit_width": 4}},
              "layer_quantize_config": [{"layer_name": "block.0.0", "quantizable_data_type": []},
                                        {"layer_name": "fc", "quantizable_data_type": []}]}
    _, _, trained, deployed = _qat_round_trip(build("ResidualConcat"), SHAPE, tmp_path, config=config)
    np.testing.assert_array_equal(trained, deployed)
    info = json.loads((tmp_path / "quant_info.json").read_text())
    assert set(info["float_layers"]) == {"ResidualConcat::block.0.0", "ResidualConcat::fc"}


def test_qat_shared_layer_trains_one_weight(tmp_path):
    """A conv called twice trains one weight (the deployed model has one) with a fix position per call."""
    qat, qm, trained, deployed = _qat_round_trip(build("Reused"), SHAPE, tmp_path)
    np.testing.assert_array_equal(trained, deployed)
    shared = [k for (op, role), k in qm._pkey.items() if role == "weight" and qat._names[op].startswith("shared#")]
    assert len(shared) == 2 and shared[0] == shared[1]
    info = json.loads((tmp_path / "quant_info.json").read_text())
    assert {"Reused::shared#1.weight", "Reused::shared#2.weight"} <= set(info["param"])
    assert torch.equal(qat.deployable_model().shared.weight.detach(), qm.params[shared[0]].detach())


def test_qat_float_batch_norm_after_dense_matches_test_mode(tmp_path):
    """A BatchNorm1d fold-bn cannot fold (its dense layer's output is used twice) stays a float CPU op; its
    dense layer keeps its own bias (not moved into the batch norm). Not exported: XIR has no float
    batch_norm op (the _int.xmodel writer says so)."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.fc1, self.bn, self.fc2 = nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Linear(32, 10)

        def forward(self, x):
            h = self.fc1(F.relu(self.c(x)).mean((2, 3)))
            return self.fc2(torch.cat([F.relu(self.bn(h)), h], 1))

    from _qat_pruning_models import randomize_bn
    torch.manual_seed(0)
    _, _, trained, deployed = _qat_round_trip(randomize_bn(Net()).eval(), SHAPE, tmp_path, export=False)
    np.testing.assert_array_equal(trained, deployed)


# ---- the first forward
@pytest.mark.parametrize("name, mode", [("GroupedDepthwise", "eval"), ("ResidualConcat", "train"),
                                        ("NormAfterAct", "eval")])
def test_first_forward_applies_the_rules_and_equals_test_mode(name, mode, tmp_path, monkeypatch):
    """The very first forward after wrapping (which also initializes the activation thresholds) computes what
    the deployed model computes with those thresholds, bit for bit, and what a second forward computes."""
    qat = QatProcessor(build(name), (torch.zeros(SHAPE),), config={"convert_relu6_to_relu": False}, log=None)
    qm = qat.trainable_model()
    qm.train(mode == "train")
    x = images(8, seed=3)
    with torch.no_grad():
        first = _numpy(qm(x))
        second = _numpy(qm(x))
    np.testing.assert_array_equal(first, second)
    raw = {k: q.fix_pos() for k, q in qm.quant.items()}
    legal = qm.legal_fix_positions()
    if name == "GroupedDepthwise":       # the rules move positions here (ReLU6 output at 4): the test exercises them
        assert any(raw[k] != legal[k] for k in raw)
    qm.train_steps = 1                   # deploy the untrained thresholds (skips the export-before-training check)
    monkeypatch.setattr(qat, "_check_trained", lambda trained: None)
    qat.to_deployable(qm, tmp_path)
    np.testing.assert_array_equal(first, _numpy(qat.quantizer().quant_model(x)))


# ---- torchvision architectures (seeded random weights, 64x64)
def _torchvision(name):
    from _lib.torchvision_lib import build as tv_build
    try:
        return tv_build(name)
    except ImportError:
        pytest.skip("torchvision is not installed (scripts/setup.sh installs it)")


TV_FAST = ["squeezenet1_1"]
TV_SLOW = ["resnet18", "mobilenet_v2", "shufflenet_v2_x0_5", "mnasnet0_5", "efficientnet_b0", "mobilenet_v3_small",
           "googlenet"]


@pytest.mark.parametrize("name", TV_FAST + [pytest.param(n, marks=pytest.mark.slow) for n in TV_SLOW])
def test_qat_torchvision_matches_test_mode(name, tmp_path):
    _, _, trained, deployed = _qat_round_trip(_torchvision(name), (1, 3, 64, 64), tmp_path, steps=2)
    np.testing.assert_array_equal(trained, deployed)


# ---- what QAT cannot handle: one message naming the layer
class _SharedWithNorms(nn.Module):
    def __init__(self):
        super().__init__()
        self.c0, self.c = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.b1, self.b2, self.fc = nn.BatchNorm2d(4), nn.BatchNorm2d(4), nn.Linear(4, 10)

    def forward(self, x):
        x = F.relu(self.b1(self.c(self.c0(x))))
        return self.fc(F.relu(self.b2(self.c(x))).mean((2, 3)))


@pytest.mark.parametrize("model, message", [
    (_SharedWithNorms, (r"QAT: '_SharedWithNorms::c' is called more than once \('c#1', 'c#2'\) and fixflow's "
                        r"prepared graph gives the calls different weights \(a batch norm folded into a call")),
])
def test_unsupported_model_is_one_message_at_wrap_time(model, message):
    qat = QatProcessor(model().eval(), (torch.zeros(1, 3, 16, 16),), log=None)
    with pytest.raises(QatError, match=message):
        qat.trainable_model()


def test_qat_float_dense_after_flatten_of_a_feature_map(tmp_path):
    """A dense layer left in float reading a flattened feature map (the quantize pass keeps torch's order)."""
    config = {"layer_quantize_config": [{"layer_name": "fc1", "quantizable_data_type": []}]}
    _, _, trained, deployed = _qat_round_trip(build("DenseMiddle"), SHAPE, tmp_path, config=config, export=False)
    np.testing.assert_array_equal(trained, deployed)


def test_input_of_another_shape_is_one_message():
    qm = QatProcessor(build("GroupedDepthwise"), (torch.zeros(SHAPE),), log=None).trainable_model()
    assert qm(images(3)).shape == (3, 10)                   # another batch size is fine
    with pytest.raises(QatError, match=r"QAT model: input 0 has shape \(2, 3, 20, 20\); the model was wrapped with "
                                       r"example input of shape \(1, 3, 16, 16\) \(any batch size"):
        qm(torch.zeros(2, 3, 20, 20))
    with pytest.raises(QatError, match="QAT model: input 0 is a ndarray, not a torch tensor"):
        qm(np.zeros(SHAPE, np.float32))
