"""`fixflow-quantize`: post-training quantization of a PyTorch model (calib / test modes), like the
`python quantize.py --quant_mode calib|test` scripts of the Vitis AI tutorials.

    fixflow-quantize --model digits_cnn --data digits --mode calib --output-dir build/quant_model
    fixflow-quantize --model digits_cnn --data digits --mode test  --output-dir build/quant_model
    fixflow-quantize --model net.py:Net --weights net.pt --data inputs.npz --mode calib
    fixflow-quantize --model net.ffn --weights net.npz --data images/ --mode calib
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

import numpy as np

from .common import ArgumentParser, ToolError, argv_list, run_tool

__all__ = ["main"]


def _load_model(spec: str, weights: str | None, random_weights: bool = False) -> tuple[Any, str | None]:
    """(model, zoo name or None) for `--model` (a zoo name or file.py:Class) and `--weights`. A
    file.py:Class without --weights is refused (its weights would be the random initial ones) unless
    `random_weights` says that is meant."""
    from .user_model import check_model_spec, load_dsl_model, load_state_dict, load_torch_model, split_model_spec
    file_class = split_model_spec(spec)
    if file_class is not None or spec.endswith(".ffn"):
        what = f"{file_class[1]}()" if file_class is not None else f"the DSL network {spec} (seeded random)"
        if not weights and not random_weights:
            raise ToolError(f"--model {spec} without --weights would quantize the random initial weights of {what}: "
                            "give --weights FILE (" + ("a state dict .pt/.pth, a checkpoint holding one, a whole "
                                                       "saved model, or an .npz" if file_class is not None else
                                                       "an .npz or a state dict of its parameters") +
                            "), or --random-weights to quantize them on purpose")
        if weights and random_weights:
            raise ToolError("--random-weights and --weights contradict each other: give one of them")
        if random_weights:
            print(f"[fixflow] WARNING: --random-weights: quantizing the random initial weights of {what} "
                  "(the accuracy means nothing)", file=sys.stderr)
        if file_class is None:
            return load_dsl_model(spec, weights, pruned=True), None   # graph IR: the Quantizer takes it as it takes a torch model
        return load_torch_model(*file_class, weights), None
    check_model_spec(spec)
    from fixflow.zoo import get_model
    model = get_model(spec)
    if weights:
        load_state_dict(model, weights, pruned=True)   # a slim state dict of fixflow-prune resizes the layers
    return model.eval(), spec


def _data(args, model_input_shape: tuple[int, ...], zoo_name: str | None):
    """(calibration images, test images or None, test labels or None)."""
    if args.data == "digits":
        from fixflow.zoo.data import load_digits
        if zoo_name is not None:
            from fixflow.zoo import load_data
            xtr, _ = load_data(zoo_name, "train")
            xte, yte = load_data(zoo_name, "test")
        else:
            size = model_input_shape[-1]
            xtr, _ = load_digits("train", size=size)
            xte, yte = load_digits("test", size=size)
        return np.asarray(xtr, np.float32), np.asarray(xte, np.float32), np.asarray(yte)
    from fixflow.passes.data import load_inputs
    data = load_inputs(args.data, model_input_shape or None, what="--data")   # the loader of every tool and pass
    return data.x, (data.x if data.y is not None else None), data.y


def _float_outputs(model: Any, x: np.ndarray) -> np.ndarray:
    """The float model's first output on `x`: PyTorch, or the graph interpreter for a DSL network."""
    import torch
    from fixflow.ir.core import Operation
    if isinstance(model, Operation):
        from fixflow.ir.interpreter import find_function, run_function
        return np.asarray(run_function(find_function(model), [x])[0])
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def _input_shape(zoo_name: str | None, args, model: Any = None) -> tuple[int, ...]:
    from fixflow.ir.core import Operation
    if isinstance(model, Operation):   # a DSL network declares its input shape
        from fixflow.ir.interpreter import find_function
        return tuple(find_function(model).regions[0].blocks[0].args[0].type.shape)
    if zoo_name is not None:
        from fixflow.zoo import get_spec
        return tuple(get_spec(zoo_name).input_shape)
    if args.input_shape:
        from .common import parse_shape
        return parse_shape(args.input_shape)
    if args.data == "digits":
        return (1, 1, 28, 28)
    return ()


