"""The builtin dialect (`builtin.module`) and functions (`func.func`, `func.return`, `func.call`)."""

from __future__ import annotations

from typing import Sequence

from ..ir.core import Block, Operation, Region
from ..ir.location import UNKNOWN_LOC, Location
from ..ir.opdef import (STR, SYMBOL, TYPE, Dialect, IsolatedFromAbove, NoTerminator, Op, Pure, SymbolTable,
                        Terminator, attr, region, variadic_operand, variadic_result)
from ..ir.types import FunctionType, Type

builtin = Dialect("builtin", "The top-level container.")
func = Dialect("func", "Functions, calls and returns.")


@builtin.op
class ModuleOp(Op):
    """A module: one region with one block of top-level ops (usually functions)."""

    OP_NAME = "builtin.module"
    TRAITS = frozenset({IsolatedFromAbove, SymbolTable, NoTerminator})
    sym_name = attr(STR, default=None)
    body_region = region()

    @classmethod
    def empty(cls, location: Location = UNKNOWN_LOC) -> "ModuleOp":
        """A module with an empty body block."""
        return cls.build(regions=[Region([Block()])], location=location, result_types=[])

    @property
    def body(self) -> Block:
        region = self.regions[0]
        if not region.blocks:  # `({\n})` parses as an empty region; a module always has its block
            region.add_block(Block())
        return region.blocks[0]

    def functions(self) -> list["FuncOp"]:
        return [op for op in self.body.ops if isinstance(op, FuncOp)]

    def lookup(self, name: str) -> Operation | None:
        """The top-level op whose `sym_name` is `name`."""
        for op in self.body.ops:
            sym = op.attributes.get("sym_name")
            if sym is not None and getattr(sym, "value", None) == name:
                return op
        return None

    def verify_(self) -> None:
        if len(self.regions) != 1 or len(self.regions[0].blocks) > 1:
            raise self.error("expects one region with one block")
        if self.results or self.operands:
            raise self.error("takes no operands and has no results")


@func.op
class FuncOp(Op):
    """A function: `sym_name`, `function_type` and a body whose entry block takes the inputs."""

    OP_NAME = "func.func"
    TRAITS = frozenset({IsolatedFromAbove})
    sym_name = attr(STR)
    function_type = attr(TYPE)
    sym_visibility = attr(STR, default=None)
    body_region = region(single_block=False)

    @classmethod
    def create_function(cls, name: str, inputs: Sequence[Type], results: Sequence[Type] = (),
                        location: Location = UNKNOWN_LOC) -> "FuncOp":
        """A function with an entry block whose arguments have the input types."""
        return cls.build(sym_name=name, function_type=FunctionType(inputs, results),
                         regions=[Region([Block(inputs)])], location=location, result_types=[])

    @property
    def body(self) -> Block:
        return self.regions[0].blocks[0]

    @property
    def args(self):
        return self.body.args

    @property
    def return_op(self) -> "ReturnOp | None":
        last = self.regions[0].blocks[-1].last_op if self.regions[0].blocks else None
        return last if isinstance(last, ReturnOp) else None

    def update_function_type(self) -> None:
        """Recompute `function_type` from the entry block arguments and the return operands."""
        ret = self.return_op
        results = [v.type for v in ret.operands] if ret is not None else []
        self.function_type = FunctionType([a.type for a in self.body.args], results)

    def verify_(self) -> None:
        ft = self.function_type
        if not isinstance(ft, FunctionType):
            raise self.error(f"function_type must be a function type, got {ft}")
        if not self.regions[0].blocks:
            return  # a declaration
        entry = self.regions[0].blocks[0]
        if [a.type for a in entry.args] != list(ft.inputs):
            got = ", ".join(str(a.type) for a in entry.args)
            raise self.error(f"entry block arguments ({got}) do not match the function inputs {ft}")
        for block in self.regions[0].blocks:
            last = block.last_op
            unregistered = last is not None and type(last) is Operation  # may be a terminator (as MLIR)
            if last is None or (Terminator not in last.TRAITS and not unregistered):
                raise self.error("each block of the body must end with a terminator such as func.return")
        for block in self.regions[0].blocks:
            last = block.last_op
            if isinstance(last, ReturnOp) and [v.type for v in last.operands] != list(ft.results):
                got = ", ".join(str(v.type) for v in last.operands)
                err = last.error(f"returns ({got}) but the enclosing function's type is {ft}")
                err.notes.append((f"function @{self.sym_name} declared here", self.location))
                raise err


@func.op
class ReturnOp(Op):
    OP_NAME = "func.return"
    TRAITS = frozenset({Pure, Terminator})
    values = variadic_operand()

    def infer_types(self) -> list[Type]:
        return []


@func.op
class CallOp(Op):
    OP_NAME = "func.call"
    callee = attr(SYMBOL)
    args = variadic_operand()
    outs = variadic_result()
