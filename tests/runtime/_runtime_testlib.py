"""Shared data of the runtime tests: AMD's compiled MNIST, the digits _int.xmodel made by fixflow-quantize
(calib + test, once per session) with the accuracy the quantizer printed, and a tiny DPU program (one
CONV tile) whose outputs numpy computes independently."""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from pathlib import Path

import numpy as np

MNIST_DIR = Path(__file__).resolve().parents[3] / "shared" / "reference" / "amd-compiled-mnist"
if not MNIST_DIR.exists():   # CI lays shared/ beside the clone
    MNIST_DIR = Path("/work/shared/reference/amd-compiled-mnist")
MNIST = MNIST_DIR / "dpu_mnist_classifier.xmodel"

sys.path.insert(0, str(Path(__file__).parent / "dpu"))
from _dpu_interp_lib import TARGET, conv_expected, conv_program  # noqa: E402


def mnist_inputs() -> np.ndarray:
    """The five int8 inputs (5, 28, 28, 1), fix_point 6."""
    return np.stack([np.fromfile(MNIST_DIR / "inputs" / f"in{i}.bin", dtype=np.int8).reshape(28, 28, 1)
                     for i in range(5)])


def mnist_expected() -> np.ndarray:
    exp = json.loads((MNIST_DIR / "expected_outputs.json").read_text())
    return np.array([exp[f"in{i}.bin"] for i in range(5)], dtype=np.int8)


_QUANTIZED: dict[str, tuple[Path, float]] = {}


def quantize_digits(out_dir: Path) -> tuple[Path, float]:
    """`fixflow-quantize --model digits_cnn --data digits` calib then test into `out_dir` (once per test
    session): the _int.xmodel and the quantized test accuracy the test mode printed (a fraction)."""
    if "digits" in _QUANTIZED and _QUANTIZED["digits"][0].exists():
        return _QUANTIZED["digits"]
    from fixflow.tools.quantize import main
    for mode in ("calib", "test"):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = main(["--model", "digits_cnn", "--data", "digits", "--mode", mode, "--output-dir", str(out_dir)])
        assert rc == 0, buf.getvalue()
    m = re.search(r"quantized accuracy ([0-9.]+)%", buf.getvalue())
    assert m, buf.getvalue()
    _QUANTIZED["digits"] = out_dir / "DigitsCNN_int.xmodel", float(m.group(1)) / 100
    return _QUANTIZED["digits"]


def tiny_dpu(seed: int = 0):
    """A one-CONV-tile DPU subgraph (3x3 conv of a (6, 6, 16) int8 map, 16 channels, ReLU) and a numpy
    function computing its output: (DPUSubgraph, expected(x (N, 6, 6, 16)) -> (N, 4, 4, 16))."""
    from fixflow.backends.mc.codec import encode
    from fixflow.runtime.dpu import DDRTensor, DPUSubgraph
    rng = np.random.default_rng(seed)
    x0 = rng.integers(-128, 128, (6, 6, 16)).astype(np.int8)
    wt = rng.integers(-128, 128, (16, 3, 3, 16)).astype(np.int8)
    bias = rng.integers(-128, 128, 16).astype(np.int8)
    p, (oh, ow, oc) = conv_program(x0, wt, bias, act=1, shift_cut=9, shift_bias=2)
    regs = p.regions()
    sizes = {r: a.size for r, a in regs.items()}
    dpu = DPUSubgraph("tiny", TARGET, encode(p.ins), sizes, {0: regs[0].tobytes()},
                      [DDRTensor("x", (1, 6, 6, 16), 2, 0, (576, 96, 16, 1), 0)],
                      [DDRTensor("y", (1, oh, ow, oc), 3, 0, (oh * ow * oc, ow * oc, oc, 1), 0)])

    def expected(x: np.ndarray) -> np.ndarray:
        return np.stack([conv_expected(xi, wt, bias, act=1, shift_cut=9, shift_bias=2) for xi in x])
    return dpu, expected


def compile_xmodel(int_xmodel: Path, out_dir: Path, arch: str, net: str = "digits") -> Path:
    """`fixflow-compile -x INT -a ARCH -o OUT -n NET`: the compiled xmodel's path."""
    from fixflow.tools.compile import main
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["-x", str(int_xmodel), "-a", arch, "-o", str(out_dir), "-n", net])
    assert rc == 0, buf.getvalue()
    return out_dir / f"{net}.xmodel"
