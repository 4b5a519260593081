// RUN: fixflow-opt %s -p ensure-biases | filecheck %s
// A conv2d / linear without bias gets a zero bias constant of its output channels; one that has a
// bias keeps it.

// CHECK:      %[[Z:[^ ]+]] = "graph.constant"() {value = dense_resource<[[ZK:[^>]+]]> : tensor<3xf32>} : () -> tensor<3xf32>
// CHECK-NEXT: %c = "graph.conv2d"(%x, %w, %[[Z]])
// CHECK:      %lb = "graph.constant"() {value = dense<2.0> : tensor<5xf32>}
// CHECK-NEXT: %l = "graph.linear"(%f, %lw, %lb)
// CHECK-NOT:  "graph.constant"
// CHECK:      [[ZK]]: "0x04000000000000000000000000000000"
"builtin.module"() ({
  "func.func"() ({
  ^bb0(%x: tensor<1x2x4x4xf32>):
    %w = "graph.constant"() {value = dense<1.0> : tensor<3x2x1x1xf32>} : () -> tensor<3x2x1x1xf32>
    %c = "graph.conv2d"(%x, %w) {stride = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, dilation = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x4x4xf32>, tensor<3x2x1x1xf32>) -> tensor<1x3x4x4xf32>
    %f = "graph.flatten"(%c) {start_dim = 1 : i64, end_dim = -1 : i64} : (tensor<1x3x4x4xf32>) -> tensor<1x48xf32>
    %lw = "graph.constant"() {value = dense<1.0> : tensor<5x48xf32>} : () -> tensor<5x48xf32>
    %lb = "graph.constant"() {value = dense<2.0> : tensor<5xf32>} : () -> tensor<5xf32>
    %l = "graph.linear"(%f, %lw, %lb) : (tensor<1x48xf32>, tensor<5x48xf32>, tensor<5xf32>) -> tensor<1x5xf32>
    "func.return"(%l) : (tensor<1x5xf32>) -> ()
  }) {sym_name = "main", function_type = (tensor<1x2x4x4xf32>) -> tensor<1x5xf32>} : () -> ()
}) : () -> ()
