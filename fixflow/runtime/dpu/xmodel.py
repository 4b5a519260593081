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
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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


class DPUSubgraph:
    """The pieces of a compiled DPU subgraph the interpreter needs."""

    def __init__(self, name: str, target: Any, mc_code: bytes, reg_sizes: Mapping[int, int],
                 consts: Mapping[int, bytes], inputs: Sequence[DDRTensor], outputs: Sequence[DDRTensor],
                 preload: bytes = b""):
        self.name = name
        self.mc_code_preload = bytes(preload)
        self.machine = Machine.from_target(target)
        self.mc_code = bytes(mc_code)
        self.reg_sizes = dict(reg_sizes)
        self.consts = {r: np.frombuffer(bytes(v), dtype=np.int8) for r, v in consts.items()}
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self._program: list | None = None
        self._plan = None
        self._plan_lock = threading.Lock()
        self._consts_full: dict[int, np.ndarray] | None = None

    @classmethod
    def from_xmodel(cls, source: Any, subgraph: str | None = None) -> DPUSubgraph:
        """From a path, an `XGraph` or a `CompiledModel` (read with fixflow's compiled-xmodel reader);
        `subgraph` names the DPU subgraph when there are several. Tensor names are VART's: the input
        an `upload` op copies and the output of each `download` op."""
        from ...backends.xmodel import XGraph
        from ...backends.xmodel.compiled import (
            CompiledModel,
            from_xgraph,
            read_compiled,
        )
        if isinstance(source, (str, os.PathLike)):
            m = read_compiled(source)
        elif isinstance(source, XGraph):
            m = from_xgraph(source)
        elif isinstance(source, CompiledModel):
            m = source
        else:
            raise DPUExecError(f"cannot read a DPU subgraph from {type(source).__name__}")
        dpus = [s for s in m.dpu_subgraphs if subgraph is None or s.name == subgraph]
        if not dpus:
            raise DPUExecError(f"{m.name}: no DPU subgraph" + (f" named {subgraph!r}" if subgraph else ""))
        if len(dpus) > 1:
            raise DPUExecError(f"{m.name}: {len(dpus)} DPU subgraphs; name one of "
                               f"{', '.join(s.name for s in dpus)}")
        sg = dpus[0]
        sizes = {r.reg_id: r.size for r in sg.regions}
        consts = {r.reg_id: r.parameter or b"" for r in sg.regions if r.context_type == "CONST"}

        def ddr(t, name: str) -> DDRTensor:
            shape = tuple(int(d) for d in t.shape)
            strides = t.stride or tuple(int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape)))
            return DDRTensor(name, shape, t.reg_id, t.ddr_addr, tuple(int(v) for v in strides), t.fix_point)

        inputs = []
        for t in m.dpu_inputs(sg):
            src = m.op(t.op).inputs.get("input", [])
            inputs.append(ddr(t, m.op(src[0]).output.name if src else t.name))
        downloads = {}
        for o in m.ops:
            if o.type == "download":
                for p in o.inputs.get("input", []):
                    downloads.setdefault(p, o.output.name)
        outputs = [ddr(t, downloads.get(t.op, t.name)) for t in m.dpu_outputs(sg)]
        pre = sg.attrs.get("mc_code_preload")
        pre = bytes(getattr(pre, "value", pre) or b"")
        return cls(sg.name, sg.target, sg.mc_code, sizes, consts, inputs, outputs, preload=pre)

    @property
    def program(self) -> list:
        """The instructions: `mc_code_preload` without its END (as AMD's simulator runs it), then `mc_code`."""
        if self._program is None:
            from .interpreter import as_program
            pre = as_program(self.mc_code_preload) if self.mc_code_preload else []
            if pre and pre[-1].name == "END":
                pre = pre[:-1]
            self._program = pre + as_program(self.mc_code)
        return self._program

    def _const_regions(self) -> dict[int, np.ndarray]:
        """The CONST regions at their full size (the parameters, zero-padded)."""
        if self._consts_full is None:
            full = {}
            for r, c in self.consts.items():
                size = self.reg_sizes.get(r, c.size)
                pad = np.zeros(size, dtype=np.int8)
                pad[:min(c.size, size)] = c[:size]
                full[r] = pad
            self._consts_full = full
        return self._consts_full

    def plan(self):
        """The fast-mode plan of this subgraph (compiled on first use, then kept)."""
        with self._plan_lock:
            if self._plan is None:
                from .fast import compile_plan
                self._plan = compile_plan(self.machine, self.program, self.reg_sizes, self._const_regions())
            return self._plan

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
                want = ", ".join(map(str, t.shape[1:]))
                raise DPUExecError(f"input {t.name} has shape {a.shape}, expected (N, {want})")
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
        consts = self._const_regions()
        if mode == "fast":
            final = self.plan().run(dyn, regs={t.reg_id for t in self.outputs})
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
