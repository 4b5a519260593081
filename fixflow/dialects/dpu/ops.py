"""Op definitions of the `dpu` dialect, generated from the ISA1 field table.

One op per instruction (`dpu.load`, `dpu.save`, `dpu.convinit`, `dpu.conv`, `dpu.poolinit`, `dpu.pool`,
`dpu.aluinit`, `dpu.alu`, `dpu.dwinit`, `dpu.dptwise`, `dpu.elewinit`, `dpu.elew`, `dpu.end`): the
`dpdon`/`dpdby` masks and every field of the table as an `i32` attribute holding its logical value
(a field stored minus one holds its real value). No operands, no results.

`dpu.program` holds one program (a DPU subgraph or a super-layer): a single block of instruction ops
(and, for a subgraph split into super-layers, nested `dpu.program`s), with the `target` name attached.
Its verifier checks the instructions against the target: bank ids and the bank groups each engine may
use, pixel parallelism, kernel/stride ranges, fused activations, ALU modes; POOLINIT/POOL/DWINIT/DPTWISE
do not run on ISA1 targets (they exist for the codec only).

Generic text, e.g.::

    "dpu.program"() ({
      "dpu.end"() {dpdby = 0 : i32, dpdon = 2 : i32} : () -> ()
    }) {sym_name = "subgraph_conv", target = "DPUCZDX8G_ISA1_B4096"} : () -> ()
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from ...ir.attributes import Attribute, IntegerAttr
from ...ir.core import Block, Operation, Region
from ...ir.diagnostics import FixflowError, VerifyError
from ...ir.location import UNKNOWN_LOC, Location
from ...ir.opdef import STR, AttrKind, Dialect, IsolatedFromAbove, NoTerminator, Op, attr, region
from ...ir.types import i32
from .isa import InstrSpec, Instruction, by_name, table

dpu = Dialect("dpu", "DPUCZDX8G instructions (ISA1 field table) and the programs that hold them.")


def _check_i32(a: Attribute) -> str | None:
    return None if a.type == i32 else f"expected an i32 integer, got {a.text()}"


#: an instruction field: an `i32` integer attribute
FIELD = AttrKind("i32 integer", lambda v: IntegerAttr(int(v), i32), lambda a: a.value, (IntegerAttr,),
                 _check_i32)

#: `act_type` values and the target's activation names
ACT_NAMES = {0: "none", 1: "relu", 2: "prelu", 3: "leaky_relu", 4: "relu6", 5: "hsigmoid", 6: "hswish"}
#: instructions that need an engine ISA1 targets do not have
NOT_ON_ISA1 = frozenset({"POOLINIT", "POOL", "DWINIT", "DPTWISE"})


class InstructionOp(Op):
    """Base of the generated instruction ops; `SPEC` is the instruction's table entry."""

    SPEC: InstrSpec
    dpdon = attr(FIELD, doc="units this instruction waits on (bit 0 LOAD, 1 SAVE, 2 CONV, 3 MISC)")
    dpdby = attr(FIELD, doc="units this instruction signals when done")

    def infer_types(self) -> list:
        return []

    def verify_(self) -> None:
        for name, lo, hi, width in (("dpdon", 0, 15, 4), ("dpdby", 0, 15, 4)):
            _check_range(self, name, lo, hi, f"{width}-bit mask")
        for f in self.SPEC.fields:
            _check_range(self, f.name, f.lo, f.hi,
                         f"{f.length}-bit field{', stored minus one' if f.minus else ''}")
        extra = [k for k in self.attributes if k not in self.SPEC.by_name and k not in ("dpdon", "dpdby")]
        if extra:
            raise self.error(f"has no field '{extra[0]}'; its fields are "
                             f"{' '.join(('dpdon', 'dpdby') + self.SPEC.field_names)}")

    def to_instruction(self) -> Instruction:
        """The plain record of this op (no checks beyond reading the attributes)."""
        a = self.attributes
        return Instruction(self.SPEC.name, self.SPEC.opcode, a["dpdon"].value, a["dpdby"].value,
                           {f.name: a[f.name].value for f in self.SPEC.fields})


def _check_range(op: Operation, name: str, lo: int, hi: int, what: str) -> None:
    a = op.attributes.get(name)
    if a is None:
        raise op.error(f"requires attribute '{name}' (i32 integer)")
    if not isinstance(a, IntegerAttr) or a.type != i32:
        raise op.error(f"attribute '{name}': expected an i32 integer, got {a.text()}")
    if not lo <= a.value <= hi:
        raise op.error(f"{name} = {a.value} is out of range [{lo}, {hi}] ({what})")


