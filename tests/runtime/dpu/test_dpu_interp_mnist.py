"""The DPU interpreter on a program no one on this project made: AMD's compiled MNIST classifier.
Both modes must return exactly what AMD's functional simulator returned (expected_outputs.json)."""

import json
import os

import numpy as np
import pytest

from fixflow.runtime.dpu import DPUExecError, DPUInterpreter, DPUSubgraph

REF = os.path.join(os.path.dirname(__file__), *[".."] * 4, "..", "shared", "reference", "amd-compiled-mnist")
REF = os.path.normpath(REF if os.path.isdir(REF) else "/work/shared/reference/amd-compiled-mnist")
pytestmark = pytest.mark.skipif(not os.path.isdir(REF), reason="shared reference data not found")


@pytest.fixture(scope="module")
def mnist():
    dpu = DPUSubgraph.from_xmodel(os.path.join(REF, "dpu_mnist_classifier.xmodel"))
    with open(os.path.join(REF, "expected_outputs.json")) as f:
        expected = json.load(f)
    names = sorted(expected)
    xs = np.stack([np.fromfile(os.path.join(REF, "inputs", n), dtype=np.int8).reshape(28, 28, 1) for n in names])
    return dpu, xs, np.array([expected[n] for n in names], dtype=np.int8)


def test_subgraph_io(mnist):
    dpu = mnist[0]
    assert [(t.name, t.reg_id, t.ddr_addr, t.shape) for t in dpu.inputs] == [("quant_input_1", 2, 0, (1, 28, 28, 1))]
    assert [(t.name, t.reg_id, t.shape) for t in dpu.outputs] == [("quant_dense_1_softmax_fix", 3, (1, 10))]
    assert dpu.machine.name == "DPUCZDX8G_ISA1_B4096" and len(dpu.program) == 230


@pytest.mark.parametrize("mode", ["reference", "fast"])
def test_expected_outputs_one_by_one(mnist, mode):
    dpu, xs, expected = mnist
    for i in range(len(xs)):
        out = dpu.run({"quant_input_1": xs[i:i + 1]}, mode=mode)["quant_dense_1_softmax_fix"]
        np.testing.assert_array_equal(out[0], expected[i])


@pytest.mark.parametrize("mode", ["reference", "fast"])
def test_expected_outputs_as_a_batch(mnist, mode):
    dpu, xs, expected = mnist
    out = dpu.run([xs], mode=mode)["quant_dense_1_softmax_fix"]
    np.testing.assert_array_equal(out, expected)


def _regions(dpu, x):
    regs = {r: np.zeros(s, dtype=np.int8) for r, s in dpu.reg_sizes.items()}
    regs[0][:] = dpu.consts[0]
    regs[2][:784] = x.ravel()
    return regs


def test_trace_hook_and_stop(mnist):
    dpu, xs, expected = mnist
    events = []
    it = DPUInterpreter(dpu.machine, dpu.mc_code, _regions(dpu, xs[2]), mode="reference", trace=events.append)
    it.run(stop=3)
    assert it.pc == 3 and [e.index for e in events] == [0, 1, 2]
    assert [e.unit for e in events] == ["load", "conv", "misc"]
    # instruction 0 loads the 32 conv biases from REG_0 offset 0 into bank 33 lines 0-1
    assert events[0].ddr_read == [(0, 0, 32)]
    assert events[0].bank_lines_written == [(33, 0), (33, 1)]
    np.testing.assert_array_equal(it.bank(33)[:2].ravel(), dpu.consts[0][:32])
    it.run()
    last = events[-2]
    assert last.name == "SAVE" and last.ddr_written == [(3, 0, 10)]
    assert len(events) == 230
    conv = next(e for e in events if e.name == "CONV")
    assert conv.bank_lines_read and conv.bank_lines_written
    np.testing.assert_array_equal(it.regions[3][:10], expected[2])


def test_fast_mode_banks_equal_reference_banks(mnist):
    dpu, xs, _ = mnist
    ref = DPUInterpreter(dpu.machine, dpu.mc_code, _regions(dpu, xs[3]), mode="reference")
    fast = DPUInterpreter(dpu.machine, dpu.mc_code, _regions(dpu, xs[3]), mode="fast")
    r1, r2 = ref.run(), fast.run()
    for r in r1:
        np.testing.assert_array_equal(r1[r], r2[r])
    for b in range(dpu.machine.num_banks):
        np.testing.assert_array_equal(ref.bank(b), fast.bank(b))


def test_fast_mode_refuses_stepping(mnist):
    dpu, xs, _ = mnist
    it = DPUInterpreter(dpu.machine, dpu.mc_code, _regions(dpu, xs[0]), mode="fast")
    with pytest.raises(DPUExecError, match="mode='reference'"):
        it.run(stop=5)
    with pytest.raises(DPUExecError, match="mode='reference'"):
        DPUInterpreter(dpu.machine, dpu.mc_code, _regions(dpu, xs[0]), mode="fast", trace=print)


def test_bad_inputs_are_errors(mnist):
    dpu, xs, _ = mnist
    with pytest.raises(DPUExecError, match="int8"):
        dpu.run([xs.astype(np.float32)])
    with pytest.raises(DPUExecError, match="shape"):
        dpu.run([xs[:, :27]])
    with pytest.raises(DPUExecError, match="missing input"):
        dpu.run({"nope": xs})


def test_fast_mode_from_many_threads(mnist):
    import threading
    dpu, xs, expected = mnist
    wrong, done = [], []

    def worker(seed):
        rng = np.random.default_rng(seed)
        for _ in range(6):
            idx = rng.integers(0, len(xs), size=int(rng.integers(1, 4)))
            out = dpu.run([xs[idx]], mode="fast")["quant_dense_1_softmax_fix"]
            if not np.array_equal(out, expected[idx]):
                wrong.append(seed)
            done.append(seed)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not wrong and len(done) == 48


def test_preload_code_runs_first(mnist):
    """mc_code_preload runs before mc_code, without its END: a preload that fills a bank line (which the
    program overwrites later) and saves it into REG_3 leaves AMD's outputs unchanged and its bytes visible."""
    from fixflow.backends.mc import encode
    from fixflow.backends.xmodel import XAttr, read_xmodel
    from _dpu_interp_lib import I
    dpu, xs, expected = mnist
    g = read_xmodel(os.path.join(REF, "dpu_mnist_classifier.xmodel"))
    sg = next(s for s in g.root.walk() if s.device == "DPU")
    pre = [I("LOAD", bank_id=4, bank_addr=0, reg_id=0, ddr_addr=0, channel=16, broadcast=7, const_value=9),
           I("SAVE", bank_id=4, bank_addr=0, reg_id=3, ddr_addr=12, channel=4), I("END")]
    sg.set_attr("mc_code_preload", XAttr("bytes", encode(pre)))
    withpre = DPUSubgraph.from_xmodel(g)
    assert len(withpre.program) == len(dpu.program) + 2 and withpre.program[0].name == "LOAD"
    for mode in ("reference", "fast"):
        np.testing.assert_array_equal(withpre.run([xs], mode=mode)["quant_dense_1_softmax_fix"], expected)
        regs = _regions(withpre, xs[1])
        out = DPUInterpreter(withpre.machine, withpre.program, regs, mode=mode).run()
        np.testing.assert_array_equal(out[3][12:16], [9, 9, 9, 9])