def _main(argv: Sequence[str] | None) -> int:
    p = ArgumentParser(prog="fixflow-quantize", description="Post-training quantization for the DPU (calib / test)")
    p.add_argument("--model", required=True, help="zoo model name, file.py:Class or a DSL network (.ffn)")
    p.add_argument("--weights", help="weights for --model: a state dict (.pt/.pth), a checkpoint holding one, a "
                                     "whole saved model, or an .npz; for a zoo model or a DSL network also a pruned "
                                     "(slim) state dict of fixflow-prune (the layers are resized to it)")
    p.add_argument("--random-weights", action="store_true",
                   help="quantize a file.py:Class model with its random initial weights, on purpose")
    p.add_argument("--data", default="digits", help="'digits' (or another named data set), a .npy or .npz of inputs "
                                                    "(x, optional labels y), or a folder of images")
    p.add_argument("--mode", choices=("calib", "test"), default="calib")
    p.add_argument("--output-dir", default="quantize_result")
    p.add_argument("--config", help="quantizer config JSON")
    p.add_argument("--calib-batches", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--input-shape", help="example input shape, e.g. 1,1,28,28 (default from the zoo/data)")
    p.add_argument("--no-xmodel", action="store_true", help="test mode: do not write the _int.xmodel")
    p.add_argument("--fast-finetune", action="store_true",
                   help="calib: fast finetuning (AdaQuant) on the calibration batches, written to fast_finetune.npz; "
                        "test: check the finetuned parameters are used (load_ft_param)")
    ft = p.add_argument_group("fast finetune options (with --fast-finetune --mode calib)")
    ft.add_argument("--ft-epochs", type=int, default=10, help="passes over the finetune set per layer (10)")
    ft.add_argument("--ft-lr", type=float, default=0.001, help="Adam's rate as a fraction of std(W) (0.001)")
    ft.add_argument("--ft-seed", type=int, default=0, help="minibatch order (0)")
    ft.add_argument("--ft-no-rescale", action="store_true",
                    help="gradient steps only: no channel rescaling between layers (docs/fast-finetune.md)")
    args = p.parse_args(argv_list(argv))
    if args.calib_batches < 1 or args.batch_size < 1:
        raise ToolError("--calib-batches and --batch-size must be >= 1")
    import torch
    from fixflow.quantizer import Quantizer
    model, zoo_name = _load_model(args.model, args.weights, args.random_weights)
    shape = _input_shape(zoo_name, args, model)
    xcal, xte, yte = _data(args, shape, zoo_name)
    if shape and tuple(xcal.shape[1:]) != tuple(shape[1:]):
        raise ToolError(f"--data: inputs of shape {tuple(xcal.shape[1:])} do not fit the model input {tuple(shape[1:])}")
    example = (torch.from_numpy(xcal[:1]),)
    q = Quantizer(model, example, mode=args.mode, output_dir=args.output_dir, config=args.config)
    if args.mode == "calib":
        n = min(len(xcal), args.calib_batches * args.batch_size)
        batches = [torch.from_numpy(xcal[i:i + args.batch_size]) for i in range(0, n, args.batch_size)]
        if args.fast_finetune:   # calibrates on the batches, then finetunes on them
            q.fast_finetune(lambda bs: [q.quant_model(b) for b in bs], (batches,), epochs=args.ft_epochs,
                            batch_size=args.batch_size, lr=args.ft_lr, seed=args.ft_seed,
                            rescale=not args.ft_no_rescale)
        else:
            for b in batches:
                q.quant_model(b)
        q.export_quant_config()
    elif args.fast_finetune:
        q.load_ft_param()
    if xte is not None and yte is not None:
        yf = _float_outputs(model, xte)
        if args.mode == "calib" and not args.fast_finetune:
            yq = np.concatenate([q.runner.forward([xte[i:i + 256]])[0] for i in range(0, len(xte), 256)])
        else:
            yq = np.concatenate([q.quant_model(xte[i:i + 256]) for i in range(0, len(xte), 256)])
        fa, qa = float((yf.argmax(1) == yte).mean()), float((yq.argmax(1) == yte).mean())
        agree = float((yf.argmax(1) == yq.argmax(1)).mean())
        print(f"[fixflow] float accuracy {100 * fa:.2f}%, quantized accuracy {100 * qa:.2f}% "
              f"(top-1 agreement {100 * agree:.2f}%, {len(yte)} test images)")
    if args.mode == "test" and not args.no_xmodel:
        q.export_xmodel()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: user errors print one `error: ...` line and return 1."""
    return run_tool(lambda: _main(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
