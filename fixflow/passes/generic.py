"""Dialect-independent passes: canonicalize, cse, dce, symbol-dce."""

from __future__ import annotations

import attrs

from ..ir.attributes import ArrayAttr, DictionaryAttr, SymbolRefAttr
from ..ir.core import Block, Operation
from ..ir.opdef import Commutative, ConstantLike, IsolatedFromAbove, Pure
from ..ir.passes import Pass, Statistic, register_pass
from ..ir.rewrite import PatternRewriter, PatternSet, RewritePattern, apply_patterns_greedily, is_trivially_dead


def _is_constant(v) -> bool:
    owner = getattr(v, "op", None)
    return owner is not None and ConstantLike in owner.TRAITS


class ConstantsLast(RewritePattern):
    """Commutative ops take their constant operands last (`c + x` -> `x + c`), so folders and patterns
    only need to look at one form."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> bool:
        if Commutative not in op.TRAITS or len(op.operands) < 2:
            return False
        ordered = sorted(op.operands, key=_is_constant)  # stable: non-constants keep their order
        if ordered == list(op.operands):
            return False
        with rewriter.modify_op(op):
            op.set_operands(ordered)
        return True


def canonicalization_patterns(module: Operation) -> list:
    """The canonicalization patterns of every registered op class present in `module`."""
    seen: set[type] = set()
    patterns = []
    for op in module.walk():
        cls = type(op)
        if cls in seen or cls is Operation:
            continue
        seen.add(cls)
        hook = getattr(cls, "canonicalization_patterns", None)
        if hook is not None:
            patterns.extend(hook())
    return patterns


@register_pass
class Canonicalize(Pass):
    NAME = "canonicalize"
    SUMMARY = "Fold ops, apply the ops' canonicalization patterns and remove dead ops, to a fixed point"

    @attrs.define
    class Options:
        max_iterations: int = attrs.field(default=10, metadata={"help": "sweeps before giving up"})
        fold: bool = attrs.field(default=True, metadata={"help": "apply op folders"})

    def run(self, module: Operation) -> None:
        patterns = PatternSet(canonicalization_patterns(module) + [ConstantsLast()])
        apply_patterns_greedily(module, patterns, max_iterations=self.options.max_iterations,
                                fold=self.options.fold)


def _attr_key(op: Operation) -> tuple:
    return tuple(sorted(op.attributes.items(), key=lambda kv: kv[0]))


@register_pass
class CSE(Pass):
    NAME = "cse"
    SUMMARY = "Eliminate common subexpressions (pure ops with equal operands, attributes and types)"

    num_cse = Statistic("num-cse'd", "Number of operations CSE'd")  # MLIR's CSE statistic

    def run(self, module: Operation) -> None:
        self._region_ops(module, [{}])

    def _region_ops(self, op: Operation, scopes: list[dict]) -> None:
        for region in op.regions:
            isolated = IsolatedFromAbove in op.TRAITS
            for block in region.blocks:
                inner = [{}] if isolated else scopes + [{}]
                if len(region.blocks) > 1:
                    inner = [{}]  # no dominance info across blocks: stay local
                self._block(block, inner)

    def _block(self, block: Block, scopes: list[dict]) -> None:
        table = scopes[-1]
        op = block.first_op
        while op is not None:
            nxt = op.next_op
            if op.regions:
                self._region_ops(op, scopes)
            elif Pure in op.TRAITS and op.results:
                operand_ids = [id(v) for v in op.operands]
                if Commutative in op.TRAITS:
                    operand_ids.sort()  # a + b and b + a are the same expression
                key = (op.name, tuple(operand_ids), tuple(r.type for r in op.results), _attr_key(op))
                existing = None
                for scope in reversed(scopes):
                    existing = scope.get(key)
                    if existing is not None:
                        break
                if existing is not None:
                    for r_old, r_new in zip(op.results, existing.results):
                        if r_new.name_hint is None:
                            r_new.name_hint = r_old.name_hint
                        r_old.replace_all_uses_with(r_new)
                    op.erase()
                    self.num_cse += 1
                else:
                    table[key] = op
            op = nxt


@register_pass
class DCE(Pass):
    NAME = "dce"
    SUMMARY = "Remove pure ops whose results are unused"

    def run(self, module: Operation) -> None:
        for op in list(module.walk(reverse=True)):
            if op is not module and op.parent is not None and is_trivially_dead(op):
                _erase_dead_tree(op)


def _erase_dead_tree(op: Operation) -> None:
    producers = [v.op for v in op.operands if hasattr(v, "op")]
    op.erase()
    for p in producers:
        if p.parent is not None and is_trivially_dead(p):
            _erase_dead_tree(p)


def _symbol_uses(attr, out: set[str]) -> None:
    if isinstance(attr, SymbolRefAttr):
        out.add(attr.root)
    elif isinstance(attr, ArrayAttr):
        for a in attr.value:
            _symbol_uses(a, out)
    elif isinstance(attr, DictionaryAttr):
        for a in attr.value.values():
            _symbol_uses(a, out)


@register_pass
class SymbolDCE(Pass):
    NAME = "symbol-dce"
    SUMMARY = "Remove private symbols (e.g. functions with sym_visibility = \"private\") that nothing references"

    def run(self, module: Operation) -> None:
        while True:
            used: set[str] = set()
            for op in module.walk():
                for a in op.attributes.values():
                    _symbol_uses(a, used)
            removed = False
            for region in module.regions:
                for block in region.blocks:
                    for op in list(block.ops):
                        vis = op.attributes.get("sym_visibility")
                        name = op.attributes.get("sym_name")
                        if (vis is not None and getattr(vis, "value", None) == "private" and name is not None
                                and name.value not in used):
                            op.erase(drop_uses=True)
                            removed = True
            if not removed:
                return


