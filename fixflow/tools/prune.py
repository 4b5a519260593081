"""`fixflow-prune`: channel pruning of a float PyTorch model (vai_p's optimizer) from the shell: optional
sensitivity analysis, prune, finetune, and a slim state dict plus a model file the other tools load.

    fixflow-prune --model digits_cnn --data digits --channel-ratio 0.5 --epochs 8 -o build/pruned
    fixflow-prune --model digits_cnn --data digits --removal-ratio 0.7 -o build/pruned    # runs the analysis
    fixflow-quantize --model build/pruned/DigitsCNN_pruned.py:DigitsCNNPruned \\
                     --weights build/pruned/DigitsCNN_pruned.pth --data digits --mode calib
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .common import ArgumentParser, ToolError, argv_list, run_tool

__all__ = ["main"]

_MODEL_FILE = '''"""{cls}Pruned: {cls} with the layer sizes fixflow-prune left ({how}); load {weights} into it."""

{imports}
from fixflow.quantizer.pruning.slim import resize

SHAPES = {shapes!r}


class {cls}Pruned({cls}):
    def __init__(self):
        super().__init__()
        resize(self, SHAPES)
'''


def _load(spec: str, weights: str | None) -> tuple[Any, str | None, str]:
    """(model, zoo name or None, the import lines of its class for the generated model file)."""
    from .user_model import check_model_spec, load_state_dict, load_torch_model, split_model_spec
    file_class = split_model_spec(spec)
    if file_class is None:
        check_model_spec(spec)   # a .py without :Class lists its classes; a .pt as the model names the fix
    if file_class is not None:
        path, cls = file_class
        model = load_torch_model(path, cls, weights)
        absolute = os.path.abspath(path)
        imports = ("from fixflow.tools.user_model import load_python_file\n\n"
                   f"{cls} = getattr(load_python_file({absolute!r}), {cls!r})")
        return model, None, imports
    from fixflow.zoo import get_model, get_spec
    zspec = get_spec(spec)
    model = get_model(zspec.name)
    if weights:
        load_state_dict(model, weights)
    module, cls = zspec.constructor.split(":")
    return model.eval(), zspec.name, f"from {module} import {cls}"


def _data(name: str, zoo_name: str | None, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train x, train y, test x, test y); an .npz's x/y serve as both."""
    if name == "digits":
        from fixflow.zoo.data import load_digits
        if zoo_name is not None:
            from fixflow.zoo import load_data
            (xtr, ytr), (xte, yte) = load_data(zoo_name, "train"), load_data(zoo_name, "test")
        else:
            (xtr, ytr), (xte, yte) = load_digits("train", size=size), load_digits("test", size=size)
        return xtr, ytr, xte, yte
    from fixflow.passes.data import load_inputs   # the one input loader of the tools and passes
    data = load_inputs(name, None, what="--data")
    if data.y is None:
        raise ToolError(f"--data: {name} has no labels: pruning trains and evaluates, give a .npz with inputs x and "
                        "integer labels y, or a folder of images in one subfolder per class")
    return data.x, data.y, data.x, data.y


def _accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    import torch
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 256):
            correct += int((model(torch.from_numpy(x[i:i + 256])).argmax(1).numpy() == y[i:i + 256]).sum())
    return correct / len(y)


