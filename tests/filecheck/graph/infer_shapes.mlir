// RUN: fixflow-opt %s -p "infer-shapes{batch=3}" | filecheck %s
// The batch of every input becomes 3 and every result type is recomputed from its operands
// (conv 3x3 stride 2 pad 1 on 8x8 -> 4x4, then flatten 4*4*4 = 64).

// CHECK:      ^bb0(%x: tensor<3x2x8x8xf32>):
// CHECK:      %c = "graph.conv2d"(%x, %w) {{.*}} -> tensor<3x4x4x4xf32>
// CHECK-NEXT: %f = "graph.flatten"(%c) {{.*}} : (tensor<3x4x4x4xf32>) -> tensor<3x64xf32>
// CHECK-NEXT: "func.return"(%f) : (tensor<3x64xf32>) -> ()
// CHECK:      function_type = (tensor<3x2x8x8xf32>) -> tensor<3x64xf32>
"builtin.module"() ({
  "func.func"() ({
  ^bb0(%x: tensor<1x2x8x8xf32>):
    %w = "graph.constant"() {value = dense<1.0> : tensor<4x2x3x3xf32>} : () -> tensor<4x2x3x3xf32>
    %c = "graph.conv2d"(%x, %w) {stride = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>, dilation = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x8x8xf32>, tensor<4x2x3x3xf32>) -> tensor<1x4x4x4xf32>
    %f = "graph.flatten"(%c) {start_dim = 1 : i64, end_dim = -1 : i64} : (tensor<1x4x4x4xf32>) -> tensor<1x64xf32>
    "func.return"(%f) : (tensor<1x64xf32>) -> ()
  }) {sym_name = "main", function_type = (tensor<1x2x8x8xf32>) -> tensor<1x64xf32>} : () -> ()
}) : () -> ()
