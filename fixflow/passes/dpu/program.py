"""Compile one DPU subgraph (a list of fix ops) into a `DpuProgram`: instructions with dependency
flags, DDR layout (REG_0 bytes, region sizes) and the interface tensors' addresses."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...dialects.dpu.isa import Instruction
from ...ir.core import Operation, Value
from .augment import input_margins
from .codegen import Arch, Emitter, generate
from .ddr import REG_CONST, REG_IN, REG_OUT, REG_WORK, DdrPlan, align, allocate
from .layers import FMap, Layer, build_layers
from .partition import Subgraph
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
            reg, addr = f.addr()
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
            reg, addr = f.addr()
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
    _input_margins(layers, fmaps, ddr)
    arch = Arch.of(target)
    em = generate(layers, ddr, arch, tiling)
    instrs = [t.ins for t in em.out]
    layer_of = [t.layer for t in em.out]
    instrs.append(Instruction.make("END"))
    layer_of.append(-1)
    schedule(instrs, Geometry.of(arch))
    return DpuProgram(name, target, instrs, layer_of, layers, ddr, ins, outs, em)


def _namer():
    names: dict[Value, str] = {}

    def name_of(v: Value) -> str:
        if v not in names:
            names[v] = v.name_hint or f"t{len(names)}"
        return names[v]
    return name_of


def parse_tiling(text: str) -> dict[str, tuple[int | None, int | None]]:
    """`"conv1:8:14,pool:4:"` -> {"conv1": (8, 14), "pool": (4, None)} (empty = the tiler's choice)."""
    res: dict[str, tuple[int | None, int | None]] = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        parts = item.split(":")
        if len(parts) != 3:
            raise ValueError(f"tiling entry '{item}' is not '<layer>:<rows>:<cols>'")
        try:
            rows = int(parts[1]) if parts[1] else None
            cols = int(parts[2]) if parts[2] else None
        except ValueError:
            raise ValueError(f"tiling entry '{item}': rows and cols must be integers") from None
        if (rows is not None and rows < 1) or (cols is not None and cols < 1):
            raise ValueError(f"tiling entry '{item}': rows and cols must be positive")
        res[parts[0]] = (rows, cols)
    return res


def annotated_subgraphs(func: Operation) -> list[Subgraph]:
    """The subgraphs `partition` recorded on `func`'s ops (`dpu.subgraph`, `dpu.device`), with their
    interface values."""
    order: list[Subgraph] = []
    by_name: dict[str, Subgraph] = {}
    for op in func.regions[0].blocks[0].ops:
        a = op.attributes.get("dpu.subgraph")
        if a is None:
            continue
        sg = by_name.get(a.value)
        if sg is None:
            sg = by_name[a.value] = Subgraph(a.value, op.attributes["dpu.device"].value)
            order.append(sg)
        sg.ops.append(op)
    for sg in order:
        inside = set(sg.ops)
        for op in sg.ops:
            for v in op.operands:
                if getattr(v, "op", None) not in inside and v not in sg.inputs:
                    sg.inputs.append(v)
            for r in op.results:
                if any(u not in inside for u in r.users) and r not in sg.outputs:
                    sg.outputs.append(r)
        sg.inputs = [v for v in sg.inputs if getattr(v, "op", None) is None or v.op.name != "fix.const"]
    return order


def _layers(sg: Subgraph):
    name_of = _namer()
    layers, fmaps = build_layers(sg.ops, name_of)
    ins = [fmaps[v] for v in sg.inputs if v in fmaps]
    outs = [fmaps[v] for v in sg.outputs]
    return layers, fmaps, ins, outs


def ddr_annotations(sg: Subgraph) -> DdrPlan:
    """Allocate the DDR of a DPU subgraph and record it on its ops (`dpu.ddr`, `dpu.const`)."""
    from ...ir.attributes import DenseArrayAttr
    from ...ir.types import i64
    layers, fmaps, ins, outs = _layers(sg)
    plan = allocate(layers, ins, outs)
    _input_margins(layers, fmaps, plan)
    inside = set(sg.ops)
    for v, f in fmaps.items():
        producer = getattr(v, "op", None)
        if producer is None:
            raise ValueError(f"{sg.name}: input {f.name} is a function argument; a fix.data op must produce it")
        addr = DenseArrayAttr(i64, list(f.addr()))
        if producer not in inside:       # an input: this subgraph's address of it (another DPU subgraph may
            _set_ddr_in(producer, sg.name, addr)   # write it, at its own address, or read it elsewhere)
            if producer.attributes.get("dpu.device") is not None and producer.attributes["dpu.device"].value == "DPU":
                continue
        producer.attributes["dpu.ddr"] = addr
    consts: dict[Operation, list[int]] = {}
    for i, L in enumerate(layers):
        if (i, "weights") in plan.const or (i, "bias") in plan.const:
            consts.setdefault(L.ops[0], []).extend([plan.const.get((i, "weights"), -1),
                                                    plan.const.get((i, "bias"), -1)])
    for op, offs in consts.items():
        op.attributes["dpu.const"] = DenseArrayAttr(i64, offs)
    for op, maps in _scratch(layers).items():
        op.attributes["dpu.scratch"] = DenseArrayAttr(i64, [x for f in maps for x in f.ddr])
    return plan


def _input_margins(layers: list[Layer], fmaps: dict, plan: DdrPlan) -> None:
    """Move the REG_2 inputs up by the bytes a channel-augmented LOAD may address before them, and grow the
    region by those it may address after them (`augment.input_margins`; the bytes are masked, never used)."""
    head, tail = input_margins(layers)
    if not head and not tail:
        return
    roots = {f.root() for f in fmaps.values() if f.root().ddr is not None and f.root().ddr[0] == REG_IN}
    for r in roots:
        r.ddr = (REG_IN, r.ddr[1] + head)
    for f in fmaps.values():
        if f.root() in roots and f is not f.root():
            f.ddr = f.addr()
    plan.sizes[REG_IN] = align(max((r.ddr[1] + r.nbytes for r in roots), default=0) + tail)


def _scratch(layers: list[Layer]) -> dict[Operation, list[FMap]]:
    """Per op, the feature maps its layers own that no IR value names (a transposed conv's zero-inserted
    input), in layer order: their DDR addresses go into the op's `dpu.scratch`."""
    res: dict[Operation, list[FMap]] = {}
    for L in layers:
        for f in [*L.inputs, L.out]:
            r = f.root()
            if r.value is None and L.ops and r not in res.get(L.ops[0], []):
                res.setdefault(L.ops[0], []).append(r)
    return res


def _set_ddr_in(op: Operation, subgraph: str, addr) -> None:
    from ...ir.attributes import DictionaryAttr
    a = op.attributes.get("dpu.ddr_in")
    entries = dict(a.value) if a is not None else {}
    entries[subgraph] = addr
    op.attributes["dpu.ddr_in"] = DictionaryAttr(entries)


def ddr_attr(op: Operation, subgraph: str):
    """The `array<i64: reg, address>` of `op`'s result in DPU subgraph `subgraph`: its `dpu.ddr_in` entry
    for that subgraph when it is an input there (each DPU subgraph reading a value has its own REG_2
    address of it), else its `dpu.ddr`; None when neither exists."""
    a = op.attributes.get("dpu.ddr_in")
    if a is not None and subgraph in a.value:
        return a.value[subgraph]
    return op.attributes.get("dpu.ddr")


def compile_annotated(sg: Subgraph, target, tiling: dict[str, tuple[int | None, int | None]] | None = None,
                      flags: bool = True) -> DpuProgram:
    """Lower a DPU subgraph whose DDR `allocate-ddr` recorded (`dpu.ddr`, `dpu.const`); `tiling` None: the
    bands a `lower-to-dpu{tiling=...}` run recorded (`dpu.forced_tiling`), so the same program again."""
    from .ddr import align
    import numpy as np
    layers, fmaps, ins, outs = _layers(sg)
    for v, f in fmaps.items():
        a = getattr(v, "op", None) and ddr_attr(v.op, sg.name)
        if a is None:
            raise ValueError(f"feature map {f.name} has no DDR address (run allocate-ddr first)")
        f.ddr = tuple(int(x) for x in a.value)
    scratch = _scratch(layers)
    for op, maps in scratch.items():
        a = op.attributes.get("dpu.scratch")
        if a is None or len(a.value) != 2 * len(maps):
            raise ValueError(f"feature map {maps[0].name} has no DDR address (run allocate-ddr first)")
        for k, f in enumerate(maps):
            f.ddr = (int(a.value[2 * k]), int(a.value[2 * k + 1]))
    plan = DdrPlan()
    const = bytearray()
    seen: dict[Operation, int] = {}
    for i, L in enumerate(layers):
        a = L.ops[0].attributes.get("dpu.const") if L.ops else None
        pair = (("weights", getattr(L, "weights", None)), ("bias", getattr(L, "bias", None)))
        base = 0
        if L.ops and any(d is not None for _, d in pair):
            base = seen.get(L.ops[0], 0)
            seen[L.ops[0]] = base + 2
        for k, (key, data) in enumerate(pair):
            if data is None:
                continue
            k += base
            if a is None or k >= len(a.value) or int(a.value[k]) < 0:
                raise ValueError(f"layer {L.name} has no REG_0 offset for its {key} (run allocate-ddr first)")
            off = int(a.value[k])
            b = np.ascontiguousarray(data, dtype=np.int8).tobytes()
            const.extend(b"\0" * max(0, off + len(b) - len(const)))
            const[off:off + len(b)] = b
            plan.const[(i, key)] = off
    const.extend(b"\0" * (align(len(const)) - len(const)))
    plan.const_bytes = const
    plan.sizes[REG_CONST] = len(const)
    tail = input_margins(layers)[1]        # masked bytes a channel-augmented LOAD addresses after the inputs
    for reg in (REG_WORK, REG_IN, REG_OUT):
        owners = [f.root() for f in fmaps.values()] + [f for maps in scratch.values() for f in maps]
        plan.sizes[reg] = align(max((f.ddr[1] + f.nbytes for f in owners      # address -1: kept on chip
                                     if f.ddr[0] == reg and f.ddr[1] >= 0), default=0)
                                + (tail if reg == REG_IN else 0))
    if tiling is None:                 # the bands lower-to-dpu{tiling=...} forced (`dpu.forced_tiling`)
        tiling = {}
        for op in sg.ops:
            a = op.attributes.get("dpu.forced_tiling")
            if a is not None:
                tiling.update(parse_tiling(a.value))
    forced = {}
    for i, L in enumerate(layers):
        if tiling and L.name in tiling:
            forced[i] = tiling[L.name]
    unknown = set(tiling or {}) - {L.name for L in layers}
    if unknown:
        raise ValueError(f"tiling names no layer of {sg.name}: {sorted(unknown)[0]}")
    arch = Arch.of(target)
    em = generate(layers, plan, arch, forced)
    instrs = [t.ins for t in em.out] + [Instruction.make("END")]
    if flags:
        schedule(instrs, Geometry.of(arch))
    return DpuProgram(sg.name, target, instrs, [t.layer for t in em.out] + [-1], layers, plan, ins, outs, em)


def forced_tiling_attrs(prog: DpuProgram, tiling: dict[str, tuple[int | None, int | None]]) -> dict[Operation, str]:
    """Per op, the bands `tiling` forced on its layers, in the option's syntax (`dpu.forced_tiling`: what
    `compile_annotated` without a tiling, hence `load_programs` and the profiler, lower with)."""
    res: dict[Operation, list[str]] = {}
    for L in prog.layers:
        if L.name in tiling and L.ops:
            r, c = tiling[L.name]
            res.setdefault(L.ops[-1], []).append(f"{L.name}:{r or ''}:{c or ''}")
    return {op: ",".join(v) for op, v in res.items()}


def load_programs(module: Operation) -> list[DpuProgram]:
    """The compiled programs of a module the passes ran on: each `dpu.program` with its subgraph's
    DDR layout (read from the annotations), ready for `DpuProgram.regions` and an interpreter."""
    from ...dialects.dpu.ops import ProgramOp
    from ...target import get_target
    progs = {op.sym_name: op for op in module.regions[0].blocks[0].ops if isinstance(op, ProgramOp)}
    res = []
    for func in [op for op in module.regions[0].blocks[0].ops if op.name == "func.func"]:
        for sg in annotated_subgraphs(func):
            if sg.name not in progs:
                continue
            p = progs[sg.name]
            dp = compile_annotated(sg, get_target(p.target), flags=False)
            dp.instructions = p.instructions()
            dp.layer_of = []
            res.append(dp)
    return res


__all__ = ["DpuProgram", "compile_subgraph", "compile_annotated", "annotated_subgraphs", "ddr_annotations",
           "ddr_attr", "load_programs", "parse_tiling", "forced_tiling_attrs"]
