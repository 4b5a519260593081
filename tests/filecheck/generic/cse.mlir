// RUN: fixflow-opt %s -p cse | filecheck %s
// Identical pure ops merge (the second addi of %a, %b); ops with other operands or attributes stay.

// CHECK:      ^bb0(%a: i32, %b: i32):
// CHECK-NEXT:   %[[X:[^ ]+]] = "arith.addi"(%a, %b) : (i32, i32) -> i32
// CHECK-NEXT:   %[[Z:[^ ]+]] = "arith.addi"(%a, %a) : (i32, i32) -> i32
// CHECK-NEXT:   %[[C1:[^ ]+]] = "arith.constant"() {value = 1 : i32} : () -> i32
// CHECK-NEXT:   %[[C2:[^ ]+]] = "arith.constant"() {value = 2 : i32} : () -> i32
// CHECK-NEXT:   %[[M:[^ ]+]] = "arith.muli"(%[[X]], %[[X]]) : (i32, i32) -> i32
// CHECK-NEXT:   %[[R:[^ ]+]] = "arith.addi"(%[[M]], %[[Z]]) : (i32, i32) -> i32
// CHECK-NEXT:   %[[R2:[^ ]+]] = "arith.addi"(%[[C1]], %[[C2]]) : (i32, i32) -> i32
// CHECK-NEXT:   "func.return"(%[[R]], %[[R2]]) : (i32, i32) -> ()
"builtin.module"() ({
  "func.func"() ({
  ^bb0(%a: i32, %b: i32):
    %x = "arith.addi"(%a, %b) : (i32, i32) -> i32
    %y = "arith.addi"(%a, %b) : (i32, i32) -> i32
    %z = "arith.addi"(%a, %a) : (i32, i32) -> i32
    %c1 = "arith.constant"() {value = 1 : i32} : () -> i32
    %c2 = "arith.constant"() {value = 2 : i32} : () -> i32
    %m = "arith.muli"(%x, %y) : (i32, i32) -> i32
    %r = "arith.addi"(%m, %z) : (i32, i32) -> i32
    %r2 = "arith.addi"(%c1, %c2) : (i32, i32) -> i32
    "func.return"(%r, %r2) : (i32, i32) -> ()
  }) {function_type = (i32, i32) -> (i32, i32), sym_name = "f"} : () -> ()
}) : () -> ()
