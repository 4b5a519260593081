"""`fixflow-translate`: between formats (modelled on mlir-translate).

    fixflow-translate --import-torch net.py:Net --input-shape 1,1,28,28 [--weights w.pt|w.npz] [-o net.mlir]
    fixflow-translate --import-zoo digits_cnn [--input-shape ...]
    fixflow-translate --import-dsl net.ffn [--weights w.npz]
    fixflow-translate --export-dot net.mlir            # Graphviz text of the graph functions
    fixflow-translate net.mlir --print-debuginfo       # re-print IR with locations
    fixflow-translate --import-xmodel Net_int.xmodel   # XIR .xmodel -> fix-dialect IR
    fixflow-translate q.mlir --export-xmodel -o Net_int.xmodel   # fix-dialect IR -> XIR .xmodel
    fixflow-translate prog.mc --mc-to-ac                # DPU machine code -> assembly text (.ac)
    fixflow-translate prog.ac --ac-to-mc -o prog.mc     # assembly text -> machine code
    fixflow-translate prog.mc --mc-to-mlir [--target DPUCZDX8G_ISA1_B4096]   # -> a dpu.program
    fixflow-translate prog.mlir --mlir-to-mc -o prog.mc # also --ac-to-mlir, --mlir-to-ac

An import prints the graph-dialect IR (with `--export-dot`: its Graphviz graph instead). The DPU
conversions build one `dpu.program` for the target and verify it, so every output is a program the
target can run; see docs/dpu-dialect.md.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Sequence

from .common import (ArgumentParser, ToolError, load_ir, parse_shape, read_bytes, read_text, run_tool,
                     write_output)

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
    p.add_argument("--name", help="name of the imported function (default: the model's class name); "
                   "with the DPU conversions: the dpu.program's name (default: the input file's name), "
                   "or the program to convert when the input module holds several")
    p.add_argument("--export-dot", action="store_true", help="print a Graphviz graph instead of the IR")
    p.add_argument("--export-xmodel", action="store_true",
                   help="write a fix-dialect module as an XIR .xmodel (needs -o)")
    p.add_argument("--print-debuginfo", "--mlir-print-debuginfo", dest="debuginfo", action="store_true",
                   help="print op locations (loc(...)) with the IR")
    p.add_argument("-o", dest="output", default=None, help="output file (default: stdout)")
    _add_dpu_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `fixflow-translate`; returns the exit code."""
    return run_tool(lambda: _main(argv))


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.dpu_mode or args.target is not None:
        return _translate_dpu_cli(args)
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


def import_torch_file(spec: str, input_shapes: list[str] | None, weights: str | None = None,
                      name: str | None = None) -> Any:
    """Import `FILE.py:CLASS` (constructed with no arguments, optionally loaded with `weights`) to graph IR."""
    from fixflow.frontends.torch import import_module
    from .user_model import load_torch_model
    from .user_model import check_model_spec
    path, sep, cls_name = spec.rpartition(":")
    if not sep or not path or not cls_name:
        check_model_spec(spec, "--import-torch")   # a .py: lists its classes; a .pt: names the fix
        raise ToolError(f"--import-torch expects FILE.py:CLASS, got '{spec}'")
    if not input_shapes:
        raise ToolError("--import-torch needs --input-shape (e.g. --input-shape 1,1,28,28)")
    shapes = [parse_shape(s) for s in input_shapes]
    model = load_torch_model(path, cls_name, weights)
    return import_module(model, _example_inputs(shapes), name=name)


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
        from fixflow.frontends.dsl.weights import load_npz
        try:
            arrays = load_npz(weights)
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


# ---- DPU programs: .mc machine code, .ac assembly text, dpu-dialect text ---------------------------------
#: the target of programs read from .mc/.ac when --target is not given
DEFAULT_TARGET = "DPUCZDX8G_ISA1_B4096"
#: conversion flag -> (input format, output format)
DPU_MODES = {"mc-to-ac": ("mc", "ac"), "ac-to-mc": ("ac", "mc"), "mc-to-mlir": ("mc", "mlir"),
             "mlir-to-mc": ("mlir", "mc"), "ac-to-mlir": ("ac", "mlir"), "mlir-to-ac": ("mlir", "ac")}
