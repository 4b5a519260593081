"""fixflow-translate's DPU conversions (.mc <-> .ac <-> dpu-dialect text) and docs/dpu-dialect.md's examples."""

from __future__ import annotations

import collections
import doctest
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fixflow.dialects.dpu import ProgramOp
from fixflow.ir import parse_module
from fixflow.tools.translate import main

ROOT = Path(__file__).resolve().parents[2]
MNIST = ROOT.parent / "shared" / "reference" / "amd-compiled-mnist" / "dpu_mnist_classifier.xmodel"
DOC = ROOT / "docs" / "dpu-dialect.md"
B4096 = "DPUCZDX8G_ISA1_B4096"
#: the instruction mix of the AMD-compiled MNIST program, as its README lists it
MNIST_MIX = {"LOAD": 202, "CONV": 17, "CONVINIT": 4, "ALU": 4, "ALUINIT": 1, "SAVE": 1, "END": 1}

_MC_CACHE: list[bytes] = []


def mnist_mc() -> bytes:
    """The `mc_code` of the DPU subgraph of AMD's compiled MNIST xmodel (skips without the reference data)."""
    if not MNIST.exists():
        pytest.skip(f"reference data not found: {MNIST}")
    if not _MC_CACHE:
        from fixflow.backends.xmodel import read_xmodel
        g = read_xmodel(str(MNIST))
        (sg,) = [s for s in g.root.walk() if s.has_attr("mc_code")]
        assert sg.name == "subgraph_quant_conv2d"
        value = sg.attr("mc_code")
        _MC_CACHE.append(bytes(getattr(value, "value", value)))
    return _MC_CACHE[0]


