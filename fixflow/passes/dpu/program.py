"""Compile one DPU subgraph (a list of fix ops) into a `DpuProgram`: instructions with dependency
flags, DDR layout (REG_0 bytes, region sizes) and the interface tensors' addresses."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...dialects.dpu.isa import Instruction
from ...ir.core import Operation, Value
from .codegen import Arch, Emitter, generate
from .ddr import REG_CONST, REG_IN, REG_OUT, REG_WORK, DdrPlan, allocate
from .layers import FMap, Layer, build_layers
from .schedule import Geometry, schedule


@dataclass
class DpuProgram:
    """A compiled DPU subgraph."""

    name: str
    target: object
    instructions: list[Instruction]
    layer_of: list[int]                       # layer index of each instruction (-1: END)
    layers: list[Layer]
    ddr: DdrPlan
    inputs: list[FMap]
    outputs: list[FMap]
    emitter: Emitter | None = field(default=None, repr=False)

    @property
    def reg_sizes(self) -> dict[int, int]:
        return dict(self.ddr.sizes)

    @property
    def const_bytes(self) -> bytes:
        return bytes(self.ddr.const_bytes)

    def regions(self, inputs: list) -> dict[int, bytes]:
        """DDR regions for one run: REG_0 constants, zeroed workspace/output, `inputs` (int8 NHWC, batch 1)
        at their REG_2 addresses."""
        import numpy as np
        regs = {REG_CONST: self.const_bytes}
        for r in (REG_WORK, REG_OUT):
            regs[r] = bytes(max(self.ddr.sizes.get(r, 0), 16))
        buf = bytearray(max(self.ddr.sizes.get(REG_IN, 0), 16))
        for f, x in zip(self.inputs, inputs):
            reg, addr = f.root().ddr
            b = np.ascontiguousarray(np.asarray(x).astype(np.int8)).tobytes()
            if len(b) != f.nbytes:
                raise ValueError(f"input {f.name} needs {f.nbytes} bytes, got {len(b)}")
            buf[addr:addr + len(b)] = b
        regs[REG_IN] = bytes(buf)
        return regs

    def read_outputs(self, regions) -> list:
        """The outputs (int8, each in its tensor's shape without the batch) from DDR regions after a run."""
        import numpy as np
        res = []
        for f in self.outputs:
            reg, addr = f.root().ddr
            a = np.asarray(regions[reg]).view(np.int8).reshape(-1)
            res.append(a[addr:addr + f.nbytes].copy().reshape(f.shape))
        return res


def compile_subgraph(ops: list[Operation], inputs: list[Value], outputs: list[Value], target,
                     name: str = "subgraph", name_of=None,
                     tiling: dict[int, tuple[int | None, int | None]] | None = None) -> DpuProgram:
    """Lower the fix ops `ops` (topologically ordered, all DPU-capable) reading `inputs` and producing
    `outputs` into one program for `target` (a `fixflow.target.Target`)."""
    if name_of is None:
        def name_of(v: Value) -> str:
            return v.name_hint or f"v{id(v)}"
    layers, fmaps = build_layers(ops, name_of)
    ins = [fmaps.get(v) or FMap(name_of(v), (0, 0, 0), 0, v) for v in inputs]
    outs = [fmaps[v] for v in outputs]
    ddr = allocate(layers, ins, outs)
    arch = Arch.of(target)
    em = generate(layers, ddr, arch, tiling)
    instrs = [t.ins for t in em.out]
    layer_of = [t.layer for t in em.out]
    instrs.append(Instruction.make("END"))
    layer_of.append(-1)
    schedule(instrs, Geometry.of(arch))
    return DpuProgram(name, target, instrs, layer_of, layers, ddr, ins, outs, em)


__all__ = ["DpuProgram", "compile_subgraph"]
