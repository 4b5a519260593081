"""The pruning runner, after vai_p_pytorch's ``get_pruning_runner`` / ``IterativePruningRunner``.

    runner = get_pruning_runner(model, (x,), "iterative", output_dir="build/prune")
    runner.ana(evaluate, args=(val_loader,))               # sensitivity, saved and reused
    slim = runner.prune(removal_ratio=0.5, mode="slim")      # or channel_ratio=, mac_budget=, threshold=
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import PruningError
from .graph import ChannelGroup, PruningGraph
from .sensitivity import DEFAULT_RATIOS, Sensitivity, analyse, load_cached, save
from .slim import CRITERIA, kept_count, select_channels, slim_model, sparse_model

SPEC_FORMAT = "fixflow-pruning-spec"
MODES = ("slim", "sparse")


@dataclass
class PruningSpec:
    """What a prune did: per layer group, the channels kept; MACs before and after (one image)."""

    model: str
    graph_digest: str
    criterion: str
    channel_divisible: int
    kept: dict[str, list[int]]
    sizes: dict[str, int]
    macs_before: int
    macs_after: int
    how: str = ""

    @property
    def mac_ratio(self) -> float:
        """MACs after / before."""
        return self.macs_after / self.macs_before if self.macs_before else 1.0

    def to_json(self) -> dict[str, Any]:
        return {"format": SPEC_FORMAT, "version": 1, "model": self.model, "graph_digest": self.graph_digest,
                "criterion": self.criterion, "channel_divisible": self.channel_divisible, "how": self.how,
                "macs_before": self.macs_before, "macs_after": self.macs_after,
                "groups": {n: {"channels": self.sizes[n], "kept": k} for n, k in self.kept.items()}}

    @classmethod
    def load(cls, path: str | Path) -> PruningSpec:
        p = Path(path)
        try:
            d = json.loads(p.read_text())
            if d.get("format") != SPEC_FORMAT:
                raise PruningError(f"{p}: not a fixflow pruning spec (no \"format\": \"{SPEC_FORMAT}\")")
            return cls(d["model"], d["graph_digest"], d["criterion"], int(d["channel_divisible"]),
                       {n: [int(i) for i in g["kept"]] for n, g in d["groups"].items()},
                       {n: int(g["channels"]) for n, g in d["groups"].items()}, int(d["macs_before"]),
                       int(d["macs_after"]), d.get("how", ""))
        except OSError as e:
            raise PruningError(f"{p}: cannot read the pruning spec: {e.strerror or e}") from None
        except (ValueError, KeyError, TypeError) as e:
            raise PruningError(f"{p}: malformed pruning spec ({type(e).__name__}: {e})") from None


def check_ratio(name: str, value: Any) -> float:
    """``value`` as a float in (0, 1), else a PruningError naming ``name``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise PruningError(f"{name} must be a number in (0, 1), got {value!r}") from None
    if not (0.0 < v < 1.0):
        raise PruningError(f"{name} must be in (0, 1) (the fraction removed), got {value}")
    return v


