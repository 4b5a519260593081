"""Issue 9's done-means on fixflow's own compiled programs: every zoo model's `_int.xmodel`, compiled by
`fixflow-compile` for a B4096 and a B512, gives DPU programs that round-trip unchanged through machine
code, assembly text and dpu-dialect text (in Python and through `fixflow-translate`), whose `ac_code`
re-encodes to `mc_code` word for word, and whose program in the compiler's final IR is the file's
`mc_code`. With `FIXFLOW_AMD_TOOLS` set (opt-in, docs/amd-reference.md), AMD's `xir` loads each compiled
file (`check_xir` of tests/reference/test_amd_tools.py, which runs the simulator on the B4096 files).

digits_cnn and tiny_mobilenet run in the quick suite; the large zoo models are slow and compiled from
`_int.xmodel`s quantized at a small input size (their global pools accept any size).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "reference"))
from _amd_files import zoo_int_xmodel

pytest.importorskip("torch")

TARGETS = ("DPUCZDX8G_ISA1_B4096", "DPUCZDX8G_ISA1_B512")
QUICK = ("digits_cnn", "tiny_mobilenet")
#: slow models and the (square) input size they are quantized at
SLOW = {"resnet18_cifar": 32, "mobilenet_v2": 64, "squeezenet1_1": 64, "resnet18": 64, "resnet50": 64}

_SMALL_INT: dict[str, Path] = {}
_COMPILED: dict[tuple[str, str], Path] = {}


def _small_int_xmodel(name: str, hw: int, tmp_factory) -> Path:
    """`<Model>_int.xmodel` of zoo model `name` at input size hw x hw (calibrated on two random images),
    made as `_amd_files.zoo_int_xmodel` makes the full-size one."""
    if name in _SMALL_INT:
        return _SMALL_INT[name]
    import torch

    from fixflow import zoo
    from fixflow.backends.xmodel.fix_xmodel import write_int_xmodel
    from fixflow.passes.fix.quantize import quantize_module
    from fixflow.quantizer import Quantizer
    from fixflow.zoo import registry
    channels = registry.get_spec(name).input_shape[1]
    x = np.random.default_rng(0).standard_normal((2, channels, hw, hw)).astype(np.float32)
    out = tmp_factory.mktemp(f"int_{name}_{hw}")
    q = Quantizer(zoo.get_model(name), (torch.from_numpy(x[:1]),), mode="calib", output_dir=out, log=None,
                  progress=False)
    q.quant_model(torch.from_numpy(x))
    q.export_quant_config()
    m = q.module.clone()
    quantize_module(m)
    path = out / f"{q.name}_int.xmodel"
    write_int_xmodel(m, path, q.name)
    _SMALL_INT[name] = path
    return path


def compiled(name: str, target: str, tmp_factory) -> Path:
    """The output folder of `fixflow-compile -x <name>_int.xmodel -a <target> -n <name>` with
    `keep_ir` (once per session)."""
    key = (name, target)
    if key in _COMPILED:
        return _COMPILED[key]
    from fixflow.tools.compile import main
    src = zoo_int_xmodel(name, tmp_factory) if name in QUICK else _small_int_xmodel(name, SLOW[name], tmp_factory)
    out = tmp_factory.mktemp(f"c_{name}_{target[-5:]}")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        rc = main(["-x", str(src), "-a", target, "-o", str(out), "-n", name, "--no-progress",
                   "--options", '{"keep_ir": true}'])
    assert rc == 0, buf.getvalue()
    _COMPILED[key] = out
    return out


def _programs(path: Path):
    """(label, mc_code, ac_code or None, target name) of every DPU subgraph and super-layer with code."""
    from fixflow.backends.xmodel.compiled import read_compiled
    model = read_compiled(path)
    assert model.dpu_subgraphs, f"{path}: no DPU subgraph"
    for sg in model.dpu_subgraphs:
        yield sg.name, sg.mc_code, sg.ac_code, sg.target.name
        for c in sg.children:
            if c.mc_code is not None:
                yield f"{sg.name}/{c.name}", c.mc_code, c.ac_code, sg.target.name


def _translate(*args) -> None:
    from fixflow.tools.translate import main
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        rc = main([*map(str, args)])
    assert rc == 0, buf.getvalue()


def check_roundtrips(label: str, mc: bytes, ac_code: list[str] | None, target: str, tmp: Path) -> None:
    """mc -> instructions -> mc, mc -> ac -> mc, ac -> instructions -> ac, dpu text print -> parse -> print
    (Python and fixflow-translate), and the stored ac_code assembling to mc word for word."""
    from fixflow.backends.mc import decode, encode, parse_ac, words_of, write_ac
    from fixflow.ir import parse_module, print_module
    from fixflow.tools.translate import read_dpu_program, write_dpu_program
    assert len(mc) > 0 and len(mc) % 4 == 0, label
    instrs = decode(mc, label)
    assert instrs[-1].name == "END", label
    assert encode(instrs) == mc, f"{label}: mc -> instructions -> mc"
    ac = write_ac(instrs)
    back = parse_ac(ac, f"{label}.ac")
    assert back == instrs, f"{label}: mc -> ac -> instructions"
    assert encode(back) == mc, f"{label}: mc -> ac -> mc"
    assert write_ac(back) == ac, f"{label}: ac -> instructions -> ac"
    if ac_code is not None:
        assert ac_code == ac.splitlines(), f"{label}: stored ac_code is not the text of mc_code"
        assert words_of(encode(parse_ac("\n".join(ac_code), f"{label}.ac_code"))) == words_of(mc), \
            f"{label}: ac_code does not re-encode to mc_code word for word"
    # dpu-dialect text in Python
    module = read_dpu_program(mc, "mc", "p.mc", target=target)
    text = write_dpu_program(module, "mlir")
    parsed = parse_module(text, "p.mlir")
    assert print_module(parsed) == text, f"{label}: dpu text print -> parse -> print"
    assert write_dpu_program(parsed, "mc") == mc and write_dpu_program(parsed, "ac") == ac, label
    # the same through fixflow-translate
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "p.mc").write_bytes(mc)
    _translate(tmp / "p.mc", "--mc-to-mlir", "--target", target, "-o", tmp / "p.mlir")
    assert (tmp / "p.mlir").read_text() == text, f"{label}: --mc-to-mlir"
    _translate(tmp / "p.mlir", "--mlir-to-mc", "-o", tmp / "back.mc")
    assert (tmp / "back.mc").read_bytes() == mc, f"{label}: --mc-to-mlir | --mlir-to-mc"
    (tmp / "p.ac").write_text(ac)
    _translate(tmp / "p.ac", "--ac-to-mc", "--target", target, "-o", tmp / "ac.mc")
    assert (tmp / "ac.mc").read_bytes() == mc, f"{label}: --ac-to-mc"


def check_final_ir(out: Path, path: Path) -> None:
    """The compiler's last IR (keep_ir) prints back identically after parsing, and each of its top-level
    `dpu.program`s is the compiled file's DPU subgraph of that name, word for word."""
    from fixflow.backends.mc import encode, words_of
    from fixflow.backends.xmodel.compiled import read_compiled
    from fixflow.dialects.dpu import ProgramOp
    from fixflow.ir import parse_module, print_module
    text = (out / "ir" / "04_schedule-dpu.mlir").read_text()
    module = parse_module(text, "04_schedule-dpu.mlir")
    # fixflow-compile ends each IR file with a newline
    assert print_module(module) + "\n" == text, "04_schedule-dpu.mlir: print -> parse -> print"
    progs = {p.sym_name: p for p in module.body.ops if isinstance(p, ProgramOp)}
    sgs = read_compiled(path).dpu_subgraphs
    assert sorted(progs) == sorted(sg.name for sg in sgs)
    for sg in sgs:
        assert progs[sg.name].target == sg.target.name
        assert words_of(encode(progs[sg.name].instructions())) == words_of(sg.mc_code), sg.name


