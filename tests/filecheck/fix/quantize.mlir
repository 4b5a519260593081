// RUN: fixflow-opt %s -p quantize | filecheck %s
// A calibrated conv + relu (fix.* annotations) becomes: fix.data (NCHW float -> NHWC xint<8, 6>),
// integer constants, one fix.conv2d with the relu fused (nonlinear = "RELU"), output xint<8, 5>,
// and fix.float back to NCHW. Weights at fix_pos 6: 0.5 * 64 = 32 = 0x20, -0.25 * 64 = -16 = 0xF0
// (OHWI int8); bias at fix_pos 7: 0.25 * 128 = 32 = 0x20, 0.5 * 128 = 64 = 0x40.

// CHECK:      %[[X:[^ ]+]] = "fix.data"(%x) {layout = "NCHW", {{.*}}} : (tensor<1x1x2x2xf32>) -> tensor<1x2x2x1x!fix.xint<8, 6>>
// CHECK-NEXT: %[[W:[^ ]+]] = "fix.const"() {value = dense_resource<[[WK:[^>]+]]> : tensor<2x1x1x1x!fix.xint<8, 6>>}
// CHECK-NEXT: %[[B:[^ ]+]] = "fix.const"() {value = dense_resource<[[BK:[^>]+]]> : tensor<2x!fix.xint<8, 7>>}
// CHECK-NEXT: %[[C:[^ ]+]] = "fix.conv2d"(%[[X]], %[[W]], %[[B]]) {nonlinear = "RELU", {{.*}}} : {{.*}} -> tensor<1x2x2x2x!fix.xint<8, 5>>
// CHECK-NEXT: %[[F:[^ ]+]] = "fix.float"(%[[C]]) {layout = "NCHW"} : (tensor<1x2x2x2x!fix.xint<8, 5>>) -> tensor<1x2x2x2xf32>
// CHECK-NEXT: "func.return"(%[[F]])
// CHECK-NOT:  graph.
// CHECK-DAG:  [[WK]]: "0x0400000020F0"
// CHECK-DAG:  [[BK]]: "0x040000002040"
"builtin.module"() ({
  "func.func"() ({
  ^bb0(%x: tensor<1x1x2x2xf32>):
    %w = "graph.constant"() {value = dense<[[[[0.5]]], [[[-0.25]]]]> : tensor<2x1x1x1xf32>} : () -> tensor<2x1x1x1xf32>
    %b = "graph.constant"() {value = dense<[0.25, 0.5]> : tensor<2xf32>} : () -> tensor<2xf32>
    %c = "graph.conv2d"(%x, %w, %b) {stride = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, dilation = array<i64: 1, 1>, groups = 1 : i64, fix.weight = array<i64: 8, 6>, fix.bias = array<i64: 8, 7>} : (tensor<1x1x2x2xf32>, tensor<2x1x1x1xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
    %r = "graph.relu"(%c) {fix.out = array<i64: 8, 5>} : (tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32>
    "func.return"(%r) : (tensor<1x2x2x2xf32>) -> ()
  }) {sym_name = "main", function_type = (tensor<1x1x2x2xf32>) -> tensor<1x2x2x2xf32>, fix.inputs = [array<i64: 8, 6>]} : () -> ()
}) : () -> ()
