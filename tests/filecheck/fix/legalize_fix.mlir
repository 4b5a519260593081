// RUN: fixflow-opt %s -p legalize-fix 2>&1 | filecheck %s
// conv %c: input fix_pos 6, weight 6, output (at the relu ending its group) 14:
// shift_cut = 6 + 6 - 14 = -2 < 0, so the output fix_pos is lowered to 12 (one warning naming the layer);
// shift_bias = 6 + 6 - 7 = 5 is legal, so weight and bias keep theirs.
// conv %d reads %r (now 12): weight 12, output 4: shift_cut = 12 + 12 - 4 = 20 > 16, so its weight fix_pos
// is lowered from 12 to 8; then shift_bias = 8 + 12 - 13 = 7 is legal.

// CHECK-DAG:  warning: {{.*}}shift_cut -2 < 0, output fix_pos lowered from 14 to 12
// CHECK-DAG:  warning: {{.*}}shift_cut 20 > 16, weight fix_pos lowered from 12 to 8
// CHECK:      %c = "graph.conv2d"{{.*}}fix.weight = array<i64: 8, 6>, fix.bias = array<i64: 8, 7>
// CHECK-NEXT: %r = "graph.relu"(%c) {fix.out = array<i64: 8, 12>}
// CHECK:      %d = "graph.conv2d"{{.*}}fix.weight = array<i64: 8, 8>, fix.bias = array<i64: 8, 13>
// CHECK-NEXT: %s = "graph.relu"(%d) {fix.out = array<i64: 8, 4>}
"builtin.module"() ({
  "func.func"() ({
  ^bb0(%x: tensor<1x1x2x2xf32>):
    %w = "graph.constant"() {value = dense<[[[[0.5]]], [[[-0.25]]]]> : tensor<2x1x1x1xf32>} : () -> tensor<2x1x1x1xf32>
    %b = "graph.constant"() {value = dense<[0.25, 0.5]> : tensor<2xf32>} : () -> tensor<2xf32>
    %c = "graph.conv2d"(%x, %w, %b) {stride = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, dilation = array<i64: 1, 1>, groups = 1 : i64, fix.weight = array<i64: 8, 6>, fix.bias = array<i64: 8, 7>} : (tensor<1x1x2x2xf32>, tensor<2x1x1x1xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
    %r = "graph.relu"(%c) {fix.out = array<i64: 8, 14>} : (tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32>
    %w2 = "graph.constant"() {value = dense<0.0078125> : tensor<1x2x1x1xf32>} : () -> tensor<1x2x1x1xf32>
    %b2 = "graph.constant"() {value = dense<0.0> : tensor<1xf32>} : () -> tensor<1xf32>
    %d = "graph.conv2d"(%r, %w2, %b2) {stride = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, dilation = array<i64: 1, 1>, groups = 1 : i64, fix.weight = array<i64: 8, 12>, fix.bias = array<i64: 8, 13>} : (tensor<1x2x2x2xf32>, tensor<1x2x1x1xf32>, tensor<1xf32>) -> tensor<1x1x2x2xf32>
    %s = "graph.relu"(%d) {fix.out = array<i64: 8, 4>} : (tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xf32>
    "func.return"(%s) : (tensor<1x1x2x2xf32>) -> ()
  }) {sym_name = "main", function_type = (tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xf32>, fix.inputs = [array<i64: 8, 6>]} : () -> ()
}) : () -> ()
