"""The Inspector: which op of a model the DPU compiler puts where, and why (as Vitis AI's inspector).

    from fixflow.quantizer.inspector import Inspector
    result = Inspector("DPUCZDX8G_ISA1_B1024").inspect(model, (x,))     # a float torch.nn.Module
    print(result.text())                                                 # summary + per-op table
    result.write("inspect", image_format="svg")                          # inspect_<target>.txt/.json/.dot/.svg
    Inspector("kv260").inspect("build/DigitsCNN_int.xmodel")             # or a fix-level module / .mlir file

How the placement agrees with the real compile: the inspector does not re-implement any decision. A
float model goes through the Quantizer's own code (trace, graph preparation, calibration on the example
inputs, `legalize_fix`, `quantize_module`; with `quant_dir=` the Quantizer's test mode reads the real
quant_info.json instead), is written to an XIR graph and read back in memory as `export_xmodel` +
`fixflow-compile` do, and then runs the compiler's own passes (`partition`, `allocate-ddr`, `lower-to-dpu`)
and emission. Devices, reasons and subgraphs are the `partition` pass's annotations; the super-layers are
the children of the emitted DPU subgraphs. See docs/inspector.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..ir.core import Operation, Value
from ..ir.diagnostics import FixflowError
from ..ir.location import NameLoc, UnknownLoc

__all__ = ["Inspection", "Inspector", "InspectorError", "OpInfo", "render_svg"]

_DENSE_SUFFIX = "(TransferMatMulToConv2d)"
#: fill colours of the Graphviz output, by device
COLORS = {"DPU": "#a6d96a", "CPU": "#fdae61", "USER": "#d9d9d9"}


class InspectorError(FixflowError):
    """The model cannot be inspected (unreadable file, not quantized, Graphviz missing, ...)."""


@dataclass
class OpInfo:
    """One op of the compiled graph (constants excluded), named as in the compiled xmodel."""

    name: str
    kind: str                          # the fix-level op ("fix.conv2d", "graph.sigmoid", ...)
    device: str                        # DPU, CPU or USER (the graph inputs)
    subgraph: str                      # the DPU / CPU / USER subgraph of the compiled xmodel
    super_layer: str | None = None     # the DPU subgraph's child (fused group) that computes it
    reason: str | None = None          # why it is on the CPU
    shape: list[int] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    source: str | None = None          # file:line:col in the user's code
    module_path: str | None = None     # the torch module path (or the name in the input file)
    user_ops: list[str] = field(default_factory=list)  # the user's (graph-level) ops lowered into this op


@dataclass
class Inspection:
    """The result of `Inspector.inspect`: per-op placement, subgraphs, notes; renders as text, JSON, dot."""

    model: str
    target: str
    fingerprint: str
    fix_positions: str
    ops: list[OpInfo]
    subgraphs: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    compile_error: str | None = None

    # -- queries --------------------------------------------------------------------------------------
    def op(self, name: str) -> OpInfo:
        for o in self.ops:
            if o.name == name:
                return o
        raise KeyError(name)

    @property
    def cpu_ops(self) -> list[OpInfo]:
        return [o for o in self.ops if o.device == "CPU"]

    def placement(self) -> dict[str, tuple[str, str, str | None]]:
        """{op name: (device, subgraph, super-layer)}."""
        return {o.name: (o.device, o.subgraph, o.super_layer) for o in self.ops}

    # -- outputs --------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        n = {d: sum(o.device == d for o in self.ops) for d in ("DPU", "CPU", "USER")}
        return {"model": self.model, "target": self.target, "fingerprint": self.fingerprint,
                "fix_positions": self.fix_positions,
                "summary": {"ops": len(self.ops), "dpu_ops": n["DPU"], "cpu_ops": n["CPU"], "inputs": n["USER"],
                            "dpu_subgraphs": sum(s["device"] == "DPU" for s in self.subgraphs),
                            "cpu_subgraphs": sum(s["device"] == "CPU" for s in self.subgraphs)},
                "compile_error": self.compile_error, "notes": list(self.notes),
                "subgraphs": self.subgraphs, "ops": [asdict(o) for o in self.ops]}

    def json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    def text(self) -> str:
        """The text report: summary, the ops on the CPU with their reasons, every op, the fused groups."""
        d = self.to_dict()["summary"]
        lines = [f"fixflow inspector: {self.model} on {self.target} (fingerprint {self.fingerprint})",
                 f"fix positions: {self.fix_positions}",
                 (f"{d['ops']} ops: {d['dpu_ops']} on the DPU, {d['cpu_ops']} on the CPU, {d['inputs']} inputs; "
                  f"{d['dpu_subgraphs']} DPU subgraph(s), {d['cpu_subgraphs']} CPU subgraph(s)")]
        if self.compile_error:
            lines.append(f"the compile after partitioning fails: {self.compile_error}")
        cpu = self.cpu_ops
        lines += ["", "Ops assigned to the CPU"]
        if cpu:
            lines += _table(["op", "type", "source", "reason"],
                            [[o.name, o.kind, _src(o), o.reason or ""] for o in cpu])
        else:
            lines.append("  (none: everything but the inputs runs on the DPU)")
        lines += ["", "All ops"]
        lines += _table(["#", "op", "type", "shape", "device", "subgraph", "super-layer", "source"],
                        [[str(i), o.name, o.kind, "x".join(map(str, o.shape)), o.device, o.subgraph,
                          o.super_layer or "-", _src(o)] for i, o in enumerate(self.ops)])
        groups = [(s, g) for s in self.subgraphs if s["device"] == "DPU" for g in s.get("super_layers", [])]
        if groups:
            lines += ["", "Fused groups (super-layers of the DPU subgraphs)"]
            listed: set[str] = set()
            for s, g in groups:
                members = [o for o in self.ops if o.super_layer == g["name"]
                           or (g["kind"] == "skip" and o.name in g["ops"] and o.name not in listed)]
                if not members:
                    continue
                listed.update(o.name for o in members)
                user = [u for o in members for u in o.user_ops]
                lines.append(f"  {s['name']} / {g['name']}{' (no code: layout only)' if g['kind'] == 'skip' else ''}: "
                             f"{', '.join(o.name for o in members)}" + (f"  <- {', '.join(user)}" if user else ""))
        lines += ["", "Op details"]
        for o in self.ops:
            attrs = ", ".join(f"{k}={v}" for k, v in o.attrs.items())
            lines.append(f"  {o.name}: {o.kind} <- ({', '.join(o.inputs)})" + (f" {{{attrs}}}" if attrs else "")
                         + (f"  from {', '.join(o.user_ops)}" if o.user_ops else ""))
        if self.notes:
            lines += ["", "Notes"] + [f"  {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def dot(self) -> str:
        """Graphviz text: one node per op filled by device, DPU subgraphs as clusters, CPU reasons as labels."""
        def q(s: str) -> str:
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

        ids = {o.name: f"n{i}" for i, o in enumerate(self.ops)}
        out = [f"digraph {q(self.model)} {{", "  rankdir=TB;",
               f"  label={q(f'{self.model} on {self.target}: DPU green, CPU orange, inputs grey')}; labelloc=t;",
               '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];']

        def node(o: OpInfo) -> str:
            label = f"{o.name}\n{o.kind}  {'x'.join(map(str, o.shape))}\n{o.device}"
            if o.reason:
                label += "\n" + _wrap(o.reason, 48)
            tip = o.source or o.name
            return (f"  {ids[o.name]} [label={q(label)}, fillcolor={q(COLORS.get(o.device, '#ffffff'))}, "
                    f"tooltip={q(tip)}];")

        for k, s in enumerate(self.subgraphs):
            members = [o for o in self.ops if o.subgraph == s["name"]]
            if s["device"] == "DPU":
                out.append(f"  subgraph cluster_{k} {{ label={q(s['name'] + ' (DPU)')}; style=dashed;")
                out += ["  " + node(o) for o in members]
                out.append("  }")
            else:
                out += [node(o) for o in members]
        for o in self.ops:
            for i in o.inputs:
                if i in ids:
                    out.append(f"  {ids[i]} -> {ids[o.name]};")
        out.append("}")
        return "\n".join(out) + "\n"

    def svg(self) -> str:
        """The dot graph rendered by Graphviz (`InspectorError` when `dot` is not installed)."""
        return render_svg(self.dot())

    def write(self, output_dir: str | os.PathLike, image_format: str | None = "svg") -> dict[str, Path]:
        """Write inspect_<target>.txt, .json and .dot (and .svg with `image_format="svg"`) to `output_dir`."""
        if image_format not in (None, "dot", "svg"):
            raise InspectorError(f"image_format {image_format!r}: expected 'svg', 'dot' or None")
        out = Path(output_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InspectorError(f"cannot create output directory '{out}': {e.strerror or e}") from None
        base = out / f"inspect_{self.target}"
        files = {"txt": self.text(), "json": self.json(), "dot": self.dot()}
        if image_format == "svg":
            files["svg"] = self.svg()
        paths = {}
        for ext, data in files.items():
            p = base.with_suffix(f".{ext}")
            p.write_text(data)
            paths[ext] = p
        return paths


def render_svg(dot_text: str) -> str:
    """SVG of Graphviz text through the `dot` program; a one-line `InspectorError` when it is missing."""
    exe = shutil.which("dot")
    if exe is None:
        raise InspectorError("Graphviz's 'dot' program is not installed, so no svg can be drawn: install graphviz "
                             "(apt-get install graphviz) or write the dot text (format 'dot') and render it elsewhere")
    r = subprocess.run([exe, "-Tsvg"], input=dot_text, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise InspectorError(f"dot -Tsvg failed: {' '.join(r.stderr.split())}")
    return r.stdout


def _src(o: OpInfo) -> str:
    if o.source and o.module_path:
        return f"{o.source} ({o.module_path})"
    return o.source or o.module_path or "-"


def _wrap(s: str, width: int) -> str:
    words, lines, cur = s.split(), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    return "\n".join(lines + [cur])


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]

    def line(cells):
        return "  " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return [line(head), "  " + "-+-".join("-" * w for w in widths)] + [line(r) for r in rows]


# ---- the inspector ----------------------------------------------------------------------------------
class Inspector:
    """Inspects models for one DPU target (a name, board, fingerprint, arch.json or `Target`)."""

    def __init__(self, target: Any = "DPUCZDX8G_ISA1_B4096"):
        from ..target import get_target
        self.target = get_target(target)

    def inspect(self, model: Any, example_inputs: Any = None, *, quant_dir: str | os.PathLike | None = None,
                config: Any = None, output_dir: str | os.PathLike | None = None,
                image_format: str | None = None, name: str | None = None) -> Inspection:
        """Place every op of `model` as the compiler would for this target.

        `model`: a float `torch.nn.Module` (with `example_inputs`, a tensor or a tuple of them, used for
        tracing and, without `quant_dir`, for a quick calibration), a fix-level module (`Operation`), or the
        path of an `_int.xmodel` or a fix-level `.mlir` file. `quant_dir`: the folder of a real calibration's
        quant_info.json (the fix positions of the real flow); `config`: the quantizer config used with it.
        With `output_dir` the report is also written there (`Inspection.write`).
        """
        diags: list[str] = []
        user: dict[Operation, list[str]] = {}
        if _is_torch_module(model):
            if example_inputs is None:
                raise InspectorError("inspecting a PyTorch model needs example_inputs (a tensor or a tuple of "
                                     "tensors of the model's input shape)")
            fix_module, how, user, diags = _from_torch(model, example_inputs, quant_dir, config)
            name = name or type(model).__name__
            module, names, orig = _roundtrip(fix_module, diags)
        elif isinstance(model, Operation):
            _check_fix(model, "the module")
            name = name or _func_name(model)
            module, names, orig = _roundtrip(model, diags)
            how = "as given in the module"
        elif isinstance(model, (str, os.PathLike)):
            path = os.fspath(model)
            module = _load(path)
            name = name or Path(path).stem.removesuffix("_int")
            names, orig = _names(module), None
            how = "as given in " + ("the _int.xmodel" if not path.endswith(".mlir") else "the file")
        else:
            raise InspectorError(f"cannot inspect a {type(model).__name__}: give a torch.nn.Module, a fix-level "
                                 "module, or the path of an _int.xmodel or .mlir file")
        result = self._place(module, names, orig, user, name, how)
        result.notes += diags
        if output_dir is not None:
            result.write(output_dir, image_format)
        return result

    # -- placement -------------------------------------------------------------------------------------
    def _place(self, module: Operation, names: dict[Operation, str], orig: dict[str, Operation] | None,
               user: dict[Operation, list[str]], model: str, how: str) -> Inspection:
        from ..passes.dpu import compile_pipeline
        func = _func(module)
        (_, partition), *rest = compile_pipeline(self.target.fingerprint_hex, schedule=False)
        partition.run(module)
        compile_error = None
        compiled = None
        if not any(op.attributes.get("dpu.device") is not None and op.attributes["dpu.device"].value == "DPU"
                   and op.name != "fix.const" for op in func.regions[0].blocks[0].ops):
            compile_error = "nothing runs on the DPU: every layer was placed on the CPU"
        else:
            try:
                for _, stage in rest:
                    stage.run(module)
                from ..backends.xmodel.dpu_emit import emit_compiled
                compiled = emit_compiled(module, model, ac_code=False, target=self.target)
            except FixflowError as e:
                compile_error = " ".join(str(e.message).split())
        layer_of: dict[str, str] = {}
        subgraphs: list[dict[str, Any]] = []
        if compiled is not None:
            for s in compiled.subgraphs:
                entry: dict[str, Any] = {"name": s.name, "device": s.device}
                if s.device == "DPU":
                    entry["super_layers"] = []
                    for c in s.children:
                        ops = [n.removesuffix(_DENSE_SUFFIX) for n in c.op_names]
                        if c.kind in ("code", "skip"):
                            entry["super_layers"].append({"name": c.name, "kind": c.kind, "ops": ops})
                            for n in ops:
                                layer_of.setdefault(n, c.name)
                subgraphs.append(entry)
        ops: list[OpInfo] = []
        body = [op for op in func.regions[0].blocks[0].ops if op.name not in ("func.return", "fix.const")]
        for op in body:
            a = op.attributes
            info = OpInfo(names[op], op.name, a["dpu.device"].value,
                          a["dpu.subgraph"].value if "dpu.subgraph" in a else "-",
                          reason=a["dpu.reason"].value if "dpu.reason" in a else None,
                          shape=[int(d) for d in op.results[0].type.shape] if op.results else [],
                          inputs=[names[v.op] for v in op.operands
                                  if getattr(v, "op", None) in names and v.op.name != "fix.const"],
                          attrs=_attrs(op))
            src = orig.get(info.name) if orig is not None else op
            if src is not None:
                _locate(info, src)
                info.user_ops = user.get(src, [])
                fr = _fix_reason(src)
                if fr is not None and info.reason and "float op" in info.reason:
                    info.reason = f"{fr.value}: {info.reason}"
            ops.append(info)
        for info, op in zip(ops, body):
            info.super_layer = layer_of.get(info.name)
            if info.super_layer is None and info.device == "DPU" and op.name == "fix.reshape":
                info.super_layer = _reader_layer(op, names, layer_of)   # a flatten folded into a dense
        if compiled is not None:   # the reader's transposes around a float NHWC op, folded away by the emission
            written = {x.name for x in compiled.ops}
            gone = {o.name: o.inputs[0] for o in ops if o.kind == "graph.transpose" and o.inputs
                    and o.name.endswith(("_to_nchw", "_to_nhwc")) and o.name not in written}
            ops = [o for o in ops if o.name not in gone]
            for o in ops:
                o.inputs = [_through(n, gone) for n in o.inputs]
        if compiled is None:
            seen: dict[str, dict[str, Any]] = {}
            for o in ops:
                if o.subgraph not in seen:
                    seen[o.subgraph] = {"name": o.subgraph, "device": o.device}
                    subgraphs.append(seen[o.subgraph])
        return Inspection(model, self.target.name, self.target.fingerprint_hex, how, ops, subgraphs,
                          compile_error=compile_error)


# ---- inputs --------------------------------------------------------------------------------------------
def _is_torch_module(model: Any) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is an extra
        return False
    return isinstance(model, torch.nn.Module)


def _func(module: Operation) -> Operation:
    funcs = [op for op in module.regions[0].blocks[0].ops if op.name == "func.func"]
    if len(funcs) != 1:
        raise InspectorError(f"expected a module with one function, found {len(funcs)}", module.location)
    return funcs[0]


def _func_name(module: Operation) -> str:
    return _func(module).attributes["sym_name"].value


def _check_fix(module: Operation, what: str) -> None:
    func = _func(module)
    kinds = {op.name for op in func.regions[0].blocks[0].ops}
    if "fix.data" not in kinds:
        hint = (" it is a float graph-level module: inspect the PyTorch model, or quantize it first "
                "(fixflow-opt -p \"fold-bn,calibrate{data=...},legalize-fix,quantize\")"
                if any(k.startswith("graph.") for k in kinds) else "")
        raise InspectorError(f"{what} is not quantized (no fix.data op);{hint or ' quantize it first'}",
                             func.location)


def _load(path: str) -> Operation:
    if not os.path.exists(path):
        raise InspectorError(f"cannot read '{path}': no such file")
    if path.endswith(".mlir"):
        from ..ir import parse_module
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InspectorError(f"cannot read '{path}': {getattr(e, 'strerror', None) or e}") from None
        module = parse_module(text, path)
        module.verify()
        _check_fix(module, path)
        return module
    from ..backends.xmodel import read_xmodel
    from ..backends.xmodel.fix_xmodel import xgraph_to_module
    g = read_xmodel(path)
    types = {o.type for o in g.ops}
    if "upload" in types or "download" in types or (g.root is not None and g.root.children):
        raise InspectorError(f"{path}: is already compiled (it has a subgraph tree / upload and download ops); "
                             "give the quantizer's _int.xmodel")
    if "data-fix" not in types:
        raise InspectorError(f"{path}: missing fix information: no data-fix input, the model is not quantized "
                             "(run fixflow-quantize --mode test and inspect its _int.xmodel)")
    module = xgraph_to_module(g)
    _check_fix(module, path)
    return module


def _from_torch(model, example_inputs, quant_dir, config):
    """(fix-level module, how the fix positions were chosen, user ops per fix op, quantizer notes)."""
    import numpy as np
    import torch

    from ..ir.diagnostics import capture_diagnostics
    from ..passes.fix.quantize import quantize_module
    from .api import Quantizer
    if not isinstance(example_inputs, (tuple, list)):
        example_inputs = (example_inputs,)
    try:
        example_inputs = tuple(x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x, np.float32))
                               for x in example_inputs)
    except (TypeError, ValueError) as e:
        raise InspectorError(f"example_inputs must be tensors or numeric arrays ({e})") from None
    first = tuple(x[:1] if getattr(x, "ndim", 0) >= 1 and x.shape[0] > 1 else x for x in example_inputs)
    notes: list[str] = []
    if quant_dir is not None:
        q = Quantizer(model, first, mode="test", output_dir=quant_dir, config=config, log=notes.append,
                      progress=False)
        how = f"from {Path(quant_dir) / 'quant_info.json'} (the real calibration)"
        fix_module, graph = q.fix_module, q.module
    else:
        with tempfile.TemporaryDirectory(prefix="fixflow-inspect-") as tmp:
            q = Quantizer(model, first, mode="calib", output_dir=tmp, config=config, log=notes.append,
                          progress=False)
            q.quant_model(*example_inputs)
            q.export_quant_config()
        n = int(np.shape(example_inputs[0])[0]) if np.ndim(example_inputs[0]) else 1
        how = (f"calibrated on the {n} example input(s); a real calibration can choose other positions, "
               "which changes only the fix-position-dependent decisions (docs/inspector.md)")
        graph = q.module
        fix_module = graph.clone()
        with capture_diagnostics() as diags:
            quantize_module(fix_module)
        notes += [d.render().splitlines()[0] for d in diags]
    notes = [n.removeprefix("[fixflow] ").splitlines()[0] for n in notes
             if ": warning: " in n or n.startswith(("warning: ", "[fixflow] warning: "))]
    return fix_module, how, _user_ops(graph, fix_module), notes


def _user_ops(graph: Operation, fix_module: Operation) -> dict[Operation, list[str]]:
    """The graph-level ops each fix-level op was lowered from, by source location: an op with no fix-level op
    of its own (a fused activation, a removed identity) joins the op that its input was lowered to."""
    from ..dialects.graph import ConstantOp
    fix_ops = [op for op in _func(fix_module).regions[0].blocks[0].ops if op.name not in ("func.return", "fix.const")]
    by_loc: dict[Any, list[Operation]] = {}
    for op in fix_ops:
        if not isinstance(op.location, UnknownLoc):      # unknown locations name no user op
            by_loc.setdefault(op.location, []).append(op)
    home: dict[Value, list[Operation]] = {}
    res: dict[Operation, list[str]] = {}
    for g in _func(graph).regions[0].blocks[0].ops:
        if isinstance(g, ConstantOp) or g.name == "func.return" or not g.results:
            continue
        owners = by_loc.get(g.location)
        how = ""
        if not owners:
            src = next((v for v in g.operands if v in home), None)
            owners = home.get(src, [])
            how = " fused"
        home[g.results[0]] = owners
        label = f"{_path(g)} ({g.name.split('.', 1)[-1]}{how})"
        if g.name in ("graph.conv2d", "graph.linear") and "_bnfold" in _weight_key(g):
            label = label[:-1] + ", batch_norm folded)"
        for o in owners:
            res.setdefault(o, []).append(label)
    return res


def _weight_key(op: Operation) -> str:
    w = op.operands[1] if len(op.operands) > 1 else None
    a = w.op.attributes.get("value") if w is not None and getattr(w, "op", None) is not None else None
    return getattr(a, "key", "") or ""


def _path(op: Operation) -> str:
    loc = op.location
    if isinstance(loc, NameLoc):
        return loc.name
    return op.results[0].name_hint or op.name


def _roundtrip(fix_module: Operation, notes: list[str]):
    """The module the compiler sees after `export_xmodel` (the fix module written as an XIR graph and read
    back), its op names, and the original op of each name (for locations)."""
    from ..backends.xmodel.fix_xmodel import (
        _Exporter,
        module_to_xgraph,
        xgraph_to_module,
    )
    from ..backends.xmodel.model import XModelError
    func = _func(fix_module)
    body = [op for op in func.regions[0].blocks[0].ops if op.name != "func.return"]
    try:
        g = module_to_xgraph(fix_module)
    except XModelError as e:
        notes.append(f"the module cannot be written as an _int.xmodel ({e.message}); inspected as it is")
        module = fix_module.clone()
        names = _names(module)
        return module, names, {n: o for n, o in zip(names.values(), body)} if len(names) == len(body) else None
    # every XIR op an op is written as (a conv left in float: its NHWC conv2d and the transposes around it)
    orig: dict[str, Operation] = {}
    ex = _Exporter(func)
    for op in body:
        first = len(ex.ops)
        ex.export(op)
        orig.update((x.name, op) for x in ex.ops[first:])
    module = xgraph_to_module(g)
    return module, _names(module), orig


def _names(module: Operation) -> dict[Operation, str]:
    """The compiled xmodel's name of every op (the XIR exporter's naming, as the emission uses)."""
    from ..backends.xmodel.fix_xmodel import module_to_xgraph
    from ..backends.xmodel.model import XModelError
    body = [op for op in _func(module).regions[0].blocks[0].ops if op.name != "func.return"]
    try:
        g = module_to_xgraph(module)
        if len(g.ops) == len(body):
            return {op: x.name for op, x in zip(body, g.ops)}
    except XModelError:
        pass
    res, used = {}, set()
    from ..backends.xmodel.dpu_emit import read_back_float_nhwc_names
    own = read_back_float_nhwc_names(body)
    for op in body:
        base = own.get(op) or (op.results[0].name_hint if op.results and op.results[0].name_hint
                               else op.name.split(".")[-1])
        n, i = base, 1
        while n in used:
            i += 1
            n = f"{base}_{i}"
        used.add(n)
        res[op] = n
    return res


def _through(name: str, gone: dict[str, str]) -> str:
    while name in gone:
        name = gone[name]
    return name


def _fix_reason(op: Operation):
    """The quantizer's `fix.reason` of `op`; for a layer left in float read back from an _int.xmodel's NHWC op (a
    float conv2d, ...), the one that op carried (the reader puts it on the transpose back to NHWC, located at the
    same XIR op)."""
    fr = op.attributes.get("fix.reason")
    if fr is None and op.name.startswith("graph.") and op.results and isinstance(op.location, NameLoc):
        fr = next((u.attributes["fix.reason"] for u in op.results[0].users
                   if u.name == "graph.transpose" and u.location == op.location and "fix.reason" in u.attributes), None)
    return fr


def _locate(info: OpInfo, op: Operation) -> None:
    loc = op.location
    flc = loc.file_line_col()
    if flc is not None:
        info.source = f"{flc.filename}:{flc.line}:{flc.col}"
    if isinstance(loc, NameLoc) and loc.name != info.name:
        info.module_path = loc.name


def _attrs(op: Operation) -> dict[str, Any]:
    res = {}
    for k in ("kernel", "stride", "pad", "dilation", "nonlinear", "type", "axis", "scale"):
        a = op.attributes.get(k)
        if a is not None:
            v = a.value
            try:
                res[k] = v if isinstance(v, (str, int, float, bool)) else [int(x) for x in v]
            except (TypeError, ValueError):
                res[k] = a.text()
    ft = getattr(op.results[0].type, "element_type", None) if op.results else None
    if hasattr(ft, "fix_pos"):
        res["fix_pos"] = int(ft.fix_pos)
    return res


def _reader_layer(op: Operation, names: dict[Operation, str], layer_of: dict[str, str]) -> str | None:
    for u in op.results[0].users:
        if u in names and names[u] in layer_of:
            return layer_of[names[u]]
        if u.name == "fix.reshape":
            r = _reader_layer(u, names, layer_of)
            if r:
                return r
    return None
