// RUN: fixflow-opt %s -p "partition{target=DPUCZDX8G_ISA1_B1024}" | filecheck %s
// conv + pool form one DPU subgraph (with their constants); the input is the user's, and the
// conversion back to float runs on the CPU, with the reason.

// CHECK:      "fix.data"{{.*}}dpu.device = "USER"
// CHECK:      %w = "fix.const"{{.*}}dpu.device = "DPU", dpu.subgraph = "[[SG:subgraph_[^"]+]]"
// CHECK:      %b = "fix.const"{{.*}}dpu.device = "DPU", dpu.subgraph = "[[SG]]"
// CHECK:      %c1 = "fix.conv2d"{{.*}}dpu.device = "DPU", dpu.subgraph = "[[SG]]"
// CHECK:      %p1 = "fix.pool"{{.*}}dpu.device = "DPU", dpu.subgraph = "[[SG]]"
// CHECK:      %f = "fix.float"{{.*}}dpu.device = "CPU", dpu.subgraph = "{{subgraph_[^"]+}}", dpu.reason = "{{.+}}"
// CHECK:      dpu.target = "DPUCZDX8G_ISA1_B1024"
"builtin.module"() ({
  "func.func"() ({
  ^bb0(%arg0: tensor<1x2x2x2xf32>):
    %x_q = "fix.data"(%arg0) {round_mode = "std_round", layout = "NHWC"} : (tensor<1x2x2x2xf32>) -> tensor<1x2x2x2x!fix.xint<8, 5>>
    %w = "fix.const"() {value = dense<"0x592302C5"> : tensor<2x1x1x2x!fix.xint<8, 7>>} : () -> tensor<2x1x1x2x!fix.xint<8, 7>>
    %b = "fix.const"() {value = dense<"0xCE8A"> : tensor<2x!fix.xint<8, 6>>} : () -> tensor<2x!fix.xint<8, 6>>
    %c1 = "fix.conv2d"(%x_q, %w, %b) {kernel = array<i64: 1, 1>, stride = array<i64: 1, 1>, pad = array<i64: 0, 0, 0, 0>, nonlinear = "RELU", dilation = array<i64: 1, 1>, group = 1 : i64} : (tensor<1x2x2x2x!fix.xint<8, 5>>, tensor<2x1x1x2x!fix.xint<8, 7>>, tensor<2x!fix.xint<8, 6>>) -> tensor<1x2x2x2x!fix.xint<8, 4>>
    %p1 = "fix.pool"(%c1) {type = "MAX", kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>, pad = array<i64: 0, 0, 0, 0>, is_global = false} : (tensor<1x2x2x2x!fix.xint<8, 4>>) -> tensor<1x1x1x2x!fix.xint<8, 4>>
    %f = "fix.float"(%p1) {layout = "NHWC"} : (tensor<1x1x1x2x!fix.xint<8, 4>>) -> tensor<1x1x1x2xf32>
    "func.return"(%f) : (tensor<1x1x1x2xf32>) -> ()
  }) {sym_name = "main", function_type = (tensor<1x2x2x2xf32>) -> tensor<1x1x1x2xf32>} : () -> ()
}) : () -> ()
