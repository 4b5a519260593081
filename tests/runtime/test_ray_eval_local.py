"""Scale-out on Ray: batches mapped over actors (one graph runner each) on a local Ray instance started
here (loopback only); gathered outputs equal a local run, accuracy from the gathered predictions."""

from __future__ import annotations

import numpy as np
import pytest

from _runtime_testlib import MNIST, mnist_expected, mnist_inputs
from fixflow.runtime import GraphRunner, RuntimeRunError
from fixflow.runtime.ray_eval import evaluate_on_ray, ray_available

needs_ray = pytest.mark.skipif(not ray_available(), reason="ray is not installed (pip install 'fixflow[ray]')")


@pytest.fixture(scope="module")
def local_ray():
    import ray
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             configure_logging=False)
    yield ray
    ray.shutdown()


@needs_ray
@pytest.mark.slow   # starting Ray takes ~10 s
def test_evaluate_on_local_ray(local_ray):
    from fixflow.zoo.data import load_digits
    x, y = load_digits("test", size=28)
    x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))[:100]
    y = y[:100]
    res = evaluate_on_ray(MNIST, x, y, batch_size=16, num_actors=2)
    local, = GraphRunner.from_xmodel(MNIST).run([x])
    assert res.num_batches == 7 and res.num_actors == 2
    assert np.array_equal(res.outputs, local)                 # gathered in input order, bit for bit
    assert np.array_equal(res.predictions, local.argmax(1))
    assert res.accuracy == float((local.argmax(1) == y).mean())
    # AMD's five inputs through Ray: the argmax of the simulator's outputs
    five = evaluate_on_ray(MNIST.read_bytes(), mnist_inputs().astype(np.float32) / 64, batch_size=2)
    assert np.array_equal(five.predictions, mnist_expected().argmax(1)) and five.accuracy is None


@needs_ray
@pytest.mark.slow
def test_evaluate_shards_loaded_by_the_actors(local_ray, tmp_path):
    from fixflow.runtime.ray_eval import evaluate_shards_on_ray
    from fixflow.zoo.data import load_digits
    x, y = load_digits("test", size=28)
    x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))[:90]
    y = y[:90]
    shards = []
    for k, s in enumerate(range(0, 90, 25)):                 # 4 shards of 25, 25, 25, 15
        shards.append(str(tmp_path / f"part-{k:03d}.npz"))
        np.savez(shards[-1], x=x[s:s + 25], y=y[s:s + 25])
    res = evaluate_shards_on_ray(MNIST, shards, batch_size=10, num_actors=2, keep_outputs=True)
    local, = GraphRunner.from_xmodel(MNIST).run([x])
    assert res.num_batches == 4 and np.array_equal(res.outputs, local)
    assert np.array_equal(res.predictions, local.argmax(1))
    assert res.accuracy == float((local.argmax(1) == y).mean())
    with pytest.raises(RuntimeRunError, match="evaluation on Ray failed"):
        evaluate_shards_on_ray(MNIST, [str(tmp_path / "missing.npz")], num_actors=1)


def test_bad_inputs_fail_before_ray_starts():
    if not ray_available():
        with pytest.raises(RuntimeRunError, match=r"pip install 'fixflow\[ray\]'"):
            evaluate_on_ray(MNIST, np.zeros((2, 28, 28, 1), np.float32))
        return
    with pytest.raises(RuntimeRunError, match="expected"):
        evaluate_on_ray(MNIST, np.zeros((2, 28, 28), np.float32))
    with pytest.raises(RuntimeRunError, match="labels must have shape"):
        evaluate_on_ray(MNIST, np.zeros((2, 28, 28, 1), np.float32), np.zeros(3, np.int64))
