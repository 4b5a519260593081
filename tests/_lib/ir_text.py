"""Small IR texts shared by the pass-manager, generic-pass and fixflow-opt tests."""

from __future__ import annotations

FOLDABLE = '''"builtin.module"() ({
  "func.func"() ({
  ^bb0(%a: i32):
    %c0 = "arith.constant"() {value = 0 : i32} : () -> i32
    %c2 = "arith.constant"() {value = 2 : i32} : () -> i32
    %c3 = "arith.constant"() {value = 3 : i32} : () -> i32
    %x = "arith.addi"(%a, %c0) : (i32, i32) -> i32
    %y = "arith.muli"(%c2, %c3) : (i32, i32) -> i32
    %z = "arith.addi"(%x, %y) : (i32, i32) -> i32
    %w = "arith.addi"(%x, %y) : (i32, i32) -> i32
    %dead = "arith.muli"(%w, %w) : (i32, i32) -> i32
    %r = "arith.addi"(%z, %w) : (i32, i32) -> i32
    "func.return"(%r) : (i32) -> ()
  }) {function_type = (i32) -> i32, sym_name = "f"} : () -> ()
}) : () -> ()
'''

FUNC = ('"builtin.module"() ({\n  "func.func"() ({\n  ^bb0(%a: i32):\n{body}'
        '    "func.return"(%a) : (i32) -> ()\n  }) {function_type = (i32) -> i32, sym_name = "f"} : () -> ()\n'
        '}) : () -> ()\n')


def func_text(body: str) -> str:
    """A module holding `func.func @f(%a: i32) -> i32` with `body` before its return of %a."""
    return FUNC.replace("{body}", body)


FOLD = func_text('    %c = "arith.constant"() {value = 2 : i32} : () -> i32\n'
                 '    %x = "arith.addi"(%c, %c) : (i32, i32) -> i32\n')
