"""fixflow-opt's start-up paths: the pass registry is loaded only when the command line needs it (and
then the command line means what it meant with the full parser), and a command run as its own process
keeps the parsed IR out of the cycle collector without changing the output."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from fixflow.tools import opt
from fixflow.tools.opt import main as opt_main

MODULE = '''"builtin.module"() ({
  "func.func"() ({
  ^bb0(%arg0: i32):
    %0 = "arith.constant"() {value = 2 : i32} : () -> i32
    %1 = "arith.constant"() {value = 3 : i32} : () -> i32
    %2 = "arith.addi"(%0, %1) : (i32, i32) -> i32
    %3 = "arith.muli"(%arg0, %2) : (i32, i32) -> i32
    "func.return"(%3) : (i32) -> ()
  }) {sym_name = "main", function_type = (i32) -> i32} : () -> ()
}) : () -> ()
'''


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_round_trip_without_passes_loads_no_pass_module(tmp_path):
    f = tmp_path / "in.mlir"
    f.write_text(MODULE)
    out = _run("import sys\nfrom fixflow.tools.opt import main\n"
               f"code = main([{str(f)!r}, '-o', {str(tmp_path / 'out.mlir')!r}])\n"
               "print(code, sorted(m for m in sys.modules if m.startswith(('fixflow.passes.', 'fixflow.ir.passes'))))")
    assert out.split() == ["0", "[]"]
    assert (tmp_path / "out.mlir").read_text() == MODULE


@pytest.mark.parametrize("flags", [["--canonicalize"], ["--canon"], ["-p", "canonicalize"],
                                   ["--pass-pipeline=builtin.module(canonicalize)"]])
def test_pass_flags_abbreviations_and_pipelines(tmp_path, capsys, flags):
    f = tmp_path / "in.mlir"
    f.write_text(MODULE)
    assert opt_main([str(f), *flags]) == 0
    out = capsys.readouterr().out
    assert '"arith.addi"' not in out and "value = 5 : i32" in out


def test_abbreviated_common_option_still_works(tmp_path, capsys):
    f = tmp_path / "in.mlir"
    f.write_text(MODULE + "// -----\n" + MODULE)
    assert opt_main([str(f), "--split-input"]) == 0  # argparse abbreviation of --split-input-file
    assert capsys.readouterr().out == MODULE + "// -----\n" + MODULE


@pytest.mark.parametrize("argv, message", [
    (["-o"], "argument -o: expected one argument (see fixflow-opt --help)"),
    (["--bogus"], "unrecognized arguments: --bogus (see fixflow-opt --help)"),
    (["a.mlir", "b.mlir"], "unrecognized arguments: b.mlir (see fixflow-opt --help)"),
    (["--s"], "ambiguous option: --s could match"),
])
def test_usage_errors_are_those_of_the_full_command_line(capsys, argv, message):
    assert opt_main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_help_lists_the_passes(capsys):
    assert opt_main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: fixflow-opt" in out and "canonicalize" in out and "--split-input-file" in out


def test_in_process_calls_leave_the_collector_as_it_was(tmp_path, capsys):
    f = tmp_path / "in.mlir"
    f.write_text(MODULE)
    frozen = gc.get_freeze_count()
    assert opt_main([str(f)]) == 0 and gc.isenabled()
    assert gc.get_freeze_count() == frozen and opt._ONE_SHOT is False
    gc.disable()
    try:
        assert opt_main([str(f), "--canonicalize"]) == 0 and not gc.isenabled()
    finally:
        gc.enable()
    assert capsys.readouterr().out.count('"builtin.module"') == 2


def test_as_a_process_the_output_is_unchanged(tmp_path):
    f = tmp_path / "in.mlir"
    f.write_text(MODULE)
    expected = subprocess.run([sys.executable, "-c", "import sys\nfrom fixflow.tools.opt import main\n"
                               f"sys.exit(main([{str(f)!r}, '--canonicalize', '--cse']))"],
                              capture_output=True, text=True, timeout=120)
    one_shot = subprocess.run([sys.executable, "-m", "fixflow.tools.opt", str(f), "--canonicalize", "--cse"],
                              capture_output=True, text=True, timeout=120)
    assert one_shot.returncode == expected.returncode == 0
    assert one_shot.stdout == expected.stdout and "value = 5 : i32" in one_shot.stdout
