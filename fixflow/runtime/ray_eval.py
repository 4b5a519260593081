"""Evaluate a model over a dataset on a Ray cluster: one graph runner per actor, batches mapped over
the actors, predictions and accuracy gathered (`pip install fixflow[ray]`).

    import ray
    from fixflow.runtime.ray_eval import evaluate_on_ray
    ray.init(address="auto")                       # a running cluster (or ray.init() for a local one)
    res = evaluate_on_ray("DigitsCNN.xmodel", x, y, num_actors=8, batch_size=256)
    res.accuracy, res.predictions, res.outputs     # outputs: the first model output, in input order

The xmodel's bytes go to the object store once; every actor builds its runner (and the fast-mode plan)
once and then runs batches. Inputs are sliced in the driver and sent per batch; for datasets that do
not fit the driver, call `evaluate_on_ray` per shard and combine the results (`RayEvalResult.merge`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .errors import RuntimeRunError

__all__ = ["RayEvalResult", "evaluate_on_ray", "ray_available"]


def ray_available() -> bool:
    """Whether `ray` can be imported (the `fixflow[ray]` extra)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class RayEvalResult:
    """Outputs (first model output, input order), top-1 predictions, accuracy (None without labels)."""

    outputs: np.ndarray
    predictions: np.ndarray
    accuracy: float | None
    num_batches: int
    num_actors: int

    @staticmethod
    def merge(parts: Sequence["RayEvalResult"], labels: np.ndarray | None = None) -> "RayEvalResult":
        """Concatenate the results of consecutive shards (accuracy recomputed from `labels`)."""
        outs = np.concatenate([p.outputs for p in parts])
        preds = np.concatenate([p.predictions for p in parts])
        acc = float((preds == np.asarray(labels)).mean()) if labels is not None else None
        return RayEvalResult(outs, preds, acc, sum(p.num_batches for p in parts), max(p.num_actors for p in parts))


class _BatchActor:
    """Body of a Ray actor: one GraphRunner, built once."""

    def __init__(self, data: bytes, mode: str, blas_threads: int):
        if blas_threads:
            try:
                from threadpoolctl import threadpool_limits
                self._limit = threadpool_limits(blas_threads, user_api="blas")
            except ImportError:  # pragma: no cover - optional
                pass
        from .graph_runner import GraphRunner, load_xgraph
        self.runner = GraphRunner(load_xgraph(data), mode)

    def run(self, index: int, x: np.ndarray) -> tuple[int, np.ndarray]:
        return index, self.runner.run([x])[0]


def evaluate_on_ray(xmodel: Any, x: np.ndarray, y: np.ndarray | None = None, *, batch_size: int = 64,
                    num_actors: int = 2, mode: str = "fast", num_cpus_per_actor: float = 1,
                    blas_threads: int = 1) -> RayEvalResult:
    """Run `x` (float inputs, batch first) through `xmodel` (path or bytes of a compiled or `_int.xmodel`)
    on `num_actors` Ray actors, `batch_size` inputs per task. Uses the Ray instance this process is
    connected to (`ray.init` first; a local one is started if there is none)."""
    try:
        import ray
        from ray.util import ActorPool
    except ImportError:
        raise RuntimeRunError("Ray is not installed; install the extra: pip install 'fixflow[ray]'") from None
    if batch_size < 1 or num_actors < 1:
        raise RuntimeRunError("batch_size and num_actors must be >= 1")
    x = np.asarray(x)
    if x.ndim == 0 or not len(x):
        raise RuntimeRunError("no inputs to evaluate")
    if y is not None and np.asarray(y).shape != (len(x),):
        raise RuntimeRunError(f"labels must have shape ({len(x)},), got {np.asarray(y).shape}")
    if isinstance(xmodel, (str, os.PathLike)):
        from ..backends.xmodel.serial import read_file_bytes
        data = read_file_bytes(xmodel)
    else:
        data = bytes(xmodel)
    # build one runner here first: a bad model or input shape is one clear error, not an actor failure
    from .graph_runner import GraphRunner, load_xgraph
    local = GraphRunner(load_xgraph(data), mode)
    local.run([x[:1]])
    if not ray.is_initialized():
        ray.init()
    ref = ray.put(data)
    actor_cls = ray.remote(num_cpus=num_cpus_per_actor)(_BatchActor)
    actors = [actor_cls.remote(ref, mode, blas_threads) for _ in range(num_actors)]
    starts = list(range(0, len(x), batch_size))
    pool = ActorPool(actors)
    parts: dict[int, np.ndarray] = {}
    try:
        for i, out in pool.map_unordered(lambda a, v: a.run.remote(*v),
                                         [(k, x[s:s + batch_size]) for k, s in enumerate(starts)]):
            parts[i] = out
    except ray.exceptions.RayError as e:
        raise RuntimeRunError(f"evaluation on Ray failed: {' '.join(str(e).split())[:500]}") from None
    finally:
        for a in actors:
            ray.kill(a)
    outputs = np.concatenate([parts[k] for k in range(len(starts))])
    preds = outputs.argmax(1) if outputs.ndim == 2 else outputs.reshape(len(outputs), -1).argmax(1)
    acc = float((preds == np.asarray(y)).mean()) if y is not None else None
    return RayEvalResult(outputs, preds, acc, len(starts), num_actors)