def run(argv, capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def fails(argv, capsys) -> str:
    """Run a command that must fail: exit 1, no traceback; returns stderr."""
    rc, out, err = run(argv, capsys)
    assert rc == 1, (out, err)
    assert "Traceback" not in err and "internal error" not in err, err
    assert out == ""
    return err


@pytest.fixture
def mc_file(tmp_path) -> Path:
    path = tmp_path / "subgraph_quant_conv2d.mc"
    path.write_bytes(mnist_mc())
    return path


# ---- round trips on a program no one here wrote --------------------------------------------------------
def test_mnist_mc_to_ac_to_mlir_to_mc_is_byte_identical(mc_file, tmp_path, capsys):
    ac, mlir, back = tmp_path / "p.ac", tmp_path / "p.mlir", tmp_path / "back.mc"
    assert run([mc_file, "--mc-to-ac", "-o", ac], capsys) == (0, "", "")
    lines = ac.read_text().splitlines()
    assert len(lines) == 230
    assert collections.Counter(line.split()[0] for line in lines) == MNIST_MIX
    assert run([ac, "--ac-to-mlir", "-o", mlir], capsys) == (0, "", "")
    (prog,) = list(parse_module(mlir.read_text(), str(mlir)).body.ops)
    assert isinstance(prog, ProgramOp) and prog.target == B4096 and prog.sym_name == "p"
    assert collections.Counter(op.SPEC.name for op in prog.instruction_ops()) == MNIST_MIX
    assert run([mlir, "--mlir-to-mc", "-o", back], capsys) == (0, "", "")
    assert back.read_bytes() == mnist_mc()


def test_every_direction_agrees(mc_file, tmp_path, capsys):
    rc, ac_text, _ = run([mc_file, "--mc-to-ac"], capsys)
    assert rc == 0
    rc, mlir_text, _ = run([mc_file, "--mc-to-mlir"], capsys)
    assert rc == 0 and '"dpu.program"() ({' in mlir_text
    assert f'target = "{B4096}"' in mlir_text and 'sym_name = "subgraph_quant_conv2d"' in mlir_text
    (tmp_path / "m.mlir").write_text(mlir_text)
    (tmp_path / "a.ac").write_text(ac_text)
    rc, ac_again, _ = run([tmp_path / "m.mlir", "--mlir-to-ac"], capsys)
    assert rc == 0 and ac_again == ac_text
    assert run([tmp_path / "a.ac", "--ac-to-mc", "-o", tmp_path / "a.mc"], capsys)[0] == 0
    assert (tmp_path / "a.mc").read_bytes() == mnist_mc()
    rc, mlir_from_ac, _ = run([tmp_path / "a.ac", "--ac-to-mlir", "--name", "subgraph_quant_conv2d"], capsys)
    assert rc == 0 and mlir_from_ac == mlir_text


def _stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_binary_stdin_and_stdout(monkeypatch, capsysbinary):
    mc = mnist_mc()
    _stdin(monkeypatch, mc)
    assert main(["--mc-to-ac"]) == 0  # no input file: stdin
    ac = capsysbinary.readouterr().out
    _stdin(monkeypatch, ac)
    assert main(["-", "--ac-to-mc"]) == 0
    assert capsysbinary.readouterr().out == mc
    _stdin(monkeypatch, mc)
    assert main(["-", "--mc-to-mlir"]) == 0
    mlir = capsysbinary.readouterr().out
    assert b"sym_name" not in mlir  # a program read from stdin has no file name to be named after
    _stdin(monkeypatch, mlir)
    assert main(["-", "--mlir-to-mc", "-o", "-"]) == 0
    assert capsysbinary.readouterr().out == mc


def test_real_pipes():
    mc = mnist_mc()
    tool = [sys.executable, "-m", "fixflow.tools.translate"]
    to_mlir = subprocess.run(tool + ["--mc-to-mlir"], input=mc, capture_output=True, timeout=300)
    assert to_mlir.returncode == 0, to_mlir.stderr
    back = subprocess.run(tool + ["--mlir-to-mc"], input=to_mlir.stdout, capture_output=True, timeout=300)
    assert back.returncode == 0 and back.stdout == mc
    bad = subprocess.run(tool + ["--mc-to-ac"], input=mc[:-6], capture_output=True, timeout=300)
    assert bad.returncode == 1 and bad.stdout == b""
    assert bad.stderr.decode().splitlines() == [
        "error: <stdin>: byte 4548: instruction 228: truncated SAVE: it needs 20 bytes, only 18 remain"]


def test_locations_name_byte_offsets_and_lines(mc_file, tmp_path, capsys):
    rc, out, _ = run([mc_file, "--mc-to-mlir", "--print-debuginfo"], capsys)
    assert rc == 0
    assert f'loc("{mc_file}: byte 0: instruction 0")' in out
    assert f'loc("{mc_file}: byte 20: instruction 1")' in out  # LOAD is 5 words
    ac = tmp_path / "two.ac"
    ac.write_text("# a comment line\nLOAD 0000 0000 " + " ".join(
        f"{k} {v}" for k, v in _load_fields().items()) + "\n\n  END 0001 0000 # done\n")
    rc, out, _ = run([ac, "--ac-to-mlir", "--print-debuginfo"], capsys)
    assert rc == 0
    assert f'loc("{ac}":2:1)' in out and f'loc("{ac}":4:3)' in out


def _load_fields() -> dict[str, int]:
    from fixflow.dialects.dpu import Instruction
    return Instruction.make("LOAD", bank_id=0, channel=16).fields


# ---- the target --------------------------------------------------------------------------------------------
def test_target_option(mc_file, tmp_path, capsys):
    for spec in ("kv260", "0x0101000056010407", B4096):
        rc, out, _ = run([mc_file, "--mc-to-mlir", "--target", spec], capsys)
        assert rc == 0 and f'target = "{B4096}"' in out
    # B512 has banks 0-17: the program's first LOAD (bias into bank 33) cannot run there
    err = fails([mc_file, "--mc-to-ac", "--target", "DPUCZDX8G_ISA1_B512"], capsys)
    assert err.splitlines()[0] == (f"{mc_file}: byte 0: instruction 0: error: 'dpu.load' op bank_id = 33: "
                                   "DPUCZDX8G_ISA1_B512 has no bank 33 (bank ids are 0-17)")
    err = fails([mc_file, "--mc-to-ac", "--target", "DPUCVDX8G_ISA3_C32B6"], capsys)
    assert err.startswith("error: ") and "DPUCZDX8G_ISA1_B4096" in err and len(err.splitlines()) == 1
    mlir = tmp_path / "m.mlir"
    assert run([mc_file, "--mc-to-mlir", "-o", mlir], capsys)[0] == 0
    err = fails([mlir, "--mlir-to-mc", "--target", "DPUCZDX8G_ISA1_B1024", "-o", tmp_path / "x.mc"], capsys)
    assert err.startswith(f"{mlir}:2:3: error: dpu.program @subgraph_quant_conv2d targets {B4096}, "
                          "not DPUCZDX8G_ISA1_B1024 (--target)")
    assert not (tmp_path / "x.mc").exists()


# ---- bad input ---------------------------------------------------------------------------------------------
def test_truncated_and_corrupt_machine_code(tmp_path, capsys):
    mc = mnist_mc()
    cases = {
        mc[:10]: "byte 0: instruction 0: truncated LOAD: it needs 20 bytes, only 10 remain",
        mc[:-6]: "byte 4548: instruction 228: truncated SAVE: it needs 20 bytes, only 18 remain",
        mc[:-2]: "byte 4568: instruction 229: 2 trailing byte(s): not a whole 32-bit word",
        mc + b"\0\0": "byte 4572: instruction 230: 2 trailing byte(s): not a whole 32-bit word",
        mc[:20] + b"\0\0\0\xf0" + mc[24:]: "byte 20: instruction 1: unknown opcode 0xf",
        mc[:26] + bytes([mc[26] | 1]) + mc[27:]: "byte 24: instruction 1: CONVINIT has reserved bits 0x00010000 "
                                                 "set in word 1",
    }
    path = tmp_path / "bad.mc"
    for data, expected in cases.items():
        path.write_bytes(data)
        for mode in ("--mc-to-ac", "--mc-to-mlir"):
            err = fails([path, mode], capsys)
            assert err.startswith(f"error: {path}: {expected}"), err
            assert len(err.splitlines()) == 1
    path.write_bytes(b"")
    assert fails([path, "--mc-to-ac"], capsys) == f"error: '{path}' holds no instructions\n"
    assert fails([tmp_path / "missing.mc", "--mc-to-ac"], capsys).startswith(
        f"error: cannot read '{tmp_path / 'missing.mc'}'")


def test_bad_ac_lines(mc_file, tmp_path, capsys):
    rc, ac, _ = run([mc_file, "--mc-to-ac"], capsys)
    lines = ac.splitlines()
    path = tmp_path / "bad.ac"

    def error_of(lineno: int, new_line: str, mode: str = "--ac-to-mc") -> list[str]:
        bad = lines[:lineno - 1] + [new_line] + lines[lineno:]
        path.write_text("\n".join(bad) + "\n")
        return fails([path, mode, "-o", tmp_path / "out"], capsys).splitlines()

    assert lines[2].startswith("ALUINIT ")
    new = lines[2].replace("exec_mode 3 ", "exec_mode 99 ")
    err = error_of(3, new)
    col = new.index(" 99 ") + 2
    assert err[0] == f"{path}:3:{col}: error: ALUINIT: exec_mode 99 is out of range [0, 15] (4-bit field)"
    assert err[2] == " " * (col - 1) + "^"  # the source line and a caret
    err = error_of(1, lines[0].replace("bank_addr", "bank_adr"), "--ac-to-mlir")
    assert err[0].startswith(f"{path}:1:{lines[0].index('bank_addr') + 1}: error: LOAD has no field 'bank_adr'")
    err = error_of(230, "STOP 0000 0000")
    assert err[0].startswith(f"{path}:230:1: error: unknown instruction 'STOP'")
    err = error_of(5, lines[4].replace(" ddr_addr ", " ddr_addr_x "))
    assert err[0].startswith(f"{path}:5:")
    # a legal line that breaks the target: the verifier names the op at the line of its mnemonic
    err = error_of(1, "  " + lines[0].replace("bank_id 33 ", "bank_id 34 "))
    assert err[0] == f"{path}:1:3: error: 'dpu.load' op bank_id = 34: {B4096} has no bank 34 (bank ids are 0-33)"
    assert not (tmp_path / "out").exists()


def test_bad_mlir(mc_file, tmp_path, capsys):
    rc, text, _ = run([mc_file, "--mc-to-mlir"], capsys)
    path = tmp_path / "bad.mlir"

    def first_error(new_text: str, mode: str = "--mlir-to-mc") -> str:
        path.write_text(new_text)
        return fails([path, mode, "-o", tmp_path / "out"], capsys).splitlines()[0]

    assert first_error(text.replace('"dpu.load"() {', '"dpu.load"() {{', 1)).startswith(f"{path}:3:")
    assert first_error(text.replace("bank_id = 33", "bank_id = 64", 1)) == (
        f"{path}:3:5: error: 'dpu.load' op bank_id = 64 is out of range [0, 63] (6-bit field)")
    assert first_error(text.replace("channel = 32 : i32", "channel = 32 : i64", 1), "--mlir-to-ac").startswith(
        f"{path}:3:5: error: 'dpu.load' op attribute 'channel': expected an i32 integer")
    assert first_error(text.replace(f'target = "{B4096}"', 'target = "DPUCZDX8G_ISA1_B9999"')).startswith(
        f"{path}:2:3: error: 'dpu.program' op target:")
    assert first_error('"builtin.module"() ({\n}) : () -> ()\n') == f"{path}:1:1: error: the input holds no dpu.program"
    assert not (tmp_path / "out").exists()


def test_several_programs_need_a_name(mc_file, tmp_path, capsys):
    rc, text, _ = run([mc_file, "--mc-to-mlir"], capsys)
    body = text.split("\n", 1)[1].rsplit("})", 1)[0]  # the program, without the module around it
    two = '"builtin.module"() ({\n' + body + body.replace("subgraph_quant_conv2d", "second") + "}) : () -> ()\n"
    path = tmp_path / "two.mlir"
    path.write_text(two)
    err = fails([path, "--mlir-to-mc"], capsys)
    assert "the input holds 2 dpu.programs (@subgraph_quant_conv2d, @second): pick one with --name" in err
    assert "no dpu.program @third in the input (programs: @subgraph_quant_conv2d, @second)" in fails(
        [path, "--mlir-to-mc", "--name", "third"], capsys)
    assert run([path, "--mlir-to-mc", "--name", "second", "-o", tmp_path / "s.mc"], capsys)[0] == 0
    assert (tmp_path / "s.mc").read_bytes() == mnist_mc()


def test_usage_errors(mc_file, capsys):
    assert "--import-zoo cannot be combined with --mc-to-ac" in fails(
        ["--import-zoo", "digits_cnn", "--mc-to-ac"], capsys)
    assert "--export-dot cannot be combined with --mlir-to-ac" in fails([mc_file, "--mlir-to-ac", "--export-dot"],
                                                                         capsys)
    assert "--print-debuginfo applies to dpu-dialect output" in fails([mc_file, "--mc-to-ac", "--print-debuginfo"],
                                                                      capsys)
    assert "not allowed with argument" in fails([mc_file, "--mc-to-ac", "--mc-to-mlir"], capsys)
    assert "--target needs one of the DPU conversions" in fails([mc_file, "--target", "kv260"], capsys)


def test_help_lists_the_conversions(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--mc-to-ac", "--ac-to-mc", "--mc-to-mlir", "--mlir-to-mc", "--ac-to-mlir", "--mlir-to-ac",
                 "--target"):
        assert flag in out


def test_readme_lists_the_conversions():
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^fixflow-translate \S+\.mc --mc-to-ac", readme, re.M)
    assert "docs/dpu-dialect.md" in readme


# ---- docs/dpu-dialect.md: every example runs ---------------------------------------------------------
_FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.S | re.M)


