// RUN: fixflow-opt %s -p "partition{target=DPUCZDX8G_ISA1_B1024},allocate-ddr,lower-to-dpu,schedule-dpu,verify-dpu-schedule" | filecheck %s
// The DPU subgraph (1x1 conv + relu, then 2x2 max pool) becomes one dpu.program for the B1024:
// loads, conv init (relu: act_type 1; shift_cut = w + i - o = 7 + 5 - 4 = 8), conv, then the pool as
// ALU init (2x2 kernel) + ALU reading the conv's output in the banks (an on-chip chain: no SAVE/LOAD
// between them), its save, and END. The input fix_pos 5, weights 7, output 4.

// CHECK:      "dpu.program"() ({
// CHECK:      "dpu.load"()
// CHECK:      "dpu.convinit"() {{{.*}} act_type = 1 : i32, shift_cut = 8 : i32,
// CHECK-NEXT: "dpu.conv"()
// CHECK-NEXT: "dpu.aluinit"() {{{.*}} kernel_h = 2 : i32, kernel_w = 2 : i32,
// CHECK-NEXT: "dpu.alu"()
// CHECK-NEXT: "dpu.save"()
// CHECK-NEXT: "dpu.end"()
// CHECK-NEXT: }) {target = "DPUCZDX8G_ISA1_B1024", sym_name = "subgraph_c1"
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
