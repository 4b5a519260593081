"""fixflow-xir in AMD's formats, on AMD's compiled MNIST and on files written here."""

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fixflow.backends.mc import encode, parse_ac
from fixflow.backends.xmodel import XGraph, XOp, XSubgraph, XTensor, xmodel_bytes
from fixflow.backends.xmodel.amd_views import children_order
from fixflow.backends.xmodel.compiled import write_compiled
from fixflow.tools.xir import main

from _compiled_testlib import MNIST, build_model  # noqa: E402  (same folder)

# What AMD's own xir 3.5 prints for the MNIST file (built from amd/xir; see shared/tools/amd-reference).
AMD_MNIST_SUBGRAPH = """\
root
    subgraph_input_1 [device=USER]
    subgraph_quant_conv2d [device=DPU,fingerprint=0x101000056010407,DPU=DPUCZDX8G_ISA1_B4096,I=[TENSORS],O=[TENSORS]]
        subgraph_input_1_upload_0
        subgraph_quant_conv2d
        subgraph_quant_dense(TransferMatMulToConv2d)
        subgraph_quant_dense_1(TransferMatMulToConv2d)
        subgraph_quant_dense_1(TransferMatMulToConv2d)_inserted_fix_3_reshaped
        subgraph_quant_dense_1(TransferMatMulToConv2d)_inserted_fix_3_reshaped_download_0
    subgraph_quant_dense_1_softmax [device=CPU]
"""
AMD_MNIST_DUMP_REG = """\
    subgraph_quant_conv2d
        reg_id_to_context_type:
        REG_0 => CONST
        REG_1 => DATA
        REG_2 => DATA
        REG_3 => DATA
        reg_id_to_context_type_v2:
        REG_0 => CONST
        REG_1 => WORKSPACE
        REG_2 => INTERFACE
        REG_3 => INTERFACE
        reg_id_to_hw_segment:
        REG_0 => W0
        REG_1 => D0
        REG_2 => D0
        REG_3 => D0
        reg_id_to_parameter_value:
        REG_0 => 712704 bytes md5sum= 94c15707b16260f6cb9a9a682ddb56ba
        reg_id_to_size:
        REG_0 => 712704
        REG_1 => 5536
        REG_2 => 784
        REG_3 => 16

"""
# md5 of AMD's `xir dump_txt` output for MNIST with the memory address column of its hex dumps removed.
AMD_MNIST_DUMP_TXT_MD5 = "ba828cb870e94436be1e99bf4c8ea857"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _mask_tensors(text):
    return re.sub(r"(I|O)=\[[^\]]*\]", r"\1=[TENSORS]", text)


def test_subgraph_mnist_as_amd(capsys):
    code, out, err = run(capsys, "subgraph", MNIST)
    assert code == 0 and err == ""
    assert _mask_tensors(out) == AMD_MNIST_SUBGRAPH
    assert ("I=[xir_tensor{quant_input_1:(1,28,28,1), fixpos=6 # of elements= 784}],"
            "O=[xir_tensor{quant_dense_1_softmax_fix:(1,10), fixpos=2 # of elements= 10}]]") in out


def test_dump_reg_mnist_as_amd(capsys):
    code, out, _ = run(capsys, "dump_reg", MNIST)
    assert code == 0 and out == AMD_MNIST_DUMP_REG


def test_dump_txt_mnist_as_amd(capsys, tmp_path):
    code, _, _ = run(capsys, "dump_txt", MNIST, tmp_path / "m.txt")
    text = (tmp_path / "m.txt").read_text()
    assert code == 0 and hashlib.md5(text.encode()).hexdigest() == AMD_MNIST_DUMP_TXT_MD5
    assert "value: bytes = 4572 md5sum = 11f559efcb8f0148038d7c5035ae09bd" in text
    assert "00000000: 0040 1801 007c 0000 007c 0000 0000 0000" in text


def test_graph_mnist(capsys):
    code, out, _ = run(capsys, "graph", MNIST)
    lines = out.splitlines()
    assert code == 0 and '"origin" = tensorflow2' in lines
    assert lines[:3] == ['"files_md5sum" = {',
                         '\t"/tmp/mnist_classifier_DPUCZDX8G_ISA1_B4096_org.xmodel" = e5290cdbd2edc1eb81fdabf5f98d5db0',
                         '\t"/workspace/tf2_mnist_classifier_quantized.h5" = e85a0966b0ca718243d3a8f3ef4fef5a']


