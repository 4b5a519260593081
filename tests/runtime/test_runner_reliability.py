"""Reliability of one Runner under load: 8 threads x 1000 jobs on a small DPU program (a CONV tile): no job
lost, no output mismatched (each job's own expected output, from numpy), no deadlock; waits with timeouts
always return."""

from __future__ import annotations

import threading

import numpy as np

from _runtime_testlib import tiny_dpu
from fixflow.runtime import TIMEOUT, Runner

THREADS, JOBS = 8, 1000


def test_8_threads_x_1000_jobs_one_runner():
    dpu, expected = tiny_dpu(seed=5)
    rng = np.random.default_rng(7)
    pool = rng.integers(-128, 128, (64, 6, 6, 16)).astype(np.int8)   # 64 distinct inputs, known outputs
    want = expected(pool)
    runner = Runner.create_runner(dpu, "run", num_workers=4)
    errors: list[str] = []
    done = [0] * THREADS
    start = threading.Barrier(THREADS)

    def client(t: int) -> None:
        try:
            r = np.random.default_rng(t)
            start.wait(timeout=60)
            inflight = []
            for k in range(JOBS):
                idx = r.integers(0, 64, int(r.integers(1, 3)))            # batches of 1 or 2
                out = np.full((len(idx), 4, 4, 16), 99, np.int8)
                inflight.append((runner.execute_async([pool[idx]], [out]), idx, out))
                if len(inflight) >= 16 or k == JOBS - 1:                 # many jobs in flight per thread
                    for job, idx, out in inflight:
                        while runner.wait(job, timeout=5) == TIMEOUT:   # never hangs: keeps returning
                            pass
                        if not np.array_equal(out, want[idx]):
                            errors.append(f"thread {t} job {job[0]}: wrong output")
                        done[t] += 1
                    inflight = []
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"thread {t}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=client, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=600)
    alive = [th.name for th in threads if th.is_alive()]
    runner.close()
    assert not alive, f"deadlock: {alive} still running"
    assert not errors, errors[:5]
    assert done == [JOBS] * THREADS
    assert runner.pending() == 0


def test_wait_with_timeout_while_workers_busy():
    dpu, expected = tiny_dpu(seed=1)
    x = np.random.default_rng(2).integers(-128, 128, (1, 6, 6, 16)).astype(np.int8)
    with Runner.create_runner(dpu, "sim", num_workers=1) as r:
        jobs = [r.execute_async([x]) for _ in range(20)]
        last = jobs[-1]
        assert r.wait(last, timeout=0) in (0, TIMEOUT)     # the queue is long: polling returns at once
        for j in jobs:
            assert r.wait(j, timeout=120) == 0
        assert np.array_equal(r.execute([x])[0], expected(x))


def test_close_without_waiting_ends_queued_jobs():
    dpu, _ = tiny_dpu()
    x = np.zeros((1, 6, 6, 16), np.int8)
    r = Runner.create_runner(dpu, "sim", num_workers=1)
    jobs = [r.execute_async([x]) for _ in range(50)]
    r.close(wait=False)
    ended = 0
    for j in jobs:
        try:
            assert r.wait(j, timeout=60) == 0
        except Exception as e:  # noqa: BLE001
            assert "closed before the job ran" in str(e)
        ended += 1
    assert ended == 50


def test_graph_runner_many_threads_mnist():
    """A whole-graph runner (float in, USER/DPU/CPU subgraphs, float out) shared by 4 client threads, in
    fast and fix modes: every job's probabilities equal a single-threaded run bit for bit."""
    from _runtime_testlib import MNIST
    from fixflow.runtime import GraphRunner
    x = np.random.default_rng(9).uniform(-2, 2, (40, 28, 28, 1)).astype(np.float32)
    for mode in ("fast", "fix"):
        want, = GraphRunner.from_xmodel(MNIST, mode=mode).run([x])
        runner = Runner.create_graph_runner(MNIST, mode, num_workers=3)
        errors: list[str] = []

        def client(t: int) -> None:
            try:
                for k in range(25):
                    i = (7 * t + k) % 39
                    out = np.zeros((2, 10), np.float32)
                    job = runner.execute_async([x[i:i + 2]], [out])
                    while runner.wait(job, timeout=5) == TIMEOUT:
                        pass
                    if not np.array_equal(out, want[i:i + 2]):
                        errors.append(f"{mode} thread {t} job {k}")
            except Exception as e:  # noqa: BLE001
                errors.append(f"{mode} thread {t}: {type(e).__name__}: {e}")
        threads = [threading.Thread(target=client, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=300)
        runner.close()
        assert not any(th.is_alive() for th in threads)
        assert not errors, errors[:5]