def _check_model(name: str, target: str, tmp_path: Path, tmp_path_factory) -> None:
    out = compiled(name, target, tmp_path_factory)
    path = out / f"{name}.xmodel"
    n = 0
    for k, (label, mc, ac_code, tgt) in enumerate(_programs(path)):
        assert tgt == target
        assert ac_code is not None or "/" in label, f"{label}: compiled without ac_code"
        check_roundtrips(label, mc, ac_code, target, tmp_path / f"prog{k}")
        n += 1
    assert n >= 1
    check_final_ir(out, path)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", QUICK)
def test_zoo_program_roundtrips(name, target, tmp_path, tmp_path_factory):
    _check_model(name, target, tmp_path, tmp_path_factory)


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", sorted(SLOW))
def test_large_zoo_program_roundtrips(name, target, tmp_path, tmp_path_factory):
    _check_model(name, target, tmp_path, tmp_path_factory)


# ---- AMD's xir (opt-in) -----------------------------------------------------------------------------
amd = pytest.mark.skipif(not os.environ.get("FIXFLOW_AMD_TOOLS"),
                         reason="AMD's xir not configured: set FIXFLOW_AMD_TOOLS=<install dir> (docs/amd-reference.md)")


def _amd_check(name: str, target: str, tmp_path: Path, tmp_path_factory) -> None:
    from _amd_tools_lib import check_xir
    path = compiled(name, target, tmp_path_factory) / f"{name}.xmodel"
    res = check_xir(path, tmp_path)
    assert f"DPU={target}" in res["subgraph"] and "reg_id_to_hw_segment" in res["dump_reg"]


@amd
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", QUICK)
def test_compiled_zoo_loads_in_amd_xir(name, target, tmp_path, tmp_path_factory):
    _amd_check(name, target, tmp_path, tmp_path_factory)


@amd
@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", sorted(SLOW))
def test_large_compiled_zoo_loads_in_amd_xir(name, target, tmp_path, tmp_path_factory):
    _amd_check(name, target, tmp_path, tmp_path_factory)