def _make_op_class(s: InstrSpec) -> type[InstructionOp]:
    ns: dict[str, Any] = {
        "__module__": __name__,
        "__doc__": f"{s.name} (opcode {s.opcode:#x}, {s.words} words, {s.category} unit).",
        "OP_NAME": s.op_name,
        "SPEC": s,
    }
    for f in s.fields:
        rng = f"[{f.lo}, {f.hi}]"
        ns[f.name] = attr(FIELD, doc=f"word {f.word} bits {f.pos}-{f.pos + f.length - 1} {rng}"
                                     + (", stored minus one" if f.minus else ""))
    return dpu.op(type(f"{s.tag}Op", (InstructionOp,), ns))


#: mnemonic ("LOAD") -> generated op class
OP_CLASSES: dict[str, type[InstructionOp]] = {s.name: _make_op_class(s) for s in table()}
globals().update({cls.__name__: cls for cls in OP_CLASSES.values()})


def op_class(name: str) -> type[InstructionOp]:
    """The op class of mnemonic `name` (KeyError when unknown)."""
    return OP_CLASSES[name]


def from_instruction(ins: Instruction, location: Location | None = None) -> InstructionOp:
    """The op of an `Instruction` (not inserted anywhere; verify it to check the values)."""
    cls = OP_CLASSES.get(ins.name)
    if cls is None:
        raise FixflowError(f"unknown instruction '{ins.name}'", location)
    fields = {f.name: ins.fields[f.name] for f in cls.SPEC.fields if f.name in ins.fields}
    return cls.build(location=location, result_types=[], dpdon=ins.dpdon, dpdby=ins.dpdby, **fields)


def to_instruction(op: Operation) -> Instruction:
    """The `Instruction` of a `dpu` instruction op; a VerifyError when the op is not one or is invalid."""
    if not isinstance(op, InstructionOp):
        raise VerifyError("is not a dpu instruction", op)
    op.verify_()
    return op.to_instruction()


def make(name: str, dpdon: int = 0, dpdby: int = 0, location: Location | None = None,
         **fields: int) -> InstructionOp:
    """Builder: the op of instruction `name`; fields not given get their smallest legal value."""
    return from_instruction(Instruction.make(name, dpdon, dpdby, **fields), location)


# ---- the program container -------------------------------------------------------------------------
@dpu.op
class ProgramOp(Op):
    """A DPU program (one per DPU subgraph or super-layer) for the target named by `target`."""

    OP_NAME = "dpu.program"
    TRAITS = frozenset({IsolatedFromAbove, NoTerminator})
    sym_name = attr(STR, default=None, doc="the subgraph / super-layer name")
    target = attr(STR, doc="target name, e.g. DPUCZDX8G_ISA1_B4096")
    body_region = region()

    def infer_types(self) -> list:
        return []

    @classmethod
    def build_program(cls, instrs: Iterable[Instruction | Operation], target: str, name: str | None = None,
                      location: Location | None = None) -> "ProgramOp":
        """A program holding `instrs` (records or ops; records become ops)."""
        block = Block()
        for ins in instrs:
            block.append(from_instruction(ins) if isinstance(ins, Instruction) else ins)
        return cls.build(regions=[Region([block])], result_types=[], target=target, sym_name=name,
                         location=location)

    @property
    def body(self) -> Block:
        region_ = self.regions[0]
        if not region_.blocks:
            region_.add_block(Block())
        return region_.blocks[0]

    def instruction_ops(self) -> Iterator[InstructionOp]:
        """Every instruction op in program order (nested super-layer programs inlined)."""
        for op in self.body.ops:
            if isinstance(op, ProgramOp):
                yield from op.instruction_ops()
            elif isinstance(op, InstructionOp):
                yield op

    def instructions(self) -> list[Instruction]:
        """The program as records, in order."""
        return [op.to_instruction() for op in self.instruction_ops()]

    def verify_(self) -> None:
        if len(self.regions) != 1 or len(self.regions[0].blocks) > 1:
            raise self.error("expects one region with one block")
        if self.operands or self.results:
            raise self.error("takes no operands and has no results")
        for op in self.body.ops:
            if not isinstance(op, (InstructionOp, ProgramOp)):
                raise VerifyError("cannot be in a dpu.program: it holds only dpu instructions and "
                                  "super-layer dpu.programs", op)
            if isinstance(op, ProgramOp) and op.target != self.target:
                raise op.error(f"targets {op.target} but its enclosing program targets {self.target}")
        tgt = _resolve_target(self)
        if tgt is None:
            return
        for op in self.body.ops:
            if isinstance(op, InstructionOp):
                problem = target_problem(op.SPEC.name, op.attributes, tgt)
                if problem:
                    err = op.error(problem)
                    err.notes.append((f"in the program for {self.target}", self.location))
                    raise err


def _resolve_target(prog: ProgramOp) -> Any:
    """The `fixflow.target.Target` of the program, None if that package is unavailable."""
    try:
        from ...target import Target
    except ImportError:  # the target package is optional for this dialect
        return None
    try:
        return Target.from_name(prog.target)
    except FixflowError as e:
        raise prog.error(f"target: {e.message}") from None


