"""`fixflow-run`: run a compiled `.xmodel` (DPU subgraphs on the DPU interpreter) or an `_int.xmodel`
(fix-level integer execution) on float inputs; write the outputs, report accuracy and throughput.

    fixflow-run out/compiled/DigitsCNN.xmodel --data digits
    fixflow-run DigitsCNN_int.xmodel --data digits --threads 2 --batch 64 -o outputs.npz
    fixflow-run net.xmodel --input images.npz --mode reference      # x (+ labels y) in an .npz, or an .npy
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from typing import Any, Sequence

import numpy as np

from .common import ArgumentParser, ToolError, argv_list, run_tool

__all__ = ["main"]


def _read_inputs(path: str, label_path: str | None, spec: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Inputs (and labels) through the one input loader (`fixflow.passes.data.load_inputs`: .npy, .npz, or a
    folder of images made at the size of the model input `spec`); `--labels` an .npy."""
    from fixflow.passes.data import load_inputs
    if os.path.isdir(path) and spec is not None and len(spec.shape) == 4:
        nhwc = spec.layout != "NCHW"
        n, a, b, c = spec.shape
        data = load_inputs(path, (n, c, a, b) if nhwc else spec.shape, what="--input")
        x, y = (np.ascontiguousarray(data.x.transpose(0, 2, 3, 1)) if nhwc else data.x), data.y
    else:
        data = load_inputs(path, None, what="--input")
        x, y = data.x, data.y
    if label_path:
        if not os.path.exists(label_path):
            raise ToolError(f"--labels: file {label_path} not found")
        try:
            y = np.load(label_path, allow_pickle=False)
        except Exception as e:  # noqa: BLE001
            raise ToolError(f"--labels: cannot read {label_path} as .npy: {' '.join(str(e).split())}") from None
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
            raise ToolError(f"labels must be integer class indices of shape ({len(x)},), got {y.dtype} {y.shape}")
    return x, (np.asarray(y) if y is not None else None)


def _digits(spec: Any, split: str) -> tuple[np.ndarray, np.ndarray]:
    from fixflow.zoo.data import load_digits
    shape = spec.shape
    if len(shape) != 4 or (spec.layout == "NCHW" and (shape[1] != 1 or shape[2] != shape[3])) or \
            (spec.layout != "NCHW" and (shape[3] != 1 or shape[1] != shape[2])):
        raise ToolError(f"--data digits: the model input {spec.name!r} {spec.layout} {list(shape)} is not a "
                        "one-channel square image")
    x, y = load_digits(split, size=shape[2] if spec.layout == "NCHW" else shape[1])
    if spec.layout != "NCHW":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return x, y


def _main(argv: Sequence[str] | None) -> int:
    p = ArgumentParser(prog="fixflow-run", description="Run a compiled or _int .xmodel on inputs (DPU interpreter)")
    p.add_argument("xmodel", help="compiled .xmodel (vai_c_xir layout) or the quantizer's _int.xmodel")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help=".npy of inputs, .npz with x (or inputs/images) and optional labels y, or a "
                                     "folder of images")
    src.add_argument("--data", choices=("digits",), help="the bundled digits data (test split by default)")
    p.add_argument("--split", default="test", choices=("train", "test", "all"), help="--data split")
    p.add_argument("--labels", help=".npy of integer labels (when --input has none)")
    p.add_argument("-o", "--output", help="write the outputs to this .npz (one array per output tensor)")
    p.add_argument("--mode", choices=("fast", "reference", "fix"), default="fast",
                   help="DPU subgraphs: fast or reference interpreter on the machine code, or fix: their ops on "
                        "the fix-level semantics (no machine code)")
    p.add_argument("--batch", type=int, default=32, help="images per job (default 32)")
    p.add_argument("--threads", type=int, default=1, help="jobs run in parallel (default 1)")
    p.add_argument("--blas-threads", type=int, default=1, help="BLAS threads while running (default 1)")
    p.add_argument("--limit", type=int, help="run only the first N inputs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--compare-torch", metavar="MODEL",
                   help="also time PyTorch fp32 eager on the same inputs (zoo name or file.py:Class), same threads")
    p.add_argument("--weights", help="state dict (.pt or .npz) for --compare-torch file.py:Class")
    args = p.parse_args(argv_list(argv))
    if min(args.batch, args.threads, args.blas_threads, args.limit or 1) < 1:
        raise ToolError("--batch, --threads, --blas-threads and --limit must be >= 1")
    from fixflow.runtime.runner import Runner
    runner = Runner.create_graph_runner(args.xmodel, args.mode, batch=args.batch, num_workers=args.threads,
                                        blas_threads=args.blas_threads)
    try:
        return _run(args, runner)
    finally:
        runner.close()


