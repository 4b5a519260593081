"""Generate `<Model>.py`: a plain PyTorch module computing what the Quantizer's test mode computes.

The module is written from the lowered `fix` module (what test mode runs), one line per fix op, with
the DPU's arithmetic spelled out in torch (float64, where every fixed-point value and every
accumulation is exact): average pooling multiplies the window sum by the DPU factor (`21/1024` for
7x7, ...), a fused LeakyReLU uses 26/256, hard sigmoid 2731/2^14, element-wise adds floor each input's
pre-scale, concat requantizes its inputs. Fix positions are literals (they come from quant_info.json
after legalization). Its outputs equal `Quantizer(..., mode="test").quant_model(x)` bit for bit.

Graph ops that stay on the CPU run in torch when the torch op is the same float32 arithmetic as
fixflow's reference kernel (relu, add, reshape, ...); the others (sigmoid, softmax, ...) call that
reference kernel (`_graph_op`), which keeps the module exact but not traceable (`has_numpy_ops`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from .. import __version__
from ..dialects.fix import ops as Q
from ..dialects.fix.numerics import avgpool_multiplier
from ..dialects.graph import ConstantOp
from ..ir.attributes import DenseResourceElementsAttr
from ..ir.core import BlockArgument, Operation, Value
from ..ir.interpreter import find_function
from ..ir.location import NameLoc
from ..ir.opdef import Terminator
from .errors import QuantizerError

__all__ = ["GeneratedSource", "render_quant_module", "write_quant_module"]

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("fixflow.quantizer", "templates"), trim_blocks=True,
                          lstrip_blocks=True, keep_trailing_newline=True)

#: CPU graph ops whose torch form is the same float32 arithmetic as the numpy reference kernel
_TORCH_CPU = {
    "graph.relu": "torch.relu({0})",
    "graph.relu6": "torch.clamp({0}, 0.0, 6.0)",
    "graph.identity": "{0}",
    "graph.dropout": "{0}",
    "graph.add": "{0} + {1}",
    "graph.sub": "{0} - {1}",
    "graph.mul": "{0} * {1}",
}


class GeneratedSource:
    """The rendered module: `source` text, `arrays` (the params file) and the CPU ops run by numpy."""

    def __init__(self, source: str, arrays: dict[str, np.ndarray], numpy_ops: list[str]):
        self.source = source
        self.arrays = arrays
        self.numpy_ops = numpy_ops


def _where(op: Operation) -> str:
    loc = op.location
    if isinstance(loc, NameLoc):
        return loc.name
    hint = op.results[0].name_hint if op.results else None
    return hint or ""


def _fmt(v: Value) -> tuple[int, int]:
    ft = Q.fixed_type(v.type)
    return ft.bit_width, ft.fix_pos


def _t(xs) -> tuple[int, ...]:
    return tuple(int(x) for x in xs)


class _Writer:
    def __init__(self, func: Operation):
        self.func = func
        self.names: dict[Value, str] = {}
        self.lines: list[str] = []
        self.arrays: dict[str, np.ndarray] = {}
        self.buffers: list[dict[str, Any]] = []
        self.numpy_ops: list[str] = []

    def buffer(self, arr: np.ndarray, key: str, fix_pos: int | None) -> str:
        attr = f"p{len(self.buffers)}"
        self.arrays[attr] = np.asarray(arr)
        self.buffers.append({"attr": attr, "key": key, "fp": fix_pos})
        return f"self.{attr}"

    def run(self) -> tuple[list[str], list[str], list[str]]:
        block = self.func.regions[0].blocks[0]
        args = []
        for i, a in enumerate(block.args):
            self.names[a] = f"x{i}"
            args.append(f"x{i}")
        returns: list[str] = []
        for k, op in enumerate(block.ops):
            if Terminator in op.TRAITS:
                returns = [self.names[v] for v in op.operands]
                break
            if isinstance(op, (Q.ConstOp, ConstantOp)):
                self.const(op)
                continue
            a = [self.names[v] for v in op.operands]
            expr = self.expr(op, a)
            out = f"v{k}"
            self.names[op.results[0]] = out
            where = _where(op)
            self.lines.append(f"{out} = {expr}  # {op.name}{'  ' + where if where else ''}")
        return args, self.lines, returns

    def const(self, op: Operation) -> None:
        val = op.attributes["value"]
        key = val.key if isinstance(val, DenseResourceElementsAttr) else (op.results[0].name_hint or "const")
        if isinstance(op, Q.ConstOp):
            ref = self.buffer(np.asarray(op.ints), key, op.fp_out)
        else:
            ref = self.buffer(np.asarray(val.array, np.float32), key, None)
        self.names[op.results[0]] = ref

    # ---- one expression per op
    def expr(self, op: Operation, a: list[str]) -> str:
        n = op.name
        if isinstance(op, Q.FixOp):
            return self.fix_expr(op, a)
        if n in _TORCH_CPU:
            return _TORCH_CPU[n].format(*a)
        if n == "graph.reshape":
            return f"{a[0]}.reshape({[int(d) for d in op.shape]})"
        if n == "graph.flatten":
            return f"torch.flatten({a[0]}, {op.start_dim}, {op.end_dim})"
        if n == "graph.concat":
            return f"torch.cat([{', '.join(a)}], {op.axis})"
        kw = op.kernel_args() if hasattr(op, "kernel_args") else {}
        kernel = getattr(op, "KERNEL", None)
        if not kernel:
            raise QuantizerError(f"the generated module cannot express '{n}' ({_where(op)})", op.location)
        self.numpy_ops.append(f"{n} ({_where(op)})" if _where(op) else n)
        return f"_graph_op({kernel!r}, {kw!r}, {', '.join(a)})"

    def fix_expr(self, op: Operation, a: list[str]) -> str:
        n = op.name
        if n in ("fix.data", "fix.fix"):
            bw, fp = _fmt(op.results[0])
            if n == "fix.fix" and op.requantizes:
                return f"_fq({a[0]}, {bw}, {fp}, 'half_up')"
            nchw = op.layout == "NCHW" and op.input.type.rank == 4
            return f"_fq({'_nhwc(' + a[0] + ')' if nchw else a[0]}, {bw}, {fp}, {op.round_mode!r})"
        if n == "fix.float":
            nchw = op.layout == "NCHW" and op.input.type.rank == 4
            return f"_nchw({a[0]}).float()" if nchw else f"{a[0]}.float()"
        if n in ("fix.conv2d", "fix.depthwise_conv2d", "fix.transposed_conv2d", "fix.dense"):
            f = op.fps()
            b = a[2] if op.bias is not None else "None"
            q = f"{f['fp_in']}, {f['fp_out']}, {op.nonlinear!r}, {f['bit_width']}, {f['fp_w']}, {f['fp_b'] or 0}"
            if n == "fix.dense":
                return f"_dense({a[0]}, {a[1]}, {b}, {q})"
            geo = f"{_t(op.stride)}, {_t(op.pad)}, {_t(op.dilation)}"
            if n == "fix.conv2d":
                return f"_conv2d({a[0]}, {a[1]}, {b}, {geo}, {q})"
            if n == "fix.depthwise_conv2d":
                return f"_depthwise({a[0]}, {a[1]}, {b}, {geo}, {q})"
            return f"_tconv2d({a[0]}, {a[1]}, {b}, {geo}, {_t(op.output_padding)}, {q})"
        if n == "fix.pool":
            bw, fp_out = _fmt(op.results[0])
            fp_in = _fmt(op.input)[1]
            geo = f"{_t(op.kernel)}, {_t(op.stride)}, {_t(op.pad)}"
            if op.type == "MAX":
                return f"_maxpool({a[0]}, {geo}, {fp_in}, {fp_out}, {bw})"
            mult, shift = avgpool_multiplier(*_t(op.kernel))
            return f"_avgpool({a[0]}, {geo}, {mult}, {shift}, {fp_in}, {fp_out}, {bw})  # x {mult}/2^{shift}"
        if n == "fix.eltwise":
            bw, fp_out = _fmt(op.results[0])
            fps = [_fmt(v)[1] for v in op.operands]
            # the ELEW pre-scale floors x * 2^e: e = min(fps) + 2 for ADD (shift_read = fp - min), fp + 2 for MUL
            exps = [min(fps) + 2] * len(fps) if op.type == "ADD" else [f + 2 for f in fps]
            return f"_eltwise([{', '.join(a)}], {fps}, {exps}, {fp_out}, {op.type!r}, {op.nonlinear!r}, {bw})"
        if n == "fix.concat":
            bw, fp_out = _fmt(op.results[0])
            fps = [_fmt(v)[1] for v in op.operands]
            return f"_concat([{', '.join(a)}], {fps}, {fp_out}, {op._axis()}, {bw})"
        bw, fp = _fmt(op.results[0])
        if n == "fix.reshape":
            return f"_fq(_reshape({a[0]}, {list(op.shape)}), {bw}, {fp}, 'half_up')"
        if n == "fix.transpose":
            return f"_fq({a[0]}.permute({', '.join(str(int(p)) for p in op.perm)}), {bw}, {fp}, 'half_up')"
        if n == "fix.strided_slice":
            idx = ", ".join(":" if (b, e, s) == (0, d, 1) else f"{int(b)}:{int(e)}:{int(s)}"
                            for b, e, s, d in zip(op.begin, op.end, op.strides, op.input.type.shape))
            return f"_fq({a[0]}[{idx}], {bw}, {fp}, 'half_up')"
        if n == "fix.upsample":
            return f"_upsample({a[0]}, {_t(op.scale)}, {_fmt(op.input)[1]}, {fp}, {bw})"
        if n == "fix.pad":
            if op.mode == "symmetric":
                raise QuantizerError(f"the generated module cannot express symmetric padding ({_where(op)})",
                                     op.location)
            return f"_pad({a[0]}, {_t(op.pad)}, {op.mode!r}, {int(op.value)}, {fp}, {bw})"
        if n == "fix.hard_sigmoid":
            return f"_hsigmoid({a[0]}, {_fmt(op.input)[1]}, {fp}, {bw})"
        if n == "fix.hard_swish":
            return f"_hswish({a[0]}, {_fmt(op.input)[1]}, {fp}, {bw})"
        raise QuantizerError(f"the generated module cannot express '{n}' ({_where(op)})", op.location)


def render_quant_module(fix_module: Operation, name: str, graph_md5: str = "") -> GeneratedSource:
    """The `<Model>.py` source of a lowered (fix-dialect) module and its parameter arrays."""
    func = find_function(fix_module)
    w = _Writer(func)
    args, lines, returns = w.run()
    for a in func.regions[0].blocks[0].args:
        if not isinstance(a, BlockArgument):  # pragma: no cover - block args are BlockArguments
            raise QuantizerError("unexpected function argument")
    cls = name if name.isidentifier() else "QuantModule"
    src = _ENV.get_template("quant_module.py.j2").render(
        version=__version__, name=name, cls=cls, params_file=f"{name}_params.npz", params=w.buffers,
        args=args, lines=lines, returns=returns, graph_md5=graph_md5, numpy_ops=w.numpy_ops)
    return GeneratedSource(src, w.arrays, w.numpy_ops)


def write_quant_module(fix_module: Operation, name: str, output_dir: Path, graph_md5: str = "") -> Path:
    """Write `<name>.py` and `<name>_params.npz` into output_dir; returns the source path."""
    gen = render_quant_module(fix_module, name, graph_md5)
    np.savez(Path(output_dir) / f"{name}_params.npz", **gen.arrays)
    path = Path(output_dir) / f"{name}.py"
    path.write_text(gen.source)
    return path
