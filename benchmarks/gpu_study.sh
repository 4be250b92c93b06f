#!/usr/bin/env bash
# The studies on one GPU, several runs at once (memory checked up front), data resident on
# the device. Each study is an ordinary resumable `mr2 compare` folder with its report; at
# the deadline the comparisons still running are stopped and reported with the runs that
# finished ("Missing runs" lists the rest; rerun to continue).
#
#   bash benchmarks/gpu_study.sh [STUDY ...]     # default: cifar10
#   bash benchmarks/gpu_study.sh --tiny          # CPU, tiny sizes: what the test suite runs
#   bash benchmarks/gpu_study.sh --cifar100 DIR  # the paper's recipe (DIR: the official
#                                                # cifar-100-python.tar.gz; 300 epochs)
#
# Studies: cifar10 (all 50,000 CIFAR-10 images, the fast recipe, 9 methods x 10 seeds:
# benchmarks/cifar10/gpu*.toml), frontier (issue 34: all of CIFAR-10, 6 methods x 10 seeds,
# each seed its own split, logits kept: frontiers and the table against ERM + offsets;
# benchmarks/cifar10/gpu_frontier.toml), cifar10_long (ERM, MR² and group DRO at 30 epochs instead
# of 12: benchmarks/cifar10/gpu_long.toml), cnn (Fashion-MNIST CNN, full split), resnet32 (CIFAR-10
# JPEG test images), mlp (the converged MLP study), subsets (the zero-training-error regime:
# MLP and CNN on 2,000 and 10,000 images), presets (MR²'s "paper" and "official" forms).
# Environment: PYTHON (default .venv/bin/python, else python3), RESULTS (default
# benchmarks/results/converged), CIFAR10_JPEG (all of CIFAR-10: default
# ../shared/data/cifar10_jpeg/cifar10_jpeg.npz, else data/cifar10_jpeg.npz in the repo),
# CIFAR_NPZ (the test-only file, default ../shared/data/cifar10_jpeg/...),
# DEADLINE_S (default 450), MR2_DATA (where the Fashion-MNIST files are, if not found),
# REPORT_EVERY (seconds between partial reports, default 120),
# PACK (a .tgz to write at the end: every study folder without its checkpoints, e.g. for
# copying results back from a lent machine).
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}"
CIFAR_NPZ="${CIFAR_NPZ:-../shared/data/cifar10_jpeg/cifar10_jpeg_test.npz}"
CIFAR10_JPEG="${CIFAR10_JPEG:-../shared/data/cifar10_jpeg/cifar10_jpeg.npz}"
[ -f "$CIFAR10_JPEG" ] || CIFAR10_JPEG=data/cifar10_jpeg.npz
DEADLINE_S="${DEADLINE_S:-450}"
tiny=0
cifar100=""
if [ "${1:-}" = "--tiny" ]; then tiny=1; shift; fi
if [ "${1:-}" = "--cifar100" ]; then
  cifar100="${2:?--cifar100 needs the folder that holds cifar-100-python.tar.gz}"
  [ -d "$cifar100" ] || { echo "--cifar100: no folder $cifar100" >&2; exit 2; }
  shift 2
  set -- cifar100 "$@"
fi
if [ "$tiny" = 1 ]; then
  RESULTS="${RESULTS:?--tiny writes under RESULTS: set it (a scratch folder)}"
  studies=(${@:-cifar10})
else
  RESULTS="${RESULTS:-benchmarks/results/converged}"
  studies=(${@:-cifar10})
fi
mkdir -p "$RESULTS"
start=$(date +%s)
pids=()

compare() {  # compare NAME CONFIG JOBS [--set ...]: one study in the background
  local name=$1 config=$2 jobs=$3
  shift 3
  [ -f "$config" ] || config="benchmarks/converged/$config.toml"
  local args=(--config "$config" --out "$RESULTS/$name" --set train.threads=1)
  args+=("$@")  # the study's own overrides; the tiny mode's below win
  case $config in
    *converged/resnet32.toml) args+=(--set "data.path=\"$CIFAR_NPZ\"") ;;
    *cifar10/gpu*.toml) args+=(--set "data.path=\"$CIFAR10_JPEG\"") ;;
    configs/cifar100*) args+=(--set "data.data_dir=\"$cifar100\"" --set data.allow_download=false) ;;
  esac
  if [ "$tiny" = 1 ]; then
    args+=(--seeds 0 1 --set train.epochs=2 --set data.train_subset=300 --set train.device=cpu)
    args+=(--set train.amp=false --executor local)
    case $config in  # the CIFAR-10 study: 500 validation images, a narrow network
      *cifar10/gpu*.toml) args+=(--set data.val_fraction=0.01 --set "model.options={widths=[8,16,16]}") ;;
    esac
  else
    args+=(--executor pool --jobs "$jobs")
  fi
  if [ "$check_only" = 1 ]; then  # every check at once; waited for below
    "$PY" -m mr2 compare "${args[@]}" --check >/dev/null &
    checks+=($!) check_names+=("$name")
    return 0
  fi
  ( exec setsid "$PY" -m mr2 compare "${args[@]}" >"$RESULTS/$name.log" 2>&1 ) &
  pids+=($!)
  echo "started $name (pid $!, $jobs runs at once)"
}

