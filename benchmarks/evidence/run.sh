#!/usr/bin/env bash
# The studies behind the README's evidence (issue 20). Resumable: rerun to continue; each
# comparison's runs land in $OUT (default benchmarks/results/evidence), then
# `python benchmarks/evidence/tables.py` writes the per-class files and tables committed here.
set -euo pipefail
cd "$(dirname "$0")/../.."
MR2="${MR2:-.venv/bin/mr2}"
out="${OUT:-benchmarks/results/evidence}"
mkdir -p "$out"
for study in subset_2k subset_2k_t03 mlp mlp_t03; do
  start=$(date +%s)
  "$MR2" compare --config "benchmarks/evidence/$study.toml" --out "$out/$study" \
    --set train.threads="${THREADS:-1}" "$@"
  echo "$study: $(( $(date +%s) - start )) s" | tee -a "$out/timings.txt"
done
