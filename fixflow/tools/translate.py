"""`fixflow-translate`: between formats (modelled on mlir-translate).

    fixflow-translate --import-torch net.py:Net --input-shape 1,1,28,28 [--weights w.pt|w.npz] [-o net.mlir]
    fixflow-translate --import-zoo digits_cnn [--input-shape ...]
    fixflow-translate --import-dsl net.ffn [--weights w.npz]
    fixflow-translate --export-dot net.mlir            # Graphviz text of the graph functions
    fixflow-translate net.mlir --print-debuginfo       # re-print IR with locations
    fixflow-translate --import-xmodel Net_int.xmodel   # XIR .xmodel -> fix-dialect IR
    fixflow-translate q.mlir --export-xmodel -o Net_int.xmodel   # fix-dialect IR -> XIR .xmodel

An import prints the graph-dialect IR (with `--export-dot`: its Graphviz graph instead).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any, Sequence

from .common import ArgumentParser, ToolError, load_ir, parse_shape, read_text, run_tool, write_output

_SEED = 0


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="fixflow-translate", description="Translate between model formats and fixflow IR.")
    p.add_argument("input", nargs="?", default=None, help="input IR file for --export-dot or re-printing ('-' = stdin)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--import-torch", metavar="FILE.py:CLASS",
                     help="import a torch.nn.Module class (constructed with no arguments) from a Python file")
    src.add_argument("--import-zoo", metavar="NAME", help="import a model of the fixflow zoo (see fixflow-zoo list)")
    src.add_argument("--import-dsl", metavar="FILE.ffn", help="import a network written in the fixflow DSL")
    src.add_argument("--import-xmodel", metavar="FILE.xmodel",
                     help="import a quantized XIR .xmodel (as written by fixflow-quantize) as fix-dialect IR")
    p.add_argument("--weights", metavar="FILE", help="state dict for --import-torch (.pt or .npz), "
                   "parameters for --import-dsl (.npz)")
    p.add_argument("--input-shape", action="append", metavar="N,C,H,W", default=None,
                   help="shape of an example input (repeat for several inputs); zoo models have a default")
    p.add_argument("--name", help="name of the imported function (default: the model's class name)")
    p.add_argument("--export-dot", action="store_true", help="print a Graphviz graph instead of the IR")
    p.add_argument("--export-xmodel", action="store_true",
                   help="write a fix-dialect module as an XIR .xmodel (needs -o)")
    p.add_argument("--print-debuginfo", "--mlir-print-debuginfo", dest="debuginfo", action="store_true",
                   help="print op locations (loc(...)) with the IR")
    p.add_argument("-o", dest="output", default=None, help="output file (default: stdout)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `fixflow-translate`; returns the exit code."""
    return run_tool(lambda: _main(argv))


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    importing = args.import_torch or args.import_zoo or args.import_dsl or args.import_xmodel
    if importing and args.input is not None:
        raise ToolError(f"unexpected input file '{args.input}' with an import option")
    if args.weights and not (args.import_torch or args.import_dsl):
        raise ToolError("--weights needs --import-torch or --import-dsl")
    if args.input_shape and not (args.import_torch or args.import_zoo):
        raise ToolError("--input-shape needs --import-torch or --import-zoo")
    if args.import_torch:
        module = import_torch_file(args.import_torch, args.input_shape, args.weights, args.name)
    elif args.import_zoo:
        module = import_zoo(args.import_zoo, args.input_shape, args.name)
    elif args.import_dsl:
        module = _import_dsl(args.import_dsl, args.weights)
    elif args.import_xmodel:
        from fixflow.backends.xmodel.fix_xmodel import read_int_xmodel
        module = read_int_xmodel(args.import_xmodel)
    elif args.input is not None:
        module = load_ir(args.input)
    else:
        raise ToolError("nothing to do: give --import-torch, --import-zoo, --import-dsl or an input IR file")
    if args.export_xmodel:
        if not args.output or args.output == "-":
            raise ToolError("--export-xmodel writes a binary file: give -o FILE.xmodel")
        from fixflow.backends.xmodel.fix_xmodel import write_int_xmodel
        write_int_xmodel(module, args.output)
        return 0
    from fixflow.ir import print_module
    text = export_dot(module) if args.export_dot else print_module(module, print_locations=args.debuginfo)
    write_output(text, args.output)
    return 0


# ---- importers ------------------------------------------------------------------------------------------
def _example_inputs(shapes: list[tuple[int, ...]]) -> tuple:
    import torch
    gen = torch.Generator().manual_seed(_SEED)
    return tuple(torch.randn(s, generator=gen) for s in shapes)


def _load_python_file(path: str) -> Any:
    """Execute a user's Python file as a module; errors point at the user's line."""
    if not os.path.isfile(path):
        raise ToolError(f"cannot read '{path}': no such file")
    name = "_fixflow_user_" + "".join(c if c.isalnum() else "_" for c in os.path.abspath(path))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ToolError(f"'{path}' is not a Python file")
    mod = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except SyntaxError as e:
        from fixflow.ir.location import FileLineColLoc
        raise ToolError(f"syntax error in '{path}': {e.msg}",
                        FileLineColLoc(e.filename or path, e.lineno or 1, e.offset or 1)) from None
    except Exception as e:  # noqa: BLE001 - user code failed at import
        raise ToolError(f"importing '{path}' failed: {type(e).__name__}: {e}", _user_location(e, path)) from None
    finally:
        if sys.path and sys.path[0] == folder:
            sys.path.pop(0)
    return mod


