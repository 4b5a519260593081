"""The generic passes (passes/generic.py): canonicalize, cse, dce, symbol-dce."""

from __future__ import annotations

import pytest

from _lib.ir_text import FOLD, FOLDABLE
from fixflow.dialects.arith import AddIOp, ConstantOp, MulIOp
from fixflow.ir import parse_module, print_module
from fixflow.ir.diagnostics import PassError
from fixflow.ir.passes import PassManager


def op_names(module):
    return [op.name for op in module.walk()][2:]


def test_canonicalize_folds_constants_identities_and_dead_code():
    m = parse_module(FOLDABLE)
    PassManager.parse("builtin.module(canonicalize)").run(m)
    names = op_names(m)
    assert "arith.muli" not in names  # 2*3 folded, dead mul removed
    consts = [op for op in m.walk(ConstantOp)]
    assert [c.attributes["value"].value for c in consts] == [6]
    # x = a + 0 folded to a: the first add now uses the block argument directly
    adds = list(m.walk(AddIOp))
    assert adds[0].lhs is m.body.first_op.body.args[0]


def test_cse_merges_identical_pure_ops():
    m = parse_module(FOLDABLE)
    PassManager.parse("cse").run(m)
    adds = list(m.walk(AddIOp))
    assert len(adds) == 3  # %z and %w merged
    r = adds[-1]
    assert r.lhs is r.rhs


def test_dce_removes_unused_chains():
    m = parse_module(FOLDABLE)
    PassManager.parse("dce").run(m)
    assert "%dead" not in print_module(m)
    assert m.verify() is None


def test_symbol_dce_removes_unreferenced_private_functions():
    text = '''"builtin.module"() ({
  "func.func"() ({
  ^bb0(%a: i32):
    "func.return"(%a) : (i32) -> ()
  }) {function_type = (i32) -> i32, sym_name = "unused", sym_visibility = "private"} : () -> ()
  "func.func"() ({
  ^bb0(%a: i32):
    "func.return"(%a) : (i32) -> ()
  }) {function_type = (i32) -> i32, sym_name = "kept", sym_visibility = "private"} : () -> ()
  "func.func"() ({
  ^bb0(%a: i32):
    %r = "func.call"(%a) {callee = @kept} : (i32) -> i32
    "func.return"(%r) : (i32) -> ()
  }) {function_type = (i32) -> i32, sym_name = "main"} : () -> ()
}) : () -> ()
'''
    m = parse_module(text)
    PassManager.parse("symbol-dce").run(m)
    names = [f.sym_name for f in m.functions()]
    assert names == ["kept", "main"]


def test_canonicalize_puts_constants_last_and_cse_sees_commuted_ops():
    text = '''"builtin.module"() ({
  "func.func"() ({
  ^bb0(%a: i32, %b: i32):
    %c = "arith.constant"() {value = 7 : i32} : () -> i32
    %x = "arith.addi"(%c, %a) : (i32, i32) -> i32
    %y = "arith.muli"(%a, %b) : (i32, i32) -> i32
    %z = "arith.muli"(%b, %a) : (i32, i32) -> i32
    %r = "arith.addi"(%y, %z) : (i32, i32) -> i32
    %s = "arith.addi"(%r, %x) : (i32, i32) -> i32
    "func.return"(%s) : (i32) -> ()
  }) {function_type = (i32, i32) -> i32, sym_name = "f"} : () -> ()
}) : () -> ()
'''
    m = parse_module(text)
    PassManager.parse("canonicalize,cse").run(m)
    f = m.body.first_op
    x = [op for op in m.walk(AddIOp) if isinstance(op.rhs.op if hasattr(op.rhs, "op") else None, ConstantOp)]
    assert len(x) == 1 and x[0].lhs is f.args[0]
    assert len(list(m.walk(MulIOp))) == 1


def test_canonicalize_max_iterations_minus_one_means_no_limit(capsys):
    m = parse_module(FOLD)
    PassManager.parse("canonicalize{max-iterations=-1}").run(m)
    assert "arith.addi" not in print_module(m)
    with pytest.raises(PassError, match="max_iterations must be positive"):
        PassManager.parse("canonicalize{max-iterations=0}").run(parse_module(FOLD))
