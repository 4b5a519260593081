"""A conv left in float between quantized convs: the compiler places the float conv and the transposes around it
(the _int.xmodel's NHWC conv2d, read back as transpose / graph.conv2d / transpose) on the CPU and writes them as
XIR's float `transpose` (with `order`) and float NHWC `conv2d`, as the _int.xmodel has them; the compiled model runs
as test mode computes it. The inspector's row of the float conv names the layer and the config's reason."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fixflow.quantizer import Quantizer

G = torch.Generator().manual_seed(3)
X = torch.rand((16, 3, 12, 12), generator=G)
XT = torch.rand((4, 3, 12, 12), generator=G)
CFG = {"layer_quantize_config": [{"layer_type": None, "layer_name": "mid", "quantizable_data_type": []}]}


class Sandwich(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.mid = nn.Conv2d(8, 6, 3, stride=2, padding=1)
        self.b = nn.Conv2d(6, 5, 1)

    def forward(self, x):
        return self.b(torch.relu(self.mid(torch.relu(self.a(x)))))


def _quantized(tmp_path):
    out = tmp_path / "q"
    q = Quantizer(Sandwich().eval(), (X[:1],), mode="calib", output_dir=out, log=None, progress=False, config=CFG)
    q.quant_model(X)
    q.export_quant_config()
    return Quantizer(Sandwich().eval(), (X[:1],), mode="test", output_dir=out, log=None, progress=False, config=CFG)


def test_a_conv_left_in_float_compiles_to_xir_float_transposes_and_runs_as_test_mode(tmp_path):
    from fixflow.backends.xmodel import read_xmodel
    from fixflow.tools import compile as compile_tool
    from fixflow.tools import run as run_tool
    qt = _quantized(tmp_path)
    yt = np.asarray(qt.quant_model(XT))
    xmodel = qt.export_xmodel()
    assert compile_tool.main(["-x", str(xmodel), "-a", "kv260", "-o", str(tmp_path / "c"), "-n", "net"]) == 0
    g = read_xmodel(tmp_path / "c" / "net.xmodel")
    conv = next(o for o in g.ops if o.type == "conv2d")
    assert conv.name == "mid" and conv.attr("device") == "CPU" and conv.output.data_type == "FLOAT32"
    assert len(conv.output.shape) == 4 and conv.output.shape[-1] == 6        # XIR's conv2d: NHWC
    transposes = [o for o in g.ops if o.type == "transpose"]
    assert transposes and all(o.attr("device") == "CPU" and o.output.data_type == "FLOAT32" for o in transposes)
    # as in the _int.xmodel: NCHW -> NHWC, the NHWC conv, NHWC -> NCHW (the reader's transposes around its NCHW
    # graph.conv2d are folded away)
    assert [(o.name, tuple(o.attr("order"))) for o in transposes] == [("mid_nhwc", (0, 2, 3, 1)),
                                                                        ("mid_nchw", (0, 3, 1, 2))]
    assert conv.inputs["input"] == ["mid_nhwc"] and transposes[1].inputs["input"] == ["mid"]
    for t in transposes:                           # each output's shape is its input's permuted by `order`
        src = next(o for o in g.ops if o.name == t.inputs["input"][0])
        assert list(t.output.shape) == [src.output.shape[p] for p in t.attr("order")]
    np.save(tmp_path / "x.npy", XT.numpy())
    assert run_tool.main([str(tmp_path / "c" / "net.xmodel"), "--input", str(tmp_path / "x.npy"), "--no-progress",
                          "-o", str(tmp_path / "dpu.npz")]) == 0
    with np.load(tmp_path / "dpu.npz") as z:
        yd = z[z.files[0]]
    # the quantized convs are exact; the float conv's sums may be ordered otherwise than test mode's, and the
    # requantization after it can then round one step apart at a tie: compare to a step of the output grid
    step = float(np.min(np.diff(np.unique(yt))))
    assert yd.shape == yt.shape and np.max(np.abs(yd - yt)) <= step + 1e-6
    assert np.mean(yd == yt) > 0.99


def _rows(r):
    return {o.name: o for o in r.ops}


def test_the_inspector_names_the_float_conv_and_why_from_the_model_and_from_the_int_xmodel(tmp_path):
    """The read-back float conv's row is the layer ('mid', kind graph.conv2d, CPU) with the config's reason, whether
    the inspector quantizes the model itself or reads the _int.xmodel; it reads the _int.xmodel's transposes, and the
    quantized convs stay on the DPU."""
    from fixflow.quantizer.inspector import Inspector
    why = "left in float by the quant config (layer_quantize_config[0]: layer 'Sandwich::mid')"
    insp = Inspector("DPUCZDX8G_ISA1_B4096")
    from_model = insp.inspect(Sandwich().eval(), (X[:4],), config=CFG)
    from_file = insp.inspect(_quantized(tmp_path).export_xmodel())
    for r in (from_model, from_file):
        rows = _rows(r)
        conv = next(o for o in r.ops if o.kind == "graph.conv2d")
        assert conv.name == "mid" and conv.device == "CPU" and why in conv.reason, conv
        # the reader's transposes around its NCHW graph.conv2d are not in the compiled model: no rows
        assert not {"mid_to_nchw", "mid_to_nhwc"} & set(rows)
        assert conv.inputs[0] == "mid_nhwc" and rows["mid_nchw"].inputs == ["mid"]
        assert rows["mid_nhwc"].kind == rows["mid_nchw"].kind == "graph.transpose"
        assert [o.device for o in r.ops if o.kind == "fix.conv2d"] == ["DPU", "DPU"] and r.compile_error is None


def test_a_float_conv_compiled_from_the_fix_module_is_written_between_its_transposes(tmp_path):
    """Compiled straight from the quantizer's fix module (no _int.xmodel round trip), the float graph.conv2d is one op
    written as three XIR ops (transpose, NHWC conv2d, transpose), all in its CPU subgraph; the written model runs as
    test mode computes it."""
    from _dpu_testlib import compile_module

    from fixflow.backends.xmodel.dpu_emit import emit_compiled
    from fixflow.backends.xmodel.vaic import write_compiler_outputs
    from fixflow.runtime import GraphRunner
    qt = _quantized(tmp_path)
    yt = np.asarray(qt.quant_model(XT))
    m = qt.fix_module.clone()
    compile_module(m, "DPUCZDX8G_ISA1_B4096")
    cm = emit_compiled(m, "net")
    cpu = next(s for s in cm.subgraphs if s.device == "CPU" and "mid" in s.op_names)
    names = [n for n in cpu.op_names if cm.op(n).type in ("transpose", "conv2d")]
    assert names == ["mid_nhwc", "mid", "mid_nchw"]
    assert [cm.op(n).type for n in names] == ["transpose", "conv2d", "transpose"]
    assert cm.op("mid").inputs["input"] == ["mid_nhwc"] and cm.op("mid_nchw").inputs["input"] == ["mid"]
    write_compiler_outputs(cm, tmp_path / "c", "net")
    yd = GraphRunner.from_xmodel(tmp_path / "c" / "net.xmodel").run([XT.numpy()])[0]
    step = float(np.min(np.diff(np.unique(yt))))
    assert yd.shape == yt.shape and np.max(np.abs(yd - yt)) <= step + 1e-6
    assert np.mean(yd == yt) > 0.99
