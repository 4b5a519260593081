"""The Quantizer prepares the graph with a verified pass pipeline whose IR users can print."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from fixflow.quantizer import Quantizer


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU6()
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.drop(self.act(self.bn(self.conv(x)))), 1))


def _q(tmp_path, **kw):
    return Quantizer(Net().eval(), (torch.zeros(1, 1, 8, 8),), mode="float", output_dir=tmp_path, log=None,
                     progress=False, **kw)


@pytest.mark.parametrize("config,expected", [
    ({}, "builtin.module(fold-bn,remove-dropout,equalize,ensure-biases)"),
    ({"include_cle": False}, "builtin.module(fold-bn,remove-dropout,ensure-biases)"),
    ({"include_cle": False, "convert_relu6_to_relu": True},
     "builtin.module(fold-bn,remove-dropout,relu6-to-relu,ensure-biases)"),
    ({"include_cle": True, "convert_relu6_to_relu": True},
     "builtin.module(fold-bn,remove-dropout,relu6-to-relu,equalize,ensure-biases)"),
])
def test_preparation_is_a_pipeline_chosen_by_the_config(tmp_path, config, expected):
    q = _q(tmp_path, config=config)
    assert q.preparation_pipeline() == expected
    names = {op.name for op in q.module.walk()}
    assert "graph.batch_norm" not in names and "graph.dropout" not in names
    assert ("graph.relu6" in names) != bool(config.get("convert_relu6_to_relu"))
    conv = next(op for op in q.module.walk() if op.name == "graph.conv2d")
    assert conv.bias is not None  # ensure-biases ran


def test_print_ir_after_all(tmp_path, capsys):
    _q(tmp_path, config={"include_cle": False, "convert_relu6_to_relu": True}, print_ir_after_all=True)
    err = capsys.readouterr().err
    dumps = [line for line in err.splitlines() if line.startswith("// -----// IR Dump After")]
    assert dumps == [f"// -----// IR Dump After {p} //----- //"
                     for p in ("fold-bn", "remove-dropout", "relu6-to-relu", "ensure-biases")]
    assert '"graph.relu"' in err.split("IR Dump After relu6-to-relu")[1]