def _main(argv: Sequence[str] | None) -> int:
    p = ArgumentParser(prog="fixflow-prune", description="Channel pruning of a float PyTorch model "
                                                         "(docs/pruning.md)")
    p.add_argument("--model", required=True, help="zoo model name or file.py:Class")
    p.add_argument("--weights", help="its float weights (.pt/.pth state dict or .npz; default: the zoo's)")
    p.add_argument("--data", default="digits", help="'digits', or a .npz with inputs x and labels y (used for "
                                                    "the analysis, finetuning and the accuracy alike)")
    p.add_argument("--input-shape", help="example input shape, e.g. 1,3,32,32 (default: the zoo's or the data's)")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--channel-ratio", type=float, help="fraction of every prunable layer's channels to remove")
    how.add_argument("--removal-ratio", type=float, help="fraction of the MACs to remove (per-layer ratios from "
                                                         "the sensitivity analysis)")
    how.add_argument("--mac-budget", type=int, help="MACs of one image to stay within (same)")
    how.add_argument("--threshold", type=float, help="score loss tolerated per layer, relative (same)")
    how.add_argument("--spec", help="a pruning spec (.spec.json) written by an earlier prune")
    p.add_argument("--exclude", action="append", default=[], help="layer name to leave whole (repeatable)")
    p.add_argument("--channel-divisible", type=int, default=2, help="kept channels are multiples of this (2)")
    p.add_argument("--criterion", choices=("l1", "l2"), default="l1", help="filter norm ranking channels (l1)")
    p.add_argument("--ana-images", type=int, default=400, help="images the analysis scores on (400)")
    p.add_argument("--forced", action="store_true", help="redo the sensitivity analysis even if saved")
    p.add_argument("--epochs", type=int, default=5, help="finetuning epochs (0: none; default 5)")
    p.add_argument("--lr", type=float, default=3e-3, help="finetuning Adam learning rate (3e-3)")
    p.add_argument("--batch-size", type=int, default=32, help="finetuning batch size (32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: reproducible, and fastest for "
                                                         "small models)")
    p.add_argument("-o", "--output-dir", default="prune_result", help="where the files go (prune_result)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv_list(argv))
    if args.epochs < 0 or args.batch_size < 1 or args.ana_images < 1 or args.threads < 1:
        raise ToolError("--epochs must be >= 0, --batch-size, --ana-images and --threads >= 1")
    import torch
    torch.set_num_threads(args.threads)

    from fixflow.quantizer.pruning import finetune, get_pruning_runner
    from fixflow.quantizer.pruning.runner import check_ratio
    model, zoo_name, imports = _load(args.model, args.weights)
    if zoo_name is not None:
        from fixflow.zoo import get_spec
        shape = tuple(get_spec(zoo_name).input_shape)
    elif args.input_shape:
        from .common import parse_shape
        shape = parse_shape(args.input_shape)
    elif args.data == "digits":
        shape = (1, 1, 28, 28)
    else:
        shape = None
    xtr, ytr, xte, yte = _data(args.data, zoo_name, shape[-1] if shape else 28)
    shape = shape or (1, *xtr.shape[1:])
    if tuple(xtr.shape[1:]) != tuple(shape[1:]):
        raise ToolError(f"--data: inputs of shape {tuple(xtr.shape[1:])} do not fit the model input {tuple(shape[1:])}")
    out = args.output_dir
    os.makedirs(out, exist_ok=True)
    progress = not args.no_progress
    runner = get_pruning_runner(model, torch.zeros(shape), output_dir=out, progress=progress)
    kw: dict[str, Any] = {"excludes": args.exclude, "channel_divisible": args.channel_divisible,
                          "criterion": args.criterion}
    if args.spec:
        kw = {"spec_path": args.spec, "excludes": args.exclude}
    elif args.channel_ratio is not None:
        kw["channel_ratio"] = args.channel_ratio
    else:
        for key in ("removal_ratio", "mac_budget", "threshold"):
            if getattr(args, key) is not None:
                kw[key] = getattr(args, key)
        # the arguments are checked before the analysis, which takes a while
        if args.removal_ratio is not None:
            check_ratio("removal_ratio", args.removal_ratio)
        if args.mac_budget is not None and args.mac_budget <= 0:
            raise ToolError(f"--mac-budget must be a positive number of MACs, got {args.mac_budget}")
        if args.threshold is not None and not (args.threshold > 0 and args.threshold != float("inf")):
            raise ToolError(f"--threshold must be a positive fraction of the baseline score, got {args.threshold}")
        xa, ya = xtr[:args.ana_images], ytr[:args.ana_images]
        runner.ana(lambda m: _accuracy(m, xa, ya), excludes=args.exclude, forced=args.forced,
                   criterion=args.criterion, channel_divisible=args.channel_divisible)
    slim = runner.prune(**kw)
    spec = runner.last_spec
    float_acc, pruned_acc = _accuracy(model, xte, yte), _accuracy(slim, xte, yte)
    line = f"[fixflow] float accuracy {100 * float_acc:.2f}%, pruned {100 * pruned_acc:.2f}%"
    if args.epochs:
        from torch.utils.data import DataLoader, TensorDataset
        gen = torch.Generator().manual_seed(args.seed)
        loader = DataLoader(TensorDataset(torch.from_numpy(np.ascontiguousarray(xtr, np.float32)),
                                          torch.from_numpy(np.asarray(ytr, np.int64))),
                            batch_size=args.batch_size, shuffle=True, generator=gen)
        finetune(slim, loader, epochs=args.epochs, lr=args.lr, seed=args.seed, progress=progress)
        line += f", finetuned {100 * _accuracy(slim, xte, yte):.2f}% ({args.epochs} epochs)"
    split = "digits test split" if args.data == "digits" else args.data
    print(f"{line} on the {split}")
    cls = type(model).__name__
    weights = os.path.join(out, f"{cls}_pruned.pth")
    torch.save(slim.state_dict(), weights)
    shapes = {k: list(v.shape) for k, v in slim.state_dict().items()
              if k.endswith("weight") and tuple(v.shape) != tuple(model.state_dict()[k].shape)}
    model_file = os.path.join(out, f"{cls}_pruned.py")
    with open(model_file, "w") as f:
        f.write(_MODEL_FILE.format(cls=cls, how=spec.how, weights=os.path.basename(weights), imports=imports,
                                   shapes=shapes))
    print(f"[fixflow] MACs {spec.macs_before:,} -> {spec.macs_after:,} ({100 * spec.mac_ratio:.1f}%), parameters "
          f"{sum(p.numel() for p in model.parameters()):,} -> {sum(p.numel() for p in slim.parameters()):,}")
    print(f"[fixflow] slim weights {weights}; model {model_file}:{cls}Pruned")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: user errors print one `error: ...` line and return 1."""
    return run_tool(lambda: _main(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