launch() {  # launch STUDY: its comparison(s)
  local ten=(--set data.train_subset=10000 --set train.epochs=60)
  case $1 in
    cifar10) warm_cifar10 && compare cifar10 benchmarks/cifar10/gpu.toml 12 \
      && compare cifar10_t03 benchmarks/cifar10/gpu_t03.toml 4 ;;
    cifar10_long) warm_cifar10 && compare cifar10_long benchmarks/cifar10/gpu_long.toml 15 ;;
    frontier) warm_cifar10 && compare frontier benchmarks/cifar10/gpu_frontier.toml 12 ;;
    cifar100) compare cifar100 configs/cifar100_resnet32.toml 6 ;;
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
    *) echo "unknown study $1 (cifar10 frontier cifar10_long cifar100 mlp subsets cnn resnet32 presets)" >&2
      return 2 ;;
  esac
}

warm_cifar10() {  # decode the JPEG file once (cached) before a dozen workers load it
  [ "$check_only" = 1 ] && return 0
  [ -f "$CIFAR10_JPEG" ] || { echo "cifar10: no file $CIFAR10_JPEG (set CIFAR10_JPEG)" >&2; return 1; }
  "$PY" -c "import sys; from mr2 import data; data.load('cifar10_jpeg', path=sys.argv[1])" \
    "$CIFAR10_JPEG" || return 1
}

check_only=1  # every study checks out before any trains (the tiny mode checks them all)
checks=() check_names=()
all="cifar10 frontier cifar10_long mlp subsets cnn resnet32 presets"
for study in $([ "$tiny" = 1 ] && echo "$all" || echo "${studies[@]}"); do
  launch "$study" || { echo "study $study does not check out" >&2; exit 2; }
done
for i in "${!checks[@]}"; do
  wait "${checks[$i]}" || { echo "study ${check_names[$i]} does not check out" >&2; exit 2; }
done
check_only=0
for study in "${studies[@]}"; do launch "$study"; done

report_all() {  # every study's report (and power statement, where ERM is there) so far
  local status=0 dir name
  for dir in "$RESULTS"/*/; do
    name=$(basename "$dir")
    [ -f "$RESULTS/$name.log" ] || continue
    if "$PY" -m mr2 report "$dir" >"$RESULTS/$name.report.log" 2>&1 \
      && { [ ! -d "$dir/ce" ] \
        || "$PY" benchmarks/converged/summarize.py "$dir" >>"$RESULTS/$name.report.log" 2>&1; }; then
      echo "$name: $(grep -c . "$dir/report.md") report lines, $(find "$dir" -name result.json | wc -l) results"
    else
      echo "$name: no report ($(tail -1 "$RESULTS/$name.report.log"))"; status=1
    fi
  done
  return $status
}

last_report=$(date +%s)
while :; do  # wait for every study, or the deadline; partial reports as it goes
  alive=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ "$alive" = 0 ] && break
  if [ $(( $(date +%s) - start )) -ge "$DEADLINE_S" ]; then
    echo "deadline ${DEADLINE_S} s: stopping the comparisons still running"
    for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null; done
    break
  fi
  if [ $(( $(date +%s) - last_report )) -ge "${REPORT_EVERY:-120}" ]; then
    echo "--- $(( $(date +%s) - start )) s: partial reports"
    report_all >/dev/null 2>&1
    for dir in "$RESULTS"/*/; do
      [ -f "$RESULTS/$(basename "$dir").log" ] && echo "$(basename "$dir"): $(find "$dir" -name result.json | wc -l) runs done"
    done
    last_report=$(date +%s)
  fi
  sleep 5
done
wait 2>/dev/null
report_all
status=$?
if [ -n "${PACK:-}" ]; then
  tar czf "$PACK" --exclude='*.pt' --exclude='*.lock' -C "$RESULTS" . && echo "packed: $PACK"
fi
echo "gpu_study: $(( $(date +%s) - start )) s"
exit $status
