// RUN: fixflow-opt %s -p canonicalize | filecheck %s
// Constants fold (2 * 3 -> 6), x + 0 -> x, the constant operand of a commutative op goes last,
// and unused ops disappear.

// CHECK:      ^bb0(%a: i32):
// CHECK-NEXT:   %[[C6:[^ ]+]] = "arith.constant"() {value = 6 : i32} : () -> i32
// CHECK-NEXT:   %[[S:[^ ]+]] = "arith.addi"(%a, %[[C6]]) : (i32, i32) -> i32
// CHECK-NEXT:   "func.return"(%[[S]]) : (i32) -> ()
// CHECK-NOT:  arith.muli
"builtin.module"() ({
  "func.func"() ({
  ^bb0(%a: i32):
    %c0 = "arith.constant"() {value = 0 : i32} : () -> i32
    %c2 = "arith.constant"() {value = 2 : i32} : () -> i32
    %c3 = "arith.constant"() {value = 3 : i32} : () -> i32
    %x = "arith.addi"(%a, %c0) : (i32, i32) -> i32
    %y = "arith.muli"(%c2, %c3) : (i32, i32) -> i32
    %s = "arith.addi"(%y, %x) : (i32, i32) -> i32
    %dead = "arith.muli"(%s, %s) : (i32, i32) -> i32
    "func.return"(%s) : (i32) -> ()
  }) {function_type = (i32) -> i32, sym_name = "f"} : () -> ()
}) : () -> ()