_FORMAT_NAMES = {"mc": "machine code (.mc)", "ac": "assembly text (.ac)", "mlir": "dpu-dialect text"}
_AC_TOKEN = re.compile(r"[^ \t,;\r\n\v\f]")  # the first character of an AC token (as fixflow.backends.mc.ac)


def _add_dpu_arguments(p: ArgumentParser) -> None:
    group = p.add_argument_group(
        "DPU programs", "convert one DPU program between machine code (.mc: little-endian 32-bit words), "
        "assembly text (.ac: one 'NAME dpdon dpdby field value ...' line per instruction) and dpu-dialect "
        "text (a dpu.program in MLIR generic syntax); reads the input file ('-' or none = stdin)")
    modes = group.add_mutually_exclusive_group()
    for flag, (src, dst) in DPU_MODES.items():
        modes.add_argument(f"--{flag}", dest="dpu_mode", action="store_const", const=flag,
                           help=f"{_FORMAT_NAMES[src]} -> {_FORMAT_NAMES[dst]}")
    group.add_argument("--target", metavar="TARGET", default=None,
                       help=f"target of the program (default {DEFAULT_TARGET}): a name, a fingerprint (0x...), "
                            "a board (zcu102, zcu104, kv260) or an arch.json; the program is checked against "
                            "it. With dpu-dialect input the program's own target attribute holds, and "
                            "--target must agree with it")
    # --name (above) names the dpu.program made from .mc/.ac (default: the input file's name without its
    # extension) and, with dpu-dialect input, picks the program to convert when the module holds several.


def _translate_dpu_cli(args: Any) -> int:
    if not args.dpu_mode:
        raise ToolError("--target needs one of the DPU conversions (" + ", ".join(f"--{m}" for m in DPU_MODES) + ")")
    flag = f"--{args.dpu_mode}"
    others = [("--import-torch", args.import_torch), ("--import-zoo", args.import_zoo),
              ("--import-dsl", args.import_dsl), ("--import-xmodel", args.import_xmodel),
              ("--weights", args.weights), ("--input-shape", args.input_shape),
              ("--export-dot", args.export_dot), ("--export-xmodel", args.export_xmodel)]
    for other, given in others:
        if given:
            raise ToolError(f"{other} cannot be combined with {flag}")
    src, dst = DPU_MODES[args.dpu_mode]
    if args.debuginfo and dst != "mlir":
        raise ToolError(f"--print-debuginfo applies to dpu-dialect output (--{src}-to-mlir), not to {flag}")
    path = "-" if args.input is None else args.input
    data: str | bytes = read_bytes(path) if src == "mc" else read_text(path)
    module = read_dpu_program(data, src, "<stdin>" if path == "-" else path, target=args.target, name=args.name)
    if dst == "mc" and (args.output is None or args.output == "-") and _stdout_is_terminal():
        raise ToolError(f"{flag} writes binary machine code: give -o FILE.mc or redirect stdout")
    write_output(write_dpu_program(module, dst, name=args.name if src == "mlir" else None,
                                   print_locations=args.debuginfo), args.output)
    return 0


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def read_dpu_program(data: str | bytes, fmt: str, filename: str = "<stdin>", *, target: str | None = None,
                     name: str | None = None) -> Any:
    """A verified `builtin.module` holding the DPU program in `data`.

    `fmt` is "mc" (machine-code bytes), "ac" (assembly text) or "mlir" (dpu-dialect text). From "mc" and
    "ac" the module holds one `dpu.program` named `name` (default: `filename` without directory and
    extension) for `target` (default DEFAULT_TARGET; anything `fixflow.target.get_target` accepts); its
    ops carry their byte offset / line:col as locations. "mlir" text is parsed and verified as is; a
    `target` that differs from a program's own is an error. Errors are `FixflowError`s with a location.
    """
    from fixflow.backends.mc import decode, parse_ac
    from fixflow.dialects.builtin import ModuleOp
    from fixflow.dialects.dpu import ProgramOp, from_instruction
    from fixflow.ir import FileLineColLoc, NameLoc, parse_module, verify
    from fixflow.target import get_target
    target_name = get_target(target).name if target is not None else None
    if fmt == "mlir":
        if not isinstance(data, str):
            raise ToolError(f"'{filename}': dpu-dialect input must be text")
        module = parse_module(data, filename)
        verify(module)
        if target_name is not None:
            for prog in _programs(module):
                if prog.target != target_name:
                    raise ToolError(f"dpu.program{_label(prog)} targets {prog.target}, not {target_name} "
                                    f"(--target)", prog.location)
        return module
    if fmt == "mc":
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ToolError(f"'{filename}': machine code must be bytes")
        instrs = decode(data, filename)
        locations, offset = [], 0
        for i, ins in enumerate(instrs):
            locations.append(NameLoc(f"{filename}: byte {offset}: instruction {i}"))
            offset += 4 * ins.spec.words
    elif fmt == "ac":
        if not isinstance(data, str):
            raise ToolError(f"'{filename}': assembly text must be text")
        instrs = parse_ac(data, filename)
        locations = _ac_locations(data, filename)
        assert len(locations) == len(instrs)
    else:
        raise ValueError(f"unknown DPU program format {fmt!r} (mc, ac, mlir)")
    if not instrs:
        raise ToolError(f"'{filename}' holds no instructions")
    if name is None and filename != "<stdin>":
        name = os.path.splitext(os.path.basename(filename))[0] or None
    prog = ProgramOp.build_program([], target_name or DEFAULT_TARGET, name, location=NameLoc(filename))
    for ins, loc in zip(instrs, locations):
        prog.body.append(from_instruction(ins, loc))
    module = ModuleOp.empty(FileLineColLoc(filename, 1, 1) if fmt == "ac" else NameLoc(filename))
    module.body.append(prog)
    verify(module)
    return module


