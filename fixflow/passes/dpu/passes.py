"""The DPU compiler as registered passes (each runs from `fixflow-opt`, the IR prints between steps).

    fixflow-opt net_fix.mlir -p "partition{target=DPUCZDX8G_ISA1_B512},allocate-ddr,lower-to-dpu,schedule-dpu,verify-dpu-schedule"

- `partition`: every op of each function gets `dpu.device` ("DPU", "CPU" or "USER" for `fix.data`),
  `dpu.subgraph` (its maximal subgraph's name) and, on the CPU, `dpu.reason`; the function gets
  `dpu.target`.
- `allocate-ddr`: per DPU subgraph, `dpu.ddr = array<i64: reg_id, address>` on the op producing each
  feature map (interface inputs included; an input produced in another DPU subgraph keeps that one's
  `dpu.ddr` and gets `dpu.ddr_in = {<reading subgraph> = array<i64: 2, address>}`), `dpu.const = array<i64: weights offset, bias offset>` (REG_0)
  on each conv/dense/depthwise op; the function's `dpu.ddr_sizes` maps subgraph names to the four region
  sizes and `dpu.workspace` to [peak, naive sum of the workspace tensors].
- `lower-to-dpu`: one `dpu.program @<subgraph>` per DPU subgraph, appended to the module: tiling,
  instruction selection and bank allocation (see `codegen.py`), then REG_1 laid out again from the
  instructions (`workspace.py`: maps kept on chip get `dpu.ddr = [1, -1]`; option `workspace=layers` keeps
  allocate-ddr's layout; the function's `dpu.workspace` becomes [REG_1, naive sum, allocate-ddr's REG_1]);
  a chain's consumer gets `dpu.chained_operand` (the operand it reads from the banks); option `tiling` forces a layer's band
  (`"<layer result name>:<rows>:<cols>,..."`); each layer op gets `dpu.tiling`, the band chosen, in
  that syntax; where a forced band costs a fusion or an on-chip chain the tiler's bands would give, the
  op gets `dpu.tiling_note` (why). An element-wise op fused with the conv producing one of its operands (the conv's output
  stays in the banks, one super-layer) gets `dpu.fused_operand`, that operand's index.
- `schedule-dpu`: the `dpdon`/`dpdby` flags of every `dpu.program`.
- `verify-dpu-schedule`: proves every program free of deadlock and bank/DDR hazards.
"""

from __future__ import annotations

import attrs

from ...dialects.dpu.ops import ProgramOp
from ...ir.attributes import DenseArrayAttr, DictionaryAttr, StringAttr
from ...ir.core import Operation
from ...ir.diagnostics import PassError
from ...ir.passes import Pass, register_pass
from ...ir.types import i64
from .codegen import Arch
from .partition import DPU, placements, subgraphs
from .program import annotated_subgraphs, compile_annotated, ddr_annotations, forced_tiling_attrs, parse_tiling
from .schedule import Geometry, ScheduleError, check, schedule
from .workspace import annotate_workspace, chained_operands, reallocate_workspace

DEFAULT_TARGET = "DPUCZDX8G_ISA1_B4096"


def _funcs(module: Operation) -> list[Operation]:
    return [op for op in module.regions[0].blocks[0].ops if op.name == "func.func"]


def _get_target(name: str):
    from ...target import get_target
    return get_target(name)


def _func_target(func: Operation):
    a = func.attributes.get("dpu.target")
    if a is None:
        raise PassError("run 'partition' first: the function has no dpu.target", func.location)
    return _get_target(a.value)


@register_pass
class Partition(Pass):
    NAME = "partition"
    SUMMARY = "Place every fix op on the DPU or the CPU (with the reason) and form maximal DPU/CPU subgraphs"

    @attrs.define
    class Options:
        target: str = attrs.field(default=DEFAULT_TARGET,
                                  metadata={"help": "target name, fingerprint, board or arch.json path"})

    def run(self, module: Operation) -> None:
        target = _get_target(self.options.target)
        for func in _funcs(module):
            placed = placements(func, target)
            for sg in subgraphs(func, placed):
                for op in sg.ops:
                    device, reason = placed[op]
                    op.attributes["dpu.device"] = StringAttr(device)
                    op.attributes["dpu.subgraph"] = StringAttr(sg.name)
                    if reason:
                        op.attributes["dpu.reason"] = StringAttr(reason)
                    else:
                        op.attributes.pop("dpu.reason", None)
            for op, (device, reason) in placed.items():      # constants shared by several subgraphs
                if "dpu.device" not in op.attributes:
                    op.attributes["dpu.device"] = StringAttr(device)
                    if reason:
                        op.attributes["dpu.reason"] = StringAttr(reason)
            func.attributes["dpu.target"] = StringAttr(target.name)


