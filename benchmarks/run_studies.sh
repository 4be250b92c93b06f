#!/usr/bin/env bash
# The real-data studies (issue 5). Resumable: rerun to continue. Each prints its table and
# writes report.md / results.json / plots into its output folder.
set -euo pipefail
cd "$(dirname "$0")/.."
MR2="${MR2:-.venv/bin/mr2}"
out="${OUT:-benchmarks/results}"
for study in fashion_mnist/mlp fashion_mnist/cnn cifar10_jpeg/resnet32; do
  start=$(date +%s)
  "$MR2" compare --config "benchmarks/$study.toml" --out "$out/$study"
  echo "$study: $(( $(date +%s) - start )) s" | tee -a "$out/timings.txt"
done
