"""Run a whole `.xmodel` from float inputs to float outputs.

    from fixflow.runtime import GraphRunner
    g = GraphRunner.from_xmodel("net.xmodel", mode="fast")     # compiled xmodel or _int.xmodel
    g.inputs, g.outputs                                         # TensorSpec(name, shape, layout, fix_point)
    probs, = g.run([x])                                         # float32 in, float32 out (any batch size)
    g.run_tensors([x])                                          # also every tensor between subgraphs

A **compiled** xmodel (USER / DPU / CPU subgraphs, vai_c_xir's layout) runs subgraph by subgraph, in
data order: the USER subgraph's `data-fix` ops quantize the float inputs at their `fix_point` (with the
tensor's round mode; NCHW float inputs where the op says `layout = "NCHW"`), each DPU subgraph runs its
`mc_code` on the DPU interpreter (`mode` reference or fast) between its `upload` and `download` ops, and
each CPU subgraph runs its ops (fix2float, softmax, any op the `_int.xmodel` reader knows) on the
fix/graph reference semantics. Tensors cross subgraphs as int8 (fixed point) or float32.

An **_int.xmodel** (the quantizer's output, one leaf root) runs entirely on the CPU with the fix-level
integer executor (`fixflow.runtime.fix_executor.run_quantized`).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..backends.xmodel import XAttr, XGraph, XModelError, XOp, XTensor, read_xmodel_bytes
from ..backends.xmodel.compiled import CompiledModel, DpuSubgraph, from_xgraph
from ..backends.xmodel.fix_xmodel import ROUND_FROM_XIR, xgraph_to_module
from ..backends.xmodel.serial import read_file_bytes
from ..dialects.fix.numerics import dequantize, quantize
from ..ir.diagnostics import FixflowError
from ..ir.interpreter import find_function, run_function
from .dpu import MODES, DPUSubgraph
from .errors import RuntimeRunError

__all__ = ["TensorSpec", "GraphRunner", "GRAPH_MODES", "load_xgraph", "is_compiled"]

#: How DPU subgraphs run: the interpreter's modes on the machine code, or "fix": their ops on the
#: fix-level semantics (no machine code; what VART's "ref" cpu-runner does).
GRAPH_MODES = tuple(MODES) + ("fix",)

_CONST_TYPES = ("const-fix", "const")


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output as the user sees it: float32 values of `shape` (batch first, any batch
    size) in `layout` ("NHWC" or "NCHW" for feature maps, "" otherwise); `fix_point` is the fixed-point
    position it is quantized at (None: a float tensor)."""

    name: str
    shape: tuple[int, ...]
    layout: str
    fix_point: int | None
    dtype: str = "float32"


def load_xgraph(source: Any) -> XGraph:
    """An `XGraph` from a path, bytes or an `XGraph`."""
    if isinstance(source, XGraph):
        return source
    if isinstance(source, (bytes, bytearray)):
        return read_xmodel_bytes(bytes(source))
    if isinstance(source, (str, os.PathLike)):
        return read_xmodel_bytes(read_file_bytes(source), os.fspath(source))
    raise RuntimeRunError(f"cannot read an xmodel from {type(source).__name__} (expected a path, bytes or XGraph)")


def is_compiled(g: XGraph) -> bool:
    """Whether `g` is partitioned into USER/DPU/CPU subgraphs (a compiled xmodel)."""
    return g.root is not None and bool(g.root.children) and any(c.has_attr("device") for c in g.root.children)


def _round_mode(t: XTensor) -> str:
    return ROUND_FROM_XIR.get(str(t.attr("round_mode", "STD_ROUND")), "std_round")


def _fix_point(t: XTensor) -> int | None:
    if not t.data_type.startswith("XINT"):
        return None
    fp = t.attr("fix_point")
    return int(fp) if fp is not None else None