@register_pass
class AllocateDdr(Pass):
    NAME = "allocate-ddr"
    SUMMARY = "DDR of each DPU subgraph: REG_0 weights then biases, REG_1 workspace (liveness reuse), REG_2/3 I/O"

    def run(self, module: Operation) -> None:
        for func in _funcs(module):
            _func_target(func)
            sizes, work = {}, {}
            for sg in annotated_subgraphs(func):
                if sg.device != DPU:
                    continue
                try:
                    ddr = ddr_annotations(sg)
                except ValueError as e:
                    raise PassError(f"{sg.name}: {e}", sg.ops[0].location) from None
                sizes[sg.name] = DenseArrayAttr(i64, [ddr.sizes.get(r, 0) for r in range(4)])
                work[sg.name] = DenseArrayAttr(i64, [ddr.peak_workspace, ddr.naive_workspace])
            func.attributes["dpu.ddr_sizes"] = DictionaryAttr(sizes)
            func.attributes["dpu.workspace"] = DictionaryAttr(work)


@register_pass
class LowerToDpu(Pass):
    NAME = "lower-to-dpu"
    SUMMARY = "Tile each DPU subgraph into the banks and select DPU instructions (one dpu.program each)"

    @attrs.define
    class Options:
        tiling: str = attrs.field(default="", metadata={
            "help": "force bands: '<layer result name>:<rows>:<cols>,...' (rows a multiple of the strip)"})
        workspace: str = attrs.field(default="instructions", metadata={
            "help": "REG_1 layout: 'instructions' lays it out again from the LOADs/SAVEs that touch DDR "
                    "(maps kept on chip get no bytes), 'layers' keeps allocate-ddr's"})

    def run(self, module: Operation) -> None:
        try:
            forced = parse_tiling(self.options.tiling)
        except ValueError as e:
            raise PassError(f"lower-to-dpu: option tiling: {e}") from None
        if self.options.workspace not in ("instructions", "layers"):
            raise PassError(f"lower-to-dpu: option workspace: {self.options.workspace!r} is not "
                            "'instructions' or 'layers'")
        block = module.regions[0].blocks[0]
        existing = {op.sym_name: op for op in block.ops if isinstance(op, ProgramOp)}
        for func in _funcs(module):
            target = _func_target(func)
            for sg in annotated_subgraphs(func):
                if sg.device != DPU:
                    continue
                try:
                    prog = compile_annotated(sg, target, forced, flags=False)
                except (ValueError, KeyError) as e:
                    raise PassError(f"{sg.name}: {e}", sg.ops[0].location) from None
                if self.options.workspace == "instructions":
                    try:
                        layout = reallocate_workspace(prog)
                    except ValueError as e:
                        raise PassError(f"{sg.name}: {e}", sg.ops[0].location) from None
                    annotate_workspace(func, sg, prog, layout)
                for op in sg.ops:
                    op.attributes.pop("dpu.fused_operand", None)
                    op.attributes.pop("dpu.chained_operand", None)
                    op.attributes.pop("dpu.tiling_note", None)
                    op.attributes.pop("dpu.forced_tiling", None)
                for op, bands in forced_tiling_attrs(prog, forced).items():   # so load_programs lowers the same
                    op.attributes["dpu.forced_tiling"] = StringAttr(bands)
                for op, k in chained_operands(prog).items():   # on-chip chains: the operand read from the banks
                    op.attributes["dpu.chained_operand"] = _i64(k)
                for i, note in prog.emitter.notes.items():   # a fusion / on-chip chain the forced bands cost
                    prog.layers[i].ops[-1].attributes["dpu.tiling_note"] = StringAttr(note)
                for i, j in prog.emitter.fused.items():      # conv + ELEW super-layers: which operand is on chip
                    P, E = prog.layers[i], prog.layers[j]
                    eop = E.ops[-1]
                    k = next(k for k, v in enumerate(eop.operands) if v is P.out.value)
                    eop.attributes["dpu.fused_operand"] = _i64(k)
                for i, L in enumerate(prog.layers):          # the tiler's choice, in the option's syntax
                    p = prog.emitter.plans.get(i)
                    if p is not None and L.ops and not getattr(L, "role", ""):
                        L.ops[-1].attributes["dpu.tiling"] = StringAttr(
                            f"{L.name}:{p.rows}:{p.cols}" + (f" channels/tile {p.geom.cg * target.icp}"
                                                             if p.geom.alu and p.geom.cg * target.icp < L.out.c else ""))
                op = ProgramOp.build_program(prog.instructions, target.name, sg.name, location=sg.ops[0].location)
                op.attributes["reg_id_to_size"] = DictionaryAttr(
                    {f"REG_{r}": _i64(s) for r, s in sorted(prog.reg_sizes.items())})
                if sg.name in existing:
                    old = existing[sg.name]
                    block.insert_before(old, op) if hasattr(block, "insert_before") else block.append(op)
                    old.erase()
                else:
                    block.append(op)


