"""`fixflow-profile` on AMD's compiled MNIST: every format, boards, host timing, user errors."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fixflow.tools.profile import main

MNIST = Path(__file__).resolve().parents[3] / "shared" / "reference" / "amd-compiled-mnist" / "dpu_mnist_classifier.xmodel"
LAYERS = ["subgraph_quant_conv2d", "subgraph_quant_dense(TransferMatMulToConv2d)",
          "subgraph_quant_dense_1(TransferMatMulToConv2d)"]


def test_table(capsys):
    assert main([str(MNIST), "--board", "kv260"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fixflow-profile: mnist_classifier on kv260 (1 x DPUCZDX8G_ISA1_B4096 @ 300 MHz")
    for name in LAYERS:
        assert name in out
    head = next(line for line in out.splitlines() if line.startswith("Name"))
    for col in ("Type", "Workload(GOP)", "Cycles", "Time(ms)", "% of total", "Utilization(%)", "DDR(MB)"):
        assert col in head


def test_csv_to_file_and_zcu102(tmp_path):
    out = tmp_path / "p.csv"
    assert main([str(MNIST), "--board", "ZCU102", "--format", "csv", "-o", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["name"] for r in rows if r["device"] == "DPU" and r["type"] != "subgraph"][:3] == LAYERS
    assert all(float(r["ms"]) > 0 for r in rows if r["name"] in LAYERS)


def test_trace_html_json(tmp_path):
    t, h, j = tmp_path / "t.json", tmp_path / "r.html", tmp_path / "p.json"
    assert main([str(MNIST), "--format", "trace", "-o", str(t)]) == 0
    assert json.loads(t.read_text())["traceEvents"]
    assert main([str(MNIST), "--format", "html", "-o", str(h)]) == 0
    assert h.read_text().count('class="bar"') == 4
    assert main([str(MNIST), "--format", "json", "-o", str(j), "--board", "zcu104"]) == 0
    data = json.loads(j.read_text())
    assert data["machine"]["cores"] == 2 and data["throughput"]["threads"] == 2


def test_host_timing(capsys):
    assert main([str(MNIST), "--host", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "host (DPU interpreter, fast mode)" in out and "board (simulated)" in out
    assert "measured" in out


def test_ddr_latency_option(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main([str(MNIST), "--format", "json", "-o", str(a), "--ddr-latency-ns", "0"]) == 0
    assert main([str(MNIST), "--format", "json", "-o", str(b), "--ddr-latency-ns", "1000"]) == 0
    fast, slow = json.loads(a.read_text()), json.loads(b.read_text())
    assert fast["machine"]["ddr_latency_cycles"] == 0 and slow["machine"]["ddr_latency_cycles"] == 300
    assert fast["total"]["dpu_ms"] < slow["total"]["dpu_ms"]


@pytest.mark.parametrize("args, message", [
    (["missing.xmodel"], "error: missing.xmodel: cannot read: No such file or directory"),
    ([str(MNIST), "--board", "zcu999"], "error: unknown board 'zcu999'; fixflow knows zcu102, zcu104, kv260"),
    ([str(MNIST), "--format", "pdf"], "error: argument --format: invalid choice: 'pdf'"),
    ([str(MNIST), "--repeat", "0"], "error: --repeat must be at least 1, got 0"),
    ([str(MNIST), "--ddr-latency-ns", "-1"], "error: --ddr-latency-ns must not be negative, got -1.0"),
])
def test_user_errors(capsys, args, message):
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_not_an_xmodel(tmp_path, capsys):
    bad = tmp_path / "bad.xmodel"
    bad.write_bytes(b"\x0b\x0b\x0b")
    assert main([str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: ") and len(err.strip().splitlines()) == 1


def test_console_script_runs():
    r = subprocess.run([sys.executable, "-m", "fixflow.tools.profile", str(MNIST), "--format", "csv"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0 and r.stdout.startswith("subgraph,device,name,type,")


def test_mlir_after_the_dpu_passes(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from fixflow.ir import print_module
    from fixflow.ir.passes import PassManager
    from fixflow.quantizer import Quantizer
    from fixflow.zoo import get_model, load_digits
    model = get_model("digits_cnn").eval()
    x, _ = load_digits("train", size=28)
    example = (torch.zeros(1, 1, 28, 28),)
    q = Quantizer(model, example, mode="calib", output_dir=tmp_path, log=None, progress=False)
    q.quant_model(torch.from_numpy(x[:64]))
    q.export_quant_config()
    m = Quantizer(model, example, mode="test", output_dir=tmp_path, log=None, progress=False).fix_module
    PassManager.parse("partition{target=DPUCZDX8G_ISA1_B1024},allocate-ddr,lower-to-dpu,schedule-dpu").run(m)
    path = tmp_path / "cnn_dpu.mlir"
    path.write_text(print_module(m))
    assert main([str(path), "--board", "zcu104", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    layers = [r for r in rows if r["device"] == "DPU" and r["type"] != "subgraph"]
    assert [r["type"] for r in layers] == ["conv2d", "pool", "conv2d", "conv2d", "dense"]
    assert all(float(r["ms"]) > 0 and 0 < float(r["utilization_percent"]) <= 100 for r in layers)
    assert main([str(path), "--host"]) == 1
    assert capsys.readouterr().err.startswith("error: --host needs a compiled .xmodel")
    plain = tmp_path / "plain.mlir"
    plain.write_text('"builtin.module"() ({\n}) : () -> ()\n')
    assert main([str(plain)]) == 1
    assert "no dpu.program" in capsys.readouterr().err


def test_fixflow_compile_output_layers_match_the_compiler(tmp_path):
    """A release-mode xmodel from fixflow-compile: the layers the profiler finds in the stream are the
    compiler's own (the IR after schedule-dpu, where the compiler says which layer each instruction
    belongs to), cycle for cycle."""
    pytest.importorskip("torch")
    from fixflow.ir import parse_module
    from fixflow.runtime.profiler import profile_module, profile_xmodel
    from fixflow.tools.compile import main as compile_main
    from fixflow.tools.quantize import main as quantize_main
    q, c = tmp_path / "q", tmp_path / "c"
    for mode in ("calib", "test"):
        assert quantize_main(["--model", "digits_cnn", "--data", "digits", "--mode", mode, "--output-dir", str(q)]) == 0
    assert compile_main(["-x", str(q / "DigitsCNN_int.xmodel"), "-a", "kv260", "-o", str(c), "--no-progress",
                         "--options", '{"keep_ir": true}']) == 0
    from_xmodel = profile_xmodel(c / "DigitsCNN.xmodel", "kv260")
    ir = sorted((c / "ir").glob("*schedule-dpu.mlir"))[-1]
    from_ir = profile_module(parse_module(ir.read_text(), str(ir)), "kv260")
    (a,) = [s for s in from_xmodel["subgraphs"] if s["device"] == "DPU"]
    (b,) = [s for s in from_ir["subgraphs"] if s["device"] == "DPU"]
    assert a["cycles"] == b["cycles"]
    # a super-layer of the file holds one or more compiler layers (an on-chip chain: conv -> pool -> conv ->
    # conv is one child): the compiler's layers summed per child
    from fixflow.backends.xmodel.compiled import read_compiled
    (sg,) = read_compiled(c / "DigitsCNN.xmodel").dpu_subgraphs
    child = {n.removesuffix("(TransferMatMulToConv2d)"): ch.name for ch in sg.code_children if ch.kind == "code"
             for n in ch.op_names}
    assert all(L["name"] in child for L in b["layers"])
    for key in ("cycles", "ops_on_arch"):
        per_child: dict[str, float] = {}
        for L in b["layers"]:
            per_child[child[L["name"]]] = per_child.get(child[L["name"]], 0) + L[key]
        got = {L["name"]: L[key] for L in a["layers"] if L["instructions"]}
        assert got.keys() == per_child.keys()
        assert all(got[k] == pytest.approx(v, abs=1e-6) for k, v in per_child.items()), key
    assert len(b["layers"]) > len(per_child)          # digits' chain: several compiler layers in one child
