"""QAT's forward computes what the deployed model computes: the DPU's fix-position rules (legalize-fix) are
applied in every forward, element-wise adds floor their inputs' pre-scale, hard sigmoid / hard swish use
2731/2^14, average pooling its DPU factor, LeakyReLU 26/256. The trained module in eval mode and the test-mode
Quantizer on the exported quant_info.json (== the _int.xmodel) agree bit for bit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fixflow import zoo
from fixflow.quantizer.qat import QatProcessor


class _Mixed(nn.Module):
    """ReLU6 (output fix_pos forced to 4), LeakyReLU, an add of two differently scaled branches, concat,
    hard swish, hard sigmoid, adaptive average pooling."""

    def __init__(self):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.c2, self.c3 = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 1)
        self.c4, self.c5 = nn.Conv2d(16, 12, 3, stride=2, padding=1), nn.Conv2d(12, 12, 3, padding=1)
        self.hs, self.hsig = nn.Hardswish(), nn.Hardsigmoid()
        self.fc = nn.Linear(12, 10)

    def forward(self, x):
        x = F.relu6(self.b1(self.c1(x)))
        y = F.leaky_relu(self.c2(x), 0.1)
        z = self.c3(x) * 4.0
        x = torch.cat([torch.relu(x + y), z], 1)
        x = self.hs(self.c4(x))
        x = x * self.hsig(self.c5(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def _train_and_compare(model, config, steps, tmp_path, lr=3e-3):
    torch.manual_seed(0)
    x, y = (np.asarray(a) for a in zoo.load_data("digits_cnn", "train"))
    xt = np.asarray(zoo.load_data("digits_cnn", "test")[0])
    qat = QatProcessor(model, (torch.from_numpy(x[:1]),), config=config, log=None)
    qm = qat.trainable_model()
    opt = torch.optim.Adam(qm.parameters(), lr=lr)
    qm.train()
    for i in range(steps):
        xb, yb = x[64 * i:64 * i + 64], y[64 * i:64 * i + 64]
        loss = F.cross_entropy(qm(torch.from_numpy(xb)), torch.from_numpy(yb))
        opt.zero_grad()
        loss.backward()
        opt.step()
    qm.eval()
    qat.to_deployable(qm, tmp_path)
    with torch.no_grad():
        trained = qm(torch.from_numpy(xt)).numpy()
    deployed = qat.quantizer().quant_model(torch.from_numpy(xt)).numpy()
    return qat, qm, trained, deployed


def test_qat_forward_applies_the_dpu_rules_bit_for_bit(tmp_path):
    qat, qm, trained, deployed = _train_and_compare(_Mixed(), {"convert_relu6_to_relu": False}, 20, tmp_path)
    np.testing.assert_array_equal(trained, deployed)
    # the rules did move positions here (so the test exercises them): the ReLU6 group's output is at 4
    raw = {k: q.fix_pos() for k, q in qm.quant.items()}
    legal = qm.legal_fix_positions()
    assert any(raw[k] != legal[k] for k in raw)
    info = json.loads((tmp_path / "quant_info.json").read_text())
    by_name = {qat._names[v.op]: legal[key] for v, key in qm._pt_key.items()}
    for name, fp in by_name.items():            # quant_info.json holds exactly the positions the forward used
        assert info["output"][f"{qat.name}::{name}"][0][1] == fp, name


class _PadUpsample(nn.Module):
    """Zero padding of the network input and a nearest 2x upsample: both keep their input's fix position."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2, self.fc = nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3), nn.Linear(4, 10)

    def forward(self, x):
        x = torch.relu(self.c1(F.pad(x, (1, 1, 1, 1))))
        x = torch.relu(self.c2(F.interpolate(x, scale_factor=2, mode="nearest")))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def test_qat_pad_and_upsample_keep_their_input_position(tmp_path):
    qat, qm, trained, deployed = _train_and_compare(_PadUpsample(), None, 10, tmp_path)
    np.testing.assert_array_equal(trained, deployed)
    legal = qm.legal_fix_positions()
    pad = next(k for v, k in qm._pt_key.items() if v.op.name == "graph.pad")
    assert legal[pad] == legal["in0"]


@pytest.mark.parametrize("name, bits", [("digits_cnn", 8), ("tiny_mobilenet", 4)])
def test_qat_digits_models_match_test_mode(tmp_path, name, bits):
    config = {"tensor_quantize_config": {"weights": {"bit_width": bits}}}
    _, _, trained, deployed = _train_and_compare(zoo.get_model(name), config, 6, tmp_path)
    np.testing.assert_array_equal(trained, deployed)