def _ac_locations(text: str, filename: str) -> list[Any]:
    """`file:line:col` of each instruction of AC text (its mnemonic), as `parse_ac` numbers lines."""
    from fixflow.ir import FileLineColLoc
    out = []
    for lineno, line in enumerate(text.split("\n"), 1):
        m = _AC_TOKEN.search(line.split("#", 1)[0])
        if m:
            out.append(FileLineColLoc(filename, lineno, m.start() + 1))
    return out


def _programs(module: Any) -> list[Any]:
    from fixflow.dialects.dpu import ProgramOp
    return [op for op in module.regions[0].blocks[0].ops if isinstance(op, ProgramOp)] \
        if module.regions and module.regions[0].blocks else []


def _label(prog: Any) -> str:
    return f" @{prog.sym_name}" if prog.sym_name else ""


def write_dpu_program(module: Any, fmt: str, *, name: str | None = None,
                      print_locations: bool = False) -> str | bytes:
    """The program in `module` as "mc" (bytes), "ac" (text) or "mlir" (the module's text).

    For "mc" and "ac" the module must hold one top-level `dpu.program` (or several, and `name` picks
    one by its sym_name); nested super-layer programs are written in order, inlined.
    """
    from fixflow.backends.mc import encode, write_ac
    from fixflow.ir import print_module
    if fmt == "mlir":
        return print_module(module, print_locations=print_locations)
    if fmt not in ("mc", "ac"):
        raise ValueError(f"unknown DPU program format {fmt!r} (mc, ac, mlir)")
    progs = _programs(module)
    where = module.location
    if not progs:
        raise ToolError("the input holds no dpu.program", where)
    if name is not None:
        chosen = [p for p in progs if p.sym_name == name]
        if not chosen:
            names = ", ".join("@" + p.sym_name for p in progs if p.sym_name) or "none named"
            raise ToolError(f"no dpu.program @{name} in the input (programs: {names})", where)
        progs = chosen[:1]
    elif len(progs) > 1:
        names = ", ".join("@" + (p.sym_name or "?") for p in progs)
        raise ToolError(f"the input holds {len(progs)} dpu.programs ({names}): pick one with --name", where)
    instrs = progs[0].instructions()
    return encode(instrs) if fmt == "mc" else write_ac(instrs)


if __name__ == "__main__":
    sys.exit(main())