def _user_location(e: BaseException, path: str) -> Any:
    from fixflow.ir.location import FileLineColLoc
    best = None
    tb = e.__traceback__
    target = os.path.abspath(path)
    while tb is not None:
        if os.path.abspath(tb.tb_frame.f_code.co_filename) == target:
            best = FileLineColLoc(tb.tb_frame.f_code.co_filename, tb.tb_lineno, 1)
        tb = tb.tb_next
    return best


def _load_state_dict(model: Any, weights: str) -> None:
    import torch
    if weights.endswith(".npz"):
        from fixflow.zoo.checkpoint import load_npz
        load_npz(model, weights)
        return
    if not os.path.isfile(weights):
        raise ToolError(f"cannot read '{weights}': no such file")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - pickle/zip errors of all kinds
        raise ToolError(f"cannot read weights '{weights}': {type(e).__name__}: {str(e).splitlines()[0]} "
                        "(expected a state dict saved with torch.save(model.state_dict(), ...) or a .npz)") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ToolError(f"'{weights}' does not hold a state dict (got {type(state).__name__})")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        msg = " ".join(str(e).split())
        raise ToolError(f"weights '{weights}' do not match {type(model).__name__}: {msg}") from None


def import_torch_file(spec: str, input_shapes: list[str] | None, weights: str | None = None,
                      name: str | None = None) -> Any:
    """Import `FILE.py:CLASS` (constructed with no arguments, optionally loaded with `weights`) to graph IR."""
    import torch
    from fixflow.frontends.torch import import_module
    path, sep, cls_name = spec.rpartition(":")
    if not sep or not path or not cls_name:
        raise ToolError(f"--import-torch expects FILE.py:CLASS, got '{spec}'")
    if not input_shapes:
        raise ToolError("--import-torch needs --input-shape (e.g. --input-shape 1,1,28,28)")
    shapes = [parse_shape(s) for s in input_shapes]
    mod = _load_python_file(path)
    cls = getattr(mod, cls_name, None)
    if cls is None:
        found = sorted(k for k, v in vars(mod).items()
                       if isinstance(v, type) and issubclass(v, torch.nn.Module) and v.__module__ == mod.__name__)
        raise ToolError(f"'{path}' has no class '{cls_name}' (nn.Module classes there: {', '.join(found) or 'none'})")
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ToolError(f"'{cls_name}' in '{path}' is not a torch.nn.Module class")
    try:
        model = cls()
    except Exception as e:  # noqa: BLE001 - the user's constructor
        raise ToolError(f"cannot construct {cls_name}() with no arguments: {type(e).__name__}: {e}",
                        _user_location(e, path)) from None
    if weights:
        _load_state_dict(model, weights)
    return import_module(model.eval(), _example_inputs(shapes), name=name)


def import_zoo(model_name: str, input_shapes: list[str] | None = None, name: str | None = None) -> Any:
    """Import a zoo model (its registered input shape unless `input_shapes` is given)."""
    from fixflow.frontends.torch import import_module
    from fixflow.zoo.registry import get_model, get_spec
    spec = get_spec(model_name)
    shapes = [parse_shape(s) for s in input_shapes] if input_shapes else [tuple(spec.input_shape)]
    return import_module(get_model(model_name), _example_inputs(shapes), name=name)


def _import_dsl(path: str, weights: str | None) -> Any:
    from fixflow.frontends.dsl import import_dsl
    text = read_text(path)
    arrays = None
    if weights:
        import numpy as np
        try:
            with np.load(weights, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise ToolError(f"cannot read weights '{weights}': {e}") from None
    return import_dsl(text, path, arrays, weights_name=weights)


# ---- Graphviz ---------------------------------------------------------------------------------------------
def _dot_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _type_text(t: Any) -> str:
    shape = getattr(t, "shape", None)
    if shape is None:
        return str(t)
    et = getattr(t, "element_type", None)
    return "x".join(str(d) for d in shape) + (f" {et}" if et is not None else "")


def export_dot(module: Any) -> str:
    """Graphviz text of every function in `module`: one node per op (its type and result shape) and per
    function input, edges from each operand's producer."""
    from fixflow.dialects.builtin import FuncOp
    funcs = [op for op in module.walk() if isinstance(op, FuncOp) and op.regions[0].blocks]
    lines = ["digraph fixflow {", "  rankdir=TB;", '  node [shape=box, style=rounded, fontname="Helvetica"];']
    ids: dict[Any, str] = {}
    counter = 0
    for fi, func in enumerate(funcs):
        lines.append(f"  subgraph cluster_{fi} {{")
        lines.append(f"    label={_dot_str('@' + func.sym_name)};")
        for block in func.regions[0].blocks:
            for a in block.args:
                nid = f"n{counter}"
                counter += 1
                ids[a] = nid
                label = f"{a.name_hint or f'arg{a.index}'}\ninput\n{_type_text(a.type)}"
                lines.append(f"    {nid} [label={_dot_str(label)}, shape=ellipse];")
            for op in block.ops:
                nid = f"n{counter}"
                counter += 1
                for r in op.results:
                    ids[r] = nid
                head = op.results[0].name_hint if len(op.results) == 1 and op.results[0].name_hint else ""
                label = "\n".join(x for x in (head, op.name, ", ".join(_type_text(r.type) for r in op.results)) if x)
                style = ""
                if op.name.endswith(".constant"):
                    style = ", shape=note, style=filled, fillcolor=lightgrey"
                elif op.name == "func.return":
                    style = ", shape=ellipse"
                lines.append(f"    {nid} [label={_dot_str(label)}{style}];")
                for v in op.operands:
                    src = ids.get(v)
                    if src is not None:
                        lines.append(f"    {src} -> {nid};")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
