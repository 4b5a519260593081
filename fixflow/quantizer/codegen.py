"""Generate `<Model>.py`: a readable torch module re-creating the (fake-)quantized forward of a graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from .. import __version__
from ..dialects.graph import ConstantOp
from ..ir.attributes import DenseResourceElementsAttr
from ..ir.core import Operation, Value
from ..ir.opdef import Terminator
from ..ir.interpreter import find_function
from ..passes.fix.annotations import CONV_LIKE, quant_points

__all__ = ["render_quant_module", "write_quant_module"]

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("fixflow.quantizer", "templates"), trim_blocks=True,
                          lstrip_blocks=True, keep_trailing_newline=True)


def _pads_sym(p):
    t, b, l, r = p
    return (t, l) if t == b and l == r else None


def _torch_expr(op: Operation, a: list[str]) -> str | None:
    """A torch expression for the op, or None (then the numpy kernel is used)."""
    n = op.name
    if n == "graph.conv2d":
        sym = _pads_sym(op.padding)
        x = a[0] if sym else f"F.pad({a[0]}, {(op.padding[2], op.padding[3], op.padding[0], op.padding[1])})"
        return (f"F.conv2d({x}, {a[1]}, {a[2] if len(a) > 2 else None}, stride={tuple(op.stride)}, "
                f"padding={sym or (0, 0)}, dilation={tuple(op.dilation)}, groups={op.groups})")
    if n == "graph.linear":
        return f"F.linear({a[0]}, {a[1]}, {a[2] if len(a) > 2 else None})"
    simple = {"graph.relu": "F.relu({})", "graph.relu6": "F.hardtanh({}, 0.0, 6.0)", "graph.sigmoid": "torch.sigmoid({})",
              "graph.tanh": "torch.tanh({})", "graph.silu": "F.silu({})", "graph.hardsigmoid": "F.hardsigmoid({})",
              "graph.hardswish": "F.hardswish({})", "graph.identity": "{}", "graph.dropout": "{}"}
    if n in simple:
        return simple[n].format(a[0])
    if n == "graph.leaky_relu":
        return f"F.leaky_relu({a[0]}, {op.alpha!r})"
    if n in ("graph.add", "graph.sub", "graph.mul"):
        return f"{a[0]} {dict(add='+', sub='-', mul='*')[n.split('.')[1]]} {a[1]}"
    if n == "graph.concat":
        return f"torch.cat([{', '.join(a)}], {op.axis})"
    if n == "graph.flatten":
        return f"torch.flatten({a[0]}, {op.start_dim}, {op.end_dim})"
    if n == "graph.reshape":
        return f"_reshape({a[0]}, {list(op.shape)})"
    if n == "graph.transpose":
        return f"{a[0]}.permute({', '.join(map(str, op.perm))})"
    if n == "graph.max_pool2d" and _pads_sym(op.padding) and tuple(op.dilation) == (1, 1):
        return (f"F.max_pool2d({a[0]}, {tuple(op.kernel)}, {tuple(op.stride or op.kernel)}, {_pads_sym(op.padding)}, "
                f"ceil_mode={op.ceil_mode})")
    if n == "graph.adaptive_avg_pool2d":
        return f"F.adaptive_avg_pool2d({a[0]}, {tuple(op.output_size)})"
    if n == "graph.softmax":
        return f"torch.softmax({a[0]}, {op.axis})"
    return None


def render_quant_module(module: Operation, name: str) -> tuple[str, dict[str, np.ndarray]]:
    """The module source and its parameter arrays (keys = buffer names)."""
    func = find_function(module)
    block = func.regions[0].blocks[0]
    names: dict[Value, str] = {}
    args = []
    for i, a in enumerate(block.args):
        v = f"x{i}"
        names[a] = v
        args.append(v)
    lines = [f"{v} = self._fq({v}, 'input', '{name}::{a.name_hint or f'input_{i}'}', 'std_round')"
             for i, (a, v) in enumerate(zip(block.args, args))]
    params, arrays, pinfo = {}, {}, []
    from .api import call_site_names, node_name, param_name
    sites = call_site_names(func)
    roles: dict[Value, str] = {}
    for op in block.ops:
        if isinstance(op, CONV_LIKE):
            for role in ("weight", "bias"):
                v = getattr(op, role)
                if v is not None:
                    roles[v] = role
    points = set(quant_points(func))
    for k, op in enumerate(block.ops):
        if Terminator in op.TRAITS:
            returns = [names[v] for v in op.operands]
            break
        if isinstance(op, ConstantOp):
            attr = f"p{len(arrays)}"
            val = op.attributes["value"]
            key = val.key if isinstance(val, DenseResourceElementsAttr) else attr
            arrays[attr] = np.asarray(val.array, np.float32)
            pinfo.append({"attr": attr, "key": key})
            expr = f"self.{attr}"
            if op.result in roles:
                expr = f"self._fq(self.{attr}, 'param', '{name}::{param_name(key)}', 'std_round')"
            names[op.result] = f"c{k}"
            lines.append(f"c{k} = {expr}")
            continue
        a = [names[v] for v in op.operands]
        expr = _torch_expr(op, a)
        if expr is None:
            kw = op.kernel_args() if hasattr(op, "kernel_args") else {}
            expr = f"_graph_op({getattr(op, 'KERNEL', op.name)!r}, {kw!r}, {', '.join(a)})"
        out = f"v{k}"
        names[op.results[0]] = out
        lines.append(f"{out} = {expr}  # {op.name} {node_name(op)}")
        if op.results[0] in points:
            lines.append(f"{out} = self._fq({out}, 'output', '{name}::{sites[op]}', 'half_up')")
    cls = name if name.isidentifier() else "QuantModule"
    src = _ENV.get_template("quant_module.py.j2").render(
        version=__version__, name=name, cls=cls, cle=True, params_file=f"{name}_params.npz", params=pinfo,
        args=args, lines=lines, returns=returns)
    return src, arrays


def write_quant_module(module: Operation, name: str, output_dir: Path) -> Path:
    """Write `<name>.py` and `<name>_params.npz` into output_dir; returns the source path."""
    src, arrays = render_quant_module(module, name)
    np.savez(Path(output_dir) / f"{name}_params.npz", **arrays)
    path = Path(output_dir) / f"{name}.py"
    path.write_text(src)
    return path
