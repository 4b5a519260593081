"""Deterministic training of the digits models (DigitsCNN, TinyMobileNet) on the digits train split.

Determinism: the model is built under ``torch.manual_seed(seed)`` (global RNG state restored),
batches are shuffled by a seeded numpy generator, training runs single-threaded by default with
``torch.use_deterministic_algorithms(True)``; two runs with the same arguments give identical
losses and weights. ``python -m fixflow.zoo.train`` retrains and re-bundles every digits model.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from fixflow.zoo import data
from fixflow.zoo.errors import ZooError
from fixflow.zoo.registry import MANIFEST, WEIGHTS_DIR, build, get_spec, load_data

# epochs, Adam learning rate (cosine-annealed to 0), batch size
RECIPES: dict[str, dict[str, Any]] = {
    "digits_cnn": {"epochs": 8, "lr": 3e-3, "batch_size": 32},
    "tiny_mobilenet": {"epochs": 15, "lr": 1e-2, "batch_size": 32},
}


@dataclass
class TrainResult:
    """Outcome of :func:`train`: the trained model (eval mode), per-epoch mean losses, accuracies."""

    name: str
    model: Any
    losses: list[float]
    train_accuracy: float
    test_accuracy: float
    seconds: float
    config: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def _deterministic(threads: int) -> Iterator[None]:
    import torch

    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


def evaluate(model: Any, name: str, split: str = "test", batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` on a digits split, preprocessed as registry model ``name`` is."""
    import torch

    x, y = load_data(name, split)
    was_training = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for xb, yb in data.batches(x, y, batch_size):
            correct += int((model(torch.from_numpy(xb)).argmax(1).numpy() == yb).sum())
    model.train(was_training)
    return correct / len(y)


def train(
    name: str,
    *,
    epochs: int | None = None,
    seed: int = 0,
    lr: float | None = None,
    batch_size: int | None = None,
    threads: int = 1,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train registry model ``name`` (a digits model) from its seeded init; returns a TrainResult."""
    import torch
    from torch import nn

    spec = get_spec(name)
    if spec.name not in RECIPES:
        raise ZooError(
            f"model {spec.name!r} has no training recipe (trainable: {', '.join(RECIPES)})"
        )
    cfg = dict(RECIPES[spec.name])
    for key, val in (("epochs", epochs), ("lr", lr), ("batch_size", batch_size)):
        if val is not None:
            cfg[key] = val
    if cfg["epochs"] < 1 or cfg["batch_size"] < 1 or cfg["lr"] <= 0:
        raise ZooError(f"bad training settings: {cfg}")
    cfg.update(seed=seed, threads=threads, optimizer="Adam", schedule="cosine")
    x, y = load_data(spec.name, "train")
    start = time.perf_counter()
    losses: list[float] = []
    with _deterministic(threads):
        model = build(spec.name, seed=seed)
        opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg["epochs"])
        loss_fn = nn.CrossEntropyLoss()
        for epoch in range(cfg["epochs"]):
            model.train()
            total, count = 0.0, 0
            for xb, yb in data.batches(x, y, cfg["batch_size"], shuffle=True, seed=seed * 1000 + epoch):
                opt.zero_grad()
                loss = loss_fn(model(torch.from_numpy(xb)), torch.from_numpy(yb))
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(yb)
                count += len(yb)
            sched.step()
            losses.append(total / count)
            if log is not None:
                log(f"epoch {epoch + 1}/{cfg['epochs']}: loss {losses[-1]:.4f}")
        model.eval()
        train_acc = evaluate(model, spec.name, "train")
        test_acc = evaluate(model, spec.name, "test")
    seconds = time.perf_counter() - start
    return TrainResult(spec.name, model, losses, train_acc, test_acc, seconds, cfg)


def bundle(result: TrainResult, weights_dir: Path = WEIGHTS_DIR) -> Path:
    """Save ``result.model`` as the bundled weights of its model and record its accuracy in the
    manifest (``weights_dir/manifest.json``). Returns the weights path."""
    from fixflow.zoo.checkpoint import save_npz

    spec = get_spec(result.name)
    if spec.weights is None:
        raise ZooError(f"model {spec.name!r} has no bundled weights slot")
    weights_dir.mkdir(parents=True, exist_ok=True)
    path = weights_dir / spec.weights
    save_npz(result.model, path)
    manifest_path = weights_dir / MANIFEST.name
    records = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    records[spec.name] = {
        "weights": spec.weights,
        "test_accuracy": result.test_accuracy,
        "train_accuracy": result.train_accuracy,
        "final_loss": round(result.losses[-1], 6),
        "train_seconds": round(result.seconds, 1),
        "split": f"digits stratified 80/20, seed {data.SPLIT_SEED}",
        "preprocess": dict(spec.preprocess),
        **{k: result.config[k] for k in ("epochs", "lr", "batch_size", "seed", "optimizer", "schedule")},
    }
    manifest_path.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
    return path


def main() -> None:  # pragma: no cover - maintenance entry point
    """Retrain every digits model and re-bundle its weights."""
    for name in RECIPES:
        res = train(name, log=print)
        path = bundle(res)
        print(f"{name}: test accuracy {res.test_accuracy:.4f} in {res.seconds:.1f}s -> {path}")


if __name__ == "__main__":  # pragma: no cover
    main()
