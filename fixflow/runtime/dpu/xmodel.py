"""Run the DPU subgraph of a compiled `.xmodel` on the interpreter: int8 inputs in, int8 outputs out.

    dpu = DPUSubgraph.from_xmodel("net.xmodel")      # or an XGraph (+ subgraph name)
    outs = dpu.run({"quant_input_1": x_int8}, mode="fast")   # {"quant_dense_1_softmax_fix": (N, 10)}

Inputs are found at the `upload` ops (their output tensor's `reg_id`/`ddr_addr`/`stride`), outputs at
the `download` ops (the DPU-side tensor they read); names are the tensors the rest of the graph knows:
the upload's input tensor and the download's output tensor. A batch of N runs as N images, each in
its own copy of the non-constant regions (spec dpu-semantics.md section 2, item 15).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import DPUExecError
from .machine import Machine


@dataclass(frozen=True)
class DDRTensor:
    """A tensor the DPU reads or writes in DDR: its name, shape (NHWC), region, address and strides."""

    name: str
    shape: tuple[int, ...]
    reg_id: int
    ddr_addr: int
    strides: tuple[int, ...]
    fix_point: int | None

    def offsets(self) -> np.ndarray:
        """Byte offsets (in the region) of one batch item's elements, in row-major order."""
        off = np.full((), self.ddr_addr, dtype=np.int64)
        for n, s in zip(self.shape[1:], self.strides[1:]):
            off = off[..., None] + np.arange(n, dtype=np.int64) * s
        return off.reshape(-1)


def _attr(obj, name, default=None):
    v = obj.attr(name, default) if hasattr(obj, "attr") else default
    return getattr(v, "value", v)


def _reg(key: str) -> int:
    if not key.startswith("REG_") or not key[4:].isdigit():
        raise DPUExecError(f"register name {key!r} is not REG_<n>")
    return int(key[4:])