class PruningRunner:
    """Channel pruning of a float torch model (vai_p's iterative runner).

    ``model`` is not changed; ``inputs`` are example inputs (any values of the right shape). The
    sensitivity analysis and pruning specs go to ``output_dir`` (default ``.vai``, as vai_p's).
    """

    def __init__(self, model: nn.Module, inputs: Any, *, output_dir: str | Path = ".vai",
                 log: Callable[[str], None] | None = print, progress: bool = True) -> None:
        if not isinstance(model, nn.Module):
            raise PruningError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
        self.output_dir = Path(output_dir)
        self._log = log or (lambda s: None)
        self.progress = progress
        self.name = type(model).__name__
        self.sensitivity: Sensitivity | None = None
        self.last_spec: PruningSpec | None = None
        self.last_spec_path: Path | None = None

    # ------------------------------------------------------------------ graph

    def graph(self, excludes: Sequence[Any] | None = None) -> PruningGraph:
        """The channel groups of the model with ``excludes`` left alone (traced anew on every call)."""
        return PruningGraph(self.model, self.inputs, list(excludes or ()))

    def groups(self, excludes: Sequence[Any] | None = None) -> list[ChannelGroup]:
        """Every channel group (prunable or not, with the reason) in graph order."""
        return list(self.graph(excludes).groups.values())

    def _prunable(self, graph: PruningGraph) -> list[ChannelGroup]:
        groups = graph.prunable()
        if not groups:
            why = "; ".join(f"'{g.name}': {g.fixed}" for g in graph.groups.values()) or "it has no Conv2d layer"
            raise PruningError(f"{self.name} has no prunable conv layer ({why})")
        return groups

    # ------------------------------------------------------------------ analysis

    def sensitivity_path(self) -> Path:
        return self.output_dir / f"{self.name}.sens.json"

    def ana(self, eval_fn: Callable[..., Any], args: tuple[Any, ...] = (), *, excludes: Sequence[Any] | None = None,
            forced: bool = False, ratios: Sequence[float] = DEFAULT_RATIOS, criterion: str = "l1",
            channel_divisible: int = 2) -> Sensitivity:
        """Sensitivity analysis: ``eval_fn(model, *args)`` (a score, higher is better) of the model with each
        prunable layer group pruned alone at each of ``ratios``. Saved to ``output_dir/<Model>.sens.json``
        and reused by later calls (and by ``prune``) while the model's graph and weights and these settings
        are unchanged; ``forced=True`` always recomputes."""
        if not callable(eval_fn):
            raise PruningError(f"eval_fn must be callable (model, *args) -> score, got {type(eval_fn).__name__}")
        if criterion not in CRITERIA:
            raise PruningError(f"criterion: expected one of {', '.join(CRITERIA)}, got {criterion!r}")
        ratios = [check_ratio(f"ratios[{i}]", r) for i, r in enumerate(ratios)]
        if not ratios or sorted(ratios) != ratios:
            raise PruningError(f"ratios must be increasing and not empty, got {ratios}")
        graph = self.graph(excludes)
        names = [g.name for g in self._prunable(graph)]
        path = self.sensitivity_path()
        if not forced:
            cached, why = load_cached(path, graph, names, criterion, channel_divisible, ratios)
            if cached is not None:
                self._log(f"[fixflow] Reusing the sensitivity analysis ({path})")
                self.sensitivity = cached
                return cached
            if path.exists():
                self._log(f"[fixflow] Redoing the sensitivity analysis: {why}")
        self._log(f"[fixflow] Analysing {len(names)} layer group(s) of {self.name} at {len(ratios)} ratios...")
        s = analyse(graph, eval_fn, tuple(args), names, ratios=ratios, criterion=criterion,
                    channel_divisible=channel_divisible, progress=self.progress, log=self._log)
        save(s, path)
        self._log(f"[fixflow] Sensitivity analysis saved.({path})")
        self.sensitivity = s
        return s

    def _sens(self, graph: PruningGraph, names: list[str], criterion: str, channel_divisible: int,
              what: str) -> Sensitivity:
        s = self.sensitivity
        if s is not None and all(n in s.scores for n in names) and s.criterion == criterion \
                and s.channel_divisible == channel_divisible and s.graph_digest == graph.digest():
            return s
        ratios = s.ratios if s is not None else list(DEFAULT_RATIOS)
        cached, why = load_cached(self.sensitivity_path(), graph, names, criterion, channel_divisible, ratios)
        if cached is None:
            raise PruningError(f"{what} chooses each layer's ratio from the sensitivity analysis, and there is "
                               f"none for this model ({why}): call runner.ana(eval_fn, args) first (with the "
                               f"same channel_divisible={channel_divisible}), or pass channel_ratio= to remove "
                               "the same fraction of every layer")
        self.sensitivity = cached
        return cached

    # ------------------------------------------------------------------ pruning

    def _allocate(self, graph: PruningGraph, groups: list[ChannelGroup], s: Sensitivity, channel_divisible: int,
                  target: int | None = None, threshold: float | None = None) -> dict[str, int]:
        """Per-group channel counts: each group at the largest analysed ratio whose score drop is within a
        common tolerance t; t is ``threshold`` x baseline, or the smallest one whose MACs fit ``target``. With a
        target, groups then step back to smaller ratios (within t) while the MACs still fit, the most sensitive
        first, so the result does not overshoot the target by whole grid steps (ties in the analysis, a model
        whose score hardly moves, would otherwise prune every group at its largest ratio)."""
        def ok_indices(g: ChannelGroup, t: float) -> list[int]:
            return [i for i in range(len(s.ratios)) if s.drop(g.name, i) <= t + 1e-12]

        def count(g: ChannelGroup, i: int) -> int:
            return kept_count(g.size, s.ratios[i], channel_divisible) if i >= 0 else g.size

        def at(t: float) -> dict[str, int]:
            return {g.name: max(ok_indices(g, t), default=-1) for g in groups}

        if threshold is not None:
            return {g.name: count(g, i) for g, i in zip(groups, at(threshold * abs(s.baseline)).values())}
        assert target is not None
        drops = sorted({s.drop(g.name, i) for g in groups for i in range(len(s.ratios))})
        for t in drops:
            idx = at(t)
            counts = {g.name: count(g, idx[g.name]) for g in groups}
            if self._macs(graph, counts) <= target:
                return self._back_off(graph, groups, s, idx, counts, t, target, count, ok_indices)
        raise AssertionError("unreachable: the largest drop prunes every group at its largest ratio")

    def _back_off(self, graph: PruningGraph, groups: list[ChannelGroup], s: Sensitivity, idx: dict[str, int],
                  counts: dict[str, int], t: float, target: int, count: Callable[[ChannelGroup, int], int],
                  ok_indices: Callable[[ChannelGroup, float], list[int]]) -> dict[str, int]:
        """Step groups back to their next smaller ratio within tolerance `t` (or unpruned) while the MACs fit
        `target`: passes over the groups, the largest score drop first, until none can step back."""
        changed = True
        while changed:
            changed = False
            pruned = [g for g in groups if idx[g.name] >= 0]
            for g in sorted(pruned, key=lambda g: (-s.drop(g.name, idx[g.name]), -idx[g.name], g.name)):
                i = idx[g.name]
                j = max((k for k in ok_indices(g, t) if k < i), default=-1)
                trial = {**counts, g.name: count(g, j)}
                if trial[g.name] == counts[g.name] or self._macs(graph, trial) <= target:
                    idx[g.name], counts, changed = j, trial, True
        return counts

    @staticmethod
    def _macs(graph: PruningGraph, counts: dict[str, int]) -> int:
        return graph.macs({graph.groups[n].root: k for n, k in counts.items()})

    def prune(self, removal_ratio: float | None = None, threshold: float | None = None,
              spec_path: str | Path | None = None, excludes: Sequence[Any] | None = None, mode: str = "slim", *,
              channel_ratio: float | None = None, mac_budget: int | None = None, channel_divisible: int = 2,
              criterion: str = "l1") -> nn.Module:
        """A pruned copy of the model. Say how much with exactly one of:

        - ``removal_ratio``: fraction of the MACs to remove (per-layer ratios from the sensitivity analysis);
        - ``mac_budget``: MACs of one image to stay within (same);
        - ``threshold``: score loss tolerated per layer, relative to the baseline score (same);
        - ``channel_ratio``: fraction of the channels to remove from every prunable layer (no analysis);
        - ``spec_path``: a spec written by an earlier prune (the same channels again).

        Channels are chosen by the L1 (or L2) norm of their filters; counts are multiples of
        ``channel_divisible``. ``mode="slim"`` removes them (smaller layers); ``"sparse"`` zeroes them
        (same shapes; for iterative loops, turned slim with ``get_slim_model``). The spec is written to
        ``output_dir`` and kept in ``last_spec``.
        """
        given = [k for k, v in (("removal_ratio", removal_ratio), ("threshold", threshold), ("spec_path", spec_path),
                                ("channel_ratio", channel_ratio), ("mac_budget", mac_budget)) if v is not None]
        if len(given) != 1:
            raise PruningError("prune() needs exactly one of removal_ratio, mac_budget, threshold, channel_ratio, "
                               f"spec_path (got {', '.join(given) or 'none'})")
        if mode not in MODES:
            raise PruningError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if criterion not in CRITERIA:
            raise PruningError(f"criterion: expected one of {', '.join(CRITERIA)}, got {criterion!r}")
        if not isinstance(channel_divisible, int) or channel_divisible < 1:
            raise PruningError(f"channel_divisible must be a positive integer, got {channel_divisible!r}")
        if spec_path is not None:
            return self._apply_spec(PruningSpec.load(spec_path), mode, excludes)
        graph = self.graph(excludes)
        groups = self._prunable(graph)
        before = graph.macs()
        if channel_ratio is not None:
            r = check_ratio("channel_ratio", channel_ratio)
            counts = {g.name: kept_count(g.size, r, channel_divisible) for g in groups}
            how = f"channel_ratio={r:g}"
        else:
            floor_counts = {g.name: kept_count(g.size, DEFAULT_RATIOS[-1], channel_divisible) for g in groups}
            if removal_ratio is not None:
                r = check_ratio("removal_ratio", removal_ratio)
                target = int(math.floor(before * (1.0 - r)))
                how = f"removal_ratio={r:g}"
            elif mac_budget is not None:
                if isinstance(mac_budget, bool) or not isinstance(mac_budget, (int, float)) or mac_budget <= 0:
                    raise PruningError(f"mac_budget must be a positive number of MACs (one image), got {mac_budget!r}")
                target = int(mac_budget)
                how = f"mac_budget={target}"
                if target >= before:
                    raise PruningError(f"mac_budget {target:,} is not below the model's {before:,} MACs: nothing "
                                       "to prune")
            else:
                t = float(threshold)  # type: ignore[arg-type]
                if not (t > 0 and math.isfinite(t)):
                    raise PruningError(f"threshold must be a positive fraction of the baseline score, got {threshold}")
                target = None
                how = f"threshold={t:g}"
            s = self._sens(graph, [g.name for g in groups], criterion, channel_divisible, how.split("=")[0])
            if target is not None:
                reachable = self._macs(graph, {n: min(k, self._max_count(s, graph.groups[n], channel_divisible))
                                               for n, k in floor_counts.items()})
                if target < reachable:
                    raise PruningError(
                        f"{how.replace('=', ' ')} asks for at most {target:,} MACs, below the fewest this model can "
                        f"reach: {reachable:,} of {before:,} ({100 * reachable / before:.1f}%, every prunable layer at "
                        f"ratio {s.ratios[-1]:g}; the layers that cannot be pruned take the rest)")
                counts = self._allocate(graph, groups, s, channel_divisible, target=target)
            else:
                counts = self._allocate(graph, groups, s, channel_divisible, threshold=float(threshold))
        kept = select_channels(graph, counts, criterion)
        spec = PruningSpec(self.name, graph.digest(), criterion, channel_divisible,
                           {n: kept.get(graph.groups[n].root, list(range(graph.groups[n].size))) for n in counts},
                           {n: graph.groups[n].size for n in counts}, before, self._macs(graph, counts), how)
        return self._finish(graph, kept, spec, mode)

    @staticmethod
    def _max_count(s: Sensitivity, g: ChannelGroup, channel_divisible: int) -> int:
        return kept_count(g.size, s.ratios[-1], channel_divisible)

    def _apply_spec(self, spec: PruningSpec, mode: str, excludes: Sequence[Any] | None) -> nn.Module:
        graph = self.graph(excludes)
        if spec.graph_digest != graph.digest():
            raise PruningError(f"the pruning spec is for another graph ({spec.model}, digest {spec.graph_digest[:8]}); "
                               f"{self.name} traced here has digest {graph.digest()[:8]}")
        kept: dict[int, list[int]] = {}
        for n, k in spec.kept.items():
            g = graph.groups.get(n)
            if g is None or not g.prunable:
                raise PruningError(f"the pruning spec prunes '{n}', which is not a prunable layer group here"
                                   + (f" ({g.fixed})" if g is not None and g.fixed else ""))
            if len(k) < g.size:
                kept[g.root] = sorted(k)
        return self._finish(graph, kept, spec, mode)

    def _finish(self, graph: PruningGraph, kept: dict[int, list[int]], spec: PruningSpec, mode: str) -> nn.Module:
        model = slim_model(graph, kept) if mode == "slim" else sparse_model(graph, kept)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        tag = spec.how.replace("=", "_") or "spec"
        path = self.output_dir / f"{self.name}_{tag}.spec.json"
        path.write_text(json.dumps(spec.to_json(), indent=1) + "\n")
        (self.output_dir / "latest_spec").write_text(str(path) + "\n")
        self.last_spec, self.last_spec_path = spec, path
        pruned = sum(1 for n, k in spec.kept.items() if len(k) < spec.sizes[n])
        self._log(f"[fixflow] Pruned {pruned} of {len(spec.kept)} layer group(s) of {self.name} ({spec.how}, "
                  f"{mode}): MACs {spec.macs_before:,} -> {spec.macs_after:,} ({100 * spec.mac_ratio:.1f}%); "
                  f"spec {path}")
        model._fixflow_pruning_spec = spec  # type: ignore[attr-defined]
        return model

    def get_slim_model(self, model: nn.Module | None = None, spec_path: str | Path | None = None) -> nn.Module:
        """The slim form of a sparse model (its current, e.g. finetuned, weights) by the latest spec or
        ``spec_path``."""
        spec = PruningSpec.load(spec_path) if spec_path is not None else self.last_spec
        if spec is None:
            raise PruningError("get_slim_model(): no pruning spec: call prune(...) first or pass spec_path")
        src = model if model is not None else self.model
        graph = PruningGraph(src, self.inputs)
        if spec.graph_digest != graph.digest():
            raise PruningError("get_slim_model(): the model is not of the graph the spec was made for")
        kept = {graph.groups[n].root: sorted(k) for n, k in spec.kept.items() if len(k) < graph.groups[n].size}
        out = slim_model(graph, kept)
        out._fixflow_pruning_spec = spec  # type: ignore[attr-defined]
        return out


def get_pruning_runner(model: nn.Module, inputs: Any, method: str = "iterative", **kw: Any) -> PruningRunner:
    """A pruning runner for ``model`` (vai_p's entry point). ``method`` is ``"iterative"`` (analysis, prune,
    finetune, repeat); vai_p's ``"one_step"`` subnet search is not provided."""
    if method != "iterative":
        raise PruningError(f"method {method!r} is not supported: fixflow has the 'iterative' runner "
                           "(sensitivity analysis, prune, finetune)")
    return PruningRunner(model, inputs, **kw)


__all__ = ["MODES", "PruningRunner", "PruningSpec", "check_ratio", "get_pruning_runner"]
