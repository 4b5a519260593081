"""fixflow-translate and the shared CLI helpers (fixflow.tools.common)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fixflow.backends.xmodel import XAttr, read_xmodel, write_xmodel  # noqa: E402
from fixflow.ir import parse_module  # noqa: E402
from fixflow.ir.interpreter import run_module  # noqa: E402
from fixflow.tools import common  # noqa: E402
from fixflow.tools.translate import main  # noqa: E402


NET_PY = textwrap.dedent("""\
    import torch
    from torch import nn
    import torch.nn.functional as F


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)
            self.fc = nn.Linear(4 * 4 * 4, 10)

        def forward(self, x):
            x = F.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
            return self.fc(x.view(x.size(0), -1))


    class WithTopk(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Conv2d(1, 1, 1)

        def forward(self, x):
            return torch.topk(self.head(x), 2).values


    class Branchy(nn.Module):
        def forward(self, x):
            if x.mean() > 0:
                return x
            return x * 2


    class NeedsArgs(nn.Module):
        def __init__(self, width):
            super().__init__()
    """)


@pytest.fixture()
def net_file(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(NET_PY)
    return path


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def is_one_diagnostic(err: str) -> bool:
    """One `...error: message` line, optionally followed by the source line and a caret line."""
    lines = err.rstrip("\n").splitlines()
    if len(lines) == 3:
        return "error: " in lines[0] and lines[2].strip() == "^"
    return len(lines) == 1


def assert_one_error(code, err, *needles):
    assert code == 1
    lines = err.strip().splitlines()
    assert is_one_diagnostic(err), err
    assert "error: " in lines[0] and "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def _load_class(path, name):
    import importlib.util
    spec = importlib.util.spec_from_file_location("netmod_" + name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, name)


def test_import_torch_to_file(net_file, tmp_path, capsys):
    out_path = tmp_path / "net.mlir"
    code, out, err = run(["--import-torch", f"{net_file}:Net", "--input-shape", "1,1,8,8", "-o", out_path], capsys)
    assert code == 0 and out == "" and err == ""
    module = parse_module(out_path.read_text(), str(out_path))
    assert module.functions()[0].sym_name == "Net"
    assert "loc(" not in out_path.read_text()
    ops = [op.name for op in module.walk() if op.name.startswith("graph.") and op.name != "graph.constant"]
    assert ops == ["graph.conv2d", "graph.batch_norm", "graph.relu", "graph.max_pool2d", "graph.reshape",
                   "graph.linear"]
    (reshape,) = [op for op in module.walk() if op.name == "graph.reshape"]
    assert reshape.shape == (0, -1)


@pytest.mark.parametrize("fmt", ["pt", "npz"])
def test_import_torch_with_weights(net_file, tmp_path, capsys, fmt):
    torch.manual_seed(3)
    model = _load_class(net_file, "Net")()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
    wpath = tmp_path / f"w.{fmt}"
    if fmt == "pt":
        torch.save(model.state_dict(), wpath)
    else:
        np.savez(wpath, **{k: v.numpy() for k, v in model.state_dict().items()})
    code, out, err = run(["--import-torch", f"{net_file}:Net", "--weights", wpath, "--input-shape", "1,1,8,8"],
                         capsys)
    assert code == 0, err
    module = parse_module(out, "net.mlir")
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        ref = model.eval()(x).numpy()
    np.testing.assert_allclose(run_module(module, [x.numpy()])[0], ref, rtol=1e-4, atol=1e-5)


def test_print_debuginfo_points_at_user_file(net_file, capsys):
    code, out, err = run(["--import-torch", f"{net_file}:Net", "--input-shape", "1x1x8x8", "--print-debuginfo"],
                         capsys)
    assert code == 0, err
    line = NET_PY.splitlines().index("        x = F.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)") + 1
    assert re.search(rf'loc\("conv"\("{re.escape(str(net_file))}":{line}:\d+\)\)', out)
    # locations survive a parse of the printed text
    module = parse_module(out, "net.mlir")
    convs = [op for op in module.walk() if op.name == "graph.conv2d"]
    assert convs[0].location.name == "conv" and convs[0].location.child.line == line


def test_import_zoo_and_export_dot(tmp_path, capsys):
    ir = tmp_path / "digits.mlir"
    code, out, err = run(["--import-zoo", "digits_cnn", "-o", ir], capsys)
    assert code == 0, err
    module = parse_module(ir.read_text(), str(ir))
    from fixflow.zoo.registry import get_model
    model = get_model("digits_cnn")
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        np.testing.assert_allclose(run_module(module, [x.numpy()])[0], model(x).numpy(), rtol=1e-4, atol=1e-4)

    code, dot, err = run(["--export-dot", ir], capsys)
    assert code == 0, err
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    func = module.functions()[0]
    ops = list(func.body.ops)
    nodes = re.findall(r"^\s+(n\d+) \[label=", dot, re.M)
    assert len(nodes) == len(ops) + len(func.args)
    edges = re.findall(r"^\s+n\d+ -> n\d+;", dot, re.M)
    assert len(edges) == sum(len(op.operands) for op in ops)
    assert 'graph.conv2d\\n1x16x28x28 f32' in dot
    assert '[label="x\\ninput\\n1x1x28x28 f32", shape=ellipse]' in dot

    # --export-dot straight from an import, and from stdin
    code, dot2, _ = run(["--import-zoo", "digits_cnn", "--export-dot"], capsys)
    assert code == 0 and dot2 == dot


def test_zoo_input_shape_override(capsys):
    code, out, err = run(["--import-zoo", "tiny_mobilenet", "--input-shape", "4,1,28,28", "--name", "main"], capsys)
    assert code == 0, err
    assert "tensor<4x1x28x28xf32>" in out and "sym_name = \"main\"" in out


def test_import_dsl(tmp_path, capsys):
    ffn = tmp_path / "tiny.ffn"
    ffn.write_text("net Tiny(x: f32[1, 3, 8, 8]) with seed=1 {\n  c = conv2d(x, out=4, kernel=3, pad=1)\n"
                   "  r = relu(c)\n  return r\n}\n")
    code, out, err = run(["--import-dsl", ffn], capsys)
    assert code == 0, err
    module = parse_module(out, "tiny.mlir")
    assert [op.name for op in module.walk() if op.name.startswith("graph.")][-2:] == ["graph.conv2d", "graph.relu"]
    ffn.write_text("net Tiny(x: f32[1, 3, 8, 8]) {\n  c = conv9d(x)\n  return c\n}\n")
    assert_one_error(*run(["--import-dsl", ffn], capsys)[::2], f"{ffn}:2:")


# ---- errors --------------------------------------------------------------------------------------------------
def test_unsupported_op_is_one_line(net_file, capsys):
    code, _, err = run(["--import-torch", f"{net_file}:WithTopk", "--input-shape", "1,1,4,4"], capsys)
    line = NET_PY.splitlines().index("        return torch.topk(self.head(x), 2).values") + 1
    assert_one_error(code, err, f"{net_file}:{line}:", "'torch.topk'", "WithTopk.forward", "supported modules")


def test_control_flow_is_one_line(net_file, capsys):
    code, _, err = run(["--import-torch", f"{net_file}:Branchy", "--input-shape", "1,4"], capsys)
    line = NET_PY.splitlines().index("        if x.mean() > 0:") + 1
    assert_one_error(code, err, f"{net_file}:{line}:", "data-dependent control flow")


@pytest.mark.parametrize("argv, needle", [
    (["--import-torch", "{net}:Missing", "--input-shape", "1,1,8,8"], "no class 'Missing' (nn.Module classes there:"),
    (["--import-torch", "{net}:NeedsArgs", "--input-shape", "1,1,8,8"], "cannot construct NeedsArgs()"),
    (["--import-torch", "{net}:Net"], "needs --input-shape"),
    (["--import-torch", "{net}:Net", "--input-shape", "1,a,8"], "invalid shape '1,a,8'"),
    (["--import-torch", "{net}:Net", "--input-shape", "1,3,8,8"], "example inputs failed"),
    (["--import-torch", "{net}", "--input-shape", "1,1,8,8"], "say which class to use"),
    (["--import-torch", "{tmp}/nope.py:Net", "--input-shape", "1,1,8,8"], "no such file"),
    (["--import-torch", "{net}:Net", "--input-shape", "1,1,8,8", "--weights", "{tmp}/w.pt"], "no such file"),
    (["--import-torch", "{net}:Net", "--input-shape", "1,1,8,8", "--weights", "{tmp}/bad.pt"], "cannot read weights"),
    (["--import-torch", "{net}:Net", "--input-shape", "1,1,8,8", "--weights", "{tmp}/other.pt"], "do not match Net"),
    (["--import-zoo", "nope"], "unknown model 'nope'"),
    (["--import-zoo", "digits_cnn", "--weights", "x.pt"], "--weights needs"),
    (["--import-zoo", "digits_cnn", "extra.mlir"], "unexpected input file"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    ([], "nothing to do"),
    (["{tmp}/missing.mlir"], "cannot read"),
    (["{tmp}/broken.mlir"], "broken.mlir:2:1: error: unexpected end"),
    (["--import-dsl", "{tmp}/none.ffn"], "cannot read"),
])
def test_usage_and_input_errors(argv, needle, net_file, tmp_path, capsys):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    torch.save({"other.weight": torch.zeros(2)}, tmp_path / "other.pt")
    (tmp_path / "broken.mlir").write_text('"builtin.module"() ({\n')
    argv = [a.format(net=net_file, tmp=tmp_path) for a in argv]
    assert_one_error(*run(argv, capsys)[::2], needle)


def test_syntax_error_in_user_file(tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\nclass Net(torch.nn.Module:\n    pass\n")
    assert_one_error(*run(["--import-torch", f"{bad}:Net", "--input-shape", "1,1"], capsys)[::2],
                     f"{bad}:2:", "syntax error")


def test_console_script_exit_code(net_file, tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "fixflow-translate")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "fixflow.tools.translate"]
    proc = subprocess.run(cmd + ["--import-torch", f"{net_file}:WithTopk", "--input-shape", "1,1,4,4"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert is_one_diagnostic(proc.stderr) and "'torch.topk'" in proc.stderr


# ---- fixflow.tools.common ---------------------------------------------------------------------------------------
def test_common_run_tool_and_error_lines():
    from fixflow.ir import FileLineColLoc, FixflowError
    from fixflow.zoo.errors import ZooError
    buf = io.StringIO()
    assert common.run_tool(lambda: None, buf) == 0
    assert common.run_tool(lambda: 3, buf) == 3
    assert buf.getvalue() == ""

    def fail(exc):
        def body():
            raise exc
        return body

    loc = FileLineColLoc("a.mlir", 3, 7)
    for exc, expected in [
        (FixflowError("bad thing", loc), "a.mlir:3:7: error: bad thing"),
        (FixflowError("no location"), "error: no location"),
        (ZooError("zoo says no"), "error: zoo says no"),
        (FileNotFoundError(2, "No such file or directory", "x.bin"), "error: x.bin: No such file or directory"),
        (common.ToolError("multi\nline"), "error: multi line"),
    ]:
        buf = io.StringIO()
        assert common.run_tool(fail(exc), buf) == 1
        assert buf.getvalue() == expected + "\n"
    buf = io.StringIO()
    assert common.run_tool(fail(KeyError("oops")), buf) == 1
    assert buf.getvalue().startswith("error: internal error: KeyError") and buf.getvalue().count("\n") == 1
    buf = io.StringIO()
    assert common.run_tool(fail(KeyboardInterrupt()), buf) == 130


def test_common_argument_parser_and_helpers(tmp_path, capsys):
    p = common.ArgumentParser(prog="fixflow-x")
    p.add_argument("--n", type=int)
    with pytest.raises(common.ToolError, match=r"invalid int value: 'z' \(see fixflow-x --help\)"):
        p.parse_args(["--n", "z"])
    assert common.run_tool(lambda: p.parse_args(["--help"])) == 0
    capsys.readouterr()
    assert common.parse_shape("1, 3,224,224") == (1, 3, 224, 224)
    assert common.parse_shape("2x3") == (2, 3)
    for bad in ("", "1,0", "a"):
        with pytest.raises(common.ToolError):
            common.parse_shape(bad)
    out = tmp_path / "sub" / "o.txt"
    common.write_output("hello", str(out))
    assert common.read_text(str(out)) == "hello"
    common.write_output(b"\x00\x01", str(out))
    assert common.read_bytes(str(out)) == b"\x00\x01"
    common.write_output("to stdout", None)
    assert capsys.readouterr().out == "to stdout"
    with pytest.raises(common.ToolError, match="cannot read"):
        common.read_text(str(tmp_path / "missing"))
    ir = tmp_path / "m.mlir"
    ir.write_text('"builtin.module"() ({\n}) : () -> ()\n')
    assert common.load_ir(str(ir)).name == "builtin.module"


# ---- xmodel import / export ---------------------------------------------------------------------------
def _quantized_dsl_module(tmp_path):
    import numpy as np
    from fixflow.frontends.dsl import import_dsl
    from fixflow.passes.fix.quantize import quantize_module
    from _lib.quant import annotate
    module = import_dsl("net N(x: f32[1, 2, 6, 6]) with seed=1 {\n  c = conv2d(x, out=4, kernel=3, pad=1)\n"
                        "  r = relu(c)\n  return r\n}\n", "n.ffn")
    x = np.random.default_rng(0).standard_normal((4, 2, 6, 6)).astype(np.float32)
    annotate(module, [x])
    quantize_module(module)
    return module, x


def test_translate_xmodel_export_and_import(tmp_path, capsys):
    import numpy as np
    from fixflow.runtime.fix_executor import run_quantized
    from fixflow.ir import parse_module, print_module
    module, x = _quantized_dsl_module(tmp_path)
    ir = tmp_path / "q.mlir"
    ir.write_text(print_module(module))
    xm = tmp_path / "q.xmodel"
    assert main([str(ir), "--export-xmodel", "-o", str(xm)]) == 0
    assert main(["--import-xmodel", str(xm)]) == 0
    back = parse_module(capsys.readouterr().out)
    assert np.array_equal(run_quantized(back, [x])[0], run_quantized(module, [x])[0])


def test_translate_xmodel_errors(tmp_path, capsys):
    module, _ = _quantized_dsl_module(tmp_path)
    from fixflow.ir import print_module
    ir = tmp_path / "q.mlir"
    ir.write_text(print_module(module))
    assert main([str(ir), "--export-xmodel"]) == 1
    assert "give -o" in capsys.readouterr().err
    bad = tmp_path / "bad.xmodel"
    bad.write_bytes(b"\x0b\x00garbage")
    assert main(["--import-xmodel", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "not a valid xmodel" in err and is_one_diagnostic(err)


def test_translate_cli_malformed_xmodel(calibrated, tmp_path, capsys):
    from fixflow.tools.translate import main
    g = read_xmodel(calibrated[2])
    next(o for o in g.ops if o.type == "conv2d-fix").attrs["pad"] = XAttr("int32_vec", [1, 1])
    p = tmp_path / "bad.xmodel"
    write_xmodel(g, p)
    assert main(["--import-xmodel", str(p), "-o", str(tmp_path / "out.mlir")]) == 1
    err = capsys.readouterr().err
    assert "internal error" not in err and "'pad' must be 4 integers" in err
