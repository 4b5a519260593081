"""fixflow-xir: every command in-process, errors, and one real subprocess run."""

import hashlib
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from google.protobuf import text_format

from fixflow.backends.xmodel import write_xmodel, xmodel_bytes
from fixflow.backends.xmodel.samples import DPU_FINGERPRINT, sample_dpu_graph, sample_graph
from fixflow.backends.xmodel.schema import messages
from fixflow.tools.xir import main


@pytest.fixture()
def dpu_file(tmp_path):
    p = tmp_path / "dpu.xmodel"
    write_xmodel(sample_dpu_graph(), p)
    return p


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_dump_txt_summarises_bytes(capsys, dpu_file, tmp_path):
    code, out, err = run(capsys, "dump_txt", dpu_file)
    assert code == 0 and err == ""
    params = sample_dpu_graph().root.find("subgraph_conv").attr("reg_id_to_parameter_value")["REG_0"]
    assert f"value: bytes = 768 md5sum = {hashlib.md5(params).hexdigest()}" in out
    assert "00000000: 0001 0203 0405" in out and "00000090: f0f1 f2f3" in out  # head, tail (AMD's xxd)
    assert 'dpu_name' in out and f"uint64_value: {DPU_FINGERPRINT}" in out
    assert "\\001" not in out and "\\x" not in out  # never a raw blob
    code, out2, _ = run(capsys, "dump_txt", dpu_file, tmp_path / "out.txt")
    assert code == 0 and out2 == "" and (tmp_path / "out.txt").read_text() == out


def test_dump_txt_is_protobuf_text_format(capsys, tmp_path):
    """Without bytes fields the dump parses back (protobuf's own text parser) to the same message."""
    g = sample_graph()
    for o in g.ops:
        o.attrs.pop("data", None)
    p = tmp_path / "nobytes.xmodel"
    data = xmodel_bytes(g)
    p.write_bytes(data)
    code, out, _ = run(capsys, "dump_txt", p)
    assert code == 0
    parsed = text_format.Parse(out, messages()["Graph"]())
    assert parsed.SerializeToString(deterministic=True) == data


def test_subgraph_tree(capsys, dpu_file):
    code, out, _ = run(capsys, "subgraph", dpu_file)
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == "root"
    assert lines[1] == "    subgraph_input [device=USER]"
    assert lines[2] == ("    subgraph_conv [device=DPU,fingerprint=0x101000056010407,DPU=DPUCZDX8G_ISA1_B4096,"
                        "I=[xir_tensor{input:(1,8,8,1), fixpos=7 # of elements= 64}],"
                        "O=[xir_tensor{flatten:(1,64), fixpos=4 # of elements= 64}]]")
    assert lines[3:5] == ["        subgraph_conv__super0", "        subgraph_conv__super1"]
    assert lines[5] == "    subgraph_softmax [device=CPU]"
    assert len(lines) == 6


def test_dump_bin(capsys, dpu_file, tmp_path):
    out_dir = tmp_path / "bin"
    code, out, _ = run(capsys, "dump_bin", dpu_file, out_dir)
    assert code == 0
    g = sample_dpu_graph()
    dpu = g.root.find("subgraph_conv")
    assert (out_dir / "subgraph_conv.mc").read_bytes() == dpu.attr("mc_code")
    assert (out_dir / "subgraph_conv.ac").read_text().splitlines() == dpu.attr("ac_code")
    assert (out_dir / "subgraph_conv__super1.mc").read_bytes() == bytes([5, 6, 7, 8] * 4)
    assert (out_dir / "REG_0.bin").read_bytes() == dpu.attr("reg_id_to_parameter_value")["REG_0"]
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        ["subgraph_conv.mc", "subgraph_conv.ac", "subgraph_conv__super0.mc", "subgraph_conv__super0.ac",
         "subgraph_conv__super1.mc", "subgraph_conv__super1.ac", "REG_0.bin"])
    assert f"dump to {out_dir}/REG_0.bin from subgraph subgraph_conv" in out
    assert f"dump mc code to {out_dir}/subgraph_conv.mc" in out