def _as_list(inputs: Mapping[str, Any] | Sequence[Any] | np.ndarray, specs: Sequence[TensorSpec]) -> list[np.ndarray]:
    """The inputs in `specs` order, float32, checked against the declared shapes."""
    if isinstance(inputs, np.ndarray):
        inputs = [inputs]
    if isinstance(inputs, Mapping):
        missing = [s.name for s in specs if s.name not in inputs]
        if missing:
            raise RuntimeRunError(f"missing input {missing[0]!r} (inputs: {', '.join(s.name for s in specs)})")
        arrays = [inputs[s.name] for s in specs]
    else:
        arrays = list(inputs)
        if len(arrays) != len(specs):
            raise RuntimeRunError(f"{len(arrays)} input(s) given, the model takes {len(specs)} "
                                  f"({', '.join(s.name for s in specs)})")
    out = []
    for s, a in zip(specs, arrays):
        a = np.asarray(a)
        if a.ndim != len(s.shape) or tuple(a.shape[1:]) != tuple(s.shape[1:]):
            want = ", ".join(["N"] + [str(d) for d in s.shape[1:]])
            raise RuntimeRunError(f"input {s.name!r} has shape {tuple(a.shape)}, expected ({want}) ({s.layout})")
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise RuntimeRunError(f"input {s.name!r} must be numeric, got {a.dtype}")
        out.append(np.asarray(a, dtype=np.float32))
    n = {a.shape[0] for a in out}
    if len(n) > 1:
        raise RuntimeRunError(f"all inputs must have the same batch size, got {sorted(n)}")
    return out


# ---------------------------------------------------------------------------- steps of a compiled graph


class _UserStep:
    """The USER subgraph: float inputs -> int8 at each data-fix op's fix_point."""

    def __init__(self, ops: list[XOp]):
        self.ops = ops
        self.specs = []
        for o in ops:
            if o.type != "data-fix":
                raise RuntimeRunError(f"op {o.name!r} ({o.type}) in a USER subgraph: only data-fix inputs are supported")
            t = o.output
            fp = _fix_point(t)
            if fp is None:
                raise RuntimeRunError(f"input {t.name!r} (op {o.name!r}) is {t.data_type} without a fix_point")
            shape = tuple(int(d) for d in t.shape)
            layout = str(o.attr("layout", "NHWC"))
            if layout == "NCHW" and len(shape) == 4:
                shape = (shape[0], shape[3], shape[1], shape[2])
            self.specs.append(TensorSpec(t.name, shape, layout, fp))

    def run(self, floats: list[np.ndarray], env: dict[str, np.ndarray]) -> None:
        for o, s, x in zip(self.ops, self.specs, floats):
            if s.layout == "NCHW" and x.ndim == 4:
                x = x.transpose(0, 2, 3, 1)
            if np.isnan(x).any():
                raise RuntimeRunError(f"input {s.name!r} holds NaN values, which have no fixed-point representation")
            env[o.name] = np.ascontiguousarray(quantize(x, int(o.output.bit_width), s.fix_point,
                                                        _round_mode(o.output)))


class _DpuStep:
    """A DPU subgraph on the interpreter: int8 tensors in (upload), int8 tensors out (download); in mode
    "fix" its ops instead, on the fix semantics (built on first use)."""

    def __init__(self, m: CompiledModel, sg: DpuSubgraph, op_of_tensor: Mapping[str, str],
                 ops_step: Callable[[], "_OpsStep"]):
        self.name = sg.name
        self.subgraph = sg
        self.dpu = DPUSubgraph.from_xmodel(m, sg.name)
        self.in_ops = [op_of_tensor[t.name] for t in self.dpu.inputs]
        self.out_ops = [op_of_tensor[t.name] for t in self.dpu.outputs]
        self._make_ops, self._ops, self._lock = ops_step, None, threading.Lock()

    @property
    def ops_step(self) -> "_OpsStep":
        """The subgraph's ops as a fix module (what mode "fix" runs)."""
        with self._lock:
            if self._ops is None:
                self._ops = self._make_ops()
            return self._ops

    def run(self, env: dict[str, np.ndarray], mode: str) -> None:
        if mode == "fix":
            self.ops_step.run(env, mode)
            return
        arrays = []
        for t, p in zip(self.dpu.inputs, self.in_ops):
            a = np.asarray(env[p])
            if a.dtype != np.int8:
                if a.size and (a.min() < -128 or a.max() > 127):
                    raise RuntimeRunError(f"DPU subgraph {self.name!r}: input {t.name!r} does not fit int8")
                a = a.astype(np.int8)
            arrays.append(a.reshape((a.shape[0],) + tuple(t.shape[1:])))
        outs = self.dpu.run(arrays, mode=mode)
        for t, p in zip(self.dpu.outputs, self.out_ops):
            env[p] = outs[t.name]