def test_dump_bin_mnist_writes_ac_that_assembles_to_mc(capsys, tmp_path):
    code, out, _ = run(capsys, "dump_bin", MNIST, tmp_path)
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "REG_0.bin", "subgraph_quant_conv2d.ac", "subgraph_quant_conv2d.mc"]
    mc = (tmp_path / "subgraph_quant_conv2d.mc").read_bytes()
    assert hashlib.md5(mc).hexdigest() == "11f559efcb8f0148038d7c5035ae09bd"
    assert hashlib.md5((tmp_path / "REG_0.bin").read_bytes()).hexdigest() == "94c15707b16260f6cb9a9a682ddb56ba"
    ac = (tmp_path / "subgraph_quant_conv2d.ac").read_text()
    assert len(ac.splitlines()) == 230 and ac.startswith("LOAD ")
    assert encode(parse_ac(ac, "subgraph_quant_conv2d.ac")) == mc
    assert out.splitlines() == [f"dump mc code to {tmp_path}/subgraph_quant_conv2d.mc",
                                f"dump ac code to {tmp_path}/subgraph_quant_conv2d.ac",
                                f"dump to {tmp_path}/REG_0.bin from subgraph subgraph_quant_conv2d"]


def test_dump_bin_bad_mc_is_one_error(capsys, tmp_path):
    m = build_model()
    m.dpu_subgraphs[0].ac_code = None
    m.dpu_subgraphs[0].mc_code = b"\xff\xff\xff\xff"
    write_compiled(m, tmp_path / "bad.xmodel")
    code, _, err = run(capsys, "dump_bin", tmp_path / "bad.xmodel", tmp_path / "out")
    assert code == 1 and "subgraph 'subgraph_conv_dpu': cannot write its .ac:" in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_built_model_views(capsys, tmp_path):
    write_compiled(build_model(), tmp_path / "t.xmodel")
    code, out, _ = run(capsys, "subgraph", tmp_path / "t.xmodel")
    assert out.splitlines() == [
        "root",
        "    subgraph_x [device=USER]",
        "    subgraph_conv_dpu [device=DPU,fingerprint=0x101000056010402,DPU=DPUCZDX8G_ISA1_B1024,"
        "I=[xir_tensor{x:(1,6,6,1), fixpos=7 # of elements= 36}],"
        "O=[xir_tensor{conv:(1,4,4,4), fixpos=4 # of elements= 64}]]",
        "        subgraph_x_upload_0",
        "        subgraph_conv",
        "        subgraph_conv_download_0",
        "    subgraph_y [device=CPU]"]
    code, out, _ = run(capsys, "check", tmp_path / "t.xmodel")
    assert code == 0 and "subgraph_conv_dpu: DPUCZDX8G_ISA1_B1024 (fingerprint 0x0101000056010402)" in out
    code, out, _ = run(capsys, "dump_bin", tmp_path / "t.xmodel", tmp_path / "bin")
    assert sorted(p.name for p in (tmp_path / "bin").iterdir()) == [
        "REG_0.bin", "subgraph_conv.ac", "subgraph_conv.mc", "subgraph_conv_dpu.ac", "subgraph_conv_dpu.mc"]
    assert (tmp_path / "bin" / "subgraph_conv.ac").read_text() == "END 0010 0000\n"


def test_dump_reg_needs_the_maps(capsys, tmp_path):
    g = build_model().to_xgraph()
    del g.root.find("subgraph_conv_dpu").attrs["reg_id_to_hw_segment"]
    (tmp_path / "x.xmodel").write_bytes(xmodel_bytes(g))
    code, _, err = run(capsys, "dump_reg", tmp_path / "x.xmodel")
    assert code == 1 and "dump_reg needs attribute 'reg_id_to_hw_segment' (map_string_2_string); it is missing" in err
    code, _, err = run(capsys, "check", tmp_path / "x.xmodel")
    assert code == 0  # optional for the reader (AMD's 2.5 files may lack it); required by dump_reg