def test_dump_reg(capsys, dpu_file):
    code, out, _ = run(capsys, "dump_reg", dpu_file)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "    subgraph_conv"
    assert lines[1:6] == ["        reg_id_to_context_type:", "        REG_0 => CONST", "        REG_1 => DATA",
                          "        REG_2 => DATA", "        reg_id_to_context_type_v2:"]
    assert "        REG_0 => 768 bytes md5sum= " + hashlib.md5(bytes(range(256)) * 3).hexdigest() in lines
    assert lines[-4:] == ["        REG_0 => 768", "        REG_1 => 4096", "        REG_2 => 64", ""]


def test_graph_listing(capsys, dpu_file):
    code, out, _ = run(capsys, "graph", dpu_file)
    assert code == 0
    assert out.splitlines() == ['"files_md5sum" = {', '\t"net.py" = ' + "0" * 32, "}", '"origin" = fixflow']
    code, out, _ = run(capsys, "graph", "--ops", dpu_file)
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["op", "type", "output", "inputs"]
    conv = next(l for l in lines if l.startswith("conv "))
    assert conv.split() == ["conv", "conv2d-fix", "XINT8[1,8,8,4]", "input=input;",
                            "weights=conv/weights;", "bias=conv/bias"]
    assert len(lines) == 1 + len(sample_dpu_graph().ops)


def test_svg(capsys, dpu_file, tmp_path):
    out = tmp_path / "g.svg"
    assert run(capsys, "svg", "--no-dot", dpu_file, out)[0] == 0
    root = ET.parse(out).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    g = sample_dpu_graph()
    titles = [t.text for t in root.iter(f"{ns}title")]
    assert titles == [g.name] + [o.name for o in g.ops]
    lines = list(root.iter(f"{ns}line"))
    assert len(lines) == sum(len(o.input_ops()) for o in g.ops)
    assert all(float(l.get("y2")) > float(l.get("y1")) for l in lines)  # edges point down
    rects = [(float(r.get("x")), float(r.get("y")), float(r.get("width"))) for r in root.iter(f"{ns}rect")]
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            assert a[1] != b[1] or abs(a[0] - b[0]) >= a[2]  # same row: no overlap


def test_dot(capsys, dpu_file, tmp_path):
    out = tmp_path / "g.dot"
    assert run(capsys, "dot", dpu_file, out)[0] == 0
    text = out.read_text()
    g = sample_dpu_graph()
    ix = {o.name: i for i, o in enumerate(g.ops)}
    assert text.startswith("digraph G0 {")
    assert f"{ix['conv/weights']}->{ix['conv']} ;" in text
    assert text.count("->") == 6
    assert f'{ix["conv"]} [label="Name: conv\\nType: conv2d-fix\\nTensor: conv\\nShape: {{1, 8, 8, 4}}"];' in text
    assert 'label="subgraph_conv__super0";' in text and "color=blue" in text and "color=red" in text


@pytest.mark.parametrize("argv,expect", [
    (["graph", "{tmp}/missing.xmodel"], "missing.xmodel: cannot read: No such file or directory"),
    (["subgraph", "{tmp}/junk.xmodel"], "junk.xmodel: not a valid xmodel:"),
    (["dump_txt", "{tmp}/junk.xmodel"], "junk.xmodel: not a valid xmodel:"),
    (["bogus"], "invalid choice: 'bogus'"),
    ([], "required"),
    (["svg", "{tmp}/missing.xmodel"], "missing.xmodel: cannot read"),
    (["svg", "--no-dot", "{tmp}/dpu.xmodel", "{tmp}/no/dir/x.svg"], "x.svg: cannot write"),
    (["png", "{tmp}/dpu.xmodel", "{tmp}/no/dir/x.png"], "x.png: cannot write"),
])
def test_errors(capsys, dpu_file, tmp_path, argv, expect):
    (tmp_path / "junk.xmodel").write_bytes(b"\x00\x01garbage")
    code, out, err = run(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert code == 1 and out == ""
    assert err.startswith("error: ") and expect in err and err.count("\n") == 1
    assert "Traceback" not in err


def test_help(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "dump_txt" in out and "dump_bin" in out


def test_subprocess(dpu_file, tmp_path):
    ok = subprocess.run([sys.executable, "-m", "fixflow.tools.xir", "subgraph", str(dpu_file)],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "fingerprint=0x101000056010407" in ok.stdout
    bad = tmp_path / "bad.xmodel"
    bad.write_bytes(dpu_file.read_bytes()[:100])
    r = subprocess.run([sys.executable, "-m", "fixflow.tools.xir", "graph", str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith(f"error: {bad}: not a valid xmodel: truncated protobuf")
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1
