// RUN: fixflow-opt %s -p remove-dropout | filecheck %s
// graph.dropout and graph.identity vanish; their users read the dropped op's operand.

// CHECK:      ^bb0(%x: tensor<1x2x4x4xf32>):
// CHECK-NEXT:   %r = "graph.relu"(%x)
// CHECK-NEXT:   %s = "graph.sigmoid"(%r)
// CHECK-NEXT:   "func.return"(%s)
// CHECK-NOT:  graph.dropout
// CHECK-NOT:  graph.identity
"builtin.module"() ({
  "func.func"() ({
  ^bb0(%x: tensor<1x2x4x4xf32>):
    %d = "graph.dropout"(%x) {p = 0.5 : f64} : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
    %r = "graph.relu"(%d) : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
    %i = "graph.identity"(%r) : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
    %s = "graph.sigmoid"(%i) : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
    "func.return"(%s) : (tensor<1x2x4x4xf32>) -> ()
  }) {sym_name = "main", function_type = (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>} : () -> ()
}) : () -> ()