class DPUSubgraph:
    """The pieces of a compiled DPU subgraph the interpreter needs."""

    def __init__(self, name: str, target: Any, mc_code: bytes, reg_sizes: Mapping[int, int],
                 consts: Mapping[int, bytes], inputs: Sequence[DDRTensor], outputs: Sequence[DDRTensor]):
        self.name = name
        self.machine = Machine.from_target(target)
        self.mc_code = bytes(mc_code)
        self.reg_sizes = dict(reg_sizes)
        self.consts = {r: np.frombuffer(bytes(v), dtype=np.int8) for r, v in consts.items()}
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self._program: list | None = None

    @classmethod
    def from_xmodel(cls, graph: Any, subgraph: str | None = None) -> "DPUSubgraph":
        """From a path or an `XGraph`; `subgraph` names the DPU subgraph when there are several."""
        from ...backends.xmodel import read_xmodel
        if isinstance(graph, (str, os.PathLike)):
            graph = read_xmodel(graph)
        dpus = [s for s in graph.root_or_default().walk() if s.device == "DPU"]
        if subgraph is not None:
            dpus = [s for s in dpus if s.name == subgraph]
        if not dpus:
            raise DPUExecError(f"{graph.name}: no DPU subgraph" + (f" named {subgraph!r}" if subgraph else ""))
        if len(dpus) > 1:
            raise DPUExecError(f"{graph.name}: {len(dpus)} DPU subgraphs; name one of "
                               f"{', '.join(s.name for s in dpus)}")
        sg = dpus[0]
        mc = _attr(sg, "mc_code")
        if not mc:
            raise DPUExecError(f"DPU subgraph {sg.name} has no mc_code")
        fp = _attr(sg, "dpu_fingerprint")
        target = fp if fp is not None else _attr(sg, "dpu_name")
        sizes = {_reg(k): int(v) for k, v in (_attr(sg, "reg_id_to_size") or {}).items()}
        consts = {_reg(k): bytes(v) for k, v in (_attr(sg, "reg_id_to_parameter_value") or {}).items()}
        ops = graph.op_map()
        names = set(sg.all_op_names())

        def ddr_tensor(op, name: str) -> DDRTensor:
            t = op.output
            a = {k: getattr(v, "value", v) for k, v in t.attrs.items()}
            for need in ("reg_id", "ddr_addr"):
                if need not in a:
                    raise DPUExecError(f"tensor {t.name} of DPU subgraph {sg.name} has no {need}")
            shape = tuple(int(d) for d in t.shape)
            strides = a.get("stride")
            if strides is None:
                strides = [int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape))]
            return DDRTensor(name, shape, int(a["reg_id"]), int(a["ddr_addr"]), tuple(int(s) for s in strides),
                             a.get("fix_point"))

        inputs, outputs = [], []
        for op in graph.ops:
            if op.name not in names:
                continue
            if op.type == "upload":
                src = ops[op.inputs["input"][0]]
                inputs.append(ddr_tensor(op, src.output.name))
            elif op.type == "download":
                src = ops[op.inputs["input"][0]]
                outputs.append(ddr_tensor(src, op.output.name))
        return cls(sg.name, target, mc, sizes, consts, inputs, outputs)

    @property
    def program(self) -> list:
        if self._program is None:
            from .interpreter import as_program
            self._program = as_program(self.mc_code)
        return self._program

    def _inputs(self, inputs: Mapping[str, Any] | Sequence[Any]) -> list[np.ndarray]:
        if isinstance(inputs, Mapping):
            missing = [t.name for t in self.inputs if t.name not in inputs]
            if missing:
                raise DPUExecError(f"missing input {missing[0]!r} (inputs: {', '.join(t.name for t in self.inputs)})")
            arrays = [inputs[t.name] for t in self.inputs]
        else:
            arrays = list(inputs)
            if len(arrays) != len(self.inputs):
                raise DPUExecError(f"{len(arrays)} inputs given, the DPU subgraph has {len(self.inputs)}")
        out = []
        for t, a in zip(self.inputs, arrays):
            a = np.asarray(a)
            if a.dtype != np.int8:
                raise DPUExecError(f"input {t.name} must be int8, got {a.dtype}")
            if a.shape[1:] != t.shape[1:]:
                raise DPUExecError(f"input {t.name} has shape {a.shape}, expected (N, {', '.join(map(str, t.shape[1:]))})")
            out.append(a)
        return out

    def run(self, inputs: Mapping[str, Any] | Sequence[Any], mode: str = "fast") -> dict[str, np.ndarray]:
        """Execute a batch; returns ``{output name: int8 array (N, *shape[1:])}``."""
        arrays = self._inputs(inputs)
        n = arrays[0].shape[0] if arrays else 1
        if any(a.shape[0] != n for a in arrays):
            raise DPUExecError("all inputs must have the same batch size")
        dyn = {r: np.zeros((n, s), dtype=np.int8) for r, s in self.reg_sizes.items() if r not in self.consts}
        for t, a in zip(self.inputs, arrays):
            if t.reg_id not in dyn:
                raise DPUExecError(f"input {t.name} lives in REG_{t.reg_id}, which is not a data region")
            off = t.offsets()
            if off.size and off.max() >= self.reg_sizes[t.reg_id]:
                raise DPUExecError(f"input {t.name} ends beyond REG_{t.reg_id} ({self.reg_sizes[t.reg_id]} bytes)")
            dyn[t.reg_id][:, off] = a.reshape(n, -1)
        consts = {r: c for r, c in self.consts.items()}
        for r, c in consts.items():
            if r in self.reg_sizes and c.size != self.reg_sizes[r]:
                pad = np.zeros(self.reg_sizes[r], dtype=np.int8)
                pad[:min(c.size, pad.size)] = c[:pad.size]
                consts[r] = pad
        if mode == "fast":
            from .fast import compile_plan
            plan = compile_plan(self.machine, self.program, {**{r: a.shape[1] for r, a in dyn.items()},
                                                             **{r: c.size for r, c in consts.items()}}, consts)
            final = plan.run(dyn)
        elif mode == "reference":
            from .interpreter import DPUInterpreter
            final = {r: np.empty_like(a) for r, a in dyn.items()}
            for i in range(n):
                regions = {**consts, **{r: a[i] for r, a in dyn.items()}}
                it = DPUInterpreter(self.machine, self.program, regions, mode="reference")
                res = it.run()
                for r in final:
                    final[r][i] = res[r]
        else:
            raise DPUExecError(f"unknown mode {mode!r} (expected reference or fast)")
        outs = {}
        for t in self.outputs:
            off = t.offsets()
            outs[t.name] = final[t.reg_id][:, off].reshape((n,) + t.shape[1:])
        return outs
