"""`fixflow-quantize`: post-training quantization of a PyTorch model (calib / test modes), like the
`python quantize.py --quant_mode calib|test` scripts of the Vitis AI tutorials.

    fixflow-quantize --model digits_cnn --data digits --mode calib --output-dir build/quant_model
    fixflow-quantize --model digits_cnn --data digits --mode test  --output-dir build/quant_model
    fixflow-quantize --model net.py:Net --weights net.pt --data inputs.npz --mode calib
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from .common import ArgumentParser, ToolError, argv_list, run_tool

__all__ = ["main"]


def _load_model(spec: str, weights: str | None) -> tuple[Any, str | None]:
    """(model, zoo name or None) for `--model` (a zoo name or file.py:Class) and `--weights`."""
    from .user_model import load_state_dict, load_torch_model, split_model_spec
    file_class = split_model_spec(spec)
    if file_class is not None:
        return load_torch_model(*file_class, weights), None
    from fixflow.zoo import get_model
    model = get_model(spec)
    if weights:
        load_state_dict(model, weights)
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
    if not os.path.exists(args.data):
        raise ToolError(f"--data: file {args.data} not found (use 'digits' or a .npz of inputs)")
    try:
        z = np.load(args.data)
        if isinstance(z, np.ndarray):   # a plain .npy of inputs
            x, y = np.asarray(z, np.float32), None
        else:
            with z:
                key = next((k for k in ("x", "inputs", "images") if k in z.files), z.files[0] if z.files else None)
                if key is None:
                    raise ToolError(f"--data: {args.data} holds no arrays")
                x = np.asarray(z[key], np.float32)
                y = np.asarray(z["y"]) if "y" in z.files else None
    except ToolError:
        raise
    except Exception as e:  # noqa: BLE001 - numpy raises many kinds for a foreign or corrupt file
        raise ToolError(f"--data: cannot read {args.data} as .npz/.npy: {' '.join(str(e).split())}") from None
    if x.ndim == 0 or len(x) == 0:
        raise ToolError(f"--data: {args.data} holds no inputs (array of shape {x.shape})")
    if y is not None and (y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer)):
        raise ToolError(f"--data: labels 'y' in {args.data} must be integer class indices of shape ({len(x)},), "
                        f"got {y.dtype} {y.shape}")
    return x, (x if y is not None else None), y


def _input_shape(zoo_name: str | None, args) -> tuple[int, ...]:
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
    p.add_argument("--model", required=True, help="zoo model name or file.py:Class")
    p.add_argument("--weights", help="state dict (.pt or .npz) for --model file.py:Class")
    p.add_argument("--data", default="digits", help="'digits' or an .npz of inputs (x, optional labels y)")
    p.add_argument("--mode", choices=("calib", "test"), default="calib")
    p.add_argument("--output-dir", default="quantize_result")
    p.add_argument("--config", help="quantizer config JSON")
    p.add_argument("--calib-batches", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--input-shape", help="example input shape, e.g. 1,1,28,28 (default from the zoo/data)")
    p.add_argument("--no-xmodel", action="store_true", help="test mode: do not write the _int.xmodel")
    args = p.parse_args(argv_list(argv))
    if args.calib_batches < 1 or args.batch_size < 1:
        raise ToolError("--calib-batches and --batch-size must be >= 1")
    import torch
    from fixflow.quantizer import Quantizer
    model, zoo_name = _load_model(args.model, args.weights)
    shape = _input_shape(zoo_name, args)
    xcal, xte, yte = _data(args, shape, zoo_name)
    if shape and tuple(xcal.shape[1:]) != tuple(shape[1:]):
        raise ToolError(f"--data: inputs of shape {tuple(xcal.shape[1:])} do not fit the model input {tuple(shape[1:])}")
    example = (torch.from_numpy(xcal[:1]),)
    q = Quantizer(model, example, mode=args.mode, output_dir=args.output_dir, config=args.config)
    if args.mode == "calib":
        n = min(len(xcal), args.calib_batches * args.batch_size)
        for i in range(0, n, args.batch_size):
            q.quant_model(torch.from_numpy(xcal[i:i + args.batch_size]))
        q.export_quant_config()
    if xte is not None and yte is not None:
        with torch.no_grad():
            yf = model(torch.from_numpy(xte)).numpy()
        if args.mode == "calib":
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
