// RUN: fixflow-opt %s -p relu6-to-relu | filecheck %s
// Every graph.relu6 becomes a graph.relu on the same operand; other ops are untouched.

// CHECK:      ^bb0(%x: tensor<1x2x4x4xf32>):
// CHECK-NEXT:   %[[A:[^ ]+]] = "graph.relu"(%x) : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
// CHECK-NEXT:   %s = "graph.sigmoid"(%[[A]])
// CHECK-NEXT:   %[[B:[^ ]+]] = "graph.relu"(%s) : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
// CHECK-NEXT:   "func.return"(%[[B]])
// CHECK-NOT:  graph.relu6
"builtin.module"() ({
  "func.func"() ({
  ^bb0(%x: tensor<1x2x4x4xf32>):
    %a = "graph.relu6"(%x) : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
    %s = "graph.sigmoid"(%a) : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
    %b = "graph.relu6"(%s) : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
    "func.return"(%b) : (tensor<1x2x4x4xf32>) -> ()
  }) {sym_name = "main", function_type = (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>} : () -> ()
}) : () -> ()
