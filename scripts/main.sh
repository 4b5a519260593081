#!/usr/bin/env bash
# Set up everything, then run the end-to-end flow on the bundled digits data:
# PyTorch model -> graph IR -> graph passes -> calibration on digits -> fixed-point module ->
# _int.xmodel -> compiled xmodels for kv260 and zcu102 (run on the DPU interpreter) -> the inspector's
# per-op placement for kv260 -> the _int.xmodel
# read back and executed in integer arithmetic, with accuracies at each level.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${OUT:-out}
mkdir -p "$OUT"

step() { printf '\n== %s\n' "$*"; }

step "1. The model zoo: the trained digits CNN"
fixflow-zoo show digits_cnn

step "2. Import it from PyTorch into the graph dialect (MLIR generic text, weights as dense_resource)"
fixflow-translate --import-zoo digits_cnn --print-debuginfo -o "$OUT/digits_cnn.mlir"
head -c 600 "$OUT/digits_cnn.mlir"; echo " ..."

step "3. Graph passes with fixflow-opt (fold batch norms, equalize, canonicalize, cse)"
fixflow-opt "$OUT/digits_cnn.mlir" -p "fold-bn,equalize,canonicalize,cse" --timing -o "$OUT/digits_cnn.opt.mlir"
if command -v mlir-opt-22 >/dev/null 2>&1; then
  mlir-opt-22 --allow-unregistered-dialect "$OUT/digits_cnn.opt.mlir" > /dev/null && echo "mlir-opt-22 accepts the IR"
fi

step "4. Quantize: calibrate on the digits training split, then test"
fixflow-quantize --model digits_cnn --data digits --mode calib --output-dir "$OUT/quantize_result"
fixflow-quantize --model digits_cnn --data digits --mode test --output-dir "$OUT/quantize_result"

step "5. The _int.xmodel"
fixflow-xir subgraph "$OUT/quantize_result/DigitsCNN_int.xmodel"
fixflow-xir graph "$OUT/quantize_result/DigitsCNN_int.xmodel" | head -20

step "6. Compile it for the DPU, as vai_c_xir does: kv260 and zcu102 (compiled xmodel, meta.json, md5sum.txt)"
fixflow-compile -x "$OUT/quantize_result/DigitsCNN_int.xmodel" -a kv260 -o "$OUT/compiled_kv260" -n digits \
  --options '{"keep_ir": true}'
fixflow-compile -x "$OUT/quantize_result/DigitsCNN_int.xmodel" -a zcu102 -o "$OUT/compiled_zcu102" -n digits
ls "$OUT/compiled_kv260" "$OUT/compiled_kv260/ir"
fixflow-xir subgraph "$OUT/compiled_kv260/digits.xmodel"
fixflow-run "$OUT/compiled_kv260/digits.xmodel" --data digits --no-progress --compare-torch digits_cnn

step "7. Inspect: where the compiler puts each op for kv260 and why (fused groups, source lines)"
fixflow-inspect digits_cnn --board kv260 --quant-dir "$OUT/quantize_result"
fixflow-inspect "$OUT/quantize_result/DigitsCNN_int.xmodel" --board kv260 --format json -o "$OUT/inspect_kv260.json"
if command -v dot >/dev/null 2>&1; then
  fixflow-inspect "$OUT/quantize_result/DigitsCNN_int.xmodel" --board kv260 --format svg -o "$OUT/inspect_kv260.svg"
else
  fixflow-inspect "$OUT/quantize_result/DigitsCNN_int.xmodel" --board kv260 --format dot -o "$OUT/inspect_kv260.dot"
fi
ls "$OUT"/inspect_kv260.*

step "7b. Profile the compiled program with the DPU cycle model (kv260), and write the HTML report"
fixflow-profile "$OUT/compiled_kv260/digits.xmodel" --board kv260
fixflow-profile "$OUT/compiled_kv260/digits.xmodel" --board kv260 --format html -o "$OUT/profile_kv260.html"
echo "wrote $OUT/profile_kv260.html"

step "8. Read the xmodel back and run it in integer arithmetic on the digits test split"
python3 examples/run_int_xmodel.py "$OUT/quantize_result/DigitsCNN_int.xmodel"

step "9. The same network written in the DSL, through the same passes"
fixflow-translate --import-dsl examples/cnn.ffn | fixflow-opt -p "fold-bn,canonicalize,cse" -o "$OUT/cnn_dsl.mlir"
echo "wrote $OUT/cnn_dsl.mlir"
