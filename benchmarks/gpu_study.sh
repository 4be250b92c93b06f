#!/usr/bin/env bash
# The converged studies (benchmarks/converged/*.toml) on one GPU, several runs at once,
# data resident on the device. Each study is an ordinary resumable `mr2 compare` folder
# with its report; at the deadline the comparisons still running are stopped and reported
# with the runs that finished ("Missing runs" lists the rest; rerun to continue).
#
#   bash benchmarks/gpu_study.sh [STUDY ...]     # default: cnn resnet32, at once
#   bash benchmarks/gpu_study.sh --tiny          # CPU, tiny sizes: what the test suite runs
#
# Studies: cnn (Fashion-MNIST CNN, full split), resnet32 (CIFAR-10 JPEG), and by name: mlp
# (the converged MLP study), subsets (the zero-training-error regime: MLP and CNN on 2,000
# and 10,000 images), presets (MR²'s "paper" and "official" forms on the MLP).
# Environment: PYTHON (default .venv/bin/python, else python3), RESULTS (default
# benchmarks/results/converged), CIFAR_NPZ (default ../shared/data/cifar10_jpeg/...),
# DEADLINE_S (default 450), MR2_DATA (where the Fashion-MNIST files are, if not found),
# PACK (a .tgz to write at the end: every study folder without its checkpoints, e.g. for
# copying results back from a lent machine).
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}"
CIFAR_NPZ="${CIFAR_NPZ:-../shared/data/cifar10_jpeg/cifar10_jpeg_test.npz}"
DEADLINE_S="${DEADLINE_S:-450}"
tiny=0
if [ "${1:-}" = "--tiny" ]; then tiny=1; shift; fi
if [ "$tiny" = 1 ]; then
  RESULTS="${RESULTS:?--tiny writes under RESULTS: set it (a scratch folder)}"
  studies=(${@:-subset_mlp_2k})
else
  RESULTS="${RESULTS:-benchmarks/results/converged}"
  studies=(${@:-cnn resnet32})
fi
mkdir -p "$RESULTS"
start=$(date +%s)
pids=()

compare() {  # compare NAME CONFIG JOBS [--set ...]: one study in the background
  local name=$1 config=$2 jobs=$3
  shift 3
  local args=(--config "benchmarks/converged/$config.toml" --out "$RESULTS/$name" --set train.threads=1)
  args+=("$@")  # the study's own overrides; the tiny mode's below win
  [ "$config" = resnet32 ] && args+=(--set "data.path=\"$CIFAR_NPZ\"")
  if [ "$tiny" = 1 ]; then
    args+=(--seeds 0 1 --set train.epochs=2 --set data.train_subset=300 --set train.device=cpu)
    args+=(--executor local)
  else
    args+=(--executor pool --jobs "$jobs")
  fi
  "$PY" -m mr2 compare "${args[@]}" --check >/dev/null || return 1
  [ "$check_only" = 1 ] && return 0
  ( exec setsid "$PY" -m mr2 compare "${args[@]}" >"$RESULTS/$name.log" 2>&1 ) &
  pids+=($!)
  echo "started $name (pid $!, $jobs runs at once)"
}

launch() {  # launch STUDY: its comparison(s)
  local ten=(--set data.train_subset=10000 --set train.epochs=60)
  case $1 in
    mlp) compare mlp mlp 6 ;;
    subsets) launch subset_mlp_2k && launch subset_cnn_2k && launch subset_mlp_10k \
      && launch subset_cnn_10k ;;
    subset_mlp_2k) compare subset_mlp_2k subset_mlp 1 ;;
    subset_cnn_2k) compare subset_cnn_2k subset_cnn 1 ;;
    subset_mlp_10k) compare subset_mlp_10k subset_mlp 2 "${ten[@]}" ;;
    subset_cnn_10k) compare subset_cnn_10k subset_cnn 2 "${ten[@]}" ;;
    cnn) compare cnn cnn 5 ;;
    resnet32) compare resnet32 resnet32 5 ;;
    presets) compare mlp_presets mlp_presets 1 ;;
    *) echo "unknown study $1 (mlp subsets cnn resnet32 presets)" >&2; return 2 ;;
  esac
}

check_only=1  # every study checks out before any trains (the tiny mode checks them all)
for study in $([ "$tiny" = 1 ] && echo mlp subsets cnn resnet32 presets || echo "${studies[@]}"); do
  launch "$study" || { echo "study $study does not check out" >&2; exit 2; }
done
check_only=0
for study in "${studies[@]}"; do launch "$study"; done

while :; do  # wait for every study, or the deadline
  alive=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ "$alive" = 0 ] && break
  if [ $(( $(date +%s) - start )) -ge "$DEADLINE_S" ]; then
    echo "deadline ${DEADLINE_S} s: stopping the comparisons still running"
    for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null; done
    break
  fi
  sleep 5
done
wait 2>/dev/null
status=0
for dir in "$RESULTS"/*/; do
  name=$(basename "$dir")
  [ -f "$RESULTS/$name.log" ] || continue
  if "$PY" -m mr2 report "$dir" >"$RESULTS/$name.report.log" 2>&1 \
    && "$PY" benchmarks/converged/summarize.py "$dir" >>"$RESULTS/$name.report.log" 2>&1; then
    echo "$name: $(grep -c . "$dir/report.md") report lines, $(find "$dir" -name result.json | wc -l) results"
  else
    echo "$name: no report ($(tail -1 "$RESULTS/$name.report.log"))"; status=1
  fi
done
if [ -n "${PACK:-}" ]; then
  tar czf "$PACK" --exclude='*.pt' --exclude=.lock -C "$RESULTS" . && echo "packed: $PACK"
fi
echo "gpu_study: $(( $(date +%s) - start )) s"
exit $status
