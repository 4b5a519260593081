"""The Inspector: its placement equals the partition of the really quantized and compiled model (the
Quantizer's files, the _int.xmodel, fixflow-compile), CPU reasons name the hardware limit, outputs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from fixflow.backends.xmodel.compiled import DpuSubgraph
from fixflow.quantizer import Quantizer
from fixflow.quantizer.inspector import Inspector, InspectorError
from fixflow.tools.compile import compile_module, load_input, parse_options
from fixflow.zoo import get_model, sample_inputs

B512, B1024, B4096 = "DPUCZDX8G_ISA1_B512", "DPUCZDX8G_ISA1_B1024", "DPUCZDX8G_ISA1_B4096"


class CpuOpsNet(nn.Module):
    """DPU -> CPU (sigmoid) -> DPU -> CPU (kernel 17, hard-swish, stride 9) -> DPU."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.big = nn.Conv2d(8, 8, 17, padding=8)
        self.hsw = nn.Hardswish()
        self.far = nn.Conv2d(8, 8, 1, stride=9)
        self.conv3 = nn.Conv2d(8, 4, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        x = torch.sigmoid(torch.relu(self.conv1(x)))
        x = self.hsw(self.big(self.conv2(x)))
        return self.pool(torch.relu(self.conv3(self.far(x))))


class WideNet(nn.Module):
    """A 5x5 conv over 720 channels: 25 * ceil(720 / ICP) weight-bank lines, 2250 on B512 (ICP 8) > 2048,
    1125 on B4096 (ICP 16)."""

    def __init__(self):
        super().__init__()
        self.expand = nn.Conv2d(3, 720, 1)
        self.wide = nn.Conv2d(720, 8, 5, padding=2)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return self.pool(self.wide(torch.relu(self.expand(x))))


def _seeded(cls):
    torch.manual_seed(0)
    return cls().eval()


def real_flow(model, calib: np.ndarray, tmp_path, target: str):
    """What a user does: calibrate (calib mode), test mode + export_xmodel, fixflow-compile the _int.xmodel.
    Returns ({op: (device, subgraph, super-layer)}, {op: CPU reason}, quant_dir, xmodel path)."""
    qdir = tmp_path / "q"
    x = torch.from_numpy(calib)
    q = Quantizer(model, (x[:1],), mode="calib", output_dir=qdir, log=None, progress=False)
    for i in range(0, len(x), 8):
        q.quant_model(x[i:i + 8])
    q.export_quant_config()
    q = Quantizer(model, (x[:1],), mode="test", output_dir=qdir, log=None, progress=False)
    path = q.export_xmodel()
    from fixflow.target import get_target
    module = load_input(str(path))
    m, _, _ = compile_module(module, get_target(target), "net", str(tmp_path / "c"), parse_options(None),
                             progress=False)
    place: dict[str, tuple] = {}
    for s in m.subgraphs:
        if isinstance(s, DpuSubgraph):
            for c in s.children:
                if c.kind in ("code", "skip"):
                    for n in c.op_names:
                        place.setdefault(n.removesuffix("(TransferMatMulToConv2d)"), ("DPU", s.name, c.name))
        else:
            for n in s.op_names:
                place[n] = (s.device, s.name, None)
    func = next(op for op in module.regions[0].blocks[0].ops if op.name == "func.func")
    reasons, kinds = {}, {}
    for op in func.regions[0].blocks[0].ops:
        if op.name in ("func.return", "fix.const"):
            continue
        kinds[op.location.name] = op.name
        if "dpu.reason" in op.attributes:
            reasons[op.location.name] = op.attributes["dpu.reason"].value
    return place, reasons, kinds, qdir, path


def assert_same_placement(result, place, reasons, kinds, *, check_reasons=True):
    got = result.placement()
    assert set(got) == set(kinds), (set(got) ^ set(kinds))
    for name, (dev, sg, layer) in got.items():
        if name in place:
            assert (dev, sg, layer) == place[name], name
        else:      # the flatten before a dense: no op of its own in the compiled xmodel, it joins the dense
            assert kinds[name] == "fix.reshape" and dev == "DPU" and layer is not None, name
    if check_reasons:
        expected = {n: r for n, r in reasons.items() if place.get(n, ("",))[0] == "CPU"}
        got = {o.name: o.reason for o in result.ops if o.device == "CPU"}
        assert set(got) == set(expected)
        for n, r in got.items():      # a float op's reason is led by why the quantizer kept it float
            assert r == expected[n] or r.endswith(": " + expected[n]), (r, expected[n])


@pytest.mark.parametrize("zoo, target", [
    ("digits_cnn", "kv260"),
    pytest.param("tiny_mobilenet", B512, marks=pytest.mark.slow),
])
def test_zoo_placement_equals_the_compiled_model(zoo, target, tmp_path):
    model = get_model(zoo)
    calib = sample_inputs(zoo, 32, seed=1)
    place, reasons, kinds, qdir, xmodel = real_flow(model, calib, tmp_path, "DPUCZDX8G_ISA1_B4096" if target == "kv260"
                                                    else target)
    insp = Inspector(target)
    # quick calibration on 4 other example inputs: the same placement (no decision here depends on fix positions)
    quick = insp.inspect(model, (torch.from_numpy(sample_inputs(zoo, 4, seed=7)),))
    assert quick.compile_error is None
    assert_same_placement(quick, place, reasons, kinds)
    assert "calibrated on the 4 example input(s)" in quick.fix_positions
    # with the real calibration's quant_info.json, and on the _int.xmodel itself: identical
    exact = insp.inspect(model, (torch.from_numpy(calib[:1]),), quant_dir=qdir)
    assert_same_placement(exact, place, reasons, kinds)
    assert exact.placement() == quick.placement()
    assert insp.inspect(str(xmodel)).placement() == exact.placement()
    dpu = [o for o in exact.ops if o.device == "DPU"]
    assert dpu and all(o.source and "fixflow/zoo/models.py:" in o.source for o in dpu)


def test_cpu_ops_model_placement_equals_the_compiled_model(tmp_path):
    model = _seeded(CpuOpsNet)
    calib = np.random.default_rng(0).standard_normal((16, 3, 18, 18)).astype(np.float32)
    place, reasons, kinds, qdir, xmodel = real_flow(model, calib, tmp_path, B1024)
    result = Inspector(B1024).inspect(model, (torch.from_numpy(calib),), quant_dir=qdir)
    assert result.compile_error is None
    assert_same_placement(result, place, reasons, kinds)
    quick = Inspector(B1024).inspect(model, (torch.from_numpy(calib[:2]),))
    assert_same_placement(quick, place, reasons, kinds)
    assert sum(s["device"] == "DPU" for s in result.subgraphs) == 3
    assert Inspector(B1024).inspect(xmodel).placement() == result.placement()


def test_reasons_name_the_hardware_limit():
    model = _seeded(CpuOpsNet)
    r = Inspector(B4096).inspect(model, (torch.randn(2, 3, 18, 18),))
    by_path = {o.module_path or o.name: o for o in r.ops if o.kind != "fix.fix" and o.kind != "fix.float"}
    assert by_path["big"].device == "CPU" and "kernel 17x17 is outside the conv engine's 1-16" in by_path["big"].reason
    assert by_path["far"].device == "CPU" and "stride 9x9 is outside the conv engine's 1-8" in by_path["far"].reason
    assert by_path["hsw"].device == "CPU" and "hard-swish" in by_path["hsw"].reason
    sig = next(o for o in r.ops if o.kind == "graph.sigmoid")
    assert sig.device == "CPU" and "sigmoid is not supported by the DPU" in sig.reason
    assert sig.source.endswith(f"test_inspector.py:{_line_of('torch.sigmoid(torch.relu')}:{sig.source.split(':')[-1]}")
    conv1 = next(o for o in r.ops if o.module_path == "conv1")
    assert conv1.device == "DPU" and conv1.reason is None
    assert conv1.user_ops == ["conv1 (conv2d)", "relu (relu fused)"]     # the relu joined conv1's super-layer
    assert conv1.super_layer is not None
    text = r.text()
    assert "Ops assigned to the CPU" in text and "kernel 17x17" in text and "stride 9x9" in text


def _line_of(snippet: str) -> int:
    with open(__file__) as f:
        return next(i for i, line in enumerate(f, 1) if snippet in line and "def " not in line and "_line_of" not in line)


def test_weight_bank_limit_b512_but_not_b4096():
    model = _seeded(WideNet)
    x = (torch.randn(2, 3, 8, 8),)
    small = Inspector(B512).inspect(model, x).op("wide")
    big = Inspector(B4096).inspect(model, x).op("wide")
    assert small.device == "CPU" and "5x5x720 weights need 2250 lines of a weight bank (depth 2048)" in small.reason
    assert big.device == "DPU" and big.reason is None and big.super_layer == "subgraph_wide"


def test_fix_level_module_and_mlir_file(tmp_path):
    from fixflow.ir import print_module
    model = get_model("digits_cnn")
    x = torch.from_numpy(sample_inputs("digits_cnn", 8))
    q = Quantizer(model, (x[:1],), mode="calib", output_dir=tmp_path, log=None, progress=False)
    q.quant_model(x)
    q.export_quant_config()
    q = Quantizer(model, (x[:1],), mode="test", output_dir=tmp_path, log=None, progress=False)
    before = print_module(q.fix_module)
    r = Inspector(B1024).inspect(q.fix_module)
    assert print_module(q.fix_module) == before              # the user's module is not changed
    assert r.op("features_0_2").source.endswith("fixflow/zoo/models.py:57:13")
    assert r.placement() == Inspector(B1024).inspect(model, (x[:1],), quant_dir=tmp_path).placement()
    path = tmp_path / "net_fix.mlir"
    path.write_text(print_module(q.fix_module, print_locations=True))
    from_file = Inspector(B1024).inspect(str(path))
    assert [(o.kind, o.device, o.super_layer is None) for o in from_file.ops] == [
        (o.kind, o.device, o.super_layer is None) for o in r.ops]   # names of a .mlir are its value names
    assert from_file.op("features_0_2").module_path == "features.0.0"


def test_outputs_json_dot_svg_and_write(tmp_path):
    r = Inspector("kv260").inspect(get_model("digits_cnn"), (torch.from_numpy(sample_inputs("digits_cnn", 2)),))
    d = json.loads(r.json())
    assert d["target"] == B4096 and d["summary"]["dpu_subgraphs"] == 1
    assert {o["name"]: o["device"] for o in d["ops"]} == {o.name: o.device for o in r.ops}
    dot = r.dot()
    assert dot.count('fillcolor="#a6d96a"') == sum(o.device == "DPU" for o in r.ops)
    assert dot.count('fillcolor="#fdae61"') == sum(o.device == "CPU" for o in r.ops)
    assert "cluster_" in dot and "->" in dot
    if shutil.which("dot"):
        paths = r.write(tmp_path / "out", image_format="svg")
        assert paths["svg"].read_text().lstrip().startswith("<?xml") and "<svg" in paths["svg"].read_text()
        assert paths["txt"].name == f"inspect_{B4096}.txt"
    paths = r.write(tmp_path / "out2", image_format=None)
    assert sorted(p.suffix for p in paths.values()) == [".dot", ".json", ".txt"]


def test_svg_without_graphviz_is_one_clear_error(monkeypatch):
    import fixflow.quantizer.inspector as mod
    r = Inspector().inspect(get_model("digits_cnn"), (torch.from_numpy(sample_inputs("digits_cnn", 1)),))
    monkeypatch.setattr(mod.shutil, "which", lambda name: None)
    with pytest.raises(InspectorError, match="Graphviz's 'dot' program is not installed"):
        r.svg()


def test_errors(tmp_path):
    insp = Inspector()
    with pytest.raises(InspectorError, match="needs example_inputs"):
        insp.inspect(get_model("digits_cnn"))
    with pytest.raises(InspectorError, match="no such file"):
        insp.inspect(str(tmp_path / "missing_int.xmodel"))
    with pytest.raises(InspectorError, match="cannot inspect a int"):
        insp.inspect(3)
    from fixflow.frontends.torch import import_module
    from fixflow.ir import print_module
    p = tmp_path / "float.mlir"
    p.write_text(print_module(import_module(get_model("digits_cnn"), (torch.zeros(1, 1, 28, 28),))))
    with pytest.raises(InspectorError, match="not quantized .* float graph-level module"):
        insp.inspect(str(p))


class AllCpuNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.big = nn.Conv2d(3, 4, 17, padding=8)

    def forward(self, x):
        return torch.sigmoid(self.big(x))


def test_nothing_on_the_dpu_is_reported_with_the_placement(tmp_path):
    model = _seeded(AllCpuNet)
    x = torch.randn(2, 3, 18, 18)
    r = Inspector(B4096).inspect(model, (x,))
    assert r.compile_error == "nothing runs on the DPU: every layer was placed on the CPU"
    assert r.op("big").device == "CPU" and "kernel 17x17" in r.op("big").reason
    assert "the compile after partitioning fails: nothing runs on the DPU" in r.text()
    # fixflow-compile fails on it too (today with emission's "the module has no dpu.program")
    from fixflow.ir.diagnostics import FixflowError
    with pytest.raises(FixflowError, match="nothing runs on the DPU|has no dpu.program"):
        real_flow(model, x.numpy(), tmp_path, B4096)


class CpuFlattenNet(nn.Module):
    """A DPU fully connected layer reading the flatten of a CPU op's output (hard-swish)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.hsw = nn.Hardswish()
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.hsw(self.conv(x)), 1))


def test_compile_outcome_is_the_real_one(tmp_path):
    """Whether the compile after partitioning succeeds, and its error when it does not, are the real flow's."""
    from fixflow.ir.diagnostics import FixflowError
    model = _seeded(CpuFlattenNet)
    x = np.random.default_rng(0).standard_normal((8, 3, 8, 8)).astype(np.float32)
    result = Inspector(B512).inspect(model, (torch.from_numpy(x),))
    try:
        place, reasons, kinds, _, _ = real_flow(model, x, tmp_path, B512)
    except FixflowError as e:
        assert result.compile_error == " ".join(str(e.message).split())
    else:
        assert result.compile_error is None
        assert_same_placement(result, place, reasons, kinds)
    assert result.op("hsw").device == "CPU" and result.op("fc").device == "DPU"
