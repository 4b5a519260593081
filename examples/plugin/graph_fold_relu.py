"""An example fixflow-opt plugin on the graph dialect: two rewrite patterns, a pass with options, remarks.

    fixflow-opt --load-pass-plugin examples/plugin/graph_fold_relu.py \
        --pass-pipeline="builtin.module(fold-relu{remarks=true})" model.mlir

It rewrites `relu(relu(x))` into `relu(x)` and `x * 1` (a `graph.mul` by a `graph.constant` of ones that
does not broadcast `x`) into `x`. With `remarks=true` it reports each rewrite at the op's location.
docs/writing-passes.md explains every line.
"""

import attrs
import numpy as np

from fixflow.dialects.graph.ops import ConstantOp, MulOp, ReluOp
from fixflow.ir.diagnostics import emit_remark
from fixflow.ir.passes import Pass, register_pass
from fixflow.ir.rewrite import RewritePattern, apply_patterns_greedily


class FoldReluChain(RewritePattern):
    """relu(relu(x)) -> relu(x): the outer relu's users take the inner relu's result."""

    OP = ReluOp

    def __init__(self, remarks: bool):
        self.remarks = remarks

    def match_and_rewrite(self, op, rewriter) -> bool:
        inner = getattr(op.input, "op", None)      # block arguments have no producing op
        if not isinstance(inner, ReluOp):
            return False
        if self.remarks:
            emit_remark("relu of a relu folded", op.location)
        rewriter.replace_op(op, [inner.output])
        return True


class FoldMulByOne(RewritePattern):
    """x * 1 -> x, when the constant holds only ones and the product has x's type (no broadcast)."""

    OP = MulOp

    def __init__(self, remarks: bool):
        self.remarks = remarks

    def match_and_rewrite(self, op, rewriter) -> bool:
        for x, one in ((op.lhs, op.rhs), (op.rhs, op.lhs)):
            const = getattr(one, "op", None)
            if (isinstance(const, ConstantOp) and x.type is op.output.type
                    and np.all(const.value_attr.array == 1.0)):
                if self.remarks:
                    emit_remark("multiplication by one removed", op.location)
                rewriter.replace_op(op, [x])
                return True
        return False


@register_pass
class FoldRelu(Pass):
    NAME = "fold-relu"
    SUMMARY = "Example plugin: relu(relu(x)) -> relu(x) and x * 1 -> x on the graph dialect"

    @attrs.define
    class Options:
        remarks: bool = attrs.field(default=False, metadata={"help": "emit a remark for each rewrite"})
        max_iterations: int = attrs.field(default=10, metadata={"help": "greedy driver sweeps"})

    def run(self, module) -> None:
        patterns = [FoldReluChain(self.options.remarks), FoldMulByOne(self.options.remarks)]
        apply_patterns_greedily(module, patterns, max_iterations=self.options.max_iterations)
