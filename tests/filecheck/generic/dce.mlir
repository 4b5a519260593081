// RUN: fixflow-opt %s -p dce | filecheck %s
// A chain of unused pure ops goes entirely; used ops stay; nothing is folded.

// CHECK:      ^bb0(%a: i32):
// CHECK-NEXT:   %c0 = "arith.constant"() {value = 0 : i32} : () -> i32
// CHECK-NEXT:   %x = "arith.addi"(%a, %c0) : (i32, i32) -> i32
// CHECK-NEXT:   "func.return"(%x) : (i32) -> ()
"builtin.module"() ({
  "func.func"() ({
  ^bb0(%a: i32):
    %c0 = "arith.constant"() {value = 0 : i32} : () -> i32
    %x = "arith.addi"(%a, %c0) : (i32, i32) -> i32
    %d1 = "arith.muli"(%x, %x) : (i32, i32) -> i32
    %d2 = "arith.addi"(%d1, %a) : (i32, i32) -> i32
    "func.return"(%x) : (i32) -> ()
  }) {function_type = (i32) -> i32, sym_name = "f"} : () -> ()
}) : () -> ()