class _OpsStep:
    """A subgraph's ops as a small fix/graph module run on the reference semantics: a CPU subgraph, or
    (mode "fix") the ops of a DPU subgraph instead of its machine code.

    Fixed-point tensors coming from other subgraphs enter through `data-fix` ops at their own fix_point
    and are fed as their exact float values (so re-quantizing gives back the same integers). In a DPU
    subgraph an `upload` op becomes such an input, a `download` op passes its input on, and a `const-fix`
    op without data (compiled files keep weights in REG_0) reads its bytes at its `ddr_addr`."""

    def __init__(self, g: XGraph, name: str, op_names: list[str], consumers: Mapping[str, list[str]],
                 graph_outputs: set[str], params: Mapping[int, bytes] | None = None):
        self.name = name
        kind = "DPU" if params is not None else "CPU"
        mine = set(op_names)
        ops = [o for o in g.ops if o.name in mine]
        by_name = g.op_map()
        self.in_ops: list[str] = []       # producers outside the subgraph, as the environment names them
        self.in_fps: list[int] = []
        sub: list[XOp] = []
        placed: set[str] = set()
        downloads: dict[str, str] = {}    # download op -> the op it reads

        def data_fix(name_: str, t: XTensor, producer: str, reader: str) -> None:
            fp = _fix_point(t)
            if fp is None:
                raise RuntimeRunError(f"{kind} subgraph {name!r}: op {reader!r} reads float tensor {t.name!r} from "
                                      f"another subgraph; only fixed-point tensors cross into a {kind} subgraph here")
            self.in_ops.append(producer)
            self.in_fps.append(fp)
            placed.add(name_)
            sub.append(XOp(name_, "data-fix", {"shape": list(t.shape), "data_type": t.data_type},
                           output=XTensor(t.name, list(t.shape), t.data_type,
                                          {"fix_point": fp, "bit_width": int(t.bit_width), "if_signed": True,
                                           "round_mode": "DPU_ROUND"})))

        body: list[XOp] = []
        for o in ops:
            if o.type == "upload":
                data_fix(o.name, o.output, o.input_ops()[0], o.name)
                continue
            if o.type == "download":
                downloads[o.name] = o.input_ops()[0]
                continue
            for p in o.input_ops():
                if p in mine or p in placed:
                    continue
                src = by_name[p]
                if src.type in _CONST_TYPES:
                    sub.append(self._const(src, params))
                    placed.add(p)
                else:
                    data_fix(p, src.output, p, o.name)
            body.append(self._const(o, params) if o.type == "const-fix" else
                        XOp(o.name, o.type, dict(o.attrs), dict(o.inputs), output=o.output))
        self.out_ops = [o.name for o in ops if o.type not in _CONST_TYPES and o.type != "upload"
                        and (o.name in graph_outputs or any(c not in mine for c in consumers.get(o.name, ())))]
        results = [downloads.get(n, n) for n in self.out_ops]
        sg = XGraph(name, sub + body, {"__fixflow_function": "main", "__fixflow_outputs": list(dict.fromkeys(results))})
        try:
            module = xgraph_to_module(sg)
        except XModelError as e:
            raise RuntimeRunError(f"{kind} subgraph {name!r}: {e.message}") from None
        self._result_index = [list(dict.fromkeys(results)).index(r) for r in results]
        self.module = module
        self.func = find_function(module, None)

    @staticmethod
    def _const(o: XOp, params: Mapping[int, bytes] | None) -> XOp:
        t = o.output
        if o.type != "const-fix" or o.attr("data") or params is None or t.attr("reg_id") not in params:
            return o
        n = int(np.prod(t.shape)) * ((int(t.bit_width) + 7) // 8)
        addr = int(t.attr("ddr_addr", 0))
        data = params[t.attr("reg_id")][addr:addr + n]
        if len(data) != n:
            raise RuntimeRunError(f"const {o.name!r}: bytes {addr}..{addr + n} lie outside REG_{t.attr('reg_id')}")
        attrs = dict(o.attrs)
        attrs["data"] = XAttr("bytes", bytes(data))
        return XOp(o.name, o.type, attrs, dict(o.inputs), output=t)

    def run(self, env: dict[str, np.ndarray], mode: str) -> None:
        del mode
        args = [dequantize(env[p], fp) for p, fp in zip(self.in_ops, self.in_fps)]
        try:
            outs = run_function(self.func, args)
        except FixflowError as e:
            raise RuntimeRunError(f"subgraph {self.name!r}: {e.message}") from None
        for p, k in zip(self.out_ops, self._result_index):
            env[p] = np.asarray(outs[k])


def dpu_ops_step(m: CompiledModel, name: str) -> tuple[_OpsStep, dict[str, str]]:
    """DPU subgraph `name` of `m` as an ops step (mode "fix"), and the map tensor name -> op name of `m`."""
    g = m.to_xgraph()
    sg = m.subgraph(name)
    names = [n for c in sg.children for n in c.op_names]
    params = {r.reg_id: r.parameter for r in sg.regions if r.parameter is not None}
    consumers = g.consumers()
    outs = {o.name for o in m.ops if not consumers.get(o.name)}
    return _OpsStep(g, name, names, consumers, outs, params), {o.output.name: o.name for o in m.ops}


# ---------------------------------------------------------------------------- the runner


class GraphRunner:
    """A whole compiled xmodel or `_int.xmodel`: float inputs in, float outputs out (see module docstring).

    Thread-safe: `run` keeps no state between calls (the DPU plans are built at construction)."""

    def __init__(self, graph: XGraph, mode: str = "fast", name: str | None = None):
        if mode not in GRAPH_MODES:
            raise RuntimeRunError(f"unknown mode {mode!r} (expected {', '.join(GRAPH_MODES)})")
        self.mode = mode
        self.name = name or graph.name
        self.graph = graph
        self.compiled = is_compiled(graph)
        if self.compiled:
            self._build_compiled(graph)
        else:
            self._build_int(graph)

    @classmethod
    def from_xmodel(cls, source: Any, mode: str = "fast") -> "GraphRunner":
        """From a path, bytes or an `XGraph` (compiled xmodel or `_int.xmodel`)."""
        name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
        g = load_xgraph(source)
        try:
            return cls(g, mode, name)
        except XModelError as e:
            raise RuntimeRunError(f"{name or g.name}: {e.message}") from None

    # -- construction ------------------------------------------------------------------------------
    def _build_int(self, g: XGraph) -> None:
        self.module = xgraph_to_module(g)
        func = find_function(self.module, None)
        block = func.regions[0].blocks[0]
        self._func = func
        data = {op.operands[0]: op for op in block.ops if op.name == "fix.data"}
        ins = []
        for a in block.args:
            d = data.get(a)
            fp = d.results[0].type.element_type.fix_pos if d is not None else None
            layout = d.layout if d is not None else "NHWC"
            ins.append(TensorSpec(a.name_hint or f"input{len(ins)}", tuple(a.type.shape), layout, fp))
        self.inputs = ins
        ret = block.terminator
        outs = []
        for v in ret.operands:
            et = v.type.element_type
            fp = getattr(et, "fix_pos", None)
            shape = tuple(v.type.shape)
            layout = str(getattr(v.op, "layout", "NHWC")) if len(shape) == 4 else ""
            outs.append(TensorSpec(v.name_hint or f"output{len(outs)}", shape, layout, fp))
        self.outputs = outs
        self.steps: list[Any] = []

    def _build_compiled(self, g: XGraph) -> None:
        try:
            m = from_xgraph(g)
        except XModelError as e:
            raise RuntimeRunError(f"invalid compiled xmodel: {e.message}") from None
        self.model = m
        op_of_tensor = {o.output.name: o.name for o in m.ops}
        self._tensor_of = {o.name: o.output.name for o in m.ops}
        consumers = g.consumers()
        declared = g.attr("__fixflow_outputs")
        if declared:
            outs = [op_of_tensor.get(n, n) for n in declared]
        else:
            outs = [o.name for o in m.ops if not consumers.get(o.name) and o.type not in _CONST_TYPES]
        self._out_ops = outs
        steps: list[Any] = []
        user_ops: list[XOp] = []
        for s in m.subgraphs:
            if isinstance(s, DpuSubgraph):
                names = [n for c in s.children for n in c.op_names]
                params = {r.reg_id: r.parameter for r in s.regions if r.parameter is not None}
                steps.append(_DpuStep(m, s, op_of_tensor, lambda s=s, names=names, params=params:
                                      _OpsStep(g, s.name, names, consumers, set(outs), params)))
            elif s.device == "USER":
                user_ops += [m.op(n) for n in s.op_names]
            else:
                steps.append(_OpsStep(g, s.name, s.op_names, consumers, set(outs)))
        self._user = _UserStep(user_ops)
        self.inputs = list(self._user.specs)
        # order the steps by data: each runs once everything it reads exists
        have = {o.name for o in user_ops} | {o.name for o in m.ops if o.type in _CONST_TYPES}
        ordered, pending = [], steps
        while pending:
            ready = [s for s in pending if all(p in have for p in s.in_ops)]
            if not ready:
                s = pending[0]
                miss = next(p for p in s.in_ops if p not in have)
                raise RuntimeRunError(f"subgraph {s.name!r} reads {miss!r}, which no subgraph produces")
            for s in ready:
                have.update(s.out_ops)
            ordered += ready
            pending = [s for s in pending if s not in ready]
        self.steps = ordered
        missing = [o for o in outs if o not in have]
        if missing:
            raise RuntimeRunError(f"graph output {missing[0]!r} is produced by no subgraph")
        specs = []
        for n in outs:
            o = m.op(n)
            shape = tuple(int(d) for d in o.output.shape)
            layout = str(o.attr("layout", "NHWC")) if len(shape) == 4 else ""
            specs.append(TensorSpec(o.output.name, shape, layout, _fix_point(o.output)))
        self.outputs = specs
        if self.mode == "fast":
            for s in self.steps:
                if isinstance(s, _DpuStep):
                    s.dpu.plan()

    @property
    def dpu_steps(self) -> list[Any]:
        """The DPU subgraphs in run order (each with `.dpu`, a `fixflow.runtime.dpu.DPUSubgraph`)."""
        return [s for s in self.steps if isinstance(s, _DpuStep)]

    # -- running -----------------------------------------------------------------------------------
    def run_tensors(self, inputs: Mapping[str, Any] | Sequence[Any] | np.ndarray,
                    mode: str | None = None) -> dict[str, np.ndarray]:
        """Run a batch; returns every tensor between subgraphs by tensor name (int8 for fixed-point
        tensors, float32 otherwise) plus the float outputs under their names. For an `_int.xmodel`
        only the outputs."""
        mode = mode or self.mode
        if mode not in GRAPH_MODES:
            raise RuntimeRunError(f"unknown mode {mode!r} (expected {', '.join(GRAPH_MODES)})")
        floats = _as_list(inputs, self.inputs)
        if not self.compiled:
            from .fix_executor import run_quantized
            try:
                ys = run_quantized(self.module, floats)
            except FixflowError as e:
                raise RuntimeRunError(f"{self.name}: {e.message}") from None
            return {s.name: np.asarray(y, dtype=np.float32) for s, y in zip(self.outputs, ys)}
        env: dict[str, np.ndarray] = {}
        self._user.run(floats, env)
        for s in self.steps:
            s.run(env, mode)
        res = {self._tensor_of[k]: v for k, v in env.items()}
        for spec, n in zip(self.outputs, self._out_ops):
            y = env[n]
            res[spec.name] = dequantize(y, spec.fix_point) if spec.fix_point is not None else \
                np.asarray(y, dtype=np.float32)
        return res

    def run(self, inputs: Mapping[str, Any] | Sequence[Any] | np.ndarray, mode: str | None = None) -> list[np.ndarray]:
        """Run a batch of float inputs; returns the float32 outputs in `self.outputs` order."""
        res = self.run_tensors(inputs, mode)
        return [res[s.name] for s in self.outputs]

    def __repr__(self) -> str:
        kind = "compiled" if self.compiled else "_int"
        return (f"GraphRunner({self.name!r}, {kind}, mode={self.mode!r}, inputs={[s.name for s in self.inputs]}, "
                f"outputs={[s.name for s in self.outputs]})")
