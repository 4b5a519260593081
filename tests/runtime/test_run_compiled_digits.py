"""fixflow's own compiled digits model end to end: fixflow-quantize (calib + test) -> fixflow-compile ->
fixflow-run / GraphRunner / Runner. The outputs equal the quantizer's integer execution (test mode) bit for
bit, in every mode, and the accuracy fixflow-run prints is the quantizer's."""

from __future__ import annotations

import numpy as np
import pytest

from _runtime_testlib import compile_xmodel, quantize_digits
from fixflow.runtime import GraphRunner, Runner, dpu_subgraphs

pytestmark = pytest.mark.slow   # quantizes and compiles digits_cnn first


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    import torch
    from fixflow.quantizer import Quantizer
    from fixflow.zoo import get_model, load_data
    int_path, acc = quantize_digits(tmp_path_factory.mktemp("q"))
    x, y = load_data("digits_cnn", "test")
    q = Quantizer(get_model("digits_cnn"), (torch.zeros(1, 1, 28, 28),), mode="test", output_dir=str(int_path.parent))
    want = np.concatenate([q.quant_model(x[i:i + 128]) for i in range(0, len(x), 128)])
    return int_path, acc, x, y, want


@pytest.mark.parametrize("arch", ["kv260", "DPUCZDX8G_ISA1_B1024"])
def test_compiled_digits_equals_quantizer(digits, arch, tmp_path, capsys):
    from fixflow.tools.run import main
    int_path, acc, x, y, want = digits
    compiled = compile_xmodel(int_path, tmp_path / "c", arch)
    g = GraphRunner.from_xmodel(compiled)
    assert g.compiled and len(g.dpu_steps) >= 1
    for mode in ("fast", "fix"):
        out, = g.run([x], mode=mode)
        assert np.array_equal(out, want), mode          # bit for bit
    ref, = g.run([x[:12]], mode="reference")
    assert np.array_equal(ref, want[:12])
    npz = tmp_path / "o.npz"
    assert main([str(compiled), "--data", "digits", "--threads", "2", "-o", str(npz), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert f"accuracy {100 * acc:.2f}% (" in text and "images/s" in text
    with np.load(npz) as z:
        assert np.array_equal(z[g.outputs[0].name], want)
    assert float((want.argmax(1) == y).mean()) == pytest.approx(acc, abs=5e-5)


def test_compiled_digits_dpu_runner_modes_agree(digits, tmp_path):
    int_path, *_ = digits
    compiled = compile_xmodel(int_path, tmp_path / "c", "kv260")
    sg = dpu_subgraphs(compiled)[0]
    i = Runner.create_runner(sg, "run").get_input_tensors()[0]
    x = np.random.default_rng(0).integers(-128, 128, (16,) + tuple(i.dims[1:])).astype(np.int8)
    outs = {}
    for mode in ("run", "sim", "ref"):
        with Runner.create_runner(sg, mode, fingerprint="kv260") as r:
            outs[mode] = r.execute([x])
    for a, b, c in zip(outs["run"], outs["sim"], outs["ref"]):
        assert np.array_equal(a, b) and np.array_equal(a, c)
