"""Builder.emit: the one idiom every emitter (frontends, lowerings, readers) uses."""

from __future__ import annotations

import pytest

from fixflow.dialects.arith import AddIOp, ConstantOp
from fixflow.dialects.builtin import FuncOp
from fixflow.ir import Builder, IntegerAttr, VerifyError, i32, i64


def test_emit_names_verifies_and_returns_the_result():
    func = FuncOp.create_function("f", [i32, i32], [])
    b = Builder.at_end(func.body)
    x, y = func.body.args
    s = b.emit(AddIOp, x, y, name="sum")
    assert s.name_hint == "sum" and s.op.parent is func.body and s.type is i32


def test_an_op_that_fails_verification_does_not_stay_in_the_block():
    func = FuncOp.create_function("f", [i32], [])
    b = Builder.at_end(func.body)
    (x,) = func.body.args
    c = b.emit(ConstantOp, value=IntegerAttr(7, i64))
    with pytest.raises(VerifyError):
        b.emit(AddIOp, x, c, result_types=[i32])   # operands of different types
    assert [op.name for op in func.body.ops] == ["arith.constant"]
