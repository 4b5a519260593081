"""`fixflow-inspect`: which op of a model runs on the DPU, which on the CPU and why, for one target.

    fixflow-inspect digits_cnn --board kv260                        # a zoo model (float), text report
    fixflow-inspect net.py:Net --weights net.pt --input-shape 1,3,32,32 --target B512 --format svg -o net.svg
    fixflow-inspect out/quantize_result/DigitsCNN_int.xmodel --format json
    fixflow-inspect net_fix.mlir --format dot -o net.dot             # a fix-level module

Float models are quantized on the fly as the Quantizer does (calibrated on a few inputs: the zoo's samples,
`--data`, or seeded N(0, 1) inputs of `--input-shape`); `--quant-dir` uses a real calibration's
quant_info.json instead. See docs/inspector.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .common import ArgumentParser, ToolError, argv_list, run_tool, write_output

__all__ = ["main"]

FORMATS = ("text", "json", "dot", "svg")
DEFAULT_TARGET = "DPUCZDX8G_ISA1_B4096"


def _parser() -> ArgumentParser:
    from fixflow.target import BOARDS
    p = ArgumentParser(prog="fixflow-inspect",
                       description="Per op of a model: the device the DPU compiler gives it (DPU/CPU), the reason "
                                   "for the CPU, the fused group (super-layer) and the source line.")
    p.add_argument("model", help="a zoo model name, file.py:Class (a float PyTorch model), a DSL network (.ffn), an "
                                 "_int.xmodel, or a fix-level .mlir file")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--target", help=f"target name (DPUCZDX8G_ISA1_B1024 or B1024), fingerprint (0x...) or "
                                    f"arch.json (default {DEFAULT_TARGET})")
    g.add_argument("--board", help=f"board preset: {', '.join(BOARDS)}")
    p.add_argument("--format", default="text", choices=FORMATS, help="text (default), json, dot, svg (needs "
                                                                      "Graphviz's dot)")
    p.add_argument("-o", "--output", help="output file (default: stdout)")
    p.add_argument("--weights", help="state dict (.pt or .npz) for a file.py:Class or zoo model")
    p.add_argument("--input-shape", help="input shape of a file.py:Class model, e.g. 1,3,32,32")
    p.add_argument("--data", help="calibration inputs: 'digits' or an .npz/.npy of inputs (default: the zoo's "
                                  "samples, or seeded N(0, 1) inputs of --input-shape)")
    p.add_argument("--calib-images", type=int, default=8, help="inputs used for the quick calibration (default 8)")
    p.add_argument("--quant-dir", help="folder of a real calibration's quant_info.json (fixflow-quantize "
                                       "--mode calib): inspect with its fix positions")
    p.add_argument("--config", help="quantizer config JSON (as given to fixflow-quantize)")
    return p


def _target(args) -> Any:
    import re

    from fixflow.target import BOARDS, get_target
    if args.board is not None:
        if args.board.lower() not in BOARDS:
            raise ToolError(f"--board: unknown board {args.board!r} (known: {', '.join(BOARDS)})")
        return get_target(args.board.lower())
    spec = (args.target or DEFAULT_TARGET).strip()
    if re.fullmatch(r"B\d+", spec):
        spec = f"DPUCZDX8G_ISA1_{spec}"
    if spec.lower().endswith(".json") and not os.path.exists(spec):
        raise ToolError(f"--target: file {spec} not found")
    return get_target(spec)


def _calibration_inputs(args, zoo: str | None, shape: tuple[int, ...] | None):
    import numpy as np
    n = args.calib_images
    if args.data is not None:
        if args.data == "digits":
            from fixflow.zoo.data import load_digits
            if zoo is not None:
                from fixflow.zoo import load_data
                x, _ = load_data(zoo, "train")
            else:
                x, _ = load_digits("train", size=(shape or (1, 1, 28, 28))[-1])
        else:
            from fixflow.passes.data import load_inputs   # the one input loader of the tools and passes
            x = load_inputs(args.data, shape, what="--data").x
        x = np.asarray(x, np.float32)
        if x.ndim == 0 or len(x) == 0:
            raise ToolError(f"--data: {args.data} holds no inputs")
        if shape is not None and tuple(x.shape[1:]) != tuple(shape[1:]):
            raise ToolError(f"--data: inputs of shape {tuple(x.shape[1:])} do not fit the model input "
                            f"{tuple(shape[1:])}")
        return x[:n]
    if zoo is not None:
        from fixflow.zoo import sample_inputs
        return sample_inputs(zoo, n)
    if shape is None:
        raise ToolError("a file.py:Class model needs --input-shape (e.g. 1,3,32,32) or --data")
    return np.random.default_rng(0).standard_normal((n, *shape[1:])).astype(np.float32)


def _inspect_dsl(args, target: Any, path: str) -> Any:
    """A DSL network (`.ffn`, parameters from --weights .npz or seeded): quantized as the Quantizer does it
    (a quick calibration on the inputs, or --quant-dir's quant_info.json), then placed."""
    import tempfile

    import torch

    from fixflow.ir.interpreter import find_function
    from fixflow.passes.fix.quantize import quantize_module
    from fixflow.quantizer import Quantizer
    from fixflow.quantizer.inspector import Inspector

    from .user_model import load_dsl_model
    if args.input_shape is not None:
        raise ToolError(f"--input-shape does not apply to {path}: a DSL network declares its input shape")
    graph = load_dsl_model(path, args.weights)
    func = find_function(graph)
    x = _calibration_inputs(args, None, tuple(func.regions[0].blocks[0].args[0].type.shape))
    example = (torch.from_numpy(x[:1]),)
    if args.quant_dir is not None:
        fix = Quantizer(graph, example, mode="test", output_dir=args.quant_dir, config=args.config, log=None,
                        progress=False).fix_module
    else:
        with tempfile.TemporaryDirectory(prefix="fixflow-inspect-") as tmp:
            q = Quantizer(graph, example, mode="calib", output_dir=tmp, config=args.config, log=None, progress=False)
            q.quant_model(torch.from_numpy(x))
            q.export_quant_config()
            fix = q.module.clone()
        quantize_module(fix)
    return Inspector(target).inspect(fix, name=func.sym_name)


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv_list(argv))
    if args.calib_images < 1:
        raise ToolError(f"--calib-images must be at least 1, got {args.calib_images}")
    target = _target(args)
    from fixflow.quantizer.inspector import Inspector

    from .user_model import check_model_spec, split_model_spec
    spec = args.model
    file_class = split_model_spec(spec)
    if file_class is None and not spec.endswith((".xmodel", ".mlir")):
        check_model_spec(spec, "")   # a .py without :Class lists its classes; a .pt names the fix
    if spec.endswith(".ffn"):
        result = _inspect_dsl(args, target, spec)
    elif file_class is None and (spec.endswith((".xmodel", ".mlir")) or os.path.exists(spec)):
        for opt in ("weights", "input_shape", "data", "quant_dir", "config"):
            if getattr(args, opt) is not None:
                raise ToolError(f"--{opt.replace('_', '-')} applies to float models (a zoo name or file.py:Class), "
                                f"not to {spec}")
        result = Inspector(target).inspect(spec)
    else:
        import torch

        from .common import parse_shape
        from .user_model import load_state_dict, load_torch_model
        shape = parse_shape(args.input_shape) if args.input_shape else None
        if file_class is not None:
            model, zoo = load_torch_model(*file_class, args.weights), None
        else:
            from fixflow.zoo import get_model, get_spec
            model, zoo = get_model(spec), spec
            if args.weights:
                load_state_dict(model, args.weights)
            model.eval()
            shape = shape or tuple(get_spec(zoo).input_shape)
        x = _calibration_inputs(args, zoo, shape)
        result = Inspector(target).inspect(model, (torch.from_numpy(x),), quant_dir=args.quant_dir,
                                           config=args.config)
    text = {"text": result.text, "json": result.json, "dot": result.dot, "svg": result.svg}[args.format]()
    write_output(text, args.output)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `fixflow-inspect`."""
    return run_tool(lambda: _main(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
