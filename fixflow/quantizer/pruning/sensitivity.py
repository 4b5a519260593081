"""Sensitivity analysis (vai_p's ``ana``): the user's score of the model with one layer group pruned at a
time, at each ratio of a grid, saved to a JSON file and reused while the model (graph and weights) and
the settings are unchanged.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PruningError
from .graph import PruningGraph, weights_digest
from .slim import kept_count, select_channels, slim_model

FORMAT = "fixflow-pruning-sensitivity"
DEFAULT_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass
class Sensitivity:
    """Scores (higher is better) of the model with group ``name`` pruned at ``ratios[i]``: ``scores[name][i]``."""

    baseline: float
    ratios: list[float]
    scores: dict[str, list[float]]
    sizes: dict[str, int]
    graph_digest: str = ""
    weights_digest: str = ""
    criterion: str = "l1"
    channel_divisible: int = 1
    model: str = ""
    path: Path | None = None
    reused: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def drop(self, name: str, i: int) -> float:
        """Score lost by pruning ``name`` at ``ratios[i]`` (baseline minus score)."""
        return self.baseline - self.scores[name][i]

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": 1, "model": self.model, "graph_digest": self.graph_digest,
                "weights_digest": self.weights_digest, "criterion": self.criterion,
                "channel_divisible": self.channel_divisible, "ratios": self.ratios, "baseline": self.baseline,
                "layers": {n: {"channels": self.sizes[n], "scores": s} for n, s in self.scores.items()}}

    @classmethod
    def from_json(cls, d: dict[str, Any], path: Path | None = None) -> Sensitivity:
        layers = d["layers"]
        return cls(float(d["baseline"]), [float(r) for r in d["ratios"]],
                   {n: [float(x) for x in v["scores"]] for n, v in layers.items()},
                   {n: int(v["channels"]) for n, v in layers.items()}, d["graph_digest"], d["weights_digest"],
                   d["criterion"], int(d["channel_divisible"]), d.get("model", ""), path)

    def table(self) -> str:
        """The scores as a text table (one row per layer group)."""
        head = ["layer", "channels"] + [f"{r:g}" for r in self.ratios]
        rows = [head] + [[n, str(self.sizes[n])] + [f"{s:.4g}" for s in v] for n, v in self.scores.items()]
        w = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = [f"baseline {self.baseline:.4g}"]
        lines += ["  ".join(c.ljust(x) for c, x in zip(r, w)).rstrip() for r in rows]
        return "\n".join(lines)


def load_cached(path: Path, graph: PruningGraph, names: Sequence[str], criterion: str, channel_divisible: int,
                ratios: Sequence[float]) -> tuple[Sensitivity | None, str]:
    """The saved analysis at ``path`` if it is for this model and these settings, else (None, why not)."""
    if not path.exists():
        return None, "no saved analysis"
    try:
        d = json.loads(path.read_text())
        if d.get("format") != FORMAT:
            return None, f"{path} is not a sensitivity file"
        s = Sensitivity.from_json(d, path)
    except (OSError, ValueError, KeyError, TypeError) as e:
        return None, f"{path} is unreadable ({type(e).__name__})"
    if s.graph_digest != graph.digest():
        return None, "the model's graph changed"
    if s.weights_digest != weights_digest(graph.model):
        return None, "the model's weights changed"
    if s.criterion != criterion or s.channel_divisible != channel_divisible:
        return None, "the criterion or channel_divisible changed"
    if [round(r, 6) for r in s.ratios] != [round(r, 6) for r in ratios]:
        return None, "the ratios changed"
    missing = [n for n in names if n not in s.scores]
    if missing:
        return None, f"layer(s) {', '.join(missing)} were not analysed"
    s.reused = True
    return s, ""


def _score(eval_fn: Callable[..., Any], model: Any, args: tuple[Any, ...], what: str) -> float:
    was = model.training
    model.eval()
    try:
        value = eval_fn(model, *args)
    finally:
        model.train(was)
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise PruningError(f"eval_fn returned {type(value).__name__} for {what}; it must return a number "
                           "(the score, higher is better)") from None
    if not math.isfinite(v):
        raise PruningError(f"eval_fn returned {v} for {what}; the score must be a finite number")
    return v


def analyse(graph: PruningGraph, eval_fn: Callable[..., Any], args: tuple[Any, ...], names: Sequence[str], *,
            ratios: Sequence[float] = DEFAULT_RATIOS, criterion: str = "l1", channel_divisible: int = 1,
            progress: bool = True, log: Callable[[str], None] = lambda s: None) -> Sensitivity:
    """Score the model with each group in ``names`` pruned alone at each ratio (the slim model is scored,
    so the numbers are exactly those of the pruned network)."""
    baseline = _score(eval_fn, graph.model, args, "the unpruned model")
    scores: dict[str, list[float]] = {}
    steps = len(names) * len(ratios)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=steps, desc="Pruning analysis", unit="eval", leave=False, file=sys.stderr)
    try:
        for name in names:
            g = graph.groups[name]
            row: list[float] = []
            seen: dict[int, float] = {}
            for r in ratios:
                k = kept_count(g.size, r, channel_divisible)
                if k not in seen:
                    if k == g.size:
                        seen[k] = baseline
                    else:
                        m = slim_model(graph, select_channels(graph, {name: k}, criterion))
                        seen[k] = _score(eval_fn, m, args, f"'{name}' pruned at ratio {r:g}")
                row.append(seen[k])
                if bar is not None:
                    bar.update(1)
            scores[name] = row
            log(f"[fixflow] analysed {name} ({g.size} channels): "
                + " ".join(f"{r:g}:{s:.4g}" for r, s in zip(ratios, row)))
    finally:
        if bar is not None:
            bar.close()
    return Sensitivity(baseline, [float(r) for r in ratios], scores, {n: graph.groups[n].size for n in names},
                       graph.digest(), weights_digest(graph.model), criterion, channel_divisible,
                       type(graph.model).__name__)


def save(s: Sensitivity, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(s.to_json(), indent=1) + "\n")
    s.path = path
    return path


__all__ = ["DEFAULT_RATIOS", "Sensitivity", "analyse", "load_cached", "save"]
