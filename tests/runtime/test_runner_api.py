"""The VART-style Runner: tensors, execute_async/wait, outputs in place, batches, modes, fingerprints,
process pools, graph runners, errors."""

from __future__ import annotations

import numpy as np
import pytest

from _runtime_testlib import MNIST, mnist_expected, mnist_inputs, tiny_dpu
from fixflow.runtime import TIMEOUT, Runner, RuntimeRunError, dpu_subgraphs


@pytest.fixture(scope="module")
def sg():
    return dpu_subgraphs(MNIST)[0]


def test_subgraphs_and_tensors(sg):
    assert sg.name == "subgraph_quant_conv2d" and sg.get_attr("device") == "DPU"
    assert sg.get_attr("dpu_fingerprint") == 0x0101000056010407
    with Runner.create_runner(sg, "run", batch=4) as r:
        i, = r.get_input_tensors()
        o, = r.get_output_tensors()
        assert (i.name, i.dims, i.dtype, i.get_attr("fix_point")) == ("quant_input_1", (4, 28, 28, 1), "xint8", 6)
        assert (o.name, o.dims, o.dtype, o.fix_point) == ("quant_dense_1_softmax_fix", (4, 10), "xint8", 2)


@pytest.mark.parametrize("mode", ["run", "sim", "ref"])
def test_execute_async_fills_outputs(sg, mode):
    with Runner.create_runner(sg, mode, num_workers=2) as r:
        x = mnist_inputs()
        outs = [np.zeros((1, 10), np.int8) for _ in range(5)]
        jobs = [r.execute_async([x[k:k + 1]], [outs[k]]) for k in range(5)]
        assert all(status == 0 for _, status in jobs) and len({j for j, _ in jobs}) == 5
        assert [r.wait(j) for j in jobs] == [0] * 5
        assert np.array_equal(np.concatenate(outs), mnist_expected())
        y, = r.execute([x])                      # one job of 5 images
        assert np.array_equal(y, mnist_expected())
        with pytest.raises(RuntimeRunError, match="unknown job id"):
            r.wait(jobs[0])                      # already waited for


def test_wait_timeout_returns(sg):
    with Runner.create_runner(sg, "sim", num_workers=1) as r:   # reference mode: a 5-image job takes a while
        first = [r.execute_async([mnist_inputs()]) for _ in range(3)]
        job = r.execute_async([mnist_inputs()])       # queued behind three others on one worker
        assert r.wait(job, timeout=0) == TIMEOUT
        assert all(r.wait(j) == 0 for j in first)
        assert r.wait(job, timeout=0.001) in (0, TIMEOUT)
        assert r.wait(job, timeout=60) == 0
        assert r.pending() == 0


def test_fingerprint_mismatch_is_vart_message(sg):
    with pytest.raises(RuntimeRunError) as e:
        Runner.create_runner(sg, "run", fingerprint="DPUCZDX8G_ISA1_B1024")
    from fixflow.target import get_target
    fp = get_target("DPUCZDX8G_ISA1_B1024").fingerprint
    assert e.value.message == (
        "subgraph 'subgraph_quant_conv2d': CHECK fingerprint fail! model_fingerprint 0x101000056010407 is "
        f"un-matched with actual dpu_fingerprint 0x{fp:x}. Please re-compile xmodel with dpu_fingerprint "
        f"0x{fp:x} and try again.")
    with pytest.raises(RuntimeRunError, match="re-compile xmodel with dpu_fingerprint"):
        Runner.create_graph_runner(MNIST, "run", fingerprint=fp)
    Runner.create_runner(sg, "run", fingerprint=0x0101000056010407).close()   # its own: fine
    Runner.create_runner(sg, "run", fingerprint=0).close()                    # 0: not checked (VART)


def test_input_and_output_errors(sg):
    with Runner.create_runner(sg, "run") as r:
        with pytest.raises(RuntimeRunError, match="must be int8"):
            r.execute_async([np.zeros((1, 28, 28, 1), np.float32)])
        with pytest.raises(RuntimeRunError, match=r"expected \(N, 28, 28, 1\)"):
            r.execute_async([np.zeros((1, 28, 28), np.int8)])
        with pytest.raises(RuntimeRunError, match="output 'quant_dense_1_softmax_fix' must be a writeable int8"):
            r.execute_async([np.zeros((2, 28, 28, 1), np.int8)], [np.zeros((1, 10), np.int8)])
        with pytest.raises(RuntimeRunError, match="unknown job id 12345"):
            r.wait(12345)
    with pytest.raises(RuntimeRunError, match="closed"):
        r.execute_async([np.zeros((1, 28, 28, 1), np.int8)])
    with pytest.raises(RuntimeRunError, match="unknown runner mode"):
        Runner.create_runner(sg, "turbo")
    dpu, _ = tiny_dpu()
    with pytest.raises(RuntimeRunError, match="mode 'ref' runs the subgraph's ops"):
        Runner.create_runner(dpu, "ref")


def test_failed_job_raises_on_wait():
    dpu, _ = tiny_dpu()
    bad = type(dpu)("bad", "DPUCZDX8G_ISA1_B4096", b"\xff" * 16, dpu.reg_sizes,
                    {r: c.tobytes() for r, c in dpu.consts.items()}, dpu.inputs, dpu.outputs)
    with Runner.create_runner(bad, "sim") as r:
        job = r.execute_async([np.zeros((1, 6, 6, 16), np.int8)])
        with pytest.raises(Exception, match="dpu: instruction 0"):
            r.wait(job, timeout=30)


def test_process_pool_equals_threads():
    dpu, expected = tiny_dpu()
    x = np.random.default_rng(3).integers(-128, 128, (20, 6, 6, 16)).astype(np.int8)
    with Runner.create_runner(dpu, "run", num_workers=2, pool="process") as r:
        outs = [np.empty((4, 4, 4, 16), np.int8) for _ in range(5)]
        jobs = [r.execute_async([x[4 * k:4 * k + 4]], [outs[k]]) for k in range(5)]
        assert [r.wait(j, timeout=120) for j in jobs] == [0] * 5
    assert np.array_equal(np.concatenate(outs), expected(x))


def test_graph_runner_api():
    with Runner.create_graph_runner(MNIST, "run", num_workers=2) as r:
        i, = r.get_input_tensors()
        assert (i.name, i.dims, i.dtype, i.fix_point) == ("quant_input_1", (1, 28, 28, 1), "float32", 6)
        probs = np.zeros((5, 10), np.float32)
        job = r.execute_async([mnist_inputs().astype(np.float32) / 64], [probs])
        assert r.wait(job) == 0
        z = mnist_expected() / 4.0
        assert np.array_equal(probs.argmax(1), z.argmax(1))
        assert np.allclose(probs.sum(1), 1, atol=1e-6)
