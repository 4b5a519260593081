"""An example fixflow-opt plugin: a pass with an option, built from a rewrite pattern.

    fixflow-opt --load-pass-plugin examples/plugin/strength_reduce.py \
        --pass-pipeline="builtin.module(mul-to-add{max_factor=2})" input.mlir

It rewrites `x * 2` (arith.muli by the constant 2) into `x + x`.
"""

import attrs

from fixflow.dialects.arith import AddIOp, ConstantOp, MulIOp
from fixflow.ir.attributes import IntegerAttr
from fixflow.ir.passes import Pass, register_pass
from fixflow.ir.rewrite import RewritePattern, apply_patterns_greedily


class MulByTwoToAdd(RewritePattern):
    OP = MulIOp

    def __init__(self, max_factor: int):
        self.max_factor = max_factor

    def match_and_rewrite(self, op, rewriter) -> bool:
        factor = op.rhs.op if hasattr(op.rhs, "op") else None
        if not isinstance(factor, ConstantOp):
            return False
        value = factor.attributes["value"]
        if not isinstance(value, IntegerAttr) or value.value != 2 or value.value > self.max_factor:
            return False
        add = rewriter.create(AddIOp, op.lhs, op.lhs)
        rewriter.replace_op(op, add)
        return True


@register_pass
class MulToAdd(Pass):
    NAME = "mul-to-add"
    SUMMARY = "Example plugin: rewrite x * 2 into x + x"

    @attrs.define
    class Options:
        max_factor: int = attrs.field(default=2, metadata={"help": "largest constant factor to rewrite"})

    def run(self, module) -> None:
        apply_patterns_greedily(module, [MulByTwoToAdd(self.options.max_factor)], fold=False)
