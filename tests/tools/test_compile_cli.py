"""fixflow-compile on the digits_cnn _int.xmodel that fixflow-quantize writes: for kv260 and a B1024, read
back with the compiled reader, the DPU subgraph run on the interpreter (both modes) equal to the fix-level
integer execution bit for bit, ac_code re-encoding to mc_code, fixflow-xir subgraph, --options, and one-line
errors for bad inputs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from _runtime_testlib import quantize_digits

from fixflow.tools.compile import main

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def digits_int(tmp_path_factory):
    return quantize_digits(tmp_path_factory.mktemp("q"))[0]


@pytest.fixture(scope="module")
def fix_io(digits_int):
    """(int8 DPU inputs, int8 values before fix.float) of the fix-level integer execution of the
    _int.xmodel on 8 digits test images."""
    from fixflow.backends.xmodel.fix_xmodel import read_int_xmodel
    from fixflow.ir.interpreter import run_function
    from fixflow.zoo import load_digits
    module = read_int_xmodel(digits_int)
    func = next(op for op in module.body.ops if op.name == "func.func")
    data = next(op for op in func.body.ops if op.name == "fix.data")
    fl = next(op for op in func.body.ops if op.name == "fix.float")
    x = load_digits("test", size=28)[0][:8]
    vals = {}

    def obs(op, ys):
        for r, v in zip(op.results, ys):
            vals[r] = np.asarray(v)
    run_function(func, [x], obs)
    return vals[data.results[0]].astype(np.int8), vals[fl.operands[0]].astype(np.int8)


def _compile(capsys, *args):
    rc = main([*map(str, args), "--no-progress"])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("arch,target", [("kv260", "DPUCZDX8G_ISA1_B4096"), ("B1024", "DPUCZDX8G_ISA1_B1024")])
def test_compile_digits_bit_exact(digits_int, fix_io, arch, target, tmp_path, capsys):
    from fixflow.backends.mc import encode, parse_ac
    from fixflow.backends.xmodel.vaic import read_compiler_outputs
    from fixflow.runtime.dpu import DPUSubgraph
    out = tmp_path / "c"
    rc, text, err = _compile(capsys, "-x", digits_int, "-a", arch, "-o", out, "-n", "digits")
    assert rc == 0, err
    assert "[fixflow-compile] Total device subgraph number 3, DPU subgraph number 1" in text
    assert f"Target architecture: {target}" in text and f'saved to "{out / "digits.xmodel"}"' in text
    m, meta = read_compiler_outputs(out)          # checks md5sum.txt and meta.json against the xmodel
    m.validate()
    assert meta == {"lib": "libvart-dpu-runner.so", "filename": "digits.xmodel",
                    "kernel": [m.dpu_subgraphs[0].name], "target": target}
    (dpu_sg,) = m.dpu_subgraphs
    assert encode(parse_ac("\n".join(dpu_sg.ac_code), "ac")) == dpu_sg.mc_code
    xin, ref = fix_io
    dpu = DPUSubgraph.from_xmodel(out / "digits.xmodel")
    for mode in ("fast", "reference"):
        got = dpu.run([xin], mode=mode)["classifier"]
        np.testing.assert_array_equal(got.reshape(ref.shape), ref, err_msg=mode)


def test_options_keep_ir_and_no_ac_code(digits_int, tmp_path, capsys):
    from fixflow.backends.xmodel.compiled import read_compiled
    from fixflow.ir import parse_module
    out = tmp_path / "c"
    rc, text, err = _compile(capsys, "-x", digits_int, "-a", "DPUCZDX8G_ISA1_B512", "-o", out,
                             "--options", json.dumps({"keep_ir": True, "ac_code": False, "timing": True}))
    assert rc == 0, err
    assert (out / "DigitsCNN.xmodel").exists()                  # default net name: the input's, without _int
    stages = sorted(p.name for p in (out / "ir").iterdir())
    assert stages == ["00_input.mlir", "01_partition.mlir", "02_allocate-ddr.mlir", "03_lower-to-dpu.mlir",
                      "04_schedule-dpu.mlir"]
    lowered = parse_module((out / "ir" / "04_schedule-dpu.mlir").read_text())
    assert any(op.name == "dpu.program" for op in lowered.body.ops)
    assert "dpu.device" in (out / "ir" / "01_partition.mlir").read_text()
    assert re.search(r"lower-to-dpu +[0-9.]+ ms", text)
    assert read_compiled(out / "DigitsCNN.xmodel").dpu_subgraphs[0].ac_code is None


def test_tiling_option_reaches_the_pass(digits_int, tmp_path, capsys):
    base = tmp_path / "a"
    tiled = tmp_path / "b"
    assert _compile(capsys, "-x", digits_int, "-a", "kv260", "-o", base, "-n", "d")[0] == 0
    rc, _, err = _compile(capsys, "-x", digits_int, "-a", "kv260", "-o", tiled, "-n", "d",
                          "--options", '{"tiling": "features_0_2:4:"}')
    assert rc == 0, err
    from fixflow.backends.xmodel.compiled import read_compiled
    a, b = (read_compiled(p / "d.xmodel").dpu_subgraphs[0].mc_code for p in (base, tiled))
    assert len(b) > len(a)          # more bands: more instructions


def test_fixflow_xir_subgraph_of_the_compiled_file(digits_int, tmp_path, capsys):
    from fixflow.tools.xir import main as xir_main
    out = tmp_path / "c"
    assert _compile(capsys, "-x", digits_int, "-a", "zcu102", "-o", out, "-n", "digits")[0] == 0
    assert xir_main(["subgraph", str(out / "digits.xmodel")]) == 0
    tree = capsys.readouterr().out.splitlines()
    assert tree[0] == "root"
    assert tree[1].strip() == "subgraph_x [device=USER]"
    assert "[device=DPU,fingerprint=0x101000056010407,DPU=DPUCZDX8G_ISA1_B4096," in tree[2]
    assert tree[3].strip() == "subgraph_x_upload_0" and tree[-2].strip() == "subgraph_classifier_download_0"
    assert tree[-1].strip() == "subgraph_classifier_float [device=CPU]"


def _error(capsys, *args) -> str:
    rc, _, err = _compile(capsys, *args)
    assert rc == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err
    return lines[0]


def test_bad_inputs_one_line_errors(digits_int, tmp_path, capsys):
    from fixflow.backends.xmodel import read_xmodel, write_xmodel
    o = tmp_path / "o"
    assert "unknown size B999" in _error(capsys, "-x", digits_int, "-a", "B999", "-o", o)
    assert "unknown target" in _error(capsys, "-x", digits_int, "-a", "zcu999", "-o", o)
    assert "not found" in _error(capsys, "-x", digits_int, "-a", tmp_path / "arch.json", "-o", o)
    corrupt = tmp_path / "bad_int.xmodel"
    corrupt.write_bytes(b"\x0bnot a protobuf")
    assert "not a valid xmodel" in _error(capsys, "-x", corrupt, "-a", "kv260", "-o", o)
    g = read_xmodel(digits_int)
    conv = next(op for op in g.ops if op.type == "conv2d-fix")
    del conv.output.attrs["fix_point"]
    nofix = tmp_path / "nofix_int.xmodel"
    write_xmodel(g, nofix)
    msg = _error(capsys, "-x", nofix, "-a", "kv260", "-o", o)
    assert "missing fix information" in msg and repr(conv.name) in msg
    assert "unknown option 'keep'" in _error(capsys, "-x", digits_int, "-a", "kv260", "-o", o, "--options",
                                             '{"keep": true}')
    assert "'ac_code' must be a boolean" in _error(capsys, "-x", digits_int, "-a", "kv260", "-o", o, "--options",
                                                   '{"ac_code": "no"}')
    assert "tiling names no layer" in _error(capsys, "-x", digits_int, "-a", "kv260", "-o", o, "--options",
                                             '{"tiling": "nosuchlayer:4:4"}')
    assert not o.exists()
    compiled = tmp_path / "c"
    assert _compile(capsys, "-x", digits_int, "-a", "kv260", "-o", compiled, "-n", "d")[0] == 0
    assert "already compiled" in _error(capsys, "-x", compiled / "d.xmodel", "-a", "kv260", "-o", o)


def test_layer_neither_engine_nor_cpu_can_run(tmp_path, capsys):
    """A fix-level .mlir whose float op is not DPU work and has no XIR CPU op type: one line naming it."""
    from fixflow.dialects.builtin import FuncOp, ModuleOp, ReturnOp
    from fixflow.dialects.fix import ops as Q
    from fixflow.dialects.graph.ops import RollOp   # (graph.relu before XIR's float relu was written)
    from fixflow.ir import print_module
    from fixflow.ir.types import TensorType, f32
    m = ModuleOp.empty()
    f = FuncOp.create_function("main", [TensorType((1, 4, 4, 8), f32)], [])
    m.body.append(f)
    x = Q.DataOp.build(f.args[0], result_types=[Q.fix_tensor((1, 4, 4, 8), 8, 5)])
    p = Q.PoolOp.build(x.results[0], type="MAX", kernel=(2, 2), stride=(2, 2), pad=(0, 0, 0, 0),
                       result_types=[Q.fix_tensor((1, 2, 2, 8), 8, 5)])
    fl = Q.FloatOp.build(p.results[0])
    r = RollOp.build(fl.results[0], shifts=[1], axes=[1])
    r.results[0].name_hint = "act"
    for op in (x, p, fl, r):
        f.body.append(op)
    f.body.append(ReturnOp.build([r.results[0]]))
    f.update_function_type()
    src = tmp_path / "net_fix.mlir"
    src.write_text(print_module(m))
    msg = _error(capsys, "-x", src, "-a", "kv260", "-o", tmp_path / "o")
    assert re.search(r"op 'act' \(graph.roll\) cannot run on the DPU \(.+\), and not on the CPU either", msg), msg


@pytest.mark.skipif(shutil.which("fixflow-compile") is None, reason="console script not installed")
def test_console_script(digits_int, tmp_path):
    p = subprocess.run(["fixflow-compile", "-x", str(digits_int), "-a", "kv260", "-o", str(tmp_path), "-n", "n"],
                       capture_output=True, text=True, timeout=600, check=False)
    assert p.returncode == 0, p.stderr
    assert "Total device subgraph number 3, DPU subgraph number 1" in p.stdout
    assert (tmp_path / "n.xmodel").exists() and (tmp_path / "md5sum.txt").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny_mobilenet", "squeezenet1_1", "resnet18_cifar"])
def test_zoo_models_compiled_equal_fix_execution(name, tmp_path, tmp_path_factory, capsys):
    """Depthwise convs and a global average pool (tiny_mobilenet), DPU subgraphs around CPU concats
    (squeezenet1_1: channel concats by placement), residual adds (resnet18_cifar): the whole compiled graph
    (GraphRunner: USER, DPU interpreter, CPU) equals the fix-level integer execution of the _int.xmodel."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference"))
    from _amd_files import zoo_int_xmodel

    from fixflow.backends.xmodel.fix_xmodel import read_int_xmodel
    from fixflow.runtime import GraphRunner
    from fixflow.runtime.fix_executor import run_quantized
    from fixflow.zoo import registry
    src = zoo_int_xmodel(name, tmp_path_factory)
    rc, text, err = _compile(capsys, "-x", src, "-a", "B1152", "-o", tmp_path, "-n", name)
    assert rc == 0, err
    assert re.search(r"DPU subgraph number [1-9]", text)
    if name == "squeezenet1_1":          # concats by placement: skip_code_gen children, inputs are slices
        from fixflow.backends.xmodel.compiled import read_compiled
        m = read_compiled(tmp_path / f"{name}.xmodel")
        for sg in m.dpu_subgraphs:
            for c in sg.children:
                cat = m.op(c.op_names[-1])
                if cat.type != "concat-fix":
                    continue
                base, cc = cat.output.attr("ddr_addr"), cat.output.shape[-1]
                placed = [m.op(p).output.attr("stride")[2] == cc for p in cat.inputs["input"]]
                for p, inside in zip(cat.inputs["input"], placed, strict=True):
                    t = m.op(p).output              # a slice of the buffer, or its own map (copied)
                    assert (base <= t.attr("ddr_addr") < base + cc) if inside else t.attr("stride")[2] == t.shape[-1]
                assert (c.kind == "skip") == all(placed)
    shape = registry.get_spec(name).input_shape
    x = np.random.default_rng(0).uniform(-1, 1, size=(2, *shape[1:])).astype(np.float32)
    got = GraphRunner.from_xmodel(tmp_path / f"{name}.xmodel").run([x])
    want = run_quantized(read_int_xmodel(src), [x])
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
