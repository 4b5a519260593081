"""Every fixflow-* console script over a corpus of bad inputs: no traceback, no "internal error".

The scripts are read from pyproject.toml, so a new tool is covered (and must be given commands here:
the test fails for a script without any). Each command runs in-process through the tool's `main`
(stdout/stderr captured); a few run as real processes to check the installed scripts too. A bad input
must give exit code 1 and one `error:` line; Python's "Traceback" or fixflow's "internal error" (a
bug by definition) anywhere in the output is a failure.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]

_GOOD_MLIR = """\
"builtin.module"() ({
  "func.func"() ({
  ^bb0(%x: tensor<1x2x4x4xf32>):
    %0 = "graph.relu"(%x) : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
    "func.return"(%0) : (tensor<1x2x4x4xf32>) -> ()
  }) {sym_name = "main", function_type = (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>} : () -> ()
}) : () -> ()
"""

_MODELS_PY = """\
import torch
import torch.nn as nn

class Shape(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(1, 2, 3)
    def forward(self, x):
        return self.c(x), x.shape[0]

class Bn(nn.BatchNorm2d):
    def __init__(self):
        super().__init__(1)

class Boom(nn.Module):
    def __init__(self):
        raise RuntimeError("boom")

class Flow(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x
        return -x
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("corpus")
    files: dict[str, Path] = {}

    def put(name: str, data: str | bytes) -> None:
        p = d / name
        p.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        files[name] = p

    put("empty.mlir", "")
    put("binary.mlir", bytes(range(256)) * 4)
    put("latin1.mlir", "\xff\xfe".encode("latin-1"))
    put("trunc.mlir", _GOOD_MLIR[:150])
    put("deep.mlir", "(" * 5000)
    put("bigint.mlir", _GOOD_MLIR.replace("1x2x4x4", "1x2x4x" + "9" * 5000, 1))
    put("ragged.mlir", '%0 = "graph.constant"() {value = dense<[[1.0, 2.0], [3.0]]> : tensor<2x2xf32>} : () -> '
                       'tensor<2x2xf32>\n')
    put("good.mlir", _GOOD_MLIR)
    put("empty.xmodel", b"")
    put("random.xmodel", np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    put("text.xmodel", "not an xmodel\n")
    # an _int.xmodel, and its corruptions
    from fixflow.backends.xmodel.model import XOp, XTensor
    from fixflow.backends.xmodel.serial import read_xmodel_bytes, xmodel_bytes
    from fixflow.quantizer import Quantizer
    qd = d / "quant"
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU()).eval()
    x = torch.randn(2, 1, 6, 6)
    q = Quantizer(model, (x[:1],), mode="calib", output_dir=qd, log=None, progress=False)
    q.quant_model(x)
    q.export_quant_config()
    q = Quantizer(model, (x[:1],), mode="test", output_dir=qd, log=None, progress=False)
    good = q.export_xmodel().read_bytes()
    put("int.xmodel", good)
    put("trunc.xmodel", good[: len(good) // 2])
    g = read_xmodel_bytes(good)
    conv = next(o for o in g.ops if o.type == "conv2d-fix")
    t = conv.output
    bad_ops = [XOp(o.name, o.type, o.attrs, o.inputs,
                   output=XTensor(t.name, t.shape, t.data_type, {**t.attrs, "bit_width": 4})) if o is conv else o
               for o in g.ops]
    put("bw4.xmodel", xmodel_bytes(type(g)(g.name, bad_ops, g.attrs, g.root)))
    deep = b"\x0a\x04leaf"
    for i in range(5000):
        name = f"s{i}".encode()
        deep = b"\x0a" + bytes([len(name)]) + name + b"\x52" + _varint(len(deep)) + deep
    put("deep.xmodel", good + b"\x52" + _varint(len(deep)) + deep)
    # quantizer output directories with corrupt files
    for name, text in (("qnull", "null"), ("qfrac", None), ("qbad", "{")):
        qq = d / name
        qq.mkdir()
        info = json.loads((qd / "quant_info.json").read_text())
        if text is None:
            k = next(iter(info["output"]))
            info["output"][k] = [[8, 2.5]]
            text = json.dumps(info)
        (qq / "quant_info.json").write_text(text)
        files[name] = qq
    # DSL
    put("deep.ffn", "net N(x: f32[1, 1, 8, 8]) {\n  y = conv2d(x, out=4, kernel=" + "[" * 3000 + "3" + "]" * 3000
        + ")\n  return y\n}\n")
    put("syntax.ffn", "net N(x: f32[1, 1, 8, 8]) {\n  y = = relu(x)\n}\n")
    put("big.ffn", "net N(x: f32[1, 1, 8, 8]) {\n  y = conv2d(x, out=" + "9" * 5000 + ", kernel=3)\n  return y\n}\n")
    put("small.ffn", "net N(x: f32[1, 1, 8, 8]) {\n  y = conv2d(x, out=4, kernel=3)\n  return y\n}\n")
    np.savez(d / "nan.npz", **{"y.weight": np.full((4, 1, 3, 3), np.nan, np.float32)})
    files["nan.npz"] = d / "nan.npz"
    np.savez(d / "inputs.npz", x=np.full((2, 1, 6, 6), np.nan, np.float32))
    files["inputs.npz"] = d / "inputs.npz"
    put("garbage.npz", b"PK\x03\x04 nonsense")
    put("models.py", _MODELS_PY)
    put("syntax.py", "class M(:\n")
    put("config.json", '{"overall_quantize_config": {"bit_width": 0}}')
    files["dir"] = d
    files["missing"] = d / "no-such-file"
    return files


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _commands(f: dict[str, Path], out: Path) -> dict[str, list[list[str]]]:
    s = {k: str(v) for k, v in f.items()}
    o = str(out)
    opt = [[s[k]] for k in ("empty.mlir", "binary.mlir", "latin1.mlir", "trunc.mlir", "deep.mlir", "bigint.mlir",
                             "ragged.mlir", "missing", "dir")]
    opt += [[s["good.mlir"], f"--pass-pipeline=builtin.module({p})"] for p in (
        "calibrate{bit_width=0}", "calibrate{bit_width=99}", "calibrate{method=x}", "infer-shapes{batch=-3}",
        "equalize{threshold=nan}", "nosuchpass", "calibrate{batches=x}",
        "fold-bn{strict=maybe}", "builtin.module(")]
    opt += [[s["good.mlir"], "--load-pass-plugin", s["syntax.py"]], [s["good.mlir"], "--bogus-flag"]]
    # issue 14: the calibrate pass reads data as the tools do (an .npy ended in "internal error")
    opt += [[s["good.mlir"], f"--pass-pipeline=builtin.module(calibrate{{data={s[k]}}})"]
            for k in ("garbage.npz", "inputs.npz", "models.py", "missing")]
    opt += [[s["good.mlir"], "--mlir-elide-elementsattrs-if-larger=-2"], [s["good.mlir"], "--mlir-timing-display=x"]]
    translate = [["--import-xmodel", s[k]] for k in ("empty.xmodel", "random.xmodel", "text.xmodel", "trunc.xmodel",
                                                    "bw4.xmodel", "deep.xmodel", "missing")]
    translate += [["--import-dsl", s[k]] for k in ("deep.ffn", "syntax.ffn", "big.ffn", "missing")]
    translate += [["--import-dsl", s["small.ffn"], "--weights", s[k]] for k in ("nan.npz", "garbage.npz")]
    translate += [["--import-torch", f"{s['models.py']}:{c}", "--input-shape", "1,1,6,6"]
                  for c in ("Shape", "Bn", "Boom", "Flow", "Missing")]
    translate += [["--import-torch", f"{s['syntax.py']}:M"], ["--import-zoo", "no_such_model"],
                  [s["deep.mlir"], "--export-dot"], [s["ragged.mlir"]], ["--mc-to-ac", s["random.xmodel"]]]
    xir = [[cmd, s[k]] for cmd in ("subgraph", "graph", "dump_txt", "check", "dump_reg")
           for k in ("empty.xmodel", "random.xmodel", "deep.xmodel", "trunc.xmodel", "missing")]
    xir += [["dump_bin", s["deep.xmodel"], o], ["dot", s["random.xmodel"], o + "/x.dot"], ["nosuchcmd"], []]
    quantize = [["--model", f"{s['models.py']}:{c}", "--random-weights", "--input-shape", "1,1,6,6", "--output-dir",
                 s[q], "--mode", "test", "--data", s["inputs.npz"]] for c in ("Shape",) for q in ("qnull", "qfrac", "qbad")]
    quantize += [["--model", f"{s['models.py']}:Shape", "--random-weights", "--input-shape", "1,1,6,6", "--data",
                  s["inputs.npz"], "--output-dir", o + "/q1"],
                 ["--model", "digits_cnn", "--config", s["config.json"], "--output-dir", o + "/q2"],
                 ["--model", "digits_cnn", "--data", s["garbage.npz"], "--output-dir", o + "/q3"],
                 ["--model", "no_such_model"],
                 ["--model", f"{s['models.py']}:Boom", "--random-weights", "--input-shape", "1,1,6,6"],
                 ["--model", "digits_cnn", "--batch-size", "-1", "--output-dir", o + "/q4"],
                 # issue 14: a .py without its class, weights as the model, no weights, a broken DSL network
                 ["--model", s["models.py"]], ["--model", s["garbage.npz"]],
                 ["--model", f"{s['models.py']}:Shape", "--input-shape", "1,1,6,6", "--output-dir", o + "/q5"],
                 ["--model", f"{s['models.py']}:Shape", "--weights", s["garbage.npz"], "--output-dir", o + "/q6"],
                 ["--model", s["syntax.ffn"], "--random-weights", "--output-dir", o + "/q7"]]
    zoo = [["show", "no_such_model"], ["eval", "resnet18"], ["train", "no_such_model"], ["list", "--bogus"], []]
    run = [[s[k], "--input", s["inputs.npz"]] for k in ("empty.xmodel", "random.xmodel", "deep.xmodel",
                                                        "bw4.xmodel", "missing")]
    run += [[s["int.xmodel"], "--input", s["garbage.npz"]], [s["int.xmodel"], "--input", s["inputs.npz"]],
            [s["int.xmodel"], "--data", "digits", "--batch", "0"]]
    profile = [[s[k]] for k in ("empty.xmodel", "random.xmodel", "deep.xmodel", "int.xmodel", "ragged.mlir",
                                "missing")]
    profile += [[s["int.xmodel"], "--board", "nosuchboard"]]
    compile_ = [["-x", s[k], "-a", "kv260", "-o", o + "/c"] for k in ("empty.xmodel", "random.xmodel", "deep.xmodel",
                                                                     "bw4.xmodel", "trunc.xmodel", "ragged.mlir",
                                                                     "missing")]
    compile_ += [["-x", s["int.xmodel"], "-a", a, "-o", o + "/c"] for a in ("nosuchboard", "0xZZ", s["garbage.npz"])]
    compile_ += [["-x", s["int.xmodel"], "-a", "kv260", "-o", o + "/c", "--options", v]
                 for v in ("{", "[]", '{"keep_ir": 3}', '{"nosuch": true}')]
    inspect = [[s[k]] for k in ("empty.xmodel", "random.xmodel", "deep.xmodel", "bw4.xmodel", "ragged.mlir",
                                "missing", "syntax.ffn")]
    inspect += [[f"{s['models.py']}:{c}", "--input-shape", "1,1,6,6"] for c in ("Shape", "Boom", "Flow")]
    inspect += [["digits_cnn", "--quant-dir", s[q]] for q in ("qnull", "qfrac", "qbad")]
    inspect += [["digits_cnn", "--board", "nosuchboard"], ["no_such_model"]]
    prune = [["--model", m, "--channel-ratio", r, "-o", o + "/p", "--no-progress", *extra] for m, r, extra in (
        ("digits_cnn", "nan", []), ("digits_cnn", "1.5", []), ("no_such_model", "0.5", []),
        (f"{s['models.py']}:Boom", "0.5", []), (f"{s['models.py']}:Flow", "0.5", ["--input-shape", "1,1,28,28"]),
        ("digits_cnn", "0.5", ["--data", s["garbage.npz"]]), ("digits_cnn", "0.5", ["--data", s["inputs.npz"]]),
        ("digits_cnn", "0.5", ["--exclude", "nosuch"]), ("digits_cnn", "0.5", ["--epochs", "-1"]))]
    prune += [["--model", "digits_cnn", "--spec", s["garbage.npz"], "-o", o + "/p"],
              ["--model", "digits_cnn", "--mac-budget", "-5", "-o", o + "/p"], ["--model", "digits_cnn"]]
    return {"fixflow-prune": prune, "fixflow-compile": compile_, "fixflow-inspect": inspect, "fixflow-opt": opt, "fixflow-translate": translate, "fixflow-xir": xir, "fixflow-quantize": quantize,
            "fixflow-zoo": zoo, "fixflow-run": run, "fixflow-profile": profile}


def _main(script: str):
    module, func = SCRIPTS[script].split(":")
    return getattr(importlib.import_module(module), func)


def _check(script: str, argv: list[str], code: int, out: str, err: str) -> None:
    text = out + err
    where = f"{script} {' '.join(a[-60:] for a in argv)}"
    assert "Traceback" not in text, f"{where}: traceback\n{text[-2000:]}"
    assert "internal error" not in text, f"{where}: {text[-600:]}"
    assert code != 0 or "error" not in err, f"{where}: exit 0 with an error: {err[-300:]}"


def test_every_script_has_bad_inputs(corpus, tmp_path):
    cmds = _commands(corpus, tmp_path)
    assert set(SCRIPTS) <= set(cmds), f"no bad-input commands for {sorted(set(SCRIPTS) - set(cmds))}"


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_script_over_bad_inputs(corpus, tmp_path, script):
    main = _main(script)
    failures = []
    for argv in _commands(corpus, tmp_path).get(script, []):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as e:   # a tool that exits instead of returning its code
                code = e.code if isinstance(e.code, int) else 1
            except BaseException as e:  # noqa: BLE001 - an exception out of main() is a traceback
                failures.append(f"{script} {argv}: {type(e).__name__}: {e}")
                continue
        try:
            _check(script, argv, code, out.getvalue(), err.getvalue())
            if code == 0 and argv and any(k in " ".join(argv) for k in ("bw4", "deep", "nan", "qfrac", "qnull")):
                failures.append(f"{script} {argv}: exit 0 on a bad input\n{err.getvalue()[-300:]}")
        except AssertionError as e:
            failures.append(str(e))
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("script,argv", [
    ("fixflow-xir", ["subgraph", "deep.xmodel"]),
    ("fixflow-opt", ["good.mlir", "--pass-pipeline=builtin.module(calibrate{bit_width=0})"]),
    ("fixflow-translate", ["--import-dsl", "deep.ffn"]),
])
def test_installed_scripts(corpus, script, argv):
    argv = [str(corpus[a]) if a in corpus else a.replace("good.mlir", str(corpus["good.mlir"])) for a in argv]
    exe = Path(sys.executable).with_name(script)
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", f"import sys; from {SCRIPTS[script].split(':')[0]} "
                                            f"import main; sys.exit(main())", "--"]
    r = subprocess.run(cmd + argv, capture_output=True, text=True, timeout=300)
    _check(script, argv, r.returncode, r.stdout, r.stderr)
    assert r.returncode == 1 and r.stderr.count("error:") == 1, r.stderr
