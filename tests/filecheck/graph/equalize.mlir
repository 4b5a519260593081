// RUN: fixflow-opt %s -p equalize | filecheck %s
// Cross-layer equalization of conv %a -> relu -> conv %b: per channel c between them
// s = sqrt(r_a / r_b), r_a = max |output channel c of W_a|, r_b = max |input channel c of W_b|;
// W_a /= s, b_a /= s, W_b *= s.
//   channel 0: r_a = 8, r_b = 2 -> s = 2:   W_a = 4, b_a = 4 / 2 = 2, W_b = 2 * 2 = 4
//   channel 1: r_a = 1, r_b = 4 -> s = 0.5: W_a = 2, b_a = 2 / 0.5 = 4, W_b = 4 * 0.5 = 2
// Resources: 4-byte header (04000000) then little-endian f32: 2.0 = 00000040, 4.0 = 00008040.

// CHECK:      "graph.constant"() {value = dense_resource<[[WA:[^>]+]]> : tensor<2x1x1x1xf32>}
// CHECK:      "graph.constant"() {value = dense_resource<[[BA:[^>]+]]> : tensor<2xf32>}
// CHECK:      %a = "graph.conv2d"
// CHECK:      "graph.constant"() {value = dense_resource<[[WB:[^>]+]]> : tensor<1x2x1x1xf32>}
// CHECK:      %b = "graph.conv2d"
// CHECK-DAG:  [[WA]]: "0x040000000000804000000040"
// CHECK-DAG:  [[BA]]: "0x040000000000004000008040"
// CHECK-DAG:  [[WB]]: "0x040000000000804000000040"
"builtin.module"() ({
  "func.func"() ({
  ^bb0(%x: tensor<1x1x2x2xf32>):
    %wa = "graph.constant"() {value = dense<[[[[8.0]]], [[[1.0]]]]> : tensor<2x1x1x1xf32>} : () -> tensor<2x1x1x1xf32>
    %ba = "graph.constant"() {value = dense<[4.0, 2.0]> : tensor<2xf32>} : () -> tensor<2xf32>
    %a = "graph.conv2d"(%x, %wa, %ba) {stride = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, dilation = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x1x2x2xf32>, tensor<2x1x1x1xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
    %r = "graph.relu"(%a) : (tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32>
    %wb = "graph.constant"() {value = dense<[[[[2.0]], [[4.0]]]]> : tensor<1x2x1x1xf32>} : () -> tensor<1x2x1x1xf32>
    %b = "graph.conv2d"(%r, %wb) {stride = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, dilation = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x2x2xf32>, tensor<1x2x1x1xf32>) -> tensor<1x1x2x2xf32>
    "func.return"(%b) : (tensor<1x1x2x2xf32>) -> ()
  }) {sym_name = "main", function_type = (tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xf32>} : () -> ()
}) : () -> ()