def _run(args, runner) -> int:
    """Read the inputs, run them as jobs of `--batch` images, report and write the outputs."""
    ins = runner.get_input_tensors()
    if len(ins) != 1:
        raise ToolError(f"the model has {len(ins)} inputs; fixflow-run feeds one (use the Python API)")
    if args.data:
        x, y = _digits(runner.graph.inputs[0], args.split)
    else:
        x, y = _read_inputs(args.input, args.labels, runner.graph.inputs[0])
    if args.limit is not None:
        x, y = x[:args.limit], (y[:args.limit] if y is not None else None)
    want = tuple(ins[0].dims[1:])
    if tuple(x.shape[1:]) != want:
        raise ToolError(f"inputs have shape {tuple(x.shape)}, the model input {ins[0].name!r} needs "
                        f"(N, {', '.join(map(str, want))})")
    n = len(x)
    starts = list(range(0, n, args.batch))
    outs: list[list[np.ndarray]] = []
    from tqdm import tqdm
    bar = tqdm(total=n, unit="img", desc="fixflow-run", disable=args.no_progress or None, file=sys.stderr)
    t0 = time.perf_counter()
    pending: deque[tuple[int, int]] = deque()

    def collect() -> None:
        res = runner.result(pending.popleft())
        outs.append(res)
        bar.update(len(res[0]))
    for s in starts:                       # at most 2 jobs per thread in flight
        pending.append(runner.execute_async([x[s:s + args.batch]]))
        if len(pending) >= 2 * args.threads:
            collect()
    while pending:
        collect()
    dt = time.perf_counter() - t0
    bar.close()
    names = [t.name for t in runner.get_output_tensors()]
    results = {nm: np.concatenate([o[k] for o in outs]) for k, nm in enumerate(names)}
    print(f"[fixflow] {runner.name}: {n} images, {args.threads} thread(s), batch {args.batch}, mode {args.mode}")
    if y is not None:
        first = results[names[0]]
        if first.ndim == 2:
            acc = float((first.argmax(1) == y).mean())
            print(f"[fixflow] accuracy {100 * acc:.2f}% ({int(round(acc * n))}/{n}, top-1 of {names[0]!r})")
        else:
            print(f"[fixflow] no accuracy: output {names[0]!r} is not (N, classes)")
    print(f"[fixflow] throughput {n / dt:.1f} images/s, {1000 * dt / n:.3f} ms per image")
    if args.compare_torch:
        _compare_torch(args, runner, x, y, dt)
    if args.output:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
            with open(args.output, "wb") as f:
                np.savez(f, **results)
        except OSError as e:
            raise ToolError(f"cannot write '{args.output}': {e.strerror or e}") from None
        print(f"[fixflow] outputs written to {args.output} ({', '.join(names)})")
    if args.mode == "fast":
        from ..runtime.dpu.blas import blas_advice
        if (advice := blas_advice()) is not None:
            print(f"[fixflow] note: {advice}", file=sys.stderr)
    return 0


def _compare_torch(args, runner, x: np.ndarray, y: np.ndarray | None, dt: float) -> None:
    """Time the float PyTorch model on the same inputs (NCHW), batch and thread count; print both."""
    import torch
    from .user_model import check_model_spec, load_torch_model, split_model_spec
    spec = split_model_spec(args.compare_torch)
    if spec is not None:
        model = load_torch_model(spec[0], spec[1], args.weights)
    else:
        check_model_spec(args.compare_torch, "--compare-torch")
        if args.compare_torch.endswith(".ffn"):
            raise ToolError(f"--compare-torch times a PyTorch model; {args.compare_torch} is a DSL network (give "
                            "its PyTorch twin as file.py:Class, or a zoo name)")
        from fixflow.zoo import get_model
        model = get_model(args.compare_torch).eval()
    xin = x if runner.graph.inputs[0].layout == "NCHW" or x.ndim != 4 else x.transpose(0, 3, 1, 2)
    xt = torch.from_numpy(np.ascontiguousarray(xin, dtype=np.float32))
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        with torch.no_grad():
            model(xt[:args.batch])                                   # warm-up
            t0 = time.perf_counter()
            outs = [model(xt[s:s + args.batch]) for s in range(0, len(xt), args.batch)]
            tt = time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001 - the user's model
        raise ToolError(f"--compare-torch: {args.compare_torch} failed on the inputs: {type(e).__name__}: {e}") from None
    finally:
        torch.set_num_threads(threads)
    n = len(xt)
    yf = torch.cat(outs).numpy()
    line = f"[fixflow] PyTorch fp32 eager ({args.compare_torch}): {n / tt:.1f} images/s, {1000 * tt / n:.3f} ms per image"
    if y is not None and yf.ndim == 2:
        line += f", float accuracy {100 * float((yf.argmax(1) == y).mean()):.2f}%"
    print(line)
    print(f"[fixflow] fixflow / PyTorch time: {dt / tt:.2f}")


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: user errors print one `error: ...` line and return 1."""
    return run_tool(lambda: _main(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