def _v(attrs: dict, name: str) -> int:
    return attrs[name].value


def target_problem(name: str, attrs: dict[str, Attribute], t: Any) -> str | None:
    """The first way instruction `name` (with attributes `attrs`) breaks target `t`'s limits, or None."""
    if name in NOT_ON_ISA1 and t.isa == 1:
        return (f"{name} cannot run on {t.name}: ISA1 targets have no pool/depthwise engine "
                "(pooling and depthwise convolution run on the ALU: ALUINIT/ALU)")

    def bank(field: str, feature_map: bool) -> str | None:
        b = _v(attrs, field)
        if not 0 <= b < t.num_banks:
            return f"{field} = {b}: {t.name} has no bank {b} (bank ids are 0-{t.num_banks - 1})"
        if feature_map and not any(b in g for g in t.feature_map_groups):
            groups = ", ".join(f"{g.name} {g.first_id}-{g.last_id}" for g in t.feature_map_groups)
            return (f"{field} = {b} is a {t.bank_group(b).name} bank; {name} needs a feature-map bank "
                    f"of {t.name} ({groups})")
        return None

    def within(field: str, rng: Any, what: str) -> str | None:
        v = _v(attrs, field)
        if v not in rng:
            return f"{field} = {v} is out of the {what} range [{rng.lo}, {rng.hi}] of {t.name}"
        return None

    def act(engine: str) -> str | None:
        a = _v(attrs, "act_type")
        allowed = t.supported_nonlinear(engine)
        if a != 0 and ACT_NAMES.get(a) not in allowed:
            ok = ", ".join(f"{k} ({n})" for k, n in ACT_NAMES.items() if k == 0 or n in allowed)
            return (f"act_type = {a} ({ACT_NAMES.get(a, 'unknown')}) is not supported by the {engine} "
                    f"engine of {t.name} (allowed: {ok})")
        return None

    def vpp(limit: int, what: str) -> str | None:
        v = _v(attrs, "valid_pixel_parallel")
        if v > limit:
            return f"valid_pixel_parallel = {v} is out of range [1, {limit}] ({what} of {t.name})"
        return None

    checks: list = []
    if name == "LOAD":
        checks = [lambda: bank("bank_id", False)]
    elif name == "SAVE":
        checks = [lambda: bank("bank_id", True)]
    elif name == "CONVINIT":
        checks = [lambda: within("kernel_h", t.conv.kernel, "conv kernel"),
                  lambda: within("kernel_w", t.conv.kernel, "conv kernel"),
                  lambda: within("stride_h", t.conv.stride, "conv stride"),
                  lambda: within("stride_w", t.conv.stride, "conv stride"),
                  lambda: vpp(t.pp, "pixel parallelism PP"), lambda: act("conv")]
    elif name == "CONV":
        checks = [lambda: bank("bank_id_in", True), lambda: bank("bank_id_out", True)]
    elif name == "ALUINIT":
        def mode() -> str | None:
            m = _v(attrs, "exec_mode")
            types = t.alu.alu_types
            from ...target import ALU_TYPES
            if m >= len(ALU_TYPES) or ALU_TYPES[m] not in types:
                listed = ", ".join(f"{i} ({n})" for i, n in enumerate(ALU_TYPES) if n in types)
                return f"exec_mode = {m} is not an ALU mode of {t.name} (modes: {listed})"
            return None
        checks = [mode, lambda: within("kernel_h", t.alu.kernel, "ALU kernel"),
                  lambda: within("kernel_w", t.alu.kernel, "ALU kernel"),
                  lambda: within("stride_h", t.alu.stride, "ALU stride"),
                  lambda: within("stride_w", t.alu.stride, "ALU stride"), lambda: act("alu")]
    elif name == "ALU":
        checks = [lambda: bank("bank_id_in", True), lambda: bank("bank_id_out", True),
                  lambda: vpp(t.alu_pp, "ALU pixel parallelism"),
                  lambda: within("pad_left", t.alu.pad_left, "ALU pad_left"),
                  lambda: within("pad_top", t.alu.pad_top, "ALU pad_top")]
    elif name == "ELEWINIT":
        checks = [lambda: bank("bank_id_in", True)]
    elif name == "ELEW":
        checks = [lambda: bank("bank_id_out", True), lambda: vpp(t.elew.pixel_parallel, "ELEW pixel parallelism"),
                  lambda: act("elew")]
    for check in checks:
        problem = check()
        if problem:
            return problem
    return None


__all__ = ["dpu", "FIELD", "ACT_NAMES", "NOT_ON_ISA1", "InstructionOp", "OP_CLASSES", "op_class",
           "from_instruction", "to_instruction", "make", "ProgramOp", "target_problem"]
__all__ += [cls.__name__ for cls in OP_CLASSES.values()]
