"""Evaluate a model over a dataset on a Ray cluster: one graph runner per actor, batches mapped over
the actors, predictions and accuracy gathered (`pip install fixflow[ray]`).

    import ray
    from fixflow.runtime.ray_eval import evaluate_on_ray
    ray.init(address="auto")                       # a running cluster (or ray.init() for a local one)
    res = evaluate_on_ray("DigitsCNN.xmodel", x, y, num_actors=8, batch_size=256)
    res.accuracy, res.predictions, res.outputs     # outputs: the first model output, in input order

    res = evaluate_shards_on_ray("DigitsCNN.xmodel", ["/shared/part-000.npz", ...], num_actors=64)

The xmodel's bytes go to the object store once; every actor builds its runner (and the fast-mode plan)
once and then runs batches. `evaluate_on_ray` slices arrays held by the driver; for datasets that do not
fit one machine, `evaluate_shards_on_ray` sends only shard names: each actor loads its shards itself
(from storage every node sees, with `loader`, by default an `.npz` with `x` and optional `y`), and only
predictions and labels come back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .errors import RuntimeRunError

__all__ = ["RayEvalResult", "evaluate_on_ray", "evaluate_shards_on_ray", "load_npz_shard", "ray_available"]


def ray_available() -> bool:
    """Whether `ray` can be imported (the `fixflow[ray]` extra)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class RayEvalResult:
    """Outputs (first model output, input order; empty for shards unless kept), top-1 predictions,
    accuracy (None without labels), batches (or shards) run and actors used."""

    outputs: np.ndarray
    predictions: np.ndarray
    accuracy: float | None
    num_batches: int
    num_actors: int


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

    def run_shard(self, index: int, shard: Any, loader: Callable[[Any], tuple[np.ndarray, np.ndarray | None]],
                  batch_size: int, keep_outputs: bool) -> tuple[int, np.ndarray, np.ndarray | None, np.ndarray | None]:
        x, y = loader(shard)
        outs = [self.runner.run([x[s:s + batch_size]])[0] for s in range(0, len(x), batch_size)]
        out = np.concatenate(outs) if outs else np.zeros((0,), np.float32)
        return index, _top1(out), (None if y is None else np.asarray(y)), (out if keep_outputs else None)


def _top1(out: np.ndarray) -> np.ndarray:
    return out.argmax(1) if out.ndim == 2 else out.reshape(len(out), -1).argmax(1)


def load_npz_shard(path: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """The default shard loader: an `.npz` with inputs `x` (or `inputs`/`images`) and optional labels `y`."""
    with np.load(path, allow_pickle=False) as z:
        key = next((k for k in ("x", "inputs", "images") if k in z.files), None)
        if key is None:
            raise ValueError(f"{path}: no array named x, inputs or images")
        return np.asarray(z[key], np.float32), (np.asarray(z["y"]) if "y" in z.files else None)


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
    data = _xmodel_bytes(xmodel)
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
    preds = _top1(outputs)
    acc = float((preds == np.asarray(y)).mean()) if y is not None else None
    return RayEvalResult(outputs, preds, acc, len(starts), num_actors)


def evaluate_shards_on_ray(xmodel: Any, shards: Sequence[Any], *, loader: Callable[[Any], Any] = load_npz_shard,
                           batch_size: int = 256, num_actors: int = 2, mode: str = "fast",
                           num_cpus_per_actor: float = 1, blas_threads: int = 1,
                           keep_outputs: bool = False) -> RayEvalResult:
    """Evaluate a dataset stored as shards (paths or any picklable keys `loader` understands) that the
    actors load themselves; predictions (and, with `keep_outputs`, outputs) come back in shard order.
    The accuracy counts the shards with labels (None if none has them)."""
    try:
        import ray
        from ray.util import ActorPool
    except ImportError:
        raise RuntimeRunError("Ray is not installed; install the extra: pip install 'fixflow[ray]'") from None
    shards = list(shards)
    if not shards or batch_size < 1 or num_actors < 1:
        raise RuntimeRunError("need at least one shard, and batch_size and num_actors >= 1")
    data = _xmodel_bytes(xmodel)
    from .graph_runner import GraphRunner, load_xgraph
    GraphRunner(load_xgraph(data), mode)          # a bad model is one clear error here
    if not ray.is_initialized():
        ray.init()
    ref = ray.put(data)
    actor_cls = ray.remote(num_cpus=num_cpus_per_actor)(_BatchActor)
    actors = [actor_cls.remote(ref, mode, blas_threads) for _ in range(min(num_actors, len(shards)))]
    pool = ActorPool(actors)
    parts: dict[int, tuple] = {}
    try:
        for i, pred, lab, out in pool.map_unordered(
                lambda a, v: a.run_shard.remote(v[0], v[1], loader, batch_size, keep_outputs), list(enumerate(shards))):
            parts[i] = (pred, lab, out)
    except ray.exceptions.RayError as e:
        raise RuntimeRunError(f"evaluation on Ray failed: {' '.join(str(e).split())[:500]}") from None
    finally:
        for a in actors:
            ray.kill(a)
    ordered = [parts[k] for k in range(len(shards))]
    preds = np.concatenate([p for p, _, _ in ordered])
    labelled = [(p, lab) for p, lab, _ in ordered if lab is not None]
    acc = None
    if labelled:
        acc = float(np.concatenate([p == lab for p, lab in labelled]).mean())
    outs = np.concatenate([o for _, _, o in ordered]) if keep_outputs else np.zeros((0,), np.float32)
    return RayEvalResult(outs, preds, acc, len(shards), len(actors))


def _xmodel_bytes(xmodel: Any) -> bytes:
    if isinstance(xmodel, (str, os.PathLike)):
        from ..backends.xmodel.serial import read_file_bytes
        return read_file_bytes(xmodel)
    return bytes(xmodel)
