#!/usr/bin/env bash
# Issue 34's frontier studies: each comparison's runs (resumable: rerun to continue) land in
# $OUT (default benchmarks/results/evidence), then `mr2 report` writes the committed report
# beside its config (frontiers, the matched-accuracy table against ERM + post-hoc offsets).
# Studies by name as arguments (default: all four, cheapest first is not the order: the
# CIFAR-10 5k study carries the README's headline).
set -euo pipefail
cd "$(dirname "$0")/../.."
MR2="${MR2:-.venv/bin/mr2}"
out="${OUT:-benchmarks/results/evidence}"
mkdir -p "$out"
studies=("$@")
[ ${#studies[@]} -gt 0 ] || studies=(frontier_cifar10_5k frontier_mlp frontier_fmnist_2k frontier_cifar10_2k)
for study in "${studies[@]}"; do
  start=$(date +%s)
  "$MR2" compare --config "benchmarks/evidence/$study.toml" --out "$out/$study"
  echo "$study: $(( $(date +%s) - start )) s" | tee -a "$out/timings.txt"
  "$MR2" report "$out/$study" --out "benchmarks/evidence/${study}_report"
done
