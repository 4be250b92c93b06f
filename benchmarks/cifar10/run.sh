#!/usr/bin/env bash
# The CPU study of CIFAR-10 (issue 21): cpu.toml, then cpu_t03.toml, two runs at once (one
# thread each). Resumable: rerun to continue. Runs land in $OUT (default
# benchmarks/results/cifar10); `python benchmarks/evidence/tables.py --study cifar10` then
# writes the per-class file and the tables committed here.
set -euo pipefail
cd "$(dirname "$0")/../.."
MR2="${MR2:-.venv/bin/mr2}"
out="${OUT:-benchmarks/results/cifar10}"
mkdir -p "$out"
for study in cpu cpu_t03; do
  start=$(date +%s)
  "$MR2" compare --config "benchmarks/cifar10/$study.toml" --out "$out/$study" \
    --executor pool --jobs "${JOBS:-2}" --set train.threads=1 "$@"
  echo "$study: $(( $(date +%s) - start )) s" | tee -a "$out/timings.txt"
done
