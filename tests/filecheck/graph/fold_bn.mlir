// RUN: fixflow-opt %s -p fold-bn | filecheck %s
// batch_norm folds into the conv: per channel s = gamma / sqrt(var + eps), w' = w * s,
// b' = beta - mean * s (the conv has no bias: b = 0). With eps = 0:
//   channel 0: s = 1 / 2 = 0.5,  w' = 2 * 0.5 = 1.0,  b' = 0.5 - 1 * 0.5 = 0.0
//   channel 1: s = 3 / 0.5 = 6,  w' = 3 * 6 = 18.0,   b' = 1 - (-2) * 6 = 13.0
// Resources hold a 4-byte alignment header (04000000) then little-endian f32:
//   1.0 = 0000803F, 18.0 = 00009041, 0.0 = 00000000, 13.0 = 00005041.

// CHECK-NOT:  graph.batch_norm
// CHECK:      %[[W:[^ ]+]] = "graph.constant"() {value = dense_resource<[[WK:[^>]+]]> : tensor<2x1x1x1xf32>}
// CHECK-NEXT: %[[B:[^ ]+]] = "graph.constant"() {value = dense_resource<[[BK:[^>]+]]> : tensor<2xf32>}
// CHECK-NEXT: %[[C:[^ ]+]] = "graph.conv2d"(%x, %[[W]], %[[B]])
// CHECK-NEXT: "func.return"(%[[C]])
// CHECK-NOT:  graph.batch_norm
// CHECK-DAG:  [[WK]]: "0x040000000000803F00009041"
// CHECK-DAG:  [[BK]]: "0x040000000000000000005041"
"builtin.module"() ({
  "func.func"() ({
  ^bb0(%x: tensor<1x1x2x2xf32>):
    %w = "graph.constant"() {value = dense<[[[[2.0]]], [[[3.0]]]]> : tensor<2x1x1x1xf32>} : () -> tensor<2x1x1x1xf32>
    %c = "graph.conv2d"(%x, %w) {stride = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, dilation = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x1x2x2xf32>, tensor<2x1x1x1xf32>) -> tensor<1x2x2x2xf32>
    %mean = "graph.constant"() {value = dense<[1.0, -2.0]> : tensor<2xf32>} : () -> tensor<2xf32>
    %var = "graph.constant"() {value = dense<[4.0, 0.25]> : tensor<2xf32>} : () -> tensor<2xf32>
    %gamma = "graph.constant"() {value = dense<[1.0, 3.0]> : tensor<2xf32>} : () -> tensor<2xf32>
    %beta = "graph.constant"() {value = dense<[0.5, 1.0]> : tensor<2xf32>} : () -> tensor<2xf32>
    %b = "graph.batch_norm"(%c, %mean, %var, %gamma, %beta) {eps = 0.0 : f64} : (tensor<1x2x2x2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
    "func.return"(%b) : (tensor<1x2x2x2xf32>) -> ()
  }) {sym_name = "main", function_type = (tensor<1x1x2x2xf32>) -> tensor<1x2x2x2xf32>} : () -> ()
}) : () -> ()
