"""``fixflow-zoo``: list, describe, train and evaluate the reference models."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence

from fixflow.zoo.errors import ZooError


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{message} (see fixflow-zoo --help)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="fixflow-zoo", description="fixflow's model zoo: reference models and digits data.")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", required=True, parser_class=_Parser)
    c = sub.add_parser("list", help="table of the models (GOPs, input shape, accuracy)")
    c.add_argument("--json", action="store_true", help="print descriptions as JSON")
    c = sub.add_parser("show", help="everything about one model")
    c.add_argument("name")
    c.add_argument("--json", action="store_true", help="print as JSON")
    c.add_argument("--layers", action="store_true", help="also list conv/linear layers with MACs")
    c.add_argument("--weights", help="a pruned (slim) state dict (.pth/.pt or .npz): show the pruned model's "
                                     "MACs, GOPs and parameters against the original's")
    c = sub.add_parser("train", help="train a digits model deterministically and save its weights")
    c.add_argument("name")
    c.add_argument("--epochs", type=int, help="number of epochs (default: the model's recipe)")
    c.add_argument("--seed", type=int, default=0, help="initialization and shuffling seed (default 0)")
    c.add_argument("--lr", type=float, help="Adam learning rate (default: the model's recipe)")
    c.add_argument("--threads", type=int, default=1, help="torch threads (1 = bit-reproducible)")
    g = c.add_mutually_exclusive_group()
    g.add_argument("--output", "-o", help="weights file to write (default: NAME.npz)")
    g.add_argument("--bundle", action="store_true",
                   help="replace the bundled weights and their manifest record (maintainers)")
    c = sub.add_parser("eval", help="top-1 accuracy of a digits model on a split")
    c.add_argument("name")
    c.add_argument("--weights", help=".npz weights file (default: the bundled weights)")
    c.add_argument("--split", default="test", choices=("train", "test", "all"))
    return p


def _fmt(v: object) -> str:
    return "-" if v is None else str(v)


def _list(as_json: bool) -> None:
    from fixflow.zoo.registry import describe, list_models

    rows = [describe(n) for n in list_models()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    header = ("name", "input", "classes", "GOPs", "params", "float acc", "weights")
    table = [header] + [
        (
            r["name"],
            "x".join(map(str, r["input_shape"])),
            str(r["num_classes"]),
            f"{r['gops']:.4g}",
            f"{r['params'] / 1e6:.3g}M" if r["params"] >= 1e5 else str(r["params"]),
            "-" if r["float_accuracy"] is None else f"{100 * r['float_accuracy']:.2f}%",
            "trained" if r["float_accuracy"] is not None else "seeded random",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def _read_state(path: str) -> dict:
    import torch
    from fixflow.zoo.checkpoint import read_npz

    if path.endswith(".npz"):
        return {k: torch.from_numpy(v.copy()) for k, v in read_npz(path).items()}
    if not os.path.isfile(path):
        raise ZooError(f"{path}: cannot read weights: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - pickle/zip errors of all kinds
        raise ZooError(f"{path}: cannot read weights ({type(e).__name__}; expected a state dict saved with "
                       "torch.save(model.state_dict(), ...) or a .npz)") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ZooError(f"{path}: does not hold a state dict (got {type(state).__name__})")
    return state


def _pruned(name: str, weights: str, d: dict) -> None:
    """Replace the structure figures of ``d`` by those of ``name`` resized to the (slim) state dict."""
    from torch import nn

    from fixflow.quantizer.pruning import PruningError
    from fixflow.quantizer.pruning import load_state_dict as load_slim
    from fixflow.zoo.registry import build, count_macs, get_spec, gops

    spec = get_spec(name)
    try:
        model = load_slim(build(spec.name), _read_state(weights)).eval()
    except PruningError as e:
        raise ZooError(f"{weights}: {e.message}") from None
    shapes: dict[str, list[int]] = {}
    mods = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    hooks = [m.register_forward_hook(lambda _m, _i, out, n=n: shapes.__setitem__(n, list(out.shape)))
             for n, m in mods]
    try:
        macs = count_macs(model, spec.input_shape)
    finally:
        for h in hooks:
            h.remove()
    original = gops(spec.name)
    d["gops"] = 2 * sum(macs.values()) / 1e9
    d["macs"] = sum(macs.values())
    d["params"] = sum(p.numel() for p in model.parameters())
    d["weights"] = f"pruned ({weights})"
    d["float_accuracy"] = None
    d["pruned"] = {"weights": weights, "original_gops": round(original, 6),
                   "mac_ratio": round(2 * d["macs"] / 1e9 / original, 6) if original else None}
    rows = []
    for n, m in mods:
        if isinstance(m, nn.Conv2d):
            kind = "dwconv" if m.groups > 1 and m.groups == m.in_channels else "conv"
            kind += f"{m.kernel_size[0]}x{m.kernel_size[1]}/{m.stride[0]}"
        else:
            kind = "linear"
        rows.append({"layer": n, "type": kind, "output_shape": shapes[n], "macs": macs[n]})
    d["pruned_layers"] = rows


def _show(name: str, as_json: bool, layers: bool, weights: str | None = None) -> None:
    from fixflow.zoo.registry import describe, layer_table

    d = describe(name)
    if weights:
        _pruned(name, weights, d)
        if layers:
            d["layers"] = d["pruned_layers"]
        del d["pruned_layers"]
    elif layers:
        d["layers"] = layer_table(name)
    if as_json:
        print(json.dumps(d, indent=2))
        return
    acc = d["float_accuracy"]
    lines = [
        ("name", d["name"]),
        ("description", d["description"]),
        ("constructor", d["constructor"]),
        ("input shape", "x".join(map(str, d["input_shape"])) + " (NCHW)"),
        ("classes", d["num_classes"]),
        ("dataset", d["dataset"]),
        ("preprocess", json.dumps(d["preprocess"]) if d["preprocess"] else None),
        ("GOPs", f"{d['gops']:.4g} (2 ops per conv/linear MAC, batch 1)"),
        *([("pruned", f"{100 * d['pruned']['mac_ratio']:.1f}% of the original's MACs "
                      f"({d['pruned']['original_gops']:.4g} GOPs)")] if d.get("pruned") else []),
        ("published GOPs", d["published_gops"]),
        ("parameters", d["params"]),
        ("weights", d["weights"]),
        ("float accuracy", None if acc is None else f"{100 * acc:.2f}% (digits test split)"),
        ("trainable", "yes (fixflow-zoo train)" if d["trainable"] else "no"),
    ]
    if d["training"]:
        t = d["training"]
        lines.append(("training", f"{t['epochs']} epochs, {t['optimizer']} lr {t['lr']} {t['schedule']}, "
                                  f"batch {t['batch_size']}, seed {t['seed']}, {t['train_seconds']}s"))
    for key, val in lines:
        print(f"{key + ':':<16}{_fmt(val)}")
    if layers:
        rows = [(r["layer"], r["type"], "x".join(map(str, r["output_shape"])), f"{r['macs']:,}")
                for r in d["layers"]]
        table = [("layer", "type", "output", "MACs"), *rows]
        widths = [max(len(row[i]) for row in table) for i in range(4)]
        print()
        for row in table:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def _train(args: argparse.Namespace) -> None:
    from fixflow.zoo.checkpoint import save_npz
    from fixflow.zoo.registry import get_spec
    from fixflow.zoo.train import bundle, train

    spec = get_spec(args.name)
    if args.epochs is not None and args.epochs < 1:
        raise ZooError(f"--epochs must be >= 1, got {args.epochs}")
    if args.seed < 0:
        raise ZooError(f"--seed must be >= 0, got {args.seed}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise ZooError(f"--lr must be a positive number, got {args.lr}")
    if args.threads < 1:
        raise ZooError(f"--threads must be >= 1, got {args.threads}")
    path = None if args.bundle else (args.output or f"{spec.name}.npz")
    if path is not None and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise ZooError(f"{path}: cannot write: directory does not exist")
    res = train(spec.name, epochs=args.epochs, seed=args.seed, lr=args.lr, threads=args.threads, log=print)
    if path is None:
        path = str(bundle(res))
    else:
        try:
            save_npz(res.model, path)
        except OSError as e:
            raise ZooError(f"{path}: cannot write: {e.strerror or e}") from None
    print(f"{spec.name}: train accuracy {100 * res.train_accuracy:.2f}%, "
          f"test accuracy {100 * res.test_accuracy:.2f}% ({res.seconds:.1f}s)")
    print(f"weights written to {path}")


def _eval(args: argparse.Namespace) -> None:
    from fixflow.zoo.checkpoint import load_npz
    from fixflow.zoo.registry import get_model, get_spec
    from fixflow.zoo.train import evaluate

    spec = get_spec(args.name)
    if spec.dataset != "digits":
        raise ZooError(f"model {spec.name!r} is not a digits model: no data to evaluate it on")
    model = get_model(spec.name, pretrained=args.weights is None)
    if args.weights:
        load_npz(model, args.weights)
    acc = evaluate(model, spec.name, args.split)
    print(f"{spec.name}: top-1 accuracy {100 * acc:.2f}% on the digits {args.split} split")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fixflow-zoo``; returns the exit code."""
    try:
        args = _parser().parse_args(argv)
        if args.cmd == "list":
            _list(args.json)
        elif args.cmd == "show":
            _show(args.name, args.json, args.layers, args.weights)
        elif args.cmd == "train":
            _train(args)
        elif args.cmd == "eval":
            _eval(args)
    except (_UsageError, ZooError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
