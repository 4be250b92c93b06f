#!/usr/bin/env bash
# The real-data studies (issue 5). Resumable: rerun to continue. Each writes report.md,
# results.json and plots into its output folder; timings are appended to timings.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
MR2="${MR2:-.venv/bin/mr2}"
out="${OUT:-benchmarks/results}"
run() {  # run CONFIG OUTPUT_DIR
  local start
  start=$(date +%s)
  "$MR2" compare --config "benchmarks/$1.toml" --out "$out/$2"
  echo "$1: $(( $(date +%s) - start )) s" | tee -a "$out/timings.txt"
}
run fashion_mnist/mlp fashion_mnist/mlp
run fashion_mnist/cnn fashion_mnist/cnn
run cifar10_jpeg/resnet32 cifar10_jpeg/resnet32
run fashion_mnist/mlp_temperature fashion_mnist/mlp_temperature
run fashion_mnist/cnn_baselines fashion_mnist/cnn   # same folder: one report with all methods
# The converged studies (issue 14): two runs at once, one thread each
conv() {  # conv CONFIG OUTPUT_DIR [--set ...]
  local start config=$1 dir=$2
  shift 2
  start=$(date +%s)
  "$MR2" compare --config "benchmarks/converged/$config.toml" --out "$out/converged/$dir" \
    --executor pool --jobs 2 --set train.threads=1 "$@"
  .venv/bin/python benchmarks/converged/summarize.py "$out/converged/$dir" \
    --into "benchmarks/converged/${dir}_report"
  echo "converged/$dir: $(( $(date +%s) - start )) s" | tee -a "$out/timings.txt"
}
conv mlp mlp
conv subset_mlp subset_mlp_2k
mkdir -p "$out/converged/mlp_presets"
[ -d "$out/converged/mlp_presets/ce" ] || cp -r "$out/converged/mlp/ce" "$out/converged/mlp_presets/ce"
conv mlp_presets mlp_presets
conv subset_mlp subset_mlp_10k --set data.train_subset=10000 --set train.epochs=60
