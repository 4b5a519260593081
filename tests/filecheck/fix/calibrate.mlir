// RUN: fixflow-opt %s -p "calibrate{batches=1 batch_size=4 bias_correction=false method=maxmin}" | filecheck %s
// Calibration on 4 digits images (pixels in [0, 1]) with max-min: the fix_pos of a value is the largest
// p with max|value| * 2^p <= 127 (8 bits):
//   input   max 1.0            -> p = 6  (64; 2^7 would give 128)
//   weight  max |w| = 0.5      -> p = 7  (64)
//   bias    max |b| = 3.0      -> p = 5  (96; 2^6 would give 192)
//   relu output max 0.5 * 1 + 3 = 3.5 -> p = 5 (112); channel 1 is -0.25 x - 0.125 <= 0.
// The annotations land on the conv (weight, bias), on the relu ending its group (out) and on the
// function (inputs).

// CHECK:      %c = "graph.conv2d"{{.*}}fix.weight = array<i64: 8, 7>, fix.bias = array<i64: 8, 5>}
// CHECK-NEXT: %r = "graph.relu"(%c) {fix.out = array<i64: 8, 5>}
// CHECK:      fix.inputs = [array<i64: 8, 6>]
"builtin.module"() ({
  "func.func"() ({
  ^bb0(%x: tensor<1x1x28x28xf32>):
    %w = "graph.constant"() {value = dense<[[[[0.5]]], [[[-0.25]]]]> : tensor<2x1x1x1xf32>} : () -> tensor<2x1x1x1xf32>
    %b = "graph.constant"() {value = dense<[3.0, -0.125]> : tensor<2xf32>} : () -> tensor<2xf32>
    %c = "graph.conv2d"(%x, %w, %b) {stride = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, dilation = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x1x28x28xf32>, tensor<2x1x1x1xf32>, tensor<2xf32>) -> tensor<1x2x28x28xf32>
    %r = "graph.relu"(%c) : (tensor<1x2x28x28xf32>) -> tensor<1x2x28x28xf32>
    "func.return"(%r) : (tensor<1x2x28x28xf32>) -> ()
  }) {sym_name = "main", function_type = (tensor<1x1x28x28xf32>) -> tensor<1x2x28x28xf32>} : () -> ()
}) : () -> ()