def _doc_blocks(with_lines: bool = False) -> list:
    """(info string, body) of each fenced block of the doc; with `with_lines`, also the body's first line."""
    text = DOC.read_text()
    blocks = []
    for m in _FENCE.finditer(text):
        block = (m.group(1).strip(), m.group(2))
        blocks.append(block + (text.count("\n", 0, m.start(2)),) if with_lines else block)
    return blocks


def _write_doc_files(folder: Path) -> None:
    for info, body in _doc_blocks():
        m = re.search(r"\bfile=(\S+)", info)
        if m:
            (folder / m.group(1)).write_text(body)


def test_doc_console_examples(tmp_path):
    """Each ```console block: `$ command` lines (run in order, in one folder holding the doc's file=
    blocks); the lines after a command are exactly what it prints (stdout and stderr)."""
    _write_doc_files(tmp_path)
    prelude = "".join(f'{tool}() {{ "{sys.executable}" -m fixflow.tools.{mod} "$@"; }}\n'
                      for tool, mod in (("fixflow-translate", "translate"), ("fixflow-opt", "opt")))
    env = {**os.environ, "LC_ALL": "C", "COLUMNS": "100"}
    commands = 0
    for info, body in _doc_blocks():
        if info != "console":
            continue
        for chunk in re.split(r"^\$ ", body, flags=re.M)[1:]:
            command, _, expected = chunk.partition("\n")
            proc = subprocess.run(["bash", "-c", prelude + command], cwd=tmp_path, env=env, capture_output=True,
                                  text=True, timeout=300)
            shown = proc.stdout + proc.stderr
            assert shown == expected, f"$ {command}\n--- the doc shows:\n{expected}--- it prints:\n{shown}"
            assert "Traceback" not in shown
            assert proc.returncode == (1 if "error:" in expected else 0), command
            commands += 1
    assert commands >= 5


def test_doc_python_examples(tmp_path, monkeypatch):
    """The ```pycon blocks run as one doctest session (in a folder holding the doc's file= blocks)."""
    _write_doc_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    parser, runner, out = doctest.DocTestParser(), doctest.DocTestRunner(), io.StringIO()
    session: dict = {}
    examples = 0
    for info, body, line in _doc_blocks(with_lines=True):
        if info == "pycon":
            test = parser.get_doctest(body, session, DOC.name, str(DOC), line)
            examples += len(test.examples)
            runner.run(test, out=out.write, clear_globs=False)
            session = test.globs  # DocTest copies its globals: carry them to the next block
    assert runner.failures == 0, out.getvalue()
    assert examples >= 20