def _i64(v: int):
    from ...ir.attributes import IntegerAttr
    return IntegerAttr(int(v), i64)


def _programs(module: Operation) -> list[ProgramOp]:
    return [op for op in module.regions[0].blocks[0].ops if isinstance(op, ProgramOp)]


@register_pass
class ScheduleDpu(Pass):
    NAME = "schedule-dpu"
    SUMMARY = "Set dpdon/dpdby so LOAD, CONV, MISC and SAVE overlap without hazards"

    @attrs.define
    class Options:
        own_unit_bits: bool = attrs.field(default=True, metadata={
            "help": "also set each instruction's own unit bit in dpdon and dpdby, as AMD's compiler does"})

    def run(self, module: Operation) -> None:
        for prog in _programs(module):
            ops = list(prog.instruction_ops())
            instrs = [o.to_instruction() for o in ops]
            schedule(instrs, Geometry.of(Arch.of(_get_target(prog.target))), own_unit_bits=self.options.own_unit_bits)
            for o, ins in zip(ops, instrs):
                o.attributes["dpdon"] = _i32(ins.dpdon)
                o.attributes["dpdby"] = _i32(ins.dpdby)


def _i32(v: int):
    from ...ir.attributes import IntegerAttr
    from ...ir.types import i32
    return IntegerAttr(int(v), i32)


@register_pass
class VerifyDpuSchedule(Pass):
    NAME = "verify-dpu-schedule"
    SUMMARY = "Prove each dpu.program free of deadlock and of bank-line/DDR hazards under its dpdon/dpdby"

    def run(self, module: Operation) -> None:
        for prog in _programs(module):
            instrs = prog.instructions()
            try:
                check(instrs, Geometry.of(Arch.of(_get_target(prog.target))))
            except ScheduleError as e:
                raise PassError(f"dpu.program @{prog.sym_name}: {e.message}",
                                prog.location) from None


def compile_pipeline(target: str, tiling: str = "", schedule: bool = True,
                     verify_schedule: bool = False) -> list[tuple[str, Pass]]:
    """The compiler's passes in order, as (name, pass): `fixflow-compile` runs all of them, the inspector
    stops after `lower-to-dpu` (scheduling changes neither placement nor super-layers)."""
    res: list[tuple[str, Pass]] = [("partition", Partition(target=target)), ("allocate-ddr", AllocateDdr()),
                                   ("lower-to-dpu", LowerToDpu(tiling=tiling))]
    if schedule:
        res.append(("schedule-dpu", ScheduleDpu()))
        if verify_schedule:
            res.append(("verify-dpu-schedule", VerifyDpuSchedule()))
    return res


__all__ = ["Partition", "AllocateDdr", "LowerToDpu", "ScheduleDpu", "VerifyDpuSchedule", "DEFAULT_TARGET",
           "compile_pipeline"]
