// RUN: fixflow-opt --split-input-file --verify-diagnostics %s
// Negative tests: each chunk must produce exactly the diagnostics its expected-* comments name.
"builtin.module"() ({
  "func.func"() ({
  ^bb0(%a: i32):
    // expected-error @+1 {{requires the same type for all operands and results}}
    %x = "arith.addi"(%a, %a) : (i32, i32) -> i64
    "func.return"(%a) : (i32) -> ()
  }) {function_type = (i32) -> i32, sym_name = "f"} : () -> ()
}) : () -> ()
// -----
"builtin.module"() ({
  // expected-error @+1 {{use of undeclared SSA value '%nope'}}
  %0 = "arith.addi"(%nope, %nope) : (i32, i32) -> i32
}) : () -> ()
// -----
"builtin.module"() ({
  // expected-note @+1 {{function @f declared here}}
  "func.func"() ({
  ^bb0(%a: i32):
    "func.return"(%a) : (i32) -> () // expected-error {{returns (i32) but the enclosing function's type is}}
  }) {function_type = (i32) -> f32, sym_name = "f"} : () -> ()
}) : () -> ()
// -----
"builtin.module"() ({
  // expected-error @+1 {{unknown operation 'arith.frobnicate' in dialect 'arith'}}
  %0 = "arith.frobnicate"() : () -> i32
}) : () -> ()
// -----
"builtin.module"() ({
  // expected-error @+1 {{requires attribute 'value'}}
  %0 = "arith.constant"() : () -> i32
}) : () -> ()
// -----
"builtin.module"() ({
  "func.func"() ({
  ^bb0(%a: i32):
    // expected-error @+1 {{must be the last operation in its block}}
    "func.return"(%a) : (i32) -> ()
    %x = "arith.addi"(%a, %a) : (i32, i32) -> i32
  }) {function_type = (i32) -> i32, sym_name = "f"} : () -> ()
}) : () -> ()