def _chain_graph(names_and_deps):
    """One leaf child per (name, producer child names) with one op each."""
    ops, kids = [], []
    for name, deps in names_and_deps:
        ops.append(XOp(f"op_{name}", "data-fix" if not deps else "relu", {},
                       {"input": [f"op_{d}" for d in deps]} if deps else {},
                       output=XTensor(f"op_{name}", [1], "FLOAT32")))
        kids.append(XSubgraph(name, [f"op_{name}"]))
    return XGraph("g", ops, {}, XSubgraph("root", children=kids))


def test_children_order_is_xirs():
    # dependencies first; among independent children XIR's DFS gives reverse name order
    g = _chain_graph([("b", []), ("a", ["b"])])
    assert [c.name for c in children_order(g, g.root)] == ["b", "a"]
    g = _chain_graph([("a", []), ("c", [])])
    assert [c.name for c in children_order(g, g.root)] == ["c", "a"]
    g = _chain_graph([("z", []), ("m", ["z"]), ("a", ["z"]), ("q", ["a", "m"])])
    order = [c.name for c in children_order(g, g.root)]
    assert order == ["z", "m", "a", "q"]


def test_svg_and_png_through_graphviz(capsys, tmp_path):
    if shutil.which("dot") is None:
        code, _, err = run(capsys, "png", MNIST, tmp_path / "m.png")
        assert code == 1 and "needs Graphviz's 'dot' command" in err
        return
    assert run(capsys, "svg", MNIST, tmp_path / "m.svg")[0] == 0
    svg = (tmp_path / "m.svg").read_text()
    assert svg.count('class="cluster"') == 9 and svg.count('class="node"') == 16
    assert "Name: quant_conv2d" in svg and "Shape: {1, 26, 26, 32}" in svg
    assert run(capsys, "png", MNIST, tmp_path / "m.png")[0] == 0
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_graphviz_message(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr("fixflow.tools.xir._DOT_PLACES", ())   # nor in the usual install places
    monkeypatch.delenv("GRAPHVIZ_DOT", raising=False)
    code, _, err = run(capsys, "png", MNIST, tmp_path / "m.png")
    assert code == 1 and err.count("\n") == 1
    assert "png output needs Graphviz's 'dot' command, which is not installed" in err
    assert not (tmp_path / "m.png").exists()


# ------------------------------------------------------------------ AMD's own xir (opt-in)

def _amd_xir():
    root = os.environ.get("FIXFLOW_AMD_TOOLS")
    if not root:
        pytest.skip("set FIXFLOW_AMD_TOOLS=<install dir of shared/tools/amd-reference> to compare with AMD's xir")
    exe = Path(root) / "bin" / "xir"
    if not exe.is_file():
        pytest.skip(f"{exe} does not exist")
    env = dict(os.environ, LD_LIBRARY_PATH=str(Path(root) / "lib"))
    return lambda *a: subprocess.run([str(exe), *map(str, a)], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("which", ["mnist", "built"])
def test_same_output_as_amd_xir(capsys, tmp_path, which):
    xir = _amd_xir()
    path = MNIST
    if which == "built":
        path = tmp_path / "t.xmodel"
        write_compiled(build_model(), path)
    for cmd in ("subgraph", "dump_reg", "dump_txt"):
        amd = xir(cmd, path)
        assert amd.returncode == 0, amd.stderr
        code, ours, _ = run(capsys, cmd, path)
        if cmd == "subgraph":  # AMD's build prints the I/O tensors as pointers
            assert _mask_tensors(amd.stdout) == _mask_tensors(ours)
        elif cmd == "dump_txt":
            assert re.sub(r"0x[0-9a-f]+ ([0-9a-f]{8}:)", r"\1", amd.stdout) == ours
        else:
            assert amd.stdout == ours
    a, b = tmp_path / "amd", tmp_path / "ours"
    assert xir("dump_bin", path, a).returncode == 0
    run(capsys, "dump_bin", path, b)
    amd_files = sorted(p.name for p in a.iterdir())
    for f in amd_files:
        assert (a / f).read_bytes() == (b / f).read_bytes()
    assert set(amd_files) <= {p.name for p in b.iterdir()}
