#!/usr/bin/env bash
# What to run on a GPU lent for a few minutes (one call of at most ten): the checks that most
# need a GPU, in order of what they tell, then the CIFAR-10 study with the time left.
#   1. loss_speed.py                   MR2Loss + head vs CE + head vs the authors' loop, CUDA
#   2. capture_check.py                eager / compiled / CUDA-graph captured, two shapes in one
#                                      process (compiled state reset between them)
#   3. capture_kept                    the same with the compiled graphs kept from one shape to
#                                      the next (the form that once failed on an H200)
#   4. gpu_study.sh STUDY              default cifar10: all of CIFAR-10, 9 methods x 10 seeds,
#                                      run seed by seed until the budget's end (a partial study
#                                      says what is missing; its runs are complete, resumable
#                                      elsewhere); cifar10_long: ERM, MR², group DRO, 30 epochs
# Each step has its own time limit and a failed step does not stop the next. Everything the
# steps write goes under RESULTS (default benchmarks/results/lease): lease.md (the steps'
# output with the machine), the JSON files, and study.tgz (the study folders, checkpoints
# left out).
#
#   MR2_COMMIT=$(git rev-parse --short HEAD) BUDGET_S=540 RESULTS=DIR bash benchmarks/gpu_lease.sh
#   RESULTS=DIR bash benchmarks/gpu_lease.sh --tiny   # the same steps on the CPU, tiny sizes
#
# Environment: PYTHON (default .venv/bin/python, else python3), BUDGET_S (seconds for the
# whole script, default 540), STEPS (the checks to run, default all three: loss_speed
# capture capture_kept), STUDY (default cifar10), CIFAR10_JPEG (as gpu_study.sh;
# copy the file to data/cifar10_jpeg.npz to carry it to a lent machine).
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}"
export PYTHON="$PY" PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
BUDGET_S="${BUDGET_S:-540}"
STEPS="${STEPS:-loss_speed capture capture_kept}"
STUDY="${STUDY:-cifar10}"
start=$(date +%s)
if [ "${1:-}" = "--tiny" ]; then
  RESULTS="${RESULTS:?--tiny writes under RESULTS: set it (a scratch folder)}"
  dev=cpu tiny=(--tiny)
  loss=(--shapes 64,10,32 --repeats 2) capture=(--shapes 32,10,16 16,7,8 --repeats 2 --backend aot_eager)
else
  RESULTS="${RESULTS:-benchmarks/results/lease}"
  dev=cuda tiny=()
  loss=(--repeats 20) capture=(--shapes 128,100,640 1024,1000,2048 --repeats 30)
fi
mkdir -p "$RESULTS"
md="$RESULTS/lease.md"
{
  echo "# GPU lease ($dev), $(date -u +%Y-%m-%dT%H:%MZ)"
  "$PY" -c "import sys; sys.path.insert(0, 'benchmarks'); import json, environment; print(json.dumps(environment.describe('$dev')))"
  [ "$dev" = cuda ] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
} >"$md" 2>&1

step() {  # step NAME LIMIT_S COMMAND...: its output into lease.md, whatever its status
  local name=$1 limit=$2 t0
  shift 2
  case " $STEPS study " in *" $name "*) ;; *) return 0 ;; esac
  t0=$(date +%s)
  echo "## $name" >>"$md"
  timeout -k 10 "$limit" "$@" >>"$md" 2>&1
  local status=$?
  echo "($name: exit $status, $(( $(date +%s) - t0 )) s)" | tee -a "$md"
}

step loss_speed 100 "$PY" benchmarks/loss_speed.py --device $dev "${loss[@]}" \
  --out "$RESULTS/loss_speed_$dev.json"
step capture 120 "$PY" benchmarks/capture_check.py --device $dev "${capture[@]}" \
  --out "$RESULTS/capture_$dev.json"
step capture_kept 90 "$PY" benchmarks/capture_check.py --device $dev "${capture[@]}" \
  --keep-compiled --out "$RESULTS/capture_kept_$dev.json"
left=$(( BUDGET_S - ($(date +%s) - start) ))
deadline=$(( left - 45 ))  # the reports and the packing after the deadline
if [ "$deadline" -gt 60 ]; then
  mkdir -p "$RESULTS/study"
  step study $(( left - 10 )) env DEADLINE_S=$deadline REPORT_EVERY=100000 \
    RESULTS="$RESULTS/study" PACK="$RESULTS/study.tgz" bash benchmarks/gpu_study.sh "${tiny[@]}" "$STUDY"
else
  echo "no time left for the study ($left s)" | tee -a "$md"
fi
echo "gpu_lease: $(( $(date +%s) - start )) s" | tee -a "$md"
