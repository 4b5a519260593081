// RUN: fixflow-opt %s -p symbol-dce | filecheck %s
// Private functions nothing references go; a referenced private one and public ones stay.

// CHECK-NOT:  sym_name = "unused"
// CHECK:      sym_name = "kept"
// CHECK-NOT:  sym_name = "unused"
// CHECK:      sym_name = "main"
// CHECK-NOT:  sym_name = "unused"
"builtin.module"() ({
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
